"""The public API of seeds/002: ``POST /public-api/payment-invoices``, ``GET /public-api/payment-invoices/{id}``
``POST /public-api/payment-invoices/process`` (the HTML form of a payment link) and
``POST /public-api/payment-prerequest`` (the services of a currency).

No HTTP Basic (the routes are ``public:``): the project is named by its public
key, in the body (POST) or the query (GET). A test key (``pk_test_...``) makes
test-mode invoices; a live key live ones. Creation is refused with 403 when the
project's ``forbid_public_invoices`` setting is on (seeds/002's "Forbid creation
through the Public API"). The answer is the seed's flat invoice, with
``active_payment`` pointing at the hosted page.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from http_front.failures import json_reply
from http_front.invoices.handlers import gateway_failure
from http_front.invoices.jsonapi import ApiError, error_list, invalid
from http_front.invoices.parse import attributes_request, read_body
from http_front.invoices.services import number
from http_front.invoices.views import invoice_resource
from http_front.keys import RUNTIME
from switch.invoices.service import DuplicateInvoice, GatewayFailure, InvoiceView
from switch.store.projects import Project

__all__ = ["nest_form", "prerequest", "process_form", "public_create", "public_get", "public_invoice"]

_INVOICE_ID = re.compile(r"cpi_[A-Za-z0-9]{16}")
# What the public body may carry besides the key (the private API's attributes but test_mode, which the key says).
_ATTRIBUTES = (
    "reference_id", "service", "currency", "amount", "description", "flow", "service_fields", "customer",
    "metadata", "return_url", "return_urls", "callback_url", "gateway_options", "expires",
)  # fmt: skip


async def _project(request: web.Request, key: object) -> tuple[Project, bool]:
    found = await request.app[RUNTIME].projects.by_public_key(key) if isinstance(key, str) else None
    if found is None:
        raise ApiError(401, error_list(401))
    return found


def public_invoice(request: web.Request, project: Project, view: InvoiceView) -> dict[str, Any]:
    """The seed's public invoice: flat, ``resolution`` in capitals, the page as ``active_payment``."""
    attrs = invoice_resource(request, project, view)["attributes"]
    inv = view.invoice
    service = view.service
    return {
        "id": inv.id,
        "serial_number": inv.serial_number,
        "created": attrs["created"],
        "test_mode": inv.test_mode,
        "reference_id": inv.reference_id,
        "currency": inv.currency,
        "amount": attrs["amount"],
        "payment_amount": attrs["payment_amount"],
        "processed_amount": attrs["processed_amount"],
        "refunded_amount": attrs["refunded_amount"],
        "description": inv.description,
        "has_return_url": bool(inv.return_url or inv.return_urls),
        "status": view.status,
        "resolution": view.resolution.upper(),
        "service": inv.service,
        "service_method": service.method if service else None,
        "service_flow": service.flow if service else None,
        "service_currency": attrs["service_currency"],
        "metadata": inv.metadata,
        "hpp_url": attrs["hpp_url"],
        "active_payment": {
            "payload": attrs["flow_data"],
            "status": "invoked" if view.status == "process_pending" else view.status,
            "resolution": view.resolution.upper(),
        },
    }


async def public_create(request: web.Request) -> web.Response:
    doc = await read_body(request)
    if not isinstance(doc, dict):
        raise ApiError(400, error_list(400, "The body must be a JSON object"))
    project, test_mode = await _project(request, doc.get("public_key"))
    if project.settings.forbid_public_invoices:
        raise ApiError(403, error_list(403, "Creation through the public API is forbidden for this account"))
    invoices = request.app[RUNTIME].invoices
    attrs = {k: doc[k] for k in _ATTRIBUTES if k in doc} | {"test_mode": test_mode}
    req = attributes_request(attrs, invoices.services, invoices.now(), source="public_api")
    try:
        view = await invoices.create(project, req)
    except DuplicateInvoice as e:
        raise ApiError(409, {"data": public_invoice(request, project, e.existing)}) from None
    except GatewayFailure as e:
        raise gateway_failure(e) from None
    return json_reply({"data": public_invoice(request, project, view)}, 201).response()


async def public_get(request: web.Request) -> web.Response:
    project, _ = await _project(request, request.query.get("public_key"))
    invoice_id = request.match_info["invoice_id"]
    invoices = request.app[RUNTIME].invoices
    view = await invoices.get(project, invoice_id) if _INVOICE_ID.fullmatch(invoice_id) else None
    if view is None:
        raise ApiError(404, error_list(404))
    return json_reply({"data": public_invoice(request, project, view)}).response()


async def prerequest(request: web.Request) -> web.Response:
    """``POST /public-api/payment-prerequest``: the services of a currency (a live key: no test-only ones)."""
    doc = await read_body(request)
    if not isinstance(doc, dict):
        raise ApiError(400, error_list(400, "The body must be a JSON object"))
    project, test_mode = await _project(request, doc.get("public_key"))
    cur = doc.get("currency")
    services = request.app[RUNTIME].invoices.services
    if not isinstance(cur, str) or not re.fullmatch(r"[A-Za-z]{3}", cur):
        raise invalid({"currency": "This value is not a valid currency."})
    # Not the h2h services: card data goes host to host with the private API's credentials, never a public key.
    chosen = [
        s for s in services.services if s.currency == cur.upper() and (test_mode or not s.test_only) and s.flow != "h2h"
    ]
    data = {
        "currency": cur.upper(),
        "test_mode": test_mode,
        "services": {
            s.code: {
                "code": s.code,
                "method": s.method,
                "flow": s.flow,
                "currency": s.currency,
                "fields": [f.doc for f in s.fields],
                "amount_min": number(s.amount_min),
                "amount_max": number(s.amount_max),
            }
            for s in chosen
        },
        "methods": {m: services.methods[m] for m in dict.fromkeys(s.method for s in chosen)},
        "account": {"name": project.name, "description": project.settings.descriptor, "icon": None, "website": None},
    }
    return json_reply({"data": data}).response()


_BRACKETS = re.compile(r"([A-Za-z0-9_]+)((?:\[[A-Za-z0-9_]+\])*)")


def nest_form(fields: Any) -> dict[str, Any]:
    """HTML form fields with bracket names as nested objects (``customer[address][city]``); 422 on a name that
    is not of that form or that is both a value and an object.

    >>> nest_form({"amount": "100", "customer[reference_id]": "7", "customer[address][city]": "Kyiv"})
    {'amount': '100', 'customer': {'reference_id': '7', 'address': {'city': 'Kyiv'}}}
    """
    out: dict[str, Any] = {}
    for name, value in fields.items():
        m = _BRACKETS.fullmatch(name)
        if m is None or not isinstance(value, str):
            raise invalid({name if isinstance(name, str) else "form": "This field name is not valid."})
        path = [m.group(1), *re.findall(r"\[([A-Za-z0-9_]+)\]", m.group(2))]
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise invalid({name: "This field name is not valid."})
        if isinstance(node.get(path[-1]), dict):
            raise invalid({name: "This field name is not valid."})
        node[path[-1]] = value
    return out


async def process_form(request: web.Request) -> web.StreamResponse:
    """``POST /public-api/payment-invoices/process`` (seeds/002's HTML form, a payment link): the invoice is made
    as by the JSON call, and the browser goes on to its hosted page (303). A duplicate ``reference_id`` goes to
    the first invoice's page (the link clicked twice), which says whether it is paid already."""
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise ApiError(400, error_list(400, "The body must be an HTML form"))
    doc = nest_form(await request.post())
    project, test_mode = await _project(request, doc.get("public_key"))
    if project.settings.forbid_public_invoices:
        raise ApiError(403, error_list(403, "Creation through the public API is forbidden for this account"))
    invoices = request.app[RUNTIME].invoices
    attrs = {k: doc[k] for k in _ATTRIBUTES if k in doc} | {"test_mode": test_mode}
    req = attributes_request(attrs, invoices.services, invoices.now(), source="public_api")
    try:
        view = await invoices.create(project, req)
    except DuplicateInvoice as e:
        view = e.existing
    except GatewayFailure as e:
        raise gateway_failure(e) from None
    url = public_invoice(request, project, view)["hpp_url"]
    if url is None:  # a service with no page (the test flow): its outcome is known at once
        return json_reply({"data": public_invoice(request, project, view)}, 201).response()
    raise web.HTTPSeeOther(url)
