"""The payment page of an order made by ``POST /orders/create``: ``GET`` and ``POST /pay/{token}``.

The token in the path is the page's only credential (no HTTP Basic: the
routes are ``public:``); the order id alone never opens a page. This module
turns the service's :class:`~switch.orders.pages.PageView` into the
component's :class:`Checkout` and :class:`Outcome`, and its ``pay`` into the
component's :data:`Pay`.
"""

from __future__ import annotations

from aiohttp import web

from http_front.keys import RUNTIME
from http_front.pages import component
from http_front.pages.card_form import CardForm
from http_front.pages.component import Checkout, Outcome
from http_front.urls import public_url
from switch.money import from_minor
from switch.orders.errors import OrderError
from switch.orders.pages import PageClosed, PageNotFound, PageView

__all__ = ["page_path", "pay_page", "show_page"]


def page_path(token: str) -> str:
    return f"/pay/{token}"


def _checkout(view: PageView) -> Checkout:
    order, row = view.order, view.row
    return Checkout(
        amount=from_minor(order.amount, order.currency),
        currency=order.currency,
        description=order.description,
        merchant=view.merchant,
        return_url=row.return_url,
        language=row.language,
        mobile=row.mobile,
    )


def _outcome(view: PageView) -> Outcome:
    form3d = view.challenge.form3d if view.challenge is not None else None
    return Outcome(view.closed or "open", view.reason, form3d)


async def show_page(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    try:
        view = await request.app[RUNTIME].pages.view(token)
    except PageNotFound:
        return component.not_found(request)
    return component.show(request, _checkout(view), _outcome(view), page_path(token), view.row.form_key)


async def pay_page(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    pages = request.app[RUNTIME].pages
    try:
        view = await pages.view(token)
    except PageNotFound:
        return component.not_found(request)

    async def pay(form: CardForm) -> Outcome:
        try:
            done = await pages.pay(token, form.card, browser=_browser(request), ip=request.remote)
        except PageClosed as closed:
            return _outcome(closed.view)
        except OrderError as e:
            # 3-D Secure required and not available, or the issuer unreachable: the page says why;
            # an order the attempt changed shows its state on the next GET.
            return Outcome("unavailable", e.message)
        return _outcome(done)

    return await component.submit(request, _checkout(view), _outcome(view), page_path(token), view.row.form_key, pay)


def _browser(request: web.Request) -> dict[str, str]:
    """What the request tells of the browser (3-D Secure 2's browser data; the page has no script for the rest)."""
    h = request.headers
    found = {
        "browser_accept_header": h.get("Accept", ""),
        "browser_user_agent": h.get("User-Agent", ""),
        "browser_language": h.get("Accept-Language", "").split(",")[0].strip(),
        "browser_ip": request.remote or "",
    }
    return {k: v[:2048] for k, v in found.items() if v}


def page_url(request: web.Request, token: str) -> str:
    """The page's absolute URL (the create answer's ``Location``)."""
    return public_url(request, page_path(token))
