"""Invoices by e-mail and carts from CSV (issue 12 item 7, seeds/000 "Invoice to e-mail"), behind HTTP Basic:

- ``POST /api/payment-invoices/{id}/send``: mail the invoice's pay link to its ``customer.email`` (again);
  202 with the queued mail (``invoice-mails``), sent and retried by the mail outbox's worker;
- ``POST /api/payment-invoices/cart-import?currency=USD`` with a ``text/csv`` body: the cart it holds
  (``carts``: its lines and total, ready for ``cart`` in a create), or 422 naming every bad row by its line
  (``line 3.price``). Nothing is stored: a file with one bad row gives no cart at all.

``send_email: true`` in a create mails the new invoice the same way (:func:`mail_invoice`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from http_front.failures import json_reply
from http_front.invoices.jsonapi import ApiError, error_list, invalid
from http_front.invoices.views import money
from http_front.keys import PROJECT, RUNTIME
from http_front.pages.order_page import page_path
from http_front.urls import public_url
from switch.errors import TranslationError
from switch.invoices.cart import parse_csv
from switch.invoices.service import InvoiceView, NotMailable
from switch.money import currency as currency_of
from switch.store.projects import Project

__all__ = ["cart_import", "mail_invoice", "send_invoice"]

_MAX_CSV = 256 * 1024  # bytes: 200 lines of a few hundred characters, with room


async def mail_invoice(request: web.Request, project: Project, view: InvoiceView) -> dict[str, Any]:
    """Queue the invoice's mail; the ``invoice-mails`` resource of it. :class:`NotMailable` when it cannot be."""
    url = public_url(request, page_path(view.token)) if view.token is not None else ""
    queued = await request.app[RUNTIME].invoices.send_mail(project, view, url)
    to = (view.invoice.customer or {}).get("email")
    return {
        "type": "invoice-mails",
        "id": str(queued.id),
        "attributes": {"invoice_id": view.invoice.id, "to": to, "state": "pending", "message_id": queued.message_id},
    }


async def send_invoice(request: web.Request) -> web.Response:
    invoice_id = request.match_info["invoice_id"]
    project = request[PROJECT]
    view = await request.app[RUNTIME].invoices.get(project, invoice_id) if invoice_id.startswith("cpi_") else None
    if view is None:
        raise ApiError(404, error_list(404))
    try:
        resource = await mail_invoice(request, project, view)
    except NotMailable as e:
        raise invalid({e.field: e.message}) from None
    return json_reply({"data": resource}, 202).response()


async def cart_import(request: web.Request) -> web.Response:
    code = request.query.get("currency", "")
    try:
        cur = currency_of(code).alpha if code else None
    except TranslationError:
        cur = None
    if cur is None:
        raise invalid({"currency": "This value should be the cart's currency (ISO 4217), in the query: ?currency=USD."})
    if request.content_type not in ("text/csv", "text/plain"):
        raise ApiError(400, error_list(400, "The body should be a CSV file (Content-Type: text/csv)."))
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):  # read(n) may stop at what has arrived so far
        size += len(chunk)
        if size > _MAX_CSV:
            raise ApiError(413, error_list(413, f"The file should be at most {_MAX_CSV} bytes."))
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        text = raw.decode("utf-8-sig")  # a spreadsheet's export may start with a byte order mark
    except UnicodeDecodeError:
        raise ApiError(400, error_list(400, "The file should be UTF-8 text.")) from None
    lines, errors = parse_csv(text, cur)
    if errors:
        raise invalid(errors)
    cart = [
        {**line.stored(), "quantity": float(line.quantity) if line.quantity % 1 else int(line.quantity)}
        | {"price": money(line.price, cur), "amount": money(line.amount, cur)}
        for line in lines
    ]
    total = sum(line.amount for line in lines)
    body = {"data": {"type": "carts", "attributes": {"currency": cur, "amount": money(total, cur), "cart": cart}}}
    return json_reply(body).response()
