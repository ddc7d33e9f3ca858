"""The payment page of an order made by ``POST /orders/create``: ``GET`` and ``POST /pay/{token}``.

The token in the path is the page's only credential (no HTTP Basic: the
routes are ``public:``); the order id alone never opens a page. This module
turns the service's :class:`~switch.orders.pages.PageView` into the
component's :class:`Checkout` and :class:`Outcome`, and its ``pay`` into the
component's :data:`Pay`.

3-D Secure (a ``force3d`` page, or a project with ``require_3ds``): with the
page's script on, the form carries what only a script can tell of the
browser, and with the request's headers that makes 3-D Secure 2's eleven
``browser_details`` (the method step runs in a hidden frame, then
``POST /pay/{token}/resume``); without the script (or with details that do
not check), the payment uses 3-D Secure 1, which needs none of them. Either
way the ACS's challenge is an auto-submitting form with a visible button.
When the ACS posts back to the switch's completion route,
:func:`after_secure3d` sends the cardholder to the page's ``return_url`` (paid; an invoice's page: the
outcome's URL of its ``return_urls``) or shows the page's result (declined, or no return URL).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from http_front.keys import RUNTIME
from http_front.orders.browser import browser_details_of
from http_front.orders.secure3d import callbacks
from http_front.pages import component
from http_front.pages.card_form import CardForm
from http_front.pages.component import Checkout, Outcome
from http_front.pages.look import PLAIN, Look, look_of
from http_front.urls import public_url
from switch.money import from_minor
from switch.orders.errors import InvalidInput, OrderError
from switch.orders.model import Order
from switch.orders.pages import PageClosed, PageNotFound, PageView
from switch.secure3d import BROWSER_FIELDS

__all__ = ["after_secure3d", "page_path", "page_url", "pay_page", "resume_page", "show_page"]


def page_path(token: str) -> str:
    return f"/pay/{token}"


async def _returns(request: web.Request, view: PageView) -> dict[str, str]:
    """An invoice's page: its return URLs by outcome (one read, invoice pages only); other pages: none."""
    if view.row.kind != "invoice":
        return {}
    return await request.app[RUNTIME].invoices.return_urls(view.order.id)


def _checkout(view: PageView, returns: Mapping[str, str] | None = None, look: Look = PLAIN) -> Checkout:
    order, row = view.order, view.row
    return Checkout(
        template=row.template or look.template,  # the order's options.template, else the project's
        logo=look.logo,
        final=look.final(view),
        amount=from_minor(order.amount, order.currency),
        currency=order.currency,
        description=order.description,
        merchant=view.merchant,
        return_url=row.return_url,
        language=row.language,
        mobile=row.mobile,
        save_card=row.oneclick_prechecked if row.oneclick_customer is not None else None,
        return_urls=returns or {},
        cvv_required=view.cvv_required,
        holder_required=view.holder_required,
    )


def _outcome(view: PageView) -> Outcome:
    if view.challenge is not None:
        return Outcome(view.closed or "open", view.reason, view.challenge.form3d, view.challenge.step)
    return Outcome(view.closed or "open", view.reason)


async def show_page(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    try:
        view = await request.app[RUNTIME].pages.view(token)
    except PageNotFound:
        return component.not_found(request)
    checkout = _checkout(view, await _returns(request, view), await look_of(request, view))
    return component.show(request, checkout, _outcome(view), page_path(token), view.row.form_key)


async def pay_page(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    pages = request.app[RUNTIME].pages
    try:
        view = await pages.view(token)
    except PageNotFound:
        return component.not_found(request)

    async def pay(form: CardForm, posted: Mapping[str, str]) -> Outcome:
        try:
            done = await pages.pay(
                token,
                form.card,
                browser=_browser(request, posted),
                ip=request.remote,
                save_card=posted.get("save_card") == "1",
                links=callbacks(request),
            )
        except PageClosed as closed:
            return _outcome(closed.view)
        except OrderError as e:
            # 3-D Secure required and not available, or the issuer unreachable: the page says why;
            # an order the attempt changed shows its state on the next GET.
            return Outcome("unavailable", e.message)
        return _outcome(done)

    checkout = _checkout(view, await _returns(request, view), await look_of(request, view))
    return await component.submit(request, checkout, _outcome(view), page_path(token), view.row.form_key, pay)


async def resume_page(request: web.Request) -> web.StreamResponse:
    """``POST /pay/{token}/resume``: 3-D Secure 2 after the method step (the page's script, or its button)."""
    token = request.match_info["token"]
    pages = request.app[RUNTIME].pages
    try:
        view = await pages.view(token)
    except PageNotFound:
        return component.not_found(request)
    action, key = page_path(token), view.row.form_key
    posted = await request.post()
    nonce = posted.get("nonce")
    if view.closed != "pending" or not (isinstance(nonce, str) and component.nonce_ok(key, nonce)):
        return _see_page(action)
    try:
        done = await pages.resume(token, callbacks(request))
    except PageClosed:
        return _see_page(action)
    except OrderError as e:
        return component.result(request, _checkout(view), Outcome("unavailable", e.message), action, key)
    if done.challenge is None:
        look = await look_of(request, done)
        target = _checkout(done, await _returns(request, done), look).return_to(done.closed or "open")
        return _see_page(target or action)
    return component.result(request, _checkout(done), _outcome(done), action, key)


async def after_secure3d(request: web.Request, order: Order, failure: OrderError | None) -> web.StreamResponse | None:
    """3-D Secure's completion of a page's order: settled, then 303 to the page's ``return_url`` when paid,
    else the page's result (declined and why). None: the order has no page."""
    view = await request.app[RUNTIME].pages.after_secure3d(order)
    if view is None:
        return None
    look = await look_of(request, view)
    checkout = _checkout(view, await _returns(request, view), look)
    target = checkout.return_to(view.closed or "open")
    if target is not None:
        return _see_page(target)
    outcome = _outcome(view)
    if outcome.reason is None and failure is not None and outcome.state != "paid":
        outcome = Outcome(outcome.state, failure.message)
    # The page's own URL is not known here (only its token's hash is kept): the result is shown at once.
    return component.result(request, checkout, outcome, "", b"")


def _see_page(location: str) -> web.StreamResponse:
    return component.secure(web.Response(status=303, headers={"Location": location}))


def _browser(request: web.Request, posted: Mapping[str, str]) -> dict[str, object] | None:
    """3-D Secure 2's eleven browser details: the page's script posts what only it knows, the request tells
    the rest. None (the payment uses 3DS1) when the script did not run or what it sent does not check."""
    h = request.headers
    raw: dict[str, object] = {name: posted[name] for name in BROWSER_FIELDS if posted.get(name)}
    raw["browser_accept_header"] = h.get("Accept", "")[:2048] or "text/html"
    raw["browser_user_agent"] = h.get("User-Agent", "")[:2048]
    raw["browser_ip"] = request.remote or ""
    if len(raw) < len(BROWSER_FIELDS):
        return None
    try:
        return browser_details_of(raw)
    except InvalidInput:
        return None


def page_url(request: web.Request, token: str) -> str:
    """The page's absolute URL (the create answer's ``Location``)."""
    return public_url(request, page_path(token))
