"""``/api/payment-invoices`` (seeds/002, HTTP Basic): create, read by id, list (by ``filter[reference_id]``)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from http_front.failures import json_reply
from http_front.invoices.jsonapi import ApiError, error_list, invalid
from http_front.invoices.mailing import mail_invoice
from http_front.invoices.parse import invoice_request, read_body
from http_front.invoices.views import PATH, invoice_resource
from http_front.keys import PROJECT, RUNTIME
from switch.invoices.service import DuplicateInvoice, GatewayFailure, NotMailable
from switch.orders.errors import InvalidInput, Rejected

__all__ = ["create_invoice", "gateway_failure", "get_invoice", "list_invoices"]

# seeds/002's code table: the issuer's answer unusable, the issuer or the database unavailable, no answer in time.
_GATEWAY_STATUS = {"bad_gateway": 502, "unavailable": 503, "timeout": 504, "internal": 500}

_INVOICE_ID = re.compile(r"cpi_[A-Za-z0-9]{16}")
_DEFAULT_SIZE, _MAX_SIZE = 20, 100


async def create_invoice(request: web.Request) -> web.Response:
    invoices = request.app[RUNTIME].invoices
    project = request[PROJECT]
    doc = await read_body(request)
    req = invoice_request(doc, invoices.services, invoices.now())
    try:
        view = await invoices.create(project, req)
    except DuplicateInvoice as e:
        # seeds/002's 409: the invoice made first, for the merchant's own reconciliation.
        raise ApiError(409, {"data": invoice_resource(request, project, e.existing)}) from None
    except GatewayFailure as e:
        raise gateway_failure(e) from None
    except InvalidInput as e:
        # A card or amount the core refuses (checked before anything is written): nothing was made.
        problem = e.problems[0] if e.problems else None
        field = (problem.field if problem is not None else None) or ""
        key = field if field in ("amount", "currency") or field.startswith("service_fields.") else "service_fields"
        raise invalid({key: problem.message if problem is not None else e.message}) from None
    except Rejected as e:
        raise invalid({"service": e.message}) from None
    body: dict[str, Any] = {"data": invoice_resource(request, project, view)}
    if req.send_email:
        # After the create: the invoice stands whatever the mail does (POST .../send tries again).
        try:
            body["meta"] = {"mail": await mail_invoice(request, project, view)}
        except NotMailable as e:
            body["meta"] = {"mail": None, "mail_error": {e.field: e.message}}
    return json_reply(body, 201, {"Location": f"{PATH}/{view.invoice.id}"}).response()


def gateway_failure(e: GatewayFailure) -> ApiError:
    """seeds/002's 502/503/504 (``{"errors": [...]}``), with the invoice's id and reference when one was written,
    so the merchant can check it (the seed: "Check the transaction status") before creating it again."""
    status = _GATEWAY_STATUS[e.kind]
    body: dict[str, Any] = error_list(status, e.detail)
    if e.view is not None:
        inv = e.view.invoice
        body["meta"] = {"id": inv.id, "reference_id": inv.reference_id, "status": e.view.status}
    return ApiError(status, body)


async def get_invoice(request: web.Request) -> web.Response:
    invoice_id = request.match_info["invoice_id"]
    project = request[PROJECT]
    view = await request.app[RUNTIME].invoices.get(project, invoice_id) if _INVOICE_ID.fullmatch(invoice_id) else None
    if view is None:
        raise ApiError(404, error_list(404))
    return json_reply({"data": invoice_resource(request, project, view)}).response()


def _size(raw: str | None) -> int:
    if raw is None:
        return _DEFAULT_SIZE
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= _MAX_SIZE):
        raise invalid({"page[size]": f"This value should be between 1 and {_MAX_SIZE}."})
    return int(raw)


async def list_invoices(request: web.Request) -> web.Response:
    """Newest first, by cursor: ``page[after]=<id>`` older than it, ``page[before]=<id>`` newer (seeds/002's
    ``meta.before``/``after`` and ``links.prev``/``next``, empty strings where there is none)."""
    q = request.query
    size = _size(q.get("page[size]"))
    after, before = q.get("page[after]"), q.get("page[before]")
    if after is not None and before is not None:
        raise invalid({"page[after]": "Give page[after] or page[before], not both."})
    reference_id = q.get("filter[reference_id]")
    project = request[PROJECT]
    found = await request.app[RUNTIME].invoices.page(
        project, size, after=after, before=before, reference_id=reference_id
    )
    if found is None:
        raise invalid({"page[after]" if after is not None else "page[before]": "No such invoice."})
    views, more, count = found
    data = [invoice_resource(request, project, v) for v in views]
    first, last = (views[0].invoice.id, views[-1].invoice.id) if views else (None, None)
    has_next = more if before is None else before is not None
    has_prev = (after is not None) or (before is not None and more)
    keep = f"&filter[reference_id]={reference_id}" if reference_id is not None else ""
    links: dict[str, Any] = {
        "prev": f"{PATH}?page[size]={size}&page[before]={first}{keep}" if has_prev and first else "",
        "next": f"{PATH}?page[size]={size}&page[after]={last}{keep}" if has_next and last else "",
    }
    meta = {"count": count, "size": size, "before": first, "after": last}
    return json_reply({"meta": meta, "links": links, "data": data}).response()
