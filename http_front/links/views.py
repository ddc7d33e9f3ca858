"""A payment link as the API shows it: the ``payment-links`` resource (JSON:API, like the invoices')."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from http_front.invoices.views import money
from http_front.urls import public_url
from switch.links.model import PaymentLink, state_of

__all__ = ["PATH", "attributes_of", "link_path", "link_resource"]

PATH = "/api/payment-links"


def link_path(slug: str) -> str:
    return f"/link/{slug}"


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def attributes_of(link: PaymentLink) -> dict[str, Any]:
    """The template's attributes as a request would give them (what a partial update is merged into)."""
    return {
        "name": link.name,
        "title": link.title,
        "service": link.service,
        "currency": link.currency,
        "amount": money(link.amount, link.currency),
        "arbitrary_amount": link.amount is None,
        "amount_min": money(link.amount_min, link.currency),
        "amount_max": money(link.amount_max, link.currency),
        "description": link.description,
        "payment_description": link.payment_description,
        "parameters": [p.to_json() for p in link.parameters],
        "customer_fields": list(link.customer_fields),
        "test_mode": link.test_mode,
        "language": link.language,
        "return_url": link.return_url,
        "callback_url": link.callback_url,
        "active": link.active,
        "active_from": _iso(link.active_from),
        "active_until": _iso(link.active_until),
    }


def link_resource(request: web.Request, link: PaymentLink, now: datetime) -> dict[str, Any]:
    attrs = attributes_of(link) | {
        "status": state_of(link, now),
        "url": public_url(request, link_path(link.slug)),
        "created": int(link.created.timestamp()),
        "updated": int(link.updated.timestamp()),
    }
    return {"type": "payment-links", "id": link.id, "attributes": attrs, "links": {"self": f"{PATH}/{link.id}"}}
