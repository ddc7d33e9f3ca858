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
from switch.orders.errors import Rejected
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
            done = await pages.pay(token, form.card, ip=request.remote)
        except PageClosed as closed:
            return _outcome(closed.view)
        except Rejected as e:  # e.g. 3-D Secure required and not available: nothing was authorized
            return Outcome("unavailable", e.message)
        return _outcome(done)

    return await component.submit(request, _checkout(view), _outcome(view), page_path(token), view.row.form_key, pay)


def page_url(request: web.Request, token: str) -> str:
    """The page's absolute URL (the create answer's ``Location``)."""
    return public_url(request, page_path(token))
