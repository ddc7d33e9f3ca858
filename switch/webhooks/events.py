"""Order events: which orders make one, and what one carries.

An event is one change of an order's status (or of its charged/refunded amounts), named
``order.<new status>`` (``order.authorized``, ``order.declined``, ``order.charged``,
``order.refunded`` ...). Its payload is the Standard Webhooks envelope::

    {"type": "order.authorized", "timestamp": "2026-12-06T12:00:00Z", "data": {"orders": [ORDER]}}

where ORDER is the order as ``GET /orders/:id?expand=...`` shows it with everything expanded (the
answer of ``/orders/authorize``): the renderer is the front's, passed in when the system is
composed (the core does not import the front); without one, a short core view.

Which orders: the decision is made in memory, so an order of a project with no endpoint and
no ``notification_url`` costs nothing: ``projects`` (the ids of projects with live endpoints) is
re-read every ``[webhooks] refresh_interval`` by the delivery worker, so an endpoint added
by another process gets events within that interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from switch.invoices.model import state_of
from switch.money import from_minor
from switch.orders.model import Order

__all__ = ["Event", "Events", "Render", "core_view"]

Render = Callable[[Order], dict[str, Any]]
_NEVER = datetime.max.replace(tzinfo=UTC)


def core_view(order: Order) -> dict[str, Any]:
    """The order's main fields, for a core running without the front's renderer (tests, tools)."""
    return {
        "amount": from_minor(order.amount, order.currency),
        "amount_charged": from_minor(order.amount_charged, order.currency),
        "amount_refunded": from_minor(order.amount_refunded, order.currency),
        "currency": order.currency,
        "id": order.id,
        "merchant_order_id": order.merchant_order_id,
        "status": order.status.value,
    }


@dataclass(frozen=True, slots=True)
class Event:
    """One status change of an order, to be written to the outbox with it."""

    id: str  # webhook-id: evt_<order id>_<order version>
    type: str  # order.<status>
    project_id: int
    order_id: str
    payload: dict[str, Any]
    url: str | None  # the order's own notification URL
    # The order's invoice's callback (orders of an invoice only): the invoice's state by its flow,
    # {"charge": [status, resolution], "verify": [...], "amount": ..., "timestamp": ...}; the SQL picks the
    # flow's, and writes a row only for an invoice with a callback_url, once per invoice status.
    invoice: dict[str, Any] | None = None


class Events:
    """Whether an order's change makes an event, and the event."""

    __slots__ = ("notified", "projects", "render")

    def __init__(self, render: Render | None = None) -> None:
        self.projects: frozenset[int] = frozenset()  # projects with live endpoints (refreshed by the worker)
        # Projects where a portal user wants notifications (switch.notify: refreshed by its worker).
        self.notified: frozenset[int] = frozenset()
        self.render: Render = render or core_view

    def wanted(self, order: Order) -> bool:
        # An invoice's order: its invoice may have a callback_url (the SQL looks; invoices are off the hot path).
        return (
            order.notification_url is not None
            or order.project_id in self.projects
            or order.invoice_id is not None
            or order.project_id in self.notified
        )

    @staticmethod
    def invoice_state(order: Order, stamp: str) -> dict[str, Any] | None:
        """What the invoice of ``order`` shows now, for each flow (the order does not know its invoice's)."""
        if order.invoice_id is None:
            return None
        # The change says it, never the clock: an order just created (new) is pending, one the expiry sweep
        # closed (rejected, no operation) is expired, a paid one processed (so `expires` is never reached here).
        at, ops = order.updated, bool(order.operations)
        return {flow: list(state_of(flow, order.status, ops, _NEVER, at)) for flow in ("charge", "verify")} | {
            "amount": from_minor(order.amount, order.currency),
            "timestamp": stamp,
        }

    def payload(self, order: Order) -> dict[str, Any]:
        """The envelope of ``order``'s current state."""
        stamp = order.updated.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {"type": f"order.{order.status.value}", "timestamp": stamp, "data": {"orders": [self.render(order)]}}

    def event(self, order: Order) -> Event:
        """The event of ``order``'s current state (its version already that of the change)."""
        payload = self.payload(order)
        kind = payload["type"]
        return Event(
            f"evt_{order.id}_{order.version}",
            kind,
            order.project_id,
            order.id,
            payload,
            order.notification_url,
            self.invoice_state(order, payload["timestamp"]),
        )
