"""The portal's payment-link templates (seeds/000 "Payment links"): list them with their state and public URL,
create one, disable or enable one, through the link service as ``/api/payment-links`` does.

The form is checked by the API's own parse (:func:`http_front.links.parse.link_request`): the page and the API
accept the same templates. A disable is the API's partial update ``{"active": false}``: the template stays, its
page answers that the link is closed. The merchant's own parameters (name, label, regexp ...) are the API's for
now; the page offers the seed's standard fields (e-mail, full name, phone, address).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from http_front.invoices.jsonapi import ApiError
from http_front.keys import RUNTIME
from http_front.links.parse import link_request
from http_front.links.views import attributes_of, link_path
from http_front.portal.guard import SESSION, render, see_other
from http_front.urls import public_url
from switch.links.model import CUSTOMER_FIELDS, state_of
from switch.money import from_minor

__all__ = ["NAV", "ROUTES"]

_PAGE_SIZE = 20
_KEYS = ("name", "title", "currency", "amount", "amount_min", "amount_max", "description", "payment_description")
_KEYS_ON = ("arbitrary", "indefinite", *(f"field_{f}" for f in CUSTOMER_FIELDS))
_LABELS = {"email": "E-mail", "full_name": "Full name", "phone": "Phone number", "address": "Address"}


def _links(request: web.Request) -> Any:
    return request.app[RUNTIME].links


def _services(request: web.Request) -> dict[str, str]:
    """Currency -> the hosted page's card service of it (a link opens that page)."""
    found: dict[str, str] = {}
    for s in request.app[RUNTIME].invoices.services.services:
        if s.flow == "hpp" and not s.test_only:
            found.setdefault(s.currency, s.code)
    return found


def _row(request: web.Request, link: Any, now: Any) -> dict[str, Any]:
    if link.amount is not None:
        amount = f"{from_minor(link.amount, link.currency)} {link.currency}"
    else:
        low, high = (from_minor(v or 0, link.currency) for v in (link.amount_min, link.amount_max))
        amount = f"{low} to {high} {link.currency} (the payer's)"
    return {
        "id": link.id,
        "name": link.name,
        "title": link.title,
        "amount": amount,
        "state": state_of(link, now),
        "active": link.active,
        "url": public_url(request, link_path(link.slug)),
        "until": link.active_until.strftime("%Y-%m-%d") if link.active_until else "indefinite",
    }


async def _page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    links = _links(request)
    raw = request.query.get("page", "1")
    number = int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 6 and int(raw) > 0 else 1
    found, total = await links.page(request[SESSION].project, number, _PAGE_SIZE)
    now = links.now()
    context.setdefault("values", {"currency": request[SESSION].project.settings.currency, "amount": "100.00"})
    context.setdefault("errors", {})
    return render(
        request,
        "moto_links.html",
        status,
        rows=[_row(request, link, now) for link in found],
        total=total,
        number=number,
        more=number * _PAGE_SIZE < total,
        currencies=sorted(_services(request), key=lambda c: c != request[SESSION].project.settings.currency),
        customer_fields=[(f, _LABELS.get(f, f)) for f in CUSTOMER_FIELDS],
        **context,
    )


async def links_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


def _attributes(request: web.Request, values: dict[str, str]) -> dict[str, Any]:
    cur = values.get("currency", "")
    attrs: dict[str, Any] = {"service": _services(request).get(cur, ""), "currency": cur}
    for key in ("name", "title", "description", "payment_description"):
        if values.get(key, "").strip():
            attrs[key] = values[key].strip()
    if values.get("arbitrary") == "on":
        attrs["arbitrary_amount"] = True
        for key in ("amount_min", "amount_max"):
            if values.get(key, "").strip():
                attrs[key] = values[key].strip()
    elif values.get("amount", "").strip():
        attrs["amount"] = values["amount"].strip()
    if values.get("indefinite") == "on":
        attrs["active_until"] = None
    attrs["customer_fields"] = [f for f in CUSTOMER_FIELDS if values.get(f"field_{f}") == "on"]
    return attrs


async def link_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {k: str(form.get(k, ""))[:255] for k in _KEYS} | {k: str(form.get(k, "")) for k in _KEYS_ON}
    links = _links(request)
    try:
        req = link_request(_attributes(request, values), request.app[RUNTIME].invoices.services, links.now())
    except ApiError as e:
        errors = e.body.get("errors")
        found = (
            {("currency" if k == "service" else k): v for k, v in errors.items()} if isinstance(errors, dict) else {}
        )
        return await _page(request, 422, values=values, errors=found or {"form": "The link could not be made."})
    link = await links.create(request[SESSION].project, req)
    return see_other(f"/portal/links?made={link.id}")


async def _switch(request: web.Request, active: bool) -> web.StreamResponse:
    runtime, project = request.app[RUNTIME], request[SESSION].project
    links, link_id = runtime.links, request.match_info["link_id"]
    old = await links.get(project, link_id)
    if old is None:
        return render(request, "error.html", 404, title="Not found", message="No such payment link in this project.")
    try:
        req = link_request(attributes_of(old) | {"active": active}, runtime.invoices.services, links.now())
    except ApiError:
        # An expired template cannot be saved again as it is (its period is over): say so, change nothing.
        return await _page(request, 422, errors={"form": "This link's period is over: make a new one."})
    await links.update(project, link_id, req)
    return see_other("/portal/links")


async def link_disable(request: web.Request) -> web.StreamResponse:
    return await _switch(request, False)


async def link_enable(request: web.Request) -> web.StreamResponse:
    return await _switch(request, True)


_ID = "{link_id:cpl_[A-Za-z0-9]{16}}"

#: (method, path, handler, least role): templates are the project's configuration, an admin's.
ROUTES = (
    ("GET", "/portal/links", links_page, "viewer"),
    ("POST", "/portal/links", link_create, "admin"),
    ("POST", f"/portal/links/{_ID}/disable", link_disable, "admin"),
    ("POST", f"/portal/links/{_ID}/enable", link_enable, "admin"),
)

NAV = (("Payment links", "/portal/links", "viewer"),)
