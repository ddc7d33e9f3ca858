"""The payment page as one component: "what is being paid" and a "pay" callable in, HTML pages out.

An entry point (today :mod:`http_front.pages.order_page`, for ``/orders/create``;
invoices and payment links later) builds a :class:`Checkout` and a
:data:`Pay` callable and calls :func:`show` (GET) or :func:`submit` (POST).
The component renders the card form (labels, the standard ``autocomplete``
tokens, errors next to their field with ``aria-describedby`` and
``role=alert``), checks the posted card (:mod:`http_front.pages.card_form`),
checks the per-render form nonce (CSRF: the unguessable token in the path
plus an HMAC of the render time under a per-page key), calls ``pay``, then
answers 303: to ``return_url`` when paid (or the outcome's URL of ``return_urls``), else to the page itself, which shows
the result (Post/Redirect/Get: a reload never posts the card again).

Every answer carries the strict headers of :func:`secure`: a CSP that allows
only this origin's script and style and forms posted to this origin (plus the
ACS's, when 3-D Secure sends the browser there), no framing, no referrer, no
caching. The card number is never put in a URL, a log line or a re-rendered
form (after an error the cardholder types it again).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web

from http_front.pages.card_form import CardForm, read_card
from http_front.pages.i18n import text

__all__ = ["Checkout", "Outcome", "Pay", "csp", "form_nonce", "nonce_ok", "result", "secure", "show", "submit"]

# A rendered form is good for a day (the page's own expiry is checked by the service).
NONCE_MAX_AGE = 86400


@dataclass(frozen=True, slots=True)
class Checkout:
    """What is being paid, as the cardholder reads it."""

    amount: str  # "9.99"
    currency: str  # "USD"
    description: str | None
    merchant: str
    return_url: str | None
    language: str = "en"
    mobile: bool = False
    save_card: bool | None = None  # "Save this card for next time": None not offered, else whether prechecked
    # Where the cardholder goes by the payment's outcome (an invoice's return_urls: "declined" -> fail ...);
    # "paid" defaults to return_url. Other outcomes (or none given): the page itself shows the result.
    return_urls: Mapping[str, str] = field(default_factory=dict)
    # The project's look (http_front.pages.look): the template's class, the logo's path on this origin, and the
    # seed's final page (what it shows of a paid payment; None: the cardholder is sent back at once).
    template: str = "standard"
    logo: str | None = None
    final: Mapping[str, str] | None = None
    # The project's cvv_required / holder_required: off, the form shows that field as optional and takes it empty.
    cvv_required: bool = True
    holder_required: bool = True

    def return_to(self, state: str) -> str | None:
        """Where a payment's outcome sends the browser at once (None: the page shows the result)."""
        if state == "paid" and self.final is not None:
            return None  # the page itself shows the final page, with its link back to return_url
        return self.return_urls.get(state) or (self.return_url if state == "paid" else None)

    def back_to(self, state: str) -> str | None:
        """The result page's "Return to the shop" link: the outcome's own URL (an invoice's pending or fail),
        else ``return_url``."""
        return self.return_urls.get(state) or self.return_url


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where a page stands: ``open``, ``paid``, ``declined``, ``expired``, ``pending``, ``unavailable``.

    ``reason``: a decline's (the issuer's message) or why the payment cannot be made.
    ``form3d``: the seed's form to the ACS when 3-D Secure needs the browser; ``step`` says what it is
    (``challenge``: the ACS's page; ``method``: 3DS2's method in a hidden frame, then ``{action}/resume``).
    """

    state: str
    reason: str | None = None
    form3d: Mapping[str, Any] | None = None
    step: str = "challenge"


#: The entry point's payment: the checked card and the rest of the posted form in, the page's outcome out.
Pay = Callable[[CardForm, Mapping[str, str]], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class _Form:
    action: str
    nonce: str
    errors: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, str] = field(default_factory=dict)
    general: str | None = None


# -- headers -----------------------------------------------------------------------------


def csp(form_action: Iterable[str] = (), frames: Iterable[str] = ()) -> str:
    """The page's Content-Security-Policy; ``form_action``: other origins a form may post to (the ACS);
    ``frames``: origins a frame of the page may show (3DS2's method: the ACS, then back to us).

    >>> csp(["https://acs.example"])  # doctest: +NORMALIZE_WHITESPACE
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'
    https://acs.example; frame-ancestors 'none'; base-uri 'none'"
    """
    extra = "".join(f" {o}" for o in form_action)
    framed = list(frames)
    frame_src = f"frame-src 'self'{''.join(f' {o}' for o in framed)}; " if framed else ""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"{frame_src}form-action 'self'{extra}; frame-ancestors 'none'; base-uri 'none'"
    )


def secure(
    response: web.StreamResponse, form_action: Iterable[str] = (), frames: Iterable[str] = ()
) -> web.StreamResponse:
    h = response.headers
    h["Content-Security-Policy"] = csp(form_action, frames)
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"
    h["Cache-Control"] = "no-store"
    h["X-Frame-Options"] = "DENY"
    return response


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


# -- form nonce (CSRF) -------------------------------------------------------------------


def _mac(key: bytes, issued: int) -> str:
    digest = hmac.new(key, b"pay-form:%d" % issued, hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode()


def form_nonce(key: bytes, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    return f"{issued}.{_mac(key, issued)}"


def nonce_ok(key: bytes, nonce: str, now: float | None = None) -> bool:
    """``nonce`` was rendered for this page (``key``) less than a day ago.

    >>> k = b"k" * 32
    >>> nonce_ok(k, form_nonce(k, 1000), 1010), nonce_ok(b"x" * 32, form_nonce(k, 1000), 1010)
    (True, False)
    """
    issued_s, _, mac = nonce.partition(".")
    if not (issued_s.isascii() and issued_s.isdigit() and len(issued_s) <= 12):
        return False
    issued, t = int(issued_s), time.time() if now is None else now
    # Bytes: compare_digest refuses a str with characters outside ASCII (TypeError, a 500), and the
    # submitted nonce is whatever the client sent.
    expected = _mac(key, issued).encode()
    return 0 <= t - issued <= NONCE_MAX_AGE and hmac.compare_digest(mac.encode("utf-8", "replace"), expected)


# -- rendering ---------------------------------------------------------------------------


def _render(
    request: web.Request,
    template: str,
    checkout: Checkout | None,
    language: str,
    status: int = 200,
    form_action: Iterable[str] = (),
    **context: Any,
) -> web.Response:
    ctx = {"t": text(language), "lang": language, "checkout": checkout, **context}
    response = aiohttp_jinja2.render_template(template, request, ctx, status=status)
    secure(response, form_action)
    return response


def not_found(request: web.Request, language: str = "en") -> web.Response:
    return _render(request, "result.html", None, language, 404, outcome=Outcome("not_found"))


def show(request: web.Request, checkout: Checkout, outcome: Outcome, action: str, key: bytes) -> web.Response:
    """GET: the card form while the page is open, else its result (paid, declined, expired ...)."""
    if outcome.state == "open":
        return _form(request, checkout, _Form(action, form_nonce(key)))
    return _result(request, checkout, outcome)


def _form(request: web.Request, checkout: Checkout, form: _Form, status: int = 200) -> web.Response:
    # form-action governs the redirects after a submission too: the 303 to return_url needs its origin.
    urls = [checkout.return_url, *checkout.return_urls.values()]
    shops = sorted({o for o in (_origin(u) for u in urls if u) if o})
    return _render(request, "pay.html", checkout, checkout.language, status, shops, form=form)


def result(request: web.Request, checkout: Checkout, outcome: Outcome, action: str, key: bytes) -> web.Response:
    """The page's answer when 3-D Secure hands the browser on (or ends), outside :func:`submit`."""
    return _result(request, checkout, outcome, action=action, key=key)


def _result(
    request: web.Request,
    checkout: Checkout,
    outcome: Outcome,
    status: int = 200,
    *,
    action: str = "",
    key: bytes = b"",
) -> web.Response:
    if outcome.form3d is not None:
        acs = _origin(str(outcome.form3d.get("action", "")))
        fields = {k: str(v) for k, v in outcome.form3d.items() if k not in ("action", "method")}
        form3d = {"action": outcome.form3d.get("action"), "fields": fields}
        if outcome.step == "method":
            # 3DS2's method: the ACS's page in a hidden frame (frame-src), then our resume form.
            resume = _Form(f"{action}/resume", form_nonce(key))
            response = _render(request, "method.html", checkout, checkout.language, status, form3d=form3d, form=resume)
            secure(response, [acs] if acs else [], frames=[acs] if acs else [])
            return response
        return _render(
            request, "challenge.html", checkout, checkout.language, status, [acs] if acs else [], form3d=form3d
        )
    return _render(request, "result.html", checkout, checkout.language, status, outcome=outcome)


async def submit(
    request: web.Request, checkout: Checkout, outcome: Outcome, action: str, key: bytes, pay: Pay
) -> web.StreamResponse:
    """POST: check the nonce and the card, pay, then 303 (module doc). A closed page pays nothing."""
    if outcome.state != "open":
        return _see_other(action)
    posted = await request.post()
    form = {k: v for k, v in posted.items() if isinstance(v, str)}
    words = text(checkout.language)
    values = {k: form.get(k, "")[:64] for k in ("exp_month", "exp_year", "holder")}  # never the number or code
    if not nonce_ok(key, form.get("nonce", "")):
        return _form(request, checkout, _Form(action, form_nonce(key), values=values, general=words["form_stale"]), 403)
    card, errors = read_card(form, cvv_required=checkout.cvv_required, holder_required=checkout.holder_required)
    if card is None:
        stale = _Form(action, form_nonce(key), errors=errors, values=values, general=words["fix_errors"])
        return _form(request, checkout, stale, 422)
    result = await pay(card, form)
    if result.form3d is not None:
        return _result(request, checkout, result, action=action, key=key)
    if result.state == "unavailable":
        return _result(request, checkout, result, 409)
    target = checkout.return_to(result.state)
    return _see_other(target or action)


def _see_other(location: str) -> web.StreamResponse:
    response = web.Response(status=303, headers={"Location": location})
    return secure(response)
