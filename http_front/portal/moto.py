"""The portal's area of issue 13 item 7 (seeds/000 "MOTO payment", "Pay by link", "Payment links"): the virtual
terminal here, the invoices in :mod:`http_front.portal.moto_invoices`, the payment-link templates in
:mod:`http_front.portal.moto_links` (their routes and navigation are gathered here: one line in ``AREAS``).

The virtual terminal: an operator keys the card a customer gave by telephone or mail. It is authorized through the
orders service like ``POST /orders/authorize``, with the MOTO channel: DE 25 ``08`` and DE 22 ``010`` (manual key
entry) on the wire (schemas/iso8583/MESSAGES.md), no 3-D Secure (the cardholder is not online), the order's
source ``moto``. One step (authorize and charge) or two (authorize; charge later from the payment's page), as the
seed's "Authorization / Pre-authorization". The security code is optional (the seed's form has none; when the
customer gives one it goes in DE 120 and nowhere else: never stored, never echoed back into the form); the card
number is never logged, never in a URL, and the form comes back after an answer without it.
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from http_front.orders.views import order_view
from http_front.pages.card_form import read_card
from http_front.pages.i18n import text
from http_front.portal import moto_invoices, moto_links
from http_front.portal.guard import SESSION, PortalRuntime, portal_of, render, see_other
from switch.errors import TranslationError
from switch.money import currency
from switch.orders.errors import Declined, Fraud, InvalidInput, IssuerError, OrderError, OrderNotFound, Rejected
from switch.orders.requests import AuthorizeRequest, Details
from switch.translate import Card, Channel

__all__ = ["NAV", "ROUTES", "form_text"]

log = logging.getLogger("isoswitch.portal")

_MESSAGES = text("en")
_FIELD_OF_DE = {"2": "number", "14": "exp", "120": "cvc"}
_KEPT = ("merchant_order_id", "description", "currency", "amount", "stage", "customer_id", "holder")


def runtime_of(request: web.Request) -> PortalRuntime:
    runtime = portal_of(request)
    assert runtime is not None  # the guard answered 404 otherwise
    return runtime


async def form_text(request: web.Request) -> dict[str, str]:
    """The posted form's text fields (a file field is not text: left out)."""
    form = await request.post()
    return {k: v[:1024] for k, v in form.items() if isinstance(v, str)}


def _currencies(request: web.Request) -> list[str]:
    own = request[SESSION].project.settings.currency
    return [own] + [c for c in ("USD", "EUR", "GBP") if c != own]


def _terminal(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    context.setdefault("values", {"stage": "one", "currency": request[SESSION].project.settings.currency})
    context.setdefault("errors", {})
    context.setdefault("outcome", None)
    return render(request, "moto_terminal.html", status, currencies=_currencies(request), **context)


async def terminal_page(request: web.Request) -> web.StreamResponse:
    """The form; after an approval (``?done=<order id>``, the redirect of the POST) with the payment's outcome."""
    done = request.query.get("done", "")
    if not done:
        return _terminal(request)
    try:
        order = await runtime_of(request).orders.get_order(request[SESSION].project, done)
    except OrderNotFound:
        return _terminal(request, 404, outcome={"word": "Not found", "message": "No such payment in this project."})
    shown = order_view(order)
    outcome = {"word": "Approved", "order_id": order.id, "status": order.status.value, "auth_code": order.auth_code}
    outcome["message"] = f"{shown['amount']} {shown['currency']}, card {order.pan_mask}"
    return _terminal(request, outcome=outcome)


def _amount(raw: str, errors: dict[str, str]) -> Decimal | None:
    value = raw.strip().replace(",", ".")
    try:
        amount = Decimal(value) if 0 < len(value) <= 16 else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount <= 0:
        errors["amount"] = "Enter an amount greater than 0, like 12.50."
        return None
    return amount


def _card(values: dict[str, str], errors: dict[str, str], holder_required: bool) -> Card | None:
    """The keyed card, checked as the payment page checks it. The security code may be left empty (a mail order
    has none; the seed's form asks for none), the holder too when the project's ``holder_required`` is off."""
    checked, problems = read_card(values, cvv_required=False, holder_required=holder_required)
    errors.update({field: _MESSAGES[key] for field, key in problems.items()})
    return None if checked is None else checked.card


def _request(values: dict[str, str], errors: dict[str, str], holder_required: bool) -> AuthorizeRequest | None:
    cur = None
    try:
        cur = currency(values.get("currency", ""))
    except TranslationError:
        errors["currency"] = "Choose a currency."
    amount = _amount(values.get("amount", ""), errors)
    card = _card(values, errors, holder_required)
    ref = values.get("merchant_order_id", "").strip()
    description = values.get("description", "").strip()
    customer = values.get("customer_id", "").strip()
    for key, value, limit in (("merchant_order_id", ref, 64), ("description", description, 255)):
        if len(value) > limit:
            errors[key] = f"At most {limit} characters."
    if len(customer) > 64:
        errors["customer_id"] = "At most 64 characters."
    if values.get("stage") not in ("one", "two"):
        errors["stage"] = "Choose authorization or pre-authorization."
    if errors or cur is None or amount is None or card is None:
        return None
    return AuthorizeRequest(
        amount=amount,
        card=card,
        currency=cur,
        details=Details(
            client={"login": customer} if customer else {},
            description=description or None,
            merchant_order_id=ref or None,
        ),
        auto_charge=values["stage"] == "one",
        channel=Channel.MOTO,
    )


def _problems(e: InvalidInput) -> dict[str, str]:
    """The core's refusals by the form's field (the amount's decimals, a DE the card does not fit)."""
    found: dict[str, str] = {}
    for p in e.problems:
        name = p.field or ""
        key = "amount" if name == "amount" else "currency" if name == "currency" else None
        key = key or next((f for de, f in _FIELD_OF_DE.items() if name.endswith(de)), None) or "form"
        found.setdefault(key, p.message)
    return found or {"form": e.message}


async def terminal_submit(request: web.Request) -> web.StreamResponse:
    values = await form_text(request)
    kept = {k: values.get(k, "") for k in _KEPT}  # never the card number or its code
    errors: dict[str, str] = {}
    req = _request(values, errors, request[SESSION].project.settings.holder_required)
    if req is None:
        return _terminal(request, 422, values=kept, errors=errors)
    session = request[SESSION]
    try:
        order = await runtime_of(request).orders.authorize(session.project, req)
    except InvalidInput as e:
        return _terminal(request, 422, values=kept, errors=_problems(e))
    except (Declined, Fraud, IssuerError, Rejected) as e:
        _keyed(session, e.order_id, e.failure_type)
        return _terminal(request, 200 if e.order_id else 422, values=kept, outcome=_outcome(e))
    _keyed(session, order.id, order.status.value)
    return see_other(f"/portal/terminal?done={order.id}")


def _keyed(session: Any, order_id: str | None, outcome: str) -> None:
    # Who keyed a card for whom: the order's id and the portal user, never anything of the card.
    extra = {"order_id": order_id, "project_id": session.project.id, "portal_user": session.user.id}
    log.info("moto payment keyed on the virtual terminal: %s", outcome, extra=extra)


def _outcome(e: OrderError) -> dict[str, Any]:
    word = {"declined": "Declined", "fraud": "Declined", "rejected": "Refused"}.get(e.failure_type, "Failed")
    return {"word": word, "message": e.message, "order_id": e.order_id}


#: (method, path, handler, least role): the terminal keys cards (an operator's work); see the other modules.
ROUTES = (
    ("GET", "/portal/terminal", terminal_page, "operator"),
    ("POST", "/portal/terminal", terminal_submit, "operator"),
    *moto_invoices.ROUTES,
    *moto_links.ROUTES,
)

NAV = (
    ("Virtual terminal", "/portal/terminal", "operator"),
    *moto_invoices.NAV,
    *moto_links.NAV,
)
