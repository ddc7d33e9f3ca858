"""3-D Secure over HTTP: the merchant's completion calls and the routes the browser and the ACS come back to.

Merchant (HTTP Basic, the project's own orders only)::

    POST /orders/:id/complete       {"PaRes"}   3DS1, server to server
    POST /orders/:id/complete3d20   {"cres"}    3DS2, server to server
    POST /orders/:id/resume                     3DS2, after the 3DS Method

Browser and ACS (``public:`` routes: no Basic, each checks its own token or signature)::

    POST /complete/secure3d         PaRes, MD                 3DS1 TermUrl -> 303 to return_url
    POST /complete/secure3d20       cres, threeDSSessionData  3DS2 notificationURL -> 303
    POST /secure3d/rreq             {"rreq"}                  the ACS's RReq (JSON)
    POST /secure3d/method-done      threeDSMethodData         the 3DS Method's notification

A browser completion ends with a 303 to ``options.return_url`` (3DS2:
``secure3d20_return_url`` first) whether the order was authorized or
declined; the merchant reads the order's status. Without a return URL, or when
the message itself is refused (forged, replayed, expired), a small page says so.
An order of the hosted payment page is settled by its page (auto charge, the
card kept, the page closed) and ends as the page does: 303 to the page's
``return_url`` when paid, else the page's own result
(:func:`http_front.pages.order_page.after_secure3d`).
"""

from __future__ import annotations

import html
import logging
import secrets
from typing import Any

from aiohttp import web

from http_front.body import read_json
from http_front.failures import HttpFailure, Reply, json_reply
from http_front.idempotency import idempotent
from http_front.keys import PROJECT, RUNTIME, SCHEMAS
from http_front.orders.status import error_body, http_status
from http_front.orders.views import FULL_EXPAND, order_view, secure3d_view
from http_front.urls import public_url
from switch.orders.errors import OrderError
from switch.orders.model import Order
from switch.secure3d import Callbacks, Challenge, Completion, MethodStep, Secure3D

__all__ = [
    "METHOD_DONE_PATH",
    "NOTIFICATION_PATH",
    "RREQ_PATH",
    "TERM_PATH",
    "callbacks",
    "complete",
    "complete3d20",
    "method_done",
    "outcome_reply",
    "page_complete",
    "page_complete3d20",
    "resume",
    "rreq",
    "service",
]

log = logging.getLogger("isoswitch.http")

TERM_PATH = "/complete/secure3d"
NOTIFICATION_PATH = "/complete/secure3d20"
RREQ_PATH = "/secure3d/rreq"
METHOD_DONE_PATH = "/secure3d/method-done"

# Pages of these routes: nothing from anywhere, no framing by others, forms post only to us.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def service(request: web.Request) -> Secure3D:
    """The process's 3-D Secure, or a 500-class error when it has no directory server configured."""
    s = getattr(request.app[RUNTIME], "secure3d", None)
    if s is None:
        raise HttpFailure(500, "error", "3-D Secure is not configured")
    assert isinstance(s, Secure3D)
    return s


def callbacks(request: web.Request) -> Callbacks:
    """Our own absolute URLs for the ACS and the browser (``[http] public_url`` or the request's host); the RReq's
    at ``[secure3d] server_url`` when set (the ACS may reach us at another address than browsers do)."""
    s = getattr(request.app[RUNTIME], "secure3d", None)
    server = s.config.server_url if isinstance(s, Secure3D) else None
    return Callbacks(
        term_url=public_url(request, TERM_PATH),
        notification_url=public_url(request, NOTIFICATION_PATH),
        rreq_url=server.rstrip("/") + RREQ_PATH if server else public_url(request, RREQ_PATH),
        method_done_url=public_url(request, METHOD_DONE_PATH),
    )


def outcome_reply(outcome: Order | Challenge | MethodStep) -> Reply:
    """200 with the finished order, or 201 with what the cardholder's browser must do next."""
    if isinstance(outcome, Order):
        return json_reply({"orders": [order_view(outcome, FULL_EXPAND)]})
    return json_reply(secure3d_view(outcome), 201)


async def _merchant_call(request: web.Request, schema: str, field: str | None) -> web.Response:
    s = service(request)
    project = request[PROJECT]
    order_id = request.match_info["order_id"]
    body = request.app[SCHEMAS].check(schema, await read_json(request) or {})

    pages = request.app[RUNTIME].pages

    async def produce() -> Reply:
        if field is None:
            outcome = await s.resume(project, order_id, callbacks(request))
            if isinstance(outcome, Order):
                await pages.after_secure3d(outcome)
            return outcome_reply(outcome)
        if field == "PaRes":
            done = await s.complete_pares(body["PaRes"], project=project, order_id=order_id)
        else:
            done = await s.complete_cres(body.get("cres"), project=project, order_id=order_id)
        await pages.after_secure3d(done.order)  # a page's order: its auto charge, oneclick, the page closed
        if done.failure is not None:
            raise done.failure
        return outcome_reply(done.order)

    reply = await idempotent(request, request.app[RUNTIME].idempotency, project.id, body, produce)
    return reply.response()


async def complete(request: web.Request) -> web.Response:
    return await _merchant_call(request, "complete", "PaRes")


async def complete3d20(request: web.Request) -> web.Response:
    return await _merchant_call(request, "complete3d20", "cres")


async def resume(request: web.Request) -> web.Response:
    return await _merchant_call(request, "resume", None)


# -- the browser's and the ACS's routes -----------------------------------------------------------


def _page(status: int, title: str, text: str) -> web.Response:
    e = html.escape
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title></head><body><main><h1>{e(title)}</h1><p>{e(text)}</p></main></body></html>"
    )
    return web.Response(status=status, text=body, content_type="text/html", headers=PAGE_HEADERS)


def _field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


async def _after(request: web.Request, done: Completion) -> web.StreamResponse:
    """Where the cardholder goes: the page's end (a hosted page's order), the merchant's return URL (303), or
    a page with the result."""
    # Imported here: the page's module builds its callbacks from this one.
    from http_front.pages.order_page import after_secure3d

    page = await after_secure3d(request, done.order, done.failure)
    if page is not None:
        return page
    if done.return_url:
        raise web.HTTPSeeOther(done.return_url, headers={"Cache-Control": "no-store"})
    if done.failure is None:
        return _page(200, "Payment authorized", f"Order {done.order.id}: {done.order.status.value}.")
    return _page(200, "Payment not completed", f"Order {done.order.id}: {done.failure.message}.")


def _refused(e: OrderError) -> web.Response:
    return _page(http_status(e), "3-D Secure not completed", e.message)


async def page_complete(request: web.Request) -> web.StreamResponse:
    """3DS1 TermUrl: the ACS's page auto-posts PaRes and MD here."""
    form = await request.post()
    pares, md = _field(form, "PaRes"), _field(form, "MD")
    if not pares or not md:
        return _page(400, "3-D Secure not completed", "PaRes and MD are required.")
    try:
        done = await service(request).complete_pares(pares, md=md)
    except OrderError as e:
        return _refused(e)
    return await _after(request, done)


async def page_complete3d20(request: web.Request) -> web.StreamResponse:
    """3DS2 notificationURL: the ACS's page auto-posts cres and threeDSSessionData here."""
    form = await request.post()
    cres, token = _field(form, "cres"), _field(form, "threeDSSessionData")
    if not cres or not token:
        return _page(400, "3-D Secure not completed", "cres and threeDSSessionData are required.")
    try:
        done = await service(request).complete_cres(cres, session_data=token)
    except OrderError as e:
        return _refused(e)
    return await _after(request, done)


async def rreq(request: web.Request) -> web.Response:
    """The ACS's RReq, server to server: ``{"rreq": JWS}``; 200 once its result is kept."""
    body = await read_json(request)
    token = body.get("rreq") if isinstance(body, dict) else None
    if not isinstance(token, str):
        raise HttpFailure(422, "validation", "rreq is required")
    try:
        await service(request).rreq(token)
    except OrderError as e:
        return json_reply(error_body(e), http_status(e)).response()
    return json_reply({"result": "ok"}).response()


async def method_done(request: web.Request) -> web.Response:
    """The 3DS Method's notification (in the merchant's hidden iframe): noted, answered with an empty page."""
    form = await request.post()
    data = _field(form, "threeDSMethodData")
    if data:
        await service(request).method_done(data)
    # The merchant's page learns the method is over (then calls /resume) from a message to its window:
    # nothing in it but the fact, so any origin may read it.
    nonce = secrets.token_urlsafe(16)
    script = f'<script nonce="{nonce}">window.parent.postMessage("3DSMethodDone", "*");</script>'
    headers = {
        **PAGE_HEADERS,
        "Content-Security-Policy": f"{PAGE_HEADERS['Content-Security-Policy']}; script-src 'nonce-{nonce}'",
    }
    head = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>3-D Secure</title></head>'
    text = f"{head}<body>{script}</body></html>"
    return web.Response(text=text, content_type="text/html", headers=headers)
