"""An invoice (seeds/002) and how its status is read from the order that pays it.

Statuses: ``process_pending`` (waiting for the cardholder, or in 3-D Secure),
``processed`` (charged, for ``flow: charge``; authorized, for ``flow: verify``)
and ``process_failed`` with a ``resolution`` (``declined``, ``expired``,
``canceled``, ``error``). The order is the truth; nothing is kept twice.

>>> from datetime import UTC, datetime
>>> state_of("charge", OrderStatus.CHARGED, True, datetime(2030, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC))
('processed', 'ok')
>>> state_of("charge", OrderStatus.NEW, False, datetime(2020, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC))
('process_failed', 'expired')
>>> state_of("verify", OrderStatus.REJECTED, False, datetime(2030, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC))
('process_failed', 'expired')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from switch.orders.model import OrderStatus
from switch.translate import Card

__all__ = ["FAILED", "PENDING", "PROCESSED", "Invoice", "InvoiceRequest", "state_of", "test_flow_state"]

PENDING, PROCESSED, FAILED = "process_pending", "processed", "process_failed"

_PROCESSED = {
    "charge": frozenset({OrderStatus.CHARGED, OrderStatus.REFUNDED, OrderStatus.CHARGEDBACK}),
    "verify": frozenset({OrderStatus.AUTHORIZED, OrderStatus.CHARGED, OrderStatus.REVERSED, OrderStatus.REFUNDED}),
}
_DECLINED = frozenset({OrderStatus.DECLINED, OrderStatus.REJECTED, OrderStatus.FRAUD})


_WRITING = timedelta(seconds=60)  # the invoice row is written before its order: a create still under way


def state_of(
    flow: str,
    status: OrderStatus | None,
    has_operations: bool,
    expires: datetime,
    now: datetime,
    created: datetime | None = None,
) -> tuple[str, str]:
    """(status, resolution) of an invoice whose order is in ``status`` (None: no order, yet or ever).

    ``has_operations``: a payment was made or is under way (an operation, or a card on the order): a waiting
    order past ``expires`` is expired only without one; the sweep closes such orders ``rejected``.
    """
    if status is None:
        # A concurrent create (its 409) may read the invoice before its order is written; later, none will be.
        return (PENDING, "ok") if created is not None and now < created + _WRITING else (FAILED, "error")
    if status in _PROCESSED[flow]:
        return PROCESSED, "ok"
    if status is OrderStatus.REJECTED and not has_operations:
        return FAILED, "expired"  # closed by the expiry sweep (switch/invoices/expiry.py) before any payment
    if status in _DECLINED:
        return FAILED, "declined"
    if status is OrderStatus.ERROR:
        return FAILED, "error"
    if status is OrderStatus.NEW and not has_operations:
        return (FAILED, "expired") if now >= expires else (PENDING, "ok")
    if status in (OrderStatus.NEW, OrderStatus.PREPARED, OrderStatus.AUTHORIZED):
        return PENDING, "ok"  # in 3-D Secure, or authorized with the charge to follow
    return FAILED, "canceled"  # reversed before the charge, credited: no payment stands


_TEST_OK = frozenset({"success", "processed", "ok"})
_TEST_FAILED = frozenset({"fail", "failed", "declined", "process_failed"})


def test_flow_state(status_field: object, expires: datetime, now: datetime) -> tuple[str, str]:
    """The ``test`` flow: the request's ``service_fields.status`` is the outcome (seeds/002's test service)."""
    value = str(status_field).lower()
    if value in _TEST_OK:
        return PROCESSED, "ok"
    if value in _TEST_FAILED:
        return FAILED, "declined"
    return (FAILED, "expired") if now >= expires else (PENDING, "ok")


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceRequest:
    """A new invoice as the merchant asked for it (checked by the front; amounts in minor units)."""

    reference_id: str
    service: str
    amount: int
    currency: str
    payment_flow: str = "charge"
    test_mode: bool = False
    description: str | None = None
    service_fields: dict[str, Any] | None = None
    customer: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    return_url: str | None = None
    return_urls: dict[str, str] | None = None
    callback_url: str | None = None
    gateway_options: dict[str, Any] | None = None
    expires: datetime | None = None  # None: the default lifetime
    source: str = "merchant_api"
    language: str = "en"  # the hosted page's (a payment link passes its own)
    # An h2h service's card, taken out of service_fields (switch.invoices.services): never stored with the invoice.
    card: Card | None = field(default=None, repr=False)
    cart: list[dict[str, Any]] | None = None  # line items as CartLine.stored() gives them (checked by the front)
    # Mail the pay link to customer.email once created: the front does (it knows the page's public URL).
    send_email: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Invoice:
    """A row of payment_invoices (schemas/sql/021_payment_invoices.sql)."""

    id: str
    project_id: int
    order_id: str | None
    reference_id: str
    test_mode: bool
    service: str
    payment_flow: str
    amount: int
    currency: str
    description: str | None
    service_fields: dict[str, Any]
    customer: dict[str, Any] | None
    customer_id: str | None
    metadata: dict[str, Any] | None
    return_url: str | None
    return_urls: dict[str, str] | None
    callback_url: str | None
    gateway_options: dict[str, Any] | None
    source: str
    expires: datetime
    page_key_id: str | None
    page_token: bytes | None
    callback_logs: dict[str, Any]
    created: datetime
    updated: datetime
    cart: list[dict[str, Any]] | None = None  # 027: line items in minor units (switch/invoices/cart.py)

    @property
    def serial_number(self) -> str:
        return self.id.removeprefix("cpi_")
