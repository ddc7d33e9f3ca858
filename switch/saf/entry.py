"""What the queue's parts share: a row as the sender reads it, the original's fields, the send, the tallies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from switch import metrics
from switch.errors import (
    DestinationUnavailable,
    DuplicateRequest,
    LinkBusy,
    LinkClosed,
    LinkNotReady,
    NoRoute,
    RequestTimeout,
    TranslationError,
)
from switch.money import currency
from switch.translate import OriginalRef
from switch.wire.codec import Message

# REVERSIBLE and original_fields are public (switch.saf re-exports them); the rest serves the package's modules.
__all__ = [
    "NOT_ANSWERED",
    "REVERSIBLE",
    "Entry",
    "Router",
    "Tally",
    "Vault",
    "entry_of",
    "original_fields",
    "reason",
    "send",
    "utcnow",
]

# MTIs whose unknown outcome is reversed (a 0400 that got no answer is repeated as the advice).
REVERSIBLE = frozenset({"0100", "0200", "0220", "0400"})

# What "no answer" is: the host may not have seen the reversal, so it stays due.
NOT_ANSWERED = (
    RequestTimeout,
    LinkClosed,
    DestinationUnavailable,
    NoRoute,
    LinkNotReady,
    LinkBusy,
    DuplicateRequest,
)


class Router(Protocol):
    def pool_for(self, pan: str, *, test_mode: bool = False) -> Any: ...

    async def request_to(self, destination: str, msg: Message, *, timeout: float | None = None) -> Message: ...


class Vault(Protocol):
    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Entry:
    """A saf row, with the order's sealed card (never the PAN itself)."""

    id: int
    order_id: str
    destination: str | None
    original: OriginalRef | None  # None: not enough of the original was recorded to reverse it
    terminal_id: str
    merchant_id: str
    attempts: int
    advice_stan: str | None
    advice_time: str | None
    card_key_id: str | None
    card_blob: bytes | None


def original_fields(msg: Mapping[str, str], currency_alpha: str) -> dict[str, Any]:
    """What a reversal needs of the message that went out (for a 0400: of the original its DE 90 names)."""
    mti = msg["t"]
    if mti in ("0400", "0420", "0421"):
        f90 = msg.get("90", "")
        orig_mti, stan, de7 = f90[:4] or None, f90[4:10] or None, f90[10:20] or None
    else:
        orig_mti, stan, de7 = mti, msg.get("11"), msg.get("7")
    auth = msg.get("38")
    return {
        "mti": orig_mti or mti,
        "stan": stan,
        "transmission_time": de7,
        "rrn": msg.get("37"),
        "auth_code": auth if auth and auth.strip() else None,
        "amount": int(msg.get("4", "0")),
        "currency": currency_alpha,
        "acquirer_id": msg.get("32"),
        "terminal_id": msg.get("41", "").rstrip() or None,
        "merchant_id": msg.get("42", "").rstrip() or None,
        "processing_code": msg.get("3"),
    }


def entry_of(row: Mapping[str, Any]) -> Entry:
    try:
        original: OriginalRef | None = OriginalRef(
            mti=row["mti"],
            stan=row["stan"],
            transmission_time=row["transmission_time"],
            rrn=row["rrn"],
            auth_code=row["auth_code"],
            amount=row["amount"],
            currency=currency(row["currency"]),
            acquirer_id=row["acquirer_id"] or "0",
            processing_code=row["processing_code"] or "000000",
        )
    except (TranslationError, ValueError, TypeError, KeyError):
        original = None
    return Entry(
        id=row["id"],
        order_id=row["order_id"],
        destination=row["destination"],
        original=original,
        terminal_id=row["terminal_id"] or "",
        merchant_id=row["merchant_id"] or "",
        attempts=row["attempts"],
        advice_stan=row["advice_stan"],
        advice_time=row["advice_time"],
        card_key_id=row.get("card_key_id"),
        card_blob=row.get("card_blob"),
    )


async def send(router: Router, destination: str | None, msg: Message, timeout: float | None) -> Message:
    """A reversal or advice to the original's destination (routed by DE 2 when it was not recorded)."""
    dest = router.pool_for(msg.get("2", "")).name if destination is None else destination
    return await router.request_to(dest, msg, timeout=timeout)


class Tally:
    """Counters of the queue's life (tests and the metrics issue read them) and ``isoswitch_reversals{mti}``."""

    __slots__ = ("_sent", "advices_sent", "delivered", "manual", "recovered", "reversals_sent")

    def __init__(self) -> None:
        self.reversals_sent = 0  # 0400s sent at once
        self.advices_sent = 0  # 0420s and 0421s sent by the worker
        self.delivered = 0  # reversals a host answered
        self.manual = 0  # rows left for a person
        self.recovered = 0  # orphaned pending operations queued by recovery
        self._sent = {mti: metrics.counter("isoswitch_reversals", mti) for mti in ("0400", "0420", "0421")}

    def sent(self, mti: str) -> None:
        if mti == "0400":
            self.reversals_sent += 1
        else:
            self.advices_sent += 1
        self._sent[mti].inc()


def reason(e: BaseException) -> str:
    if isinstance(e, RequestTimeout):
        return "timed out"
    if isinstance(e, LinkClosed):
        return "connection lost"
    return "destination unavailable"


def utcnow() -> datetime:
    return datetime.now(UTC)
