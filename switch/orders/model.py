"""Orders and operations: the statuses of seeds/003 and the records the store keeps.

Money is integer minor units plus the ISO 4217 alpha code; times are aware
UTC datetimes. The card number is never held here in clear: an order keeps
the ``first6****last4`` mask and the vault's ``(key id, blob)``, sealed with
the order id as associated data. A CVV is never part of either.

>>> OrderStatus("charged"), OperationType.REFUND.value, OperationStatus.PENDING.visible
(<OrderStatus.CHARGED: 'charged'>, 'refund', False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from switch.money import currency
from switch.translate import OriginalRef

__all__ = [
    "Cashflow",
    "OperationStatus",
    "OperationType",
    "Operation",
    "Order",
    "OrderStatus",
    "Source",
]


class OrderStatus(StrEnum):
    """An order's state (seeds/003, Order status)."""

    NEW = "new"
    PREPARED = "prepared"
    AUTHORIZED = "authorized"
    CHARGED = "charged"
    REVERSED = "reversed"
    REFUNDED = "refunded"
    REJECTED = "rejected"
    FRAUD = "fraud"
    DECLINED = "declined"
    CHARGEDBACK = "chargedback"
    CREDITED = "credited"
    ERROR = "error"


class OperationType(StrEnum):
    """An operation's ``type`` as the API shows it.

    A rebill is not a type of its own: it makes a new order whose first
    operation is an ``authorize`` (seeds/003, Repeating payment example).
    """

    AUTHORIZE = "authorize"
    CHARGE = "charge"
    REVERSE = "reverse"
    REFUND = "refund"
    CREDIT = "credit"


class OperationStatus(StrEnum):
    """``success``/``failure``/``error`` of seeds/003, plus the internal write-ahead ``pending``.

    A pending operation is durable before its ISO message leaves; it turns
    into one of the three others once the outcome is known (and stays
    pending only if the process died in between: recovery in
    :mod:`switch.saf` reverses those). The API never shows it.
    """

    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"
    PENDING = "pending"

    @property
    def visible(self) -> bool:
        return self is not OperationStatus.PENDING


class Source(StrEnum):
    """Where the order came from: the REST API, an acquirer host over ISO 8583, or the portal's virtual terminal
    (a card keyed for a mail or telephone order: DE 25 ``08``)."""

    REST = "rest"
    ISO = "iso"
    MOTO = "moto"


@dataclass(frozen=True, slots=True)
class Cashflow:
    """One operation's effect on the merchant's books, in minor units of ``currency``.

    ``incoming = amount - fee`` and ``receivable = incoming - reserve``
    always hold (see :mod:`switch.orders.cashflow` for how each type fills it).
    """

    amount: int
    fee: int
    incoming: int
    reserve: int
    receivable: int
    currency: str

    def to_json(self) -> dict[str, Any]:
        return {
            "amount": self.amount,
            "fee": self.fee,
            "incoming": self.incoming,
            "reserve": self.reserve,
            "receivable": self.receivable,
            "currency": self.currency,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Cashflow:
        return cls(
            amount=int(doc["amount"]),
            fee=int(doc["fee"]),
            incoming=int(doc["incoming"]),
            reserve=int(doc["reserve"]),
            receivable=int(doc["receivable"]),
            currency=str(doc["currency"]),
        )


@dataclass(slots=True, kw_only=True)
class Operation:
    """One ISO exchange of an order (or a gateway refusal that never reached the host).

    ``id`` counts the order's operations from 1. ``mti``, ``stan``,
    ``transmission_time`` (DE 7), ``rrn``, ``terminal_id`` (DE 41),
    ``acquirer_id`` (DE 32) and ``processing_code`` are the request as
    sent, so a later capture, reversal or refund can name it in DE 90 (and
    the next issue's store-and-forward can reverse an unknown outcome).
    ``stan`` is reserved before the intent is written when the service
    reverses unknown outcomes (else None while pending: the link stamps
    DE 11). ``owner`` (the process that wrote the intent) and
    ``destination`` (the pool the PAN routed to) are internal: crash
    recovery and store-and-forward use them, no view shows them.
    """

    order_id: str
    id: int
    type: OperationType
    status: OperationStatus
    amount: int
    currency: str
    created: datetime
    updated: datetime
    iso_response_code: str | None = None
    iso_message: str | None = None
    auth_code: str | None = None
    arn: str | None = None
    rrn: str | None = None
    mti: str | None = None
    stan: str | None = None
    transmission_time: str | None = None
    terminal_id: str | None = None
    acquirer_id: str | None = None
    processing_code: str | None = None
    cashflow: Cashflow | None = None
    owner: str | None = None
    destination: str | None = None

    def original_ref(self) -> OriginalRef:
        """What a later message needs of this one (DE 90 parts, RRN, auth code, amount)."""
        if self.mti is None or self.stan is None or self.transmission_time is None or self.rrn is None:
            raise ValueError(f"operation {self.order_id}/{self.id} has no complete ISO identity")
        return OriginalRef(
            mti=self.mti,
            stan=self.stan,
            transmission_time=self.transmission_time,
            rrn=self.rrn,
            auth_code=self.auth_code,
            amount=self.amount,
            currency=currency(self.currency),
            acquirer_id=self.acquirer_id or "0",
            processing_code=self.processing_code or "000000",
        )


@dataclass(slots=True, kw_only=True)
class Order:
    """A payment and its operations.

    ``card_key_id``/``card_blob`` are the vault's sealing of the PAN and
    expiry (AAD: the order id); ``pan_mask`` is ``first6****last4``.
    ``initial_rrn`` is the RRN of the first transaction of the card's
    stored-credential series (the order's own for a cardholder-present
    order, its parent's for a rebill): DE 124 of merchant-initiated rebills.
    ``version`` grows by one with every change and guards concurrent writers.
    """

    id: str
    project_id: int
    status: OrderStatus
    amount: int
    currency: str
    created: datetime
    updated: datetime
    amount_charged: int = 0
    amount_refunded: int = 0
    auth_code: str | None = None
    rrn: str | None = None
    pan_mask: str | None = None
    card_key_id: str | None = None
    card_blob: bytes | None = None
    card_holder: str | None = None
    card_type: str | None = None
    card_subtype: str | None = None
    expiry_month: int | None = None
    expiry_year: int | None = None
    client: dict[str, Any] = field(default_factory=dict)
    location: dict[str, Any] = field(default_factory=dict)
    custom_fields: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    merchant_order_id: str | None = None
    segment: str | None = None
    descriptor: str | None = None
    secure3d: dict[str, Any] = field(default_factory=dict)
    issuer: dict[str, Any] = field(default_factory=dict)
    invoice_id: str | None = None
    parent_order_id: str | None = None
    initial_rrn: str | None = None
    recurring: bool = False
    source: Source = Source.REST
    notification_url: str | None = None  # options.notification_url: this order's events are POSTed there too
    test_mode: bool = False  # a test-mode invoice's: every request to the test destination ([routing] test)
    version: int = 0
    operations: list[Operation] = field(default_factory=list)

    @property
    def visible_operations(self) -> list[Operation]:
        """The operations the API shows (every one but write-ahead intents)."""
        return [op for op in self.operations if op.status.visible]

    def last(self, kind: OperationType, status: OperationStatus = OperationStatus.SUCCESS) -> Operation | None:
        """The latest operation of ``kind`` with ``status``."""
        for op in reversed(self.operations):
            if op.type is kind and op.status is status:
                return op
        return None
