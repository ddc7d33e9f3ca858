"""The portal's invoices (seeds/000 "Invoice to e-mail", "Adding a shopping cart", "Importing a CSV file"): issue,
mail, list, search and read them, through the invoice service exactly as the API does.

A new invoice's form is checked by the API's own parse (:func:`http_front.invoices.parse.attributes_request`, so
the page and ``POST /api/payment-invoices`` accept and refuse the same things) and made by
:meth:`switch.invoices.service.Invoices.create` with the source ``portal``; its pay link is mailed through the mail
outbox (:func:`http_front.invoices.mailing.mail_invoice`) unless "issue without sending" is ticked. The cart has
rows in the form itself, and without a script: "Add a line" sends the form back with one more row, "Import CSV"
fills the rows from a file (checked by :func:`switch.invoices.cart.parse_csv`: a bad row named by its line, and no
row of that file kept). The amount may be left empty: the cart's total is the amount.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from http_front.invoices.jsonapi import ApiError
from http_front.invoices.mailing import mail_invoice
from http_front.invoices.parse import attributes_request
from http_front.invoices.views import money
from http_front.keys import RUNTIME
from http_front.pages.order_page import page_path
from http_front.portal.guard import SESSION, render, see_other
from http_front.urls import public_url
from switch.invoices.cart import MAX_LINES, CartLine, parse_csv
from switch.invoices.service import DuplicateInvoice, GatewayFailure, InvoiceView, NotMailable
from switch.money import from_minor
from switch.orders.errors import InvalidInput, Rejected

__all__ = ["NAV", "ROUTES"]

_PAGE_SIZE = 20
_ROWS = 3  # empty cart rows a new form shows
_CART_FIELDS = ("name", "price", "quantity", "measure", "article")
_INVOICE_ID = re.compile(r"cpi_[A-Za-z0-9]{16}")
_MAX_CSV = 256 * 1024
_FORM_KEYS = ("reference_id", "customer_name", "email", "customer_id", "due", "description", "currency", "amount")


def _invoices(request: web.Request) -> Any:
    return request.app[RUNTIME].invoices


def _currencies(request: web.Request) -> list[str]:
    """The currencies of the hosted page's card services (an invoice is paid there)."""
    services = _invoices(request).services
    own = request[SESSION].project.settings.currency
    codes = sorted({s.currency for s in services.services if s.flow == "hpp" and not s.test_only})
    return sorted(codes, key=lambda c: c != own)


def _service_of(request: web.Request, cur: str) -> str | None:
    for s in _invoices(request).services.services:
        if s.flow == "hpp" and not s.test_only and s.currency == cur:
            return str(s.code)
    return None


def _row(view: InvoiceView) -> dict[str, Any]:
    inv = view.invoice
    return {
        "id": inv.id,
        "reference_id": inv.reference_id,
        "created": inv.created.strftime("%Y-%m-%d %H:%M"),
        "amount": from_minor(inv.amount, inv.currency),
        "currency": inv.currency,
        "status": view.status,
        "resolution": view.resolution,
        "email": (inv.customer or {}).get("email"),
        "mailable": view.token is not None and view.status == "process_pending",
    }


# -- list and search -------------------------------------------------------------------------------


async def invoices_page(request: web.Request) -> web.StreamResponse:
    """Newest first, ``?reference_id=`` finds one; ``?after=<id>`` pages on."""
    ref = request.query.get("reference_id", "").strip()[:255] or None
    raw = request.query.get("after", "")
    after = raw if _INVOICE_ID.fullmatch(raw) else None
    found = await _invoices(request).page(request[SESSION].project, _PAGE_SIZE, after=after, reference_id=ref)
    views, more, count = found if found is not None else ([], False, 0)
    rows = [_row(v) for v in views]
    nxt = rows[-1]["id"] if more and rows else None
    return render(request, "moto_invoices.html", rows=rows, count=count, reference_id=ref or "", next=nxt)


async def invoice_page(request: web.Request, *, status: int = 200, notice: str | None = None) -> web.StreamResponse:
    invoice_id = request.match_info["invoice_id"]
    view = await _invoices(request).get(request[SESSION].project, invoice_id)
    if view is None:
        return render(request, "error.html", 404, title="Not found", message="No such invoice in this project.")
    inv = view.invoice
    lines = [CartLine.from_stored(line).shown(inv.currency) for line in inv.cart or []]
    link = public_url(request, page_path(view.token)) if view.token is not None else None
    sent = notice or ("The invoice was queued for sending by e-mail." if request.query.get("sent") == "1" else None)
    return render(
        request,
        "moto_invoice.html",
        status,
        invoice=_row(view) | {"description": inv.description, "customer": inv.customer or {}, "expires": inv.expires},
        order_id=view.order.id if view.order is not None else None,
        lines=lines,
        link=link,
        notice=sent,
    )


async def invoice_view(request: web.Request) -> web.StreamResponse:
    return await invoice_page(request)


async def invoice_send(request: web.Request) -> web.StreamResponse:
    project = request[SESSION].project
    invoice_id = request.match_info["invoice_id"]
    view = await _invoices(request).get(project, invoice_id)
    if view is None:
        return render(request, "error.html", 404, title="Not found", message="No such invoice in this project.")
    try:
        await mail_invoice(request, project, view)
    except NotMailable as e:
        return await invoice_page(request, status=422, notice=e.message)
    return see_other(f"/portal/invoices/{invoice_id}?sent=1")


# -- a new invoice ---------------------------------------------------------------------------------


def _form(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    cart = context.pop("cart", None) or [{} for _ in range(_ROWS)]
    values = context.pop("values", None) or {"currency": request[SESSION].project.settings.currency}
    context.setdefault("errors", {})
    context.setdefault("imported", 0)
    return render(
        request, "moto_invoice_new.html", status, cart=cart, values=values, currencies=_currencies(request), **context
    )


async def new_invoice_page(request: web.Request) -> web.StreamResponse:
    return _form(request)


def _posted_cart(form: Any) -> list[dict[str, str]]:
    """The form's cart rows (``cart-N-name`` ...), in order, the empty ones left out."""
    rows = []
    for n in range(MAX_LINES):
        row = {k: str(form.get(f"cart-{n}-{k}", ""))[:255].strip() for k in _CART_FIELDS}
        if f"cart-{n}-name" not in form:
            break
        if any(row.values()):
            rows.append(row)
    return rows


async def _import(request: web.Request, form: Any, cur: str) -> tuple[list[dict[str, str]], dict[str, str]]:
    upload = form.get("csv")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return [], {"csv": "Choose a CSV file to import."}
    raw = upload.file.read(_MAX_CSV + 1)
    if len(raw) > _MAX_CSV:
        return [], {"csv": f"The file should be at most {_MAX_CSV} bytes."}
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], {"csv": "The file should be UTF-8 text."}
    lines, problems = parse_csv(text, cur)
    if problems:
        return [], {"csv": " ".join(f"{where}: {why}" for where, why in sorted(problems.items()))}
    return [_shown(line, cur) for line in lines], {}


def _shown(line: CartLine, cur: str) -> dict[str, str]:
    return {
        "name": line.name,
        "price": str(money(line.price, cur)),
        "quantity": f"{line.quantity:f}",
        "measure": line.measure or "",
        "article": line.article or "",
    }


def _attributes(request: web.Request, values: dict[str, str], cart: list[dict[str, str]]) -> dict[str, Any]:
    """The form as the API's attributes (:func:`attributes_request` checks them)."""
    cur = values.get("currency", "")
    attrs: dict[str, Any] = {"service": _service_of(request, cur), "currency": cur}
    for key in ("reference_id", "description", "amount"):
        if values.get(key, "").strip():
            attrs[key] = values[key].strip()
    name, email, cid = (values.get(k, "").strip() for k in ("customer_name", "email", "customer_id"))
    if name or email or cid:
        # The seed's customer id is optional here; the API's customer needs a reference: the e-mail then.
        customer = {"reference_id": cid or email or name, "name": name or None, "email": email or None}
        attrs["customer"] = {k: v for k, v in customer.items() if v is not None}
    due = values.get("due", "").strip()
    if due:
        attrs["expires"] = due if due[-6:-5] in "+-" and len(due) > 16 else due + "+00:00"  # a local input: UTC
    if cart:
        attrs["cart"] = [{k: v for k, v in row.items() if v} for row in cart]
    return attrs


def _keys(errors: dict[str, str]) -> dict[str, str]:
    """The API's error keys as the form's fields (``cart[2].price`` is row 2's price, ``customer.email``...)."""
    named = {"customer.email": "email", "customer.name": "customer_name", "customer.reference_id": "customer_id"}
    named |= {"expires": "due", "service": "currency"}
    out: dict[str, str] = {}
    for key, why in errors.items():
        match = re.fullmatch(r"cart\[(\d+)\]\.(\w+)", key)
        out.setdefault(f"cart-{match[1]}-{match[2]}" if match else named.get(key, key), why)
    return out


async def new_invoice_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {k: str(form.get(k, ""))[:255] for k in _FORM_KEYS}
    values["no_send"] = "on" if form.get("no_send") == "on" else ""
    cart = _posted_cart(form)
    action = form.get("action", "create")
    if action == "add":
        return _form(request, values=values, cart=[*cart, {}])
    if action == "import":
        imported, errors = await _import(request, form, values["currency"])
        if errors:
            return _form(request, 422, values=values, cart=cart, errors=errors)
        return _form(request, values=values | {"amount": ""}, cart=imported, imported=len(imported))
    invoices = _invoices(request)
    project = request[SESSION].project
    try:
        req = attributes_request(_attributes(request, values, cart), invoices.services, invoices.now(), source="portal")
        view = await invoices.create(project, req)
    except ApiError as e:
        problems = e.body.get("errors")
        shown = _keys(problems) if isinstance(problems, dict) else {"form": "The invoice could not be made."}
        return _form(request, 422, values=values, cart=cart or None, errors=shown)
    except DuplicateInvoice:
        found = {"reference_id": "An invoice with this reference id exists already."}
        return _form(request, 409, values=values, cart=cart or None, errors=found)
    except GatewayFailure as e:
        return _form(request, 503, values=values, cart=cart or None, errors={"form": e.detail})
    except (InvalidInput, Rejected) as e:
        return _form(request, 422, values=values, cart=cart or None, errors={"form": e.message})
    if form.get("no_send") == "on":
        return see_other(f"/portal/invoices/{view.invoice.id}")
    try:
        await mail_invoice(request, project, view)
    except NotMailable as e:
        return await _after_create(request, view.invoice.id, e.message)
    return see_other(f"/portal/invoices/{view.invoice.id}?sent=1")


async def _after_create(request: web.Request, invoice_id: str, why: str) -> web.StreamResponse:
    request.match_info["invoice_id"] = invoice_id
    return await invoice_page(request, notice=f"The invoice was made but not sent: {why}")


_ID = "{invoice_id:cpi_[A-Za-z0-9]{16}}"

#: (method, path, handler, least role): reading for everyone, issuing and mailing for operators.
ROUTES = (
    ("GET", "/portal/invoices", invoices_page, "viewer"),
    ("GET", "/portal/invoices/new", new_invoice_page, "operator"),
    ("POST", "/portal/invoices/new", new_invoice_submit, "operator"),
    ("GET", f"/portal/invoices/{_ID}", invoice_view, "viewer"),
    ("POST", f"/portal/invoices/{_ID}/send", invoice_send, "operator"),
)

NAV = (("Invoices", "/portal/invoices", "viewer"),)
