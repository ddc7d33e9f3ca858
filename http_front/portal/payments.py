"""The portal's payments area (issue 13 item 6; seeds/000 "Working with payments"): the list with its filter, saved
filter templates, chosen columns and paging; CSV, XLSX and XML exports of exactly what the filter selects; one
payment's tabs (information, customer, activity, cart); capture, refund (an amount, or by cart items) and cancel.

Reads and operations go through the orders service with the session's project, as ``GET /orders/`` and the API's
``PUT /orders/:id/...`` do for the project's HTTP Basic login: an order of another project is "not found" whatever
a forged URL names, and the status table and amount checks are the service's. Each operation's ``audit_log`` row
names the portal user (:func:`switch.portal.payments.as_portal_user`). :data:`ROUTES` gives each route its least
role: a viewer reads and exports; capture, refund and cancel need an operator -- the page hides their forms from a
viewer, and the guard answers 403 to a forged POST before any handler runs.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from http_front.orders.views import FULL_EXPAND, order_view
from http_front.portal.guard import SESSION, PortalRuntime, portal_of, render, see_other
from http_front.portal.payments_table import (
    COLUMNS,
    FILTER_NAMES,
    FORMATS,
    MAX_EXPORT,
    PAGE_SIZES,
    STATUSES,
    export,
    listing,
    row_of,
    view_of,
)
from switch.money import from_minor
from switch.orders.cards import card_types
from switch.orders.errors import OrderError, OrderNotFound
from switch.orders.model import OperationType, Order, OrderStatus
from switch.orders.requests import AmountRequest, OrdersQuery
from switch.orders.status import allowed, cancel_action
from switch.portal.payments import as_portal_user

__all__ = ["NAV", "ROUTES"]

_TABS = (("info", "Information"), ("customer", "Customer"), ("activity", "Activity"), ("cart", "Cart"))
_DONE = {"captured": "Captured.", "refunded": "Refunded.", "cancelled": "Cancelled."}


def _runtime(request: web.Request) -> PortalRuntime:
    runtime = portal_of(request)
    assert runtime is not None  # the guard answered 404 otherwise
    return runtime


# -- the list -----------------------------------------------------------------------------------------


async def payments(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    runtime = _runtime(request)
    shown = listing(request.query, session.project)
    page = None
    rows: list[tuple[str, list[str]]] = []
    if shown.query is not None:
        page = await runtime.orders.list_orders(session.project, shown.query)
        for order in page.items:
            view = view_of(order)
            rows.append((order.id, row_of(view, shown.columns)))
    templates = await runtime.portal.payments.templates(session.user.id, session.project.id)
    return render(
        request,
        "payments.html",
        422 if shown.errors else 200,
        shown=shown,
        page=page,
        rows=rows,
        columns=[(c, COLUMNS[c][0]) for c in shown.columns],
        all_columns=[(c, label) for c, (label, _) in COLUMNS.items()],
        statuses=STATUSES,
        card_types=card_types(),
        sizes=PAGE_SIZES,
        templates=templates,
        api_query=urlencode(shown.params),
        filtered=bool(shown.form),
        formats=tuple(FORMATS),
    )


async def payments_export(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    orders = _runtime(request).orders
    fmt = request.query.get("format", "csv")
    if fmt not in FORMATS:
        return render(request, "error.html", 404, title="Not found", message="No such export format.")
    shown = listing(request.query, session.project)
    if shown.errors:
        return await payments(request)
    if shown.query is not None:
        probe = OrdersQuery(**{**_fields(shown.query), "page": 1, "page_size": 1})
        total = (await orders.list_orders(session.project, probe)).total
        if total > MAX_EXPORT:
            message = f"The filter selects {total} payments; an export holds at most {MAX_EXPORT}. Narrow the filter."
            return render(request, "error.html", 422, title="Too many payments", message=message)
    content_type, ext = FORMATS[fmt]
    response = web.StreamResponse(
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="payments-{session.project.login}.{ext}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
    )
    await response.prepare(request)
    async for chunk in export(fmt, orders, session.project, shown.query, shown.columns):
        await response.write(chunk)
    await response.write_eof()
    return response


def _fields(query: OrdersQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in query.__dataclass_fields__}


# -- filter templates ---------------------------------------------------------------------------------


def _kept_query(raw: str) -> str:
    """Only the list page's own names survive into a template (a forged form keeps nothing else)."""
    names = {*FILTER_NAMES, "alias", "col"}
    pairs = [(k, v[:512]) for k, v in parse_qsl(raw[:2000], keep_blank_values=False) if k in names]
    return urlencode(pairs[:100])


async def template_save(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    form = await request.post()
    name, query = form.get("name", ""), form.get("query", "")
    if not isinstance(name, str) or not isinstance(query, str):
        return see_other("/portal/")
    kept = _kept_query(query)
    try:
        await _runtime(request).portal.payments.save_template(session.user.id, session.project.id, name, kept)
    except ValueError as e:
        return render(request, "error.html", 422, title="Template not saved", message=str(e).capitalize() + ".")
    return see_other("/portal/?" + kept if kept else "/portal/")


async def template_delete(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    raw = (await request.post()).get("id", "")
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) < 19:
        await _runtime(request).portal.payments.delete_template(session.user.id, session.project.id, int(raw))
    return see_other("/portal/")


# -- one payment --------------------------------------------------------------------------------------


def _eci(order: Order) -> str:
    eci = order.secure3d.get("eci") if isinstance(order.secure3d, dict) else None
    return str(eci) if eci else "07"  # seeds/000: 07, an SSL payment without 3-D Secure


def _fee(order: Order) -> int:
    return sum(
        op.cashflow.fee
        for op in order.visible_operations
        if op.type is OperationType.CHARGE and op.cashflow is not None and op.status.value == "success"
    )


async def _payment_page(
    request: web.Request, *, status: int = 200, error: str | None = None, tab: str | None = None
) -> web.StreamResponse:
    session = request[SESSION]
    runtime = _runtime(request)
    try:
        order = await runtime.orders.get_order(session.project, request.match_info["order_id"])
    except OrderNotFound:
        return render(request, "error.html", 404, title="Not found", message="No such payment in this project.")
    tab = tab or request.query.get("tab", "info")
    if tab not in dict(_TABS):
        tab = "info"
    cart = await runtime.portal.payments.cart(session.project, order)
    cur = order.currency
    may_act = session.allows("operator")
    left_to_refund = order.amount_charged - order.amount_refunded
    actions = {
        "capture": may_act and allowed(order.status, "charge"),
        "refund": may_act and allowed(order.status, "refund") and left_to_refund > 0,
        "cancel": may_act and cancel_action(order.status) == "reverse",
    }
    return render(
        request,
        "payment.html",
        status,
        order=order_view(order, FULL_EXPAND),
        tab=tab,
        tabs=_TABS,
        eci=_eci(order),
        fee=from_minor(_fee(order), cur),
        uncaptured=from_minor(order.amount - order.amount_charged, cur)
        if order.status is OrderStatus.AUTHORIZED
        else from_minor(0, cur),
        left_to_refund=from_minor(max(left_to_refund, 0), cur),
        capture_max=from_minor(session.project.settings.capture_limit(order.amount) - order.amount_charged, cur),
        cart=[(row, from_minor(row.item.price, cur), from_minor(row.item.amount, cur)) for row in cart],
        actions=actions,
        error=error,
        done=_DONE.get(request.query.get("done", "")),
    )


async def payment(request: web.Request) -> web.StreamResponse:
    return await _payment_page(request)


def _amount(raw: object) -> Decimal | str | None:
    """A typed amount; None: blank (the whole); a string: what is wrong with it."""
    if not isinstance(raw, str) or raw.strip() == "":
        return None
    try:
        value = Decimal(raw.strip()[:32])
    except InvalidOperation:
        return "The amount must be a number, like 9.99."
    if not value.is_finite() or value <= 0:
        return "The amount must be greater than zero."
    return value


async def _operate(request: web.Request, action: str) -> web.StreamResponse:
    session = request[SESSION]
    runtime = _runtime(request)
    order_id = request.match_info["order_id"]
    form = await request.post()
    amount = _amount(form.get("amount"))
    if isinstance(amount, str):
        return await _payment_page(request, status=422, error=amount)
    orders, project = runtime.orders, session.project
    try:
        with as_portal_user(session.user.email, request.remote):
            if action == "capture":
                await orders.charge(project, order_id, AmountRequest(amount))
            elif action == "refund":
                await orders.refund(project, order_id, AmountRequest(amount))
            elif action == "refund-items":
                order = await orders.get_order(project, order_id)
                quantities = {
                    int(k[4:]): v
                    for k, v in form.items()
                    if k.startswith("qty-") and k[4:].isdigit() and len(k) < 10 and isinstance(v, str)
                }
                await runtime.portal.payments.refund_items(orders, project, order, quantities, session.user.email)
            else:
                await orders.cancel(project, order_id, AmountRequest(None))
    except OrderNotFound:
        return render(request, "error.html", 404, title="Not found", message="No such payment in this project.")
    except OrderError as e:
        return await _payment_page(request, status=422, error=e.message)
    done = {"capture": "captured", "cancel": "cancelled"}.get(action, "refunded")
    return see_other(f"/portal/payments/{order_id}?done={done}")


async def payment_capture(request: web.Request) -> web.StreamResponse:
    return await _operate(request, "capture")


async def payment_refund(request: web.Request) -> web.StreamResponse:
    return await _operate(request, "refund")


async def payment_refund_items(request: web.Request) -> web.StreamResponse:
    return await _operate(request, "refund-items")


async def payment_cancel(request: web.Request) -> web.StreamResponse:
    return await _operate(request, "cancel")


_ID = "{order_id:[0-9]{1,20}}"

#: (method, path, handler, least role): read and export for everyone; operations for operators and above.
ROUTES = (
    ("GET", "/portal/", payments, "viewer"),
    ("GET", "/portal/payments/export", payments_export, "viewer"),
    ("POST", "/portal/payments/templates", template_save, "viewer"),
    ("POST", "/portal/payments/templates/delete", template_delete, "viewer"),
    ("GET", f"/portal/payments/{_ID}", payment, "viewer"),
    ("POST", f"/portal/payments/{_ID}/capture", payment_capture, "operator"),
    ("POST", f"/portal/payments/{_ID}/refund", payment_refund, "operator"),
    ("POST", f"/portal/payments/{_ID}/refund-items", payment_refund_items, "operator"),
    ("POST", f"/portal/payments/{_ID}/cancel", payment_cancel, "operator"),
)

NAV = (("Payments", "/portal/", "viewer"),)
