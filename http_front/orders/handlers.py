"""The endpoints of seeds/003. Each one: body or query in, a typed request, the orders service, the seed's JSON out.

Every answer that shows orders is ``{"orders": [...]}`` (one order for the
operations), operations ``{"operations": [...]}``, rates
``{"exchange_rates": [...]}``. An operation's answer shows the order with
everything expanded, as the seed's examples do, with 200 (the seed's 201
for an order waiting for 3-D Secure: :mod:`http_front.orders.secure3d`). Failures are
raised and shaped by :mod:`http_front.errors`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiMapping

from http_front.body import read_json
from http_front.failures import Reply, json_reply
from http_front.idempotency import REPLAYED_HEADER, idempotent
from http_front.keys import CONFIG, PROJECT, RATES, RUNTIME, SCHEMAS
from http_front.orders import browser, parse
from http_front.orders import secure3d as s3d
from http_front.orders.query import operations_query, orders_query, page_of
from http_front.orders.views import (
    FULL_EXPAND,
    OPERATION_EXPANDS,
    format_time,
    kept_card_view,
    operation_view,
    order_view,
    parse_expand,
)
from http_front.pages.order_page import page_url
from http_front.paging import LINK_HEADERS, links
from http_front.ports import OrdersPort
from http_front.rates import parse_rates_query
from switch.money import from_minor
from switch.orders.errors import InvalidInput, Problem
from switch.orders.model import Order
from switch.orders.service import Page
from switch.portal.settings import session_event_mails
from switch.secure3d import Secure3DRequest
from switch.store.projects import Project, ProjectSettings

__all__ = [
    "authorize",
    "cancel",
    "charge",
    "create",
    "credit",
    "credit_order",
    "customer_cards",
    "exchange_rates",
    "get_order",
    "list_operations",
    "list_orders",
    "ping",
    "rebill",
    "refund",
    "reverse",
    "token_pay",
]

_Run = Callable[[Project, dict[str, Any]], Awaitable[Order]]


def _orders(request: web.Request) -> OrdersPort:
    return request.app[RUNTIME].orders


def _order_id(request: web.Request) -> str:
    return request.match_info["order_id"]


def _query(query: MultiMapping[str]) -> dict[str, str]:
    """The query as one value per name; a repeated name's values are joined by commas (the seed's list form)."""
    out: dict[str, str] = {}
    for key, value in query.items():
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def _order_reply(order: Order) -> Reply:
    return json_reply({"orders": [order_view(order, FULL_EXPAND)]})


_Waived = Callable[[ProjectSettings, object], AbstractSet[str]]


async def _operate(
    request: web.Request, schema: str, run: _Run, *, project_currency: bool = False, waived: _Waived | None = None
) -> web.Response:
    """Validate the body against ``schema`` (less what ``waived`` says the project or body need not have),
    then run the operation once per Idempotency-Key."""
    project = request[PROJECT]
    raw = await read_json(request)
    default = project.settings.currency if project_currency else None
    optional = waived(project.settings, raw) if waived is not None else frozenset()
    body = request.app[SCHEMAS].check(schema, raw, default_currency=default, optional=optional)

    async def produce() -> Reply:
        return _order_reply(await run(project, body))

    reply = await idempotent(request, request.app[RUNTIME].idempotency, project.id, body, produce)
    return reply.response()


# -- GET -------------------------------------------------------------------------


async def ping(request: web.Request) -> web.Response:
    return json_reply({"date": format_time(datetime.now(UTC)), "message": "PONG!"}).response()


async def get_order(request: web.Request) -> web.Response:
    expand = parse_expand(_query(request.query).get("expand"))
    order = await _orders(request).get_order(request[PROJECT], _order_id(request))
    return json_reply({"orders": [order_view(order, expand)]}).response()


def _with_links(request: web.Request, body: Mapping[str, Any], page: Page[Any]) -> web.Response:
    reply = json_reply(body)
    value = links(request.url, page=page.page, page_size=page.page_size, total=page.total)
    headers = dict.fromkeys(LINK_HEADERS, value) if value is not None else {}
    return Reply(reply.status, reply.body, headers).response()


async def list_orders(request: web.Request) -> web.Response:
    query = _query(request.query)
    paging = page_of(query)  # checked first: its 422 comes before an unknown expand's or filter's
    expand = parse_expand(query.get("expand"))
    page = await _orders(request).list_orders(request[PROJECT], orders_query(query, paging))
    return _with_links(request, {"orders": [order_view(o, expand) for o in page.items]}, page)


async def list_operations(request: web.Request) -> web.Response:
    query = _query(request.query)
    paging = page_of(query)
    cashflow = "cashflow" in parse_expand(query.get("expand"), OPERATION_EXPANDS)
    page = await _orders(request).list_operations(request[PROJECT], operations_query(query, paging))
    items = [operation_view(None, op, cashflow, with_order_id=True) for op in page.items]
    return _with_links(request, {"operations": items}, page)


async def exchange_rates(request: web.Request) -> web.Response:
    days = request.app[CONFIG].exchange_rates_max_days
    return json_reply(parse_rates_query(_query(request.query), request.app[RATES], max_days=days)).response()


# -- operations ------------------------------------------------------------------


async def authorize(request: web.Request) -> web.Response:
    """``POST /orders/authorize``; with ``options.force3d`` or the project's ``require_3ds`` (and no
    ``secure3d.eci`` of the merchant's own MPI) 3-D Secure runs first and may answer 201.

    The choice is made from the body and the project already at hand: an authorization without
    3-D Secure runs exactly as before, with no extra query or await.
    """
    orders = _orders(request)
    project = request[PROJECT]
    raw = await read_json(request)
    optional = parse.waived(project.settings, raw)
    body = request.app[SCHEMAS].check("authorize", raw, default_currency=project.settings.currency, optional=optional)

    async def produce() -> Reply:
        req = parse.authorize_request(body, project.settings)
        want = browser.secure3d_request(body)
        if req.secure3d is None and (want.force3d or project.settings.require_3ds):
            if req.card is None:
                raise InvalidInput.one("3-D Secure with a kept (oneclick) card is not offered", "options/force3d")
            secure = s3d.service(request)
            return s3d.outcome_reply(await secure.authorize(project, req, want, s3d.callbacks(request)))
        _no_3ds_here(want)
        return _order_reply(await orders.authorize(project, req))

    reply = await idempotent(request, request.app[RUNTIME].idempotency, project.id, body, produce)
    return reply.response()


def _no_3ds_here(want: Secure3DRequest) -> None:
    """3-D Secure 2's data on an authorization 3-D Secure does not run for (no ``options.force3d``, no project
    ``require_3ds``, or the merchant's own MPI result): a 422 naming each field rather than a 200 that ignored
    it. seeds/003 asks for 3-D Secure with force3d; browser_details only says which version."""
    problems = [
        Problem("Applies only when 3-D Secure runs (options.force3d or the project's require_3ds)", name)
        for name, sent in (
            ("secure3d/browser_details", want.browser is not None),
            ("secure3d/force_challenge", want.force_challenge),
        )
        if sent
    ]
    if problems:
        raise InvalidInput(problems=problems)


async def _session_event(request: web.Request, project: Project, order: Order) -> None:
    """The portal's "Send session creation events": mails to the project's notification addresses, through the
    outbox (written here, sent by its worker). A runtime without an outbox (the unit tests' fakes) sends none."""
    outbox = getattr(request.app[RUNTIME], "mail", None) if project.settings.session_events else None
    if outbox is None:
        return
    for mail in session_event_mails(project, order.id, str(from_minor(order.amount, order.currency)), order.currency):
        await outbox.enqueue(mail)


async def create(request: web.Request) -> web.Response:
    """``POST /orders/create``: 201, ``Location`` the page's URL, the order in status new.

    A replay (same Idempotency-Key) answers the stored body with a fresh page URL of the same order:
    the URL's token is never stored in clear, so the first one cannot be given again; both pay it once.
    """
    project = request[PROJECT]
    body = request.app[SCHEMAS].check("create", await read_json(request), default_currency=project.settings.currency)
    pages = request.app[RUNTIME].pages

    async def produce() -> Reply:
        order, token = await pages.create(project, parse.create_request(body))
        await _session_event(request, project, order)
        return json_reply({"orders": [order_view(order, FULL_EXPAND)]}, 201, {"Location": page_url(request, token)})

    reply = await idempotent(request, request.app[RUNTIME].idempotency, project.id, body, produce)
    if reply.status == 201 and REPLAYED_HEADER in reply.headers:
        order_id = orjson.loads(reply.body)["orders"][0]["id"]
        token = await pages.reissue(project, order_id)
        if token is not None:
            reply = Reply(reply.status, reply.body, {**reply.headers, "Location": page_url(request, token)})
    return reply.response()


async def token_pay(request: web.Request) -> web.Response:
    orders = _orders(request)
    return await _operate(
        request, "token_pay", lambda p, b: orders.token_pay(p, parse.token_pay_request(b)), project_currency=True
    )


async def customer_cards(request: web.Request) -> web.Response:
    """``GET /customers/:customer_id/cards``: a oneclick customer's kept cards (masked), most recent first."""
    cards = await _orders(request).oneclick_cards(request[PROJECT], request.match_info["customer_id"])
    return json_reply({"cards": [kept_card_view(c) for c in cards]}).response()


async def credit(request: web.Request) -> web.Response:
    orders = _orders(request)
    return await _operate(
        request,
        "credit",
        lambda p, b: orders.credit(p, None, parse.credit_request(b, with_card=True)),
        project_currency=True,
    )


_OnOrder = Callable[[OrdersPort, Project, str, dict[str, Any]], Awaitable[Order]]


def _on_order(schema: str, run: _OnOrder) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler of ``/orders/:id/...``: ``run(service, project, order_id, body)``."""

    async def handler(request: web.Request) -> web.Response:
        oid, orders = _order_id(request), _orders(request)
        return await _operate(request, schema, lambda p, b: run(orders, p, oid, b))

    handler.__name__ = schema
    return handler


charge = _on_order("charge", lambda s, p, oid, b: s.charge(p, oid, parse.amount_request(b)))
reverse = _on_order("reverse", lambda s, p, oid, b: s.reverse(p, oid))
refund = _on_order("refund", lambda s, p, oid, b: s.refund(p, oid, parse.amount_request(b)))
cancel = _on_order("cancel", lambda s, p, oid, b: s.cancel(p, oid, parse.amount_request(b)))
rebill = _on_order("rebill", lambda s, p, oid, b: s.rebill(p, oid, parse.rebill_request(b, oid)))
credit_order = _on_order(
    "credit_order", lambda s, p, oid, b: s.credit(p, oid, parse.credit_request(b, with_card=False))
)
