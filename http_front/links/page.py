"""A payment link's public page: ``GET /link/{slug}`` the pre-payment form, ``POST /link/{slug}`` its submission.

The slug is the page's only credential (the routes are ``public:``). The form
asks for what the template says (the amount when the payer enters it, the
standard fields, the merchant's parameters), with the hosted page's
templates, words and strict headers (:mod:`http_front.pages.component`). A
valid submission makes the invoice (:meth:`switch.links.service.PaymentLinks.pay`)
and answers 303 to its ``hpp_url``; field errors answer 422 with the form
again, each error next to its field. The form's nonce is signed with the
link's key and carries 96 random bits: it proves the form was rendered here,
and names the submission (posting the same form twice makes one invoice).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web

from http_front.keys import RUNTIME
from http_front.links.views import link_path
from http_front.pages.component import Outcome, secure
from http_front.pages.i18n import text
from http_front.pages.order_page import page_path
from http_front.urls import public_url
from switch.invoices.service import GatewayFailure
from switch.links.service import LinkClosed, LinkPage
from switch.money import from_minor
from switch.store.db import DATABASE_DOWN

__all__ = ["link_nonce", "link_nonce_ok", "show_link", "submit_link"]

NONCE_MAX_AGE = 86400  # a rendered form is good for a day
_KEPT = 255  # characters of a posted value shown again in the form after an error


def _mac(key: bytes, issued: int, nonce: str) -> str:
    digest = hmac.new(key, b"link-form:%d:%s" % (issued, nonce.encode()), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode()


def link_nonce(key: bytes, now: float | None = None) -> str:
    """``issued.random.mac``: unlike the card form's nonce, random too (two payers, one second: two invoices)."""
    issued, nonce = int(time.time() if now is None else now), secrets.token_urlsafe(12)
    return f"{issued}.{nonce}.{_mac(key, issued, nonce)}"


def link_nonce_ok(key: bytes, value: str, now: float | None = None) -> bool:
    """
    >>> k = b"k" * 32
    >>> link_nonce_ok(k, link_nonce(k, 1000), 1010), link_nonce_ok(b"x" * 32, link_nonce(k, 1000), 1010)
    (True, False)
    >>> link_nonce_ok(k, link_nonce(k, 1000), 1000 + NONCE_MAX_AGE + 1), link_nonce_ok(k, "1.2.ü")
    (False, False)
    """
    parts = value.split(".")
    if len(parts) != 3 or not (parts[0].isascii() and parts[0].isdigit() and len(parts[0]) <= 12):
        return False
    issued, t = int(parts[0]), time.time() if now is None else now
    expected = _mac(key, issued, parts[1]).encode()
    return 0 <= t - issued <= NONCE_MAX_AGE and hmac.compare_digest(parts[2].encode("utf-8", "replace"), expected)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _render(
    request: web.Request, template: str, language: str, status: int, form_action: Iterable[str] = (), **ctx: Any
) -> web.Response:
    context = {"t": text(language), "lang": language, "checkout": None, **ctx}
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    secure(response, form_action)
    return response


def _closed(request: web.Request, state: str, language: str = "en") -> web.Response:
    status = 404 if state == "not_found" else 410
    return _render(request, "result.html", language, status, outcome=Outcome(state))


def _form(
    request: web.Request,
    page: LinkPage,
    *,
    status: int = 200,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
    general: str | None = None,
) -> web.Response:
    link = page.link
    words = text(link.language)

    def amount(minor: int | None) -> str | None:
        return None if minor is None else from_minor(minor, link.currency)

    hint = None
    if link.amount is None:
        hint = words["amount_hint"].format(low=amount(link.amount_min), high=amount(link.amount_max))
    # The 303 after a submission goes to the invoice's page: its origin is ours unless [http] public_url differs.
    targets = {_origin(public_url(request, "/"))} - {_origin(str(request.url))}
    return _render(
        request,
        "link.html",
        link.language,
        status,
        sorted(targets),
        link=link,
        merchant=page.merchant,
        amount=amount(link.amount),
        amount_hint=hint,
        form={
            "action": link_path(link.slug),
            "nonce": link_nonce(link.form_key),
            "errors": dict(errors or {}),
            "kept": dict(values or {}),  # not "values": a dict's method in Jinja2
            "general": general,
        },
    )


async def _open(request: web.Request) -> LinkPage | web.Response:
    page = await request.app[RUNTIME].links.open(request.match_info["slug"])
    if page is None:
        return _closed(request, "not_found")
    if page.state != "active":
        return _closed(request, f"link_{page.state}", page.link.language)
    return page


async def show_link(request: web.Request) -> web.StreamResponse:
    page = await _open(request)
    return page if isinstance(page, web.Response) else _form(request, page)


# What makes a submission's invoice impossible now (the database down): the page's 503, never a 500.
_UNAVAILABLE: tuple[type[BaseException], ...] = (GatewayFailure, *DATABASE_DOWN)


async def submit_link(request: web.Request) -> web.StreamResponse:
    page = await _open(request)
    if isinstance(page, web.Response):
        return page
    posted = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    words = text(page.link.language)
    kept = {k: v[:_KEPT] for k, v in posted.items() if k != "nonce"}
    nonce = posted.get("nonce", "")
    if not link_nonce_ok(page.link.form_key, nonce):
        return _form(request, page, status=403, values=kept, general=words["form_stale"])
    try:
        paid = await request.app[RUNTIME].links.pay(page, posted, nonce)
    except LinkClosed as e:
        return _closed(request, f"link_{e.page.state}", page.link.language)
    except _UNAVAILABLE:  # the database is down: the invoice API's 503, as a page
        return _render(request, "result.html", page.link.language, 503, outcome=Outcome("unavailable"))
    if paid.errors:
        return _form(request, page, status=422, errors=paid.errors, values=kept, general=words["fix_errors"])
    view = paid.invoice
    if view is None or view.token is None:  # the template's service has no page (the data changed since)
        return _render(request, "result.html", page.link.language, 409, outcome=Outcome("unavailable"))
    response = web.Response(status=303, headers={"Location": public_url(request, page_path(view.token))})
    return secure(response)
