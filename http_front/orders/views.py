"""Orders and operations in the JSON shape of seeds/003.

Amounts are decimal strings with the currency's exponent, times
``YYYY-MM-DD HH:MM:SS`` (UTC), the PAN masked. Keys come out in
alphabetical order, as in the doc's examples. The HTTP layer wraps the
dicts (``{"orders": [...]}``, ``{"operations": [...]}``).

Without ``expand`` an order has the fields of the doc's ``GET /orders/``
example: amount, amount_charged, amount_refunded, auth_code, created,
currency, description, descriptor, id, merchant_order_id, pan, rrn,
segment, status, updated (auth_code, descriptor, pan, rrn and segment only
when set; description and merchant_order_id always, null when unset).
Each of ``card``, ``client``, ``location``, ``custom_fields``, ``issuer``,
``secure3d`` adds that object (``{}`` when empty); ``operations`` adds the
operations, ``operations.cashflow`` adds them with their cash flow.
Responses to authorize/charge/reverse/refund/cancel/rebill/credit show
everything (:data:`FULL_EXPAND`), as the doc's examples of them do.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from switch.money import from_minor
from switch.orders.errors import InvalidInput, Problem
from switch.orders.model import Cashflow, Operation, Order
from switch.orders.oneclick import KeptCard
from switch.secure3d.model import Challenge, Form3d, MethodStep

__all__ = [
    "FULL_EXPAND",
    "form3d_html",
    "OPERATION_EXPANDS",
    "ORDER_EXPANDS",
    "cashflow_view",
    "format_time",
    "kept_card_view",
    "operation_view",
    "order_view",
    "parse_expand",
    "secure3d_view",
]

ORDER_EXPANDS = frozenset(
    {"card", "client", "location", "custom_fields", "issuer", "secure3d", "operations", "operations.cashflow"}
)
OPERATION_EXPANDS = frozenset({"cashflow", "extra"})
FULL_EXPAND = frozenset({"card", "client", "location", "custom_fields", "issuer", "secure3d", "operations.cashflow"})


# An order's view formats its creation, its last change and each operation's time, mostly one
# instant (a new order's are all the request's): a small cache answers the repeats.
@functools.lru_cache(maxsize=256)
def format_time(t: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC.

    >>> format_time(datetime(2016, 8, 22, 15, 39, 49, 812, tzinfo=UTC))
    '2016-08-22 15:39:49'
    """
    if t.tzinfo is not UTC:
        t = t.astimezone(UTC)
    # isoformat, not strftime: a few times cheaper, and an order view formats several times.
    return t.replace(tzinfo=None).isoformat(" ", "seconds")


def parse_expand(raw: str | Iterable[str] | None, allowed: frozenset[str] = ORDER_EXPANDS) -> frozenset[str]:
    """The ``expand`` query value (comma-separated) as a set; an unknown name is a validation error.

    >>> sorted(parse_expand("card, location,operations.cashflow"))
    ['card', 'location', 'operations.cashflow']
    """
    if raw is None:
        return frozenset()
    parts = raw.split(",") if isinstance(raw, str) else list(raw)
    names = frozenset(p.strip() for p in parts if p.strip())
    unknown = sorted(names - allowed)
    if unknown:
        raise InvalidInput(problems=[Problem(f"Unknown expand: {name}", "expand") for name in unknown])
    return names


def cashflow_view(cf: Cashflow) -> dict[str, str]:
    return {
        "amount": from_minor(cf.amount, cf.currency),
        "currency": cf.currency,
        "fee": from_minor(cf.fee, cf.currency),
        "incoming": from_minor(cf.incoming, cf.currency),
        "receivable": from_minor(cf.receivable, cf.currency),
        "reserve": from_minor(cf.reserve, cf.currency),
    }


def operation_view(
    order: Order | None, op: Operation, cashflow: bool, *, with_order_id: bool = False
) -> dict[str, Any]:
    """One operation; ``cashflow`` adds its cash flow, ``with_order_id`` its order's id (``GET /operations/``).

    ``order`` may be None: everything shown is the operation's own.
    """
    out: dict[str, Any] = {"amount": from_minor(op.amount, op.currency)}
    if op.arn is not None:
        out["arn"] = op.arn
    if op.auth_code is not None:
        out["auth_code"] = op.auth_code
    if cashflow:
        cf = op.cashflow or Cashflow(0, 0, 0, 0, 0, op.currency)
        out["cashflow"] = cashflow_view(cf)
    out["created"] = format_time(op.created)
    out["currency"] = op.currency
    out["iso_message"] = op.iso_message
    out["iso_response_code"] = op.iso_response_code
    if with_order_id:
        out["order_id"] = order.id if order is not None else op.order_id
    out["status"] = op.status.value
    out["type"] = op.type.value
    return out


def _sorted(obj: dict[str, Any]) -> dict[str, Any]:
    # jsonb keeps keys in its own order (shortest first); the doc lists them alphabetically.
    return {k: obj[k] for k in sorted(obj)}


def _card(order: Order) -> dict[str, Any]:
    if order.pan_mask is None:
        return {}
    out: dict[str, Any] = {}
    if order.expiry_month is not None and order.expiry_year is not None:
        out["expiration"] = f"{order.expiry_month}/{order.expiry_year % 100:02d}"
    else:
        out["expiration"] = "0/0"  # the doc's form for a card given without expiry (POST /orders/credit)
    if order.card_holder is not None:
        out["holder"] = order.card_holder
    out["subtype"] = order.card_subtype or "unknown"
    out["type"] = order.card_type or "unknown"
    return out


def order_view(order: Order, expand: Iterable[str] = ()) -> dict[str, Any]:
    """The order as ``GET /orders/:id`` shows it with ``expand`` (see the module doc)."""
    ex = frozenset(expand)
    cur = order.currency
    out: dict[str, Any] = {
        "amount": from_minor(order.amount, cur),
        "amount_charged": from_minor(order.amount_charged, cur),
        "amount_refunded": from_minor(order.amount_refunded, cur),
    }
    if order.auth_code is not None:
        out["auth_code"] = order.auth_code
    if "card" in ex:
        out["card"] = _card(order)
    if "client" in ex:
        out["client"] = _sorted(order.client)
    out["created"] = format_time(order.created)
    out["currency"] = cur
    if "custom_fields" in ex:
        out["custom_fields"] = dict(order.custom_fields)
    out["description"] = order.description
    if order.descriptor is not None:
        out["descriptor"] = order.descriptor
    out["id"] = order.id
    if "issuer" in ex:
        out["issuer"] = _sorted(order.issuer)
    if "location" in ex:
        out["location"] = _sorted(order.location)
    out["merchant_order_id"] = order.merchant_order_id
    with_cashflow = "operations.cashflow" in ex
    if with_cashflow or "operations" in ex:
        out["operations"] = [operation_view(order, op, with_cashflow) for op in order.visible_operations]
    if order.pan_mask is not None:
        out["pan"] = order.pan_mask
    if order.rrn is not None:
        out["rrn"] = order.rrn
    if "secure3d" in ex:
        out["secure3d"] = _sorted(order.secure3d)
    if order.segment is not None:
        out["segment"] = order.segment
    out["status"] = order.status.value
    out["updated"] = format_time(order.updated)
    return out


def form3d_html(form: Form3d) -> str:
    """The seed's ``form3d_html``: the form, auto-submitted by a script, with a button when scripts are off."""
    e = html.escape
    inputs = "".join(f'<input type="hidden" name="{e(k)}" value="{e(v)}">' for k, v in form.fields)
    return (
        f'<form id="form3d" method="{e(form.method)}" action="{e(form.action)}">{inputs}'
        '<noscript><button type="submit">Continue</button></noscript></form>'
        "<script>window.onload = function() {document.forms['form3d'].submit();}</script>"
    )


def secure3d_view(outcome: Challenge | MethodStep) -> dict[str, Any]:
    """The 201 of an order waiting for 3-D Secure: the order with ``form3d``/``form3d_html`` (seeds/003,
    Authorize, 3-D Secure example), or 3DS2's ``method3d_params`` (Payments with 3-D Secure 2.0)."""
    if isinstance(outcome, MethodStep):
        return {
            "message": "Method3d required",
            "method3d_params": {"method_data": outcome.method_data, "method_url": outcome.method_url},
            "order_id": outcome.order.id,
        }
    view = order_view(outcome.order, FULL_EXPAND)
    view["form3d"] = outcome.form.to_json()
    view["form3d_html"] = form3d_html(outcome.form)
    return {"orders": [_sorted(view)]}


def kept_card_view(card: KeptCard) -> dict[str, Any]:
    """A oneclick customer's kept card: its id (``extra_fields.oneclick.card_id``), the masked PAN, expiry, type."""
    out: dict[str, Any] = {"created": format_time(card.created), "id": card.id, "pan": card.pan_mask}
    if card.expiry_month is not None and card.expiry_year is not None:
        out["expiration"] = f"{card.expiry_month}/{card.expiry_year % 100:02d}"
    out["type"] = card.card_type or "unknown"
    out["updated"] = format_time(card.updated)
    return out
