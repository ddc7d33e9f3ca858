"""What a user can be notified of, and the words of each notification.

A raw event (a row of ``notify_events``: an order's change ``order.<status>``, ``login``, ``invoice.expired``)
becomes zero or more :class:`Notice` -- one per preference event it matches (an invoice's order that is paid
is both ``payment_approved`` and ``invoice_paid``). Each notice has a ``dedupe`` key: a user gets one approval
per order (``authorized`` then ``charged`` is one), one notice per refund, per login, per invoice.

>>> from switch.orders.model import Order, OrderStatus
>>> [n.event for n in order_notices("evt_1_2", _order(OrderStatus.CHARGED, invoice="cpi_x"))]
['payment_approved', 'invoice_paid']
>>> [n.dedupe for n in order_notices("evt_1_3", _order(OrderStatus.CHARGED, refunded=100))]
['evt_1_3']
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from switch.money import from_minor
from switch.orders.model import Order, OrderStatus

__all__ = ["EVENTS", "Notice", "event_status", "invoice_notice", "login_notice", "order_notices"]

#: The preference events, with the label the portal shows.
EVENTS: tuple[tuple[str, str], ...] = (
    ("payment_approved", "Payment approved"),
    ("payment_declined", "Payment declined"),
    ("refund", "Refund"),
    ("invoice_paid", "Invoice paid"),
    ("invoice_expired", "Invoice expired"),
    ("login", "New login to the portal"),
)

_DECLINED = frozenset({OrderStatus.DECLINED, OrderStatus.REJECTED, OrderStatus.FRAUD})


@dataclass(frozen=True, slots=True)
class Notice:
    event: str  # one of EVENTS
    dedupe: str
    title: str
    body: str
    link: str | None = None


def _money(amount: int, currency: str) -> str:
    return f"{from_minor(amount, currency)} {currency}"


def _ref(order: Order) -> str:
    return f"order {order.id}" + (f" ({order.merchant_order_id})" if order.merchant_order_id else "")


def order_notices(
    event_id: str, order: Order, status: OrderStatus | None = None, refunded: Decimal | None = None
) -> list[Notice]:
    """The notices of an order's change to ``status`` with ``refunded`` (the event's; by default the order's own
    now -- it may have changed again since the event)."""
    link = f"/portal/payments/{order.id}"
    money = _money(order.amount, order.currency)
    ref = _ref(order)
    status = order.status if status is None else status
    refunded = Decimal(from_minor(order.amount_refunded, order.currency)) if refunded is None else refunded
    out: list[Notice] = []
    if status is OrderStatus.REFUNDED or (status is OrderStatus.CHARGED and refunded > 0):
        refunded_text = f"{refunded} {order.currency}"
        out.append(
            Notice("refund", event_id, f"Refund of {ref}", f"{refunded_text} of {money} refunded on {ref}.", link)
        )
    elif status in (OrderStatus.AUTHORIZED, OrderStatus.CHARGED):
        verb = "authorized" if status is OrderStatus.AUTHORIZED else "charged"
        out.append(
            Notice(
                "payment_approved",
                f"approved:{order.id}",
                f"Payment approved: {money}",
                f"{money} {verb} on {ref}.",
                link,
            )
        )
        if order.invoice_id is not None:
            out.append(
                Notice(
                    "invoice_paid",
                    f"invoice_paid:{order.invoice_id}",
                    f"Invoice {order.invoice_id} paid",
                    f"{money} paid on invoice {order.invoice_id}.",
                    link,
                )
            )
    elif status in _DECLINED:
        out.append(
            Notice(
                "payment_declined",
                f"declined:{order.id}",
                f"Payment declined: {money}",
                f"{money} on {ref} was {status.value}.",
                link,
            )
        )
    return out


def event_status(event_type: str, detail: dict[str, Any] | None) -> tuple[OrderStatus | None, Decimal | None]:
    """The status and amount refunded an order event recorded (None: unknown, the order's own is used).

    >>> event_status("order.charged", {"amount_refunded": "1.00"})
    (<OrderStatus.CHARGED: 'charged'>, Decimal('1.00'))
    """
    try:
        status: OrderStatus | None = OrderStatus(event_type.removeprefix("order."))
    except ValueError:
        status = None
    raw = (detail or {}).get("amount_refunded")
    try:
        refunded = Decimal(str(raw)) if raw is not None else None
    except InvalidOperation:
        refunded = None
    return status, refunded


def login_notice(event_id: str, detail: dict[str, Any]) -> Notice:
    at = detail.get("at") or ""
    when = at[:19].replace("T", " ") + " UTC" if isinstance(at, str) and at else "just now"
    agent = str(detail.get("user_agent") or "an unknown browser")[:120]
    where = str(detail.get("ip") or "an unknown address")
    body = f"A login to your portal account at {when} from {where} ({agent}). If it was not you, change your password."
    return Notice("login", event_id, "New login to the portal", body, "/portal/security")


def invoice_notice(event_id: str, detail: dict[str, Any]) -> Notice:
    invoice = str(detail.get("invoice_id", "?"))
    money = _money(int(detail.get("amount", 0)), str(detail.get("currency", "XXX")))
    ref = str(detail.get("reference_id", ""))
    return Notice(
        "invoice_expired",
        event_id,
        f"Invoice {invoice} expired",
        f"Invoice {invoice} ({ref}) for {money} expired unpaid.",
        None,
    )


def _order(status: OrderStatus, *, invoice: str | None = None, refunded: int = 0) -> Order:
    """An order for the doctests."""
    return Order(
        id="1",
        project_id=1,
        status=status,
        amount=1000,
        currency="EUR",
        amount_refunded=refunded,
        created=datetime(2026, 1, 1),
        updated=datetime(2026, 1, 1),
        invoice_id=invoice,
    )
