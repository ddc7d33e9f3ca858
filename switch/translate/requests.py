"""Request builders: operations -> ISO 8583 request dicts.

One frozen dataclass per operation (authorize 0100, sale 0200, rebill,
refund and credit 0200, capture 0220, reversal 0400 and its advices
0420/0421), checked when made; :func:`build` turns one into its message at a
given time. The caller passes the RRN (DE 37) and the time; the link stamps
DE 11 (STAN) when it sends. Field usage follows ``schemas/iso8583/MESSAGES.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from switch.money import Currency, InvalidAmount
from switch.translate.values import (
    _CREDIT,
    _KEYED,
    _ON_FILE,
    _PURCHASE,
    _REFUND,
    _TOKENIZED,
    Card,
    Channel,
    CredentialReason,
    Descriptor,
    Initiator,
    InvalidCard,
    InvalidField,
    Merchant,
    OriginalRef,
    StoredCredential,
    ThreeDSecure,
    _check_amount,
    _check_rrn,
    _is_text,
    _times,
)
from switch.wire.codec import Message

__all__ = [
    "Authorize",
    "Capture",
    "Credit",
    "IsoRequest",
    "Rebill",
    "Refund",
    "Reversal",
    "Sale",
    "build",
    "repeat",
    "reversal_of",
]


# The acceptor's fields are the same on every message of a merchant (and
# descriptor); validating and padding them once per pair keeps build() short.
@functools.lru_cache(maxsize=4096)
def _acceptor_fields(merchant: Merchant, descriptor: Descriptor | None) -> Message:
    return {
        "18": merchant.mcc,
        "32": merchant.acquirer_id,
        "41": f"{merchant.terminal_id:<8}",
        "42": f"{merchant.merchant_id:<15}",
        "43": (descriptor or merchant.descriptor).field43(),
    }


def _card_request(
    *,
    mti: str,
    processing_code: str,
    merchant: Merchant,
    card: Card,
    amount: int,
    cur: Currency,
    rrn: str,
    now: datetime,
    channel: Channel,
    descriptor: Descriptor | None,
    cvv: bool = False,
    three_ds: ThreeDSecure | None = None,
    stored: StoredCredential | None = None,
    original: OriginalRef | None = None,
    tokenized: bool = False,
) -> Message:
    """The 0100/0200 shape shared by authorize, sale, rebill, refund and credit."""
    de7, de12, de13 = _times(now)
    acceptor = _acceptor_fields(merchant, descriptor)
    msg: Message = {"t": mti, "2": card.pan, "3": processing_code, "4": f"{amount:012d}", "7": de7}
    msg["12"] = de12
    msg["13"] = de13
    expiry = card.expiry
    if expiry is not None:
        msg["14"] = expiry
    msg["18"] = acceptor["18"]
    if tokenized:
        msg["22"] = _TOKENIZED
    else:
        msg["22"] = _ON_FILE if stored is not None and stored.from_file else _KEYED
    msg["25"] = channel.value
    msg["32"] = acceptor["32"]
    msg["37"] = rrn
    msg["41"] = acceptor["41"]
    msg["42"] = acceptor["42"]
    msg["43"] = acceptor["43"]
    msg["49"] = cur.numeric
    if original is not None:
        msg["90"] = original.field90()
    # CVV only from a cardholder present now: a merchant-initiated charge never has one.
    if cvv and card.cvv is not None and (stored is None or stored.initiator is Initiator.CARDHOLDER):
        msg["120"] = card.cvv
    if three_ds is not None:
        msg.update(three_ds._fields())
    if stored is not None:
        msg["124"] = stored.field124()
    return msg


def _need_expiry(card: Card) -> None:
    if card.expiry is None:
        raise InvalidCard("this operation needs the card's expiry", field="14")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Purchase:
    merchant: Merchant
    card: Card
    amount: int
    currency: Currency
    rrn: str
    three_ds: ThreeDSecure | None = None
    stored_credential: StoredCredential | None = None
    descriptor: Descriptor | None = None
    channel: Channel = Channel.ECOMMERCE
    tokenized: bool = False  # a wallet token / DSRP: DE 22 810, its cryptogram in DE 122 (three_ds)

    _MTI: ClassVar[str] = ""
    _LOWEST: ClassVar[int] = 1

    def __post_init__(self) -> None:
        _check_amount(self.amount, self._LOWEST)
        _check_rrn(self.rrn)
        _need_expiry(self.card)
        if self.tokenized and (self.three_ds is None or self.three_ds.cavv is None):
            raise InvalidField("a tokenized credential needs its cryptogram", field="122")

    def _message(self, now: datetime) -> Message:
        return _card_request(
            mti=self._MTI,
            processing_code=_PURCHASE,
            merchant=self.merchant,
            card=self.card,
            amount=self.amount,
            cur=self.currency,
            rrn=self.rrn,
            now=now,
            channel=self.channel,
            descriptor=self.descriptor,
            cvv=True,
            three_ds=self.three_ds,
            stored=self.stored_credential,
            tokenized=self.tokenized,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Authorize(_Purchase):
    """0100 authorization (hold), processing code 000000. A zero amount verifies the card."""

    _MTI: ClassVar[str] = "0100"
    _LOWEST: ClassVar[int] = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Sale(_Purchase):
    """0200 financial (authorize and capture in one), processing code 000000."""

    _MTI: ClassVar[str] = "0200"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rebill:
    """Merchant-initiated repeat on a stored card: 0100 (or 0200 with ``mti="0200"``).

    DE 124 = ``M`` + reason + the first transaction's RRN, DE 22 = 100
    (credential on file), no CVV and no 3-D Secure data: the cardholder is
    not there. A CVV on ``card`` is ignored.
    """

    merchant: Merchant
    card: Card
    amount: int
    currency: Currency
    rrn: str
    first_rrn: str
    reason: CredentialReason = CredentialReason.RECURRING
    mti: str = "0100"
    trace_id: str | None = None  # the network's id of the series' first transaction: DE 124's reference if given
    descriptor: Descriptor | None = None
    channel: Channel = Channel.ECOMMERCE

    def __post_init__(self) -> None:
        if self.mti not in ("0100", "0200"):
            raise InvalidField("a rebill is sent as 0100 or 0200", field="t")
        _check_amount(self.amount, 1)
        _check_rrn(self.rrn)
        _need_expiry(self.card)
        self.stored_credential  # validates now  # noqa: B018

    @property
    def stored_credential(self) -> StoredCredential:
        return StoredCredential(Initiator.MERCHANT, self.reason, self.first_rrn, self.trace_id)

    def _message(self, now: datetime) -> Message:
        return _card_request(
            mti=self.mti,
            processing_code=_PURCHASE,
            merchant=self.merchant,
            card=self.card,
            amount=self.amount,
            cur=self.currency,
            rrn=self.rrn,
            now=now,
            channel=self.channel,
            descriptor=self.descriptor,
            stored=self.stored_credential,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _CardCredit:
    """A 0200 that moves money to the card: its own RRN, DE 90 of the captured original if given."""

    merchant: Merchant
    card: Card
    amount: int
    currency: Currency
    rrn: str
    original: OriginalRef | None = None
    descriptor: Descriptor | None = None
    channel: Channel = Channel.ECOMMERCE

    _CODE: ClassVar[str] = ""

    def __post_init__(self) -> None:
        _check_amount(self.amount, 1)
        _check_rrn(self.rrn)
        o = self.original
        if o is None:
            return
        if o.mti not in ("0200", "0220"):
            raise InvalidField(f"refunds and credits reference a 0200 or 0220, not {o.mti}", field="90")
        if o.currency != self.currency:
            raise InvalidField(
                f"currency {self.currency.alpha} differs from the original's {o.currency.alpha}", field="49"
            )

    def _message(self, now: datetime) -> Message:
        return _card_request(
            mti="0200",
            processing_code=self._CODE,
            merchant=self.merchant,
            card=self.card,
            amount=self.amount,
            cur=self.currency,
            rrn=self.rrn,
            now=now,
            channel=self.channel,
            descriptor=self.descriptor,
            original=self.original,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Refund(_CardCredit):
    """0200 refund, processing code 200000; ``original`` is the captured 0200 sale or 0220.

    One refund may not exceed the original amount (the ledger checks the
    running total of partial refunds).
    """

    _CODE: ClassVar[str] = _REFUND

    def __post_init__(self) -> None:
        _CardCredit.__post_init__(self)
        if self.original is not None and self.amount > self.original.amount:
            raise InvalidAmount(f"refund {self.amount} exceeds the original amount {self.original.amount}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Credit(_CardCredit):
    """0200 original credit transaction (OCT, a payout to the card), processing code 260000.

    ``original`` (optional) is the order's captured transaction; unlike a
    refund, a credit may exceed it.
    """

    _CODE: ClassVar[str] = _CREDIT


@dataclass(frozen=True, slots=True, kw_only=True)
class Capture:
    """0220 completion of an authorization: full (``amount=None``) or partial amount.

    Carries the original's RRN (DE 37), auth code (DE 38), processing code
    and DE 90. Only the card's PAN is used.
    """

    merchant: Merchant
    card: Card
    original: OriginalRef
    amount: int | None = None
    # The most the capture may be: the authorized amount (None), or more when the project allows over-capture.
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.original.mti != "0100":
            raise InvalidField(f"a capture completes a 0100, not {self.original.mti}", field="90")
        if self.original.auth_code is None:
            raise InvalidField("a capture needs the original's auth code", field="38")
        if self.amount is not None:
            _check_amount(self.amount, 1)
            limit = self.original.amount if self.limit is None else max(self.limit, self.original.amount)
            if self.amount > limit:
                raise InvalidAmount(f"capture {self.amount} exceeds the authorized amount {self.original.amount}")

    def _message(self, now: datetime) -> Message:
        o = self.original
        de7, de12, de13 = _times(now)
        amount = o.amount if self.amount is None else self.amount
        msg: Message = {"t": "0220", "2": self.card.pan, "3": o.processing_code, "4": f"{amount:012d}"}
        msg["7"] = de7
        msg["12"] = de12
        msg["13"] = de13
        acceptor = _acceptor_fields(self.merchant, None)
        msg["32"] = acceptor["32"]
        msg["37"] = o.rrn
        msg["38"] = o.auth_code or ""
        msg["41"] = acceptor["41"]
        msg["42"] = acceptor["42"]
        msg["49"] = o.currency.numeric
        msg["90"] = o.field90()
        return msg


@dataclass(frozen=True, slots=True, kw_only=True)
class Reversal:
    """0400 reversal of a 0100, 0200 or 0220, or its advice 0420 / repeat 0421 (``mti``).

    Always the original's full amount and processing code, with its RRN, its
    auth code when it got one (a timed-out original has none) and DE 90.
    A 0220 whose outcome is unknown is reversed too (the host puts the hold back).
    """

    merchant: Merchant
    card: Card
    original: OriginalRef
    mti: str = "0400"

    def __post_init__(self) -> None:
        _check_reversal(self.mti, self.original)

    def _message(self, now: datetime) -> Message:
        acceptor = _acceptor_fields(self.merchant, None)
        return _reversal_message(self.mti, self.card.pan, self.original, acceptor, now)


def _check_reversal(mti: str, original: OriginalRef) -> None:
    if mti not in ("0400", "0420", "0421"):
        raise InvalidField("a reversal is sent as 0400, 0420 or 0421", field="t")
    if original.mti not in ("0100", "0200", "0220"):
        raise InvalidField(f"a reversal undoes a 0100, 0200 or 0220, not {original.mti}", field="90")


def _reversal_message(mti: str, pan: str, o: OriginalRef, acceptor: Mapping[str, str], now: datetime) -> Message:
    msg: Message = {"t": mti, "2": pan, "3": o.processing_code, "4": f"{o.amount:012d}"}
    msg["7"] = _times(now)[0]
    msg["32"] = acceptor["32"]
    msg["37"] = o.rrn
    if o.auth_code is not None:
        msg["38"] = o.auth_code
    msg["41"] = acceptor["41"]
    msg["42"] = acceptor["42"]
    msg["49"] = o.currency.numeric
    msg["90"] = o.field90()
    return msg


def reversal_of(
    original: OriginalRef, *, pan: str, terminal_id: str, merchant_id: str, now: datetime, mti: str = "0400"
) -> Message:
    """The reversal (0400) or advice (0420/0421) of ``original`` without a :class:`Merchant`.

    What store-and-forward uses: it keeps the original's DE 41 and DE 42 as
    sent, not the project's settings of today. DE 32 is the original's.
    """
    _check_reversal(mti, original)
    if not _is_text(terminal_id, 1, 8) or not _is_text(merchant_id, 1, 15):
        raise InvalidField("terminal id must be 1-8 and merchant id 1-15 characters", field="41")
    acceptor = {"32": original.acquirer_id, "41": f"{terminal_id:<8}", "42": f"{merchant_id:<15}"}
    return _reversal_message(mti, pan, original, acceptor, now)


#: Any request :func:`build` takes. Not ``Operation``: that is the stored row of an order's
#: operation (switch.orders.model), which one of these becomes on the wire.
IsoRequest = Authorize | Sale | Rebill | Refund | Credit | Capture | Reversal


def build(request: IsoRequest, now: datetime) -> Message:
    """The ISO 8583 request for ``request`` at ``now`` (timezone-aware), without DE 11."""
    return request._message(now)


def repeat(advice: Mapping[str, str]) -> Message:
    """The 0421 repeat of a sent 0420: same fields, same DE 11 and DE 7, so the host dedupes it."""
    if advice.get("t") not in ("0420", "0421"):
        raise InvalidField("only a 0420 reversal advice is repeated as 0421", field="t")
    out = dict(advice)
    out["t"] = "0421"
    return out
