"""An order's card: what it shows (scheme, subtype, issuer from ``schemas/orders/cards.json``) and its sealed copy.

>>> describe("4111111111111111")
CardInfo(bin='411111', type='visa', subtype='classic', issuer={'bin': '411111', 'country': 'UKR', 'title': 'TestBank'})
>>> describe("6011000990139424").type, describe("5105105105105100").type, describe("9999999999999995").type
('discover', 'mastercard', 'unknown')
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from schemas import SCHEMAS_DIR
from switch.money import Currency
from switch.orders.errors import IssuerError, Rejected
from switch.orders.model import Order, OrderStatus, Source
from switch.store.errors import VaultError
from switch.store.projects import Project
from switch.translate import Card
from switch.wire.cards import mask_pan

__all__ = ["CardInfo", "OrderCards", "Vault", "card_types", "describe"]

log = logging.getLogger("isoswitch.orders")

UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CardInfo:
    bin: str
    type: str
    subtype: str
    issuer: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Scheme:
    low: str
    high: str
    type: str

    @property
    def width(self) -> int:
        return (int(self.high) - int(self.low) + 1) * 10 ** (19 - len(self.low))


@functools.cache
def _table() -> tuple[list[_Scheme], dict[str, dict[str, str]]]:
    with open(SCHEMAS_DIR / "orders" / "cards.json", encoding="utf-8") as f:
        doc = json.load(f)
    schemes = sorted((_Scheme(s["low"], s["high"], s["type"]) for s in doc["schemes"]), key=lambda s: s.width)
    return schemes, doc["bins"]


def card_types() -> tuple[str, ...]:
    """Every card type an order can have (the schemes of the table, and ``unknown``), sorted: a filter's choices."""
    return tuple(sorted({s.type for s in _table()[0]} | {UNKNOWN}))


def describe(pan: str) -> CardInfo:
    """Scheme by prefix (most specific range first) and the BIN table's issuer data."""
    schemes, bins = _table()
    kind = next((s.type for s in schemes if s.low <= pan[: len(s.low)] <= s.high), UNKNOWN)
    bin6 = pan[:6]
    known = bins.get(bin6, {})
    issuer: dict[str, Any] = {"bin": bin6}
    for key in ("country", "title"):
        if key in known:
            issuer[key] = known[key]
    return CardInfo(bin6, kind, known.get("subtype", UNKNOWN), issuer)


class Vault(Protocol):
    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]: ...
    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes: ...


def _seal_text(card: Card) -> bytes:
    return f"{card.pan}|{card.expiry or ''}".encode()


class OrderCards:
    """New orders with their card sealed in the vault (PAN and expiry; never a CVV), and the card of an order."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    def new_order(
        self,
        project: Project,
        order_id: str,
        card: Card,
        amount: int,
        cur: Currency,
        now: datetime,
        *,
        rrn: str,
        recurring: bool,
        source: Source = Source.REST,
    ) -> Order:
        """A new order (status new) with its card sealed in the vault (PAN and expiry; never a CVV)."""
        info = describe(card.pan)
        key_id, blob = self._vault.seal(_seal_text(card), order_id.encode())
        expiry = card.expiry
        return Order(
            id=order_id,
            project_id=project.id,
            status=OrderStatus.NEW,
            amount=amount,
            currency=cur.alpha,
            created=now,
            updated=now,
            rrn=rrn,
            pan_mask=mask_pan(card.pan),
            card_key_id=key_id,
            card_blob=blob,
            card_holder=card.holder,
            card_type=info.type,
            card_subtype=info.subtype,
            expiry_month=int(expiry[2:]) if expiry else None,
            expiry_year=2000 + int(expiry[:2]) if expiry else None,
            issuer=info.issuer,
            recurring=recurring,
            source=source,
        )

    def card(self, order: Order) -> Card:
        """The order's card from the vault (PAN and expiry; never a CVV)."""
        if order.card_key_id is None or order.card_blob is None:
            raise Rejected("Order has no card", order_id=order.id)
        try:
            text = self._vault.open(order.card_key_id, bytes(order.card_blob), order.id.encode()).decode()
        except VaultError:
            log.error("stored card cannot be opened", extra={"order_id": order.id})
            raise IssuerError("Stored card cannot be read", order_id=order.id) from None
        pan, _, expiry = text.partition("|")
        if expiry:
            return Card(pan, expiry_month=int(expiry[2:]), expiry_year=2000 + int(expiry[:2]))
        return Card(pan)
