"""``GET /api/payment-services`` and ``/api/payment-services/{id}`` (seeds/002, HTTP Basic): the services of
``schemas/payment_services.json`` as the seed's JSON:API resources.

>>> number(Decimal("0.01")), number(Decimal("1000000")), number(Decimal("0"))
(0.01, 1000000, 0)
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from aiohttp import web

from http_front.failures import json_reply
from http_front.invoices.jsonapi import ApiError, error_list, page_links, page_params
from http_front.keys import PROJECT, RUNTIME
from switch.invoices.services import PaymentService
from switch.store.projects import Project

__all__ = ["get_service", "list_services", "number", "service_resource"]

PATH = "/api/payment-services"


def number(value: Decimal | int) -> int | float:
    """A JSON number as the seed writes amounts: integers without a point, others as decimals."""
    if isinstance(value, int) or value == value.to_integral_value():
        return int(value)
    return float(value)


def service_resource(service: PaymentService, project: Project) -> dict[str, Any]:
    """One ``payment-services`` resource. ``currency`` is the account's (the project's) currency, as the seed's
    examples show it beside ``service_currency``; ``test_mode`` says the service exists in test mode only."""
    attributes: dict[str, Any] = {
        "service": service.code,
        "service_method": service.method,
        "service_currency": service.currency,
        "available": True,
        "active": False,
        "enabled": True,
        "amount_min": number(service.amount_min),
        "amount_max": number(service.amount_max),
        **{k: number(v) for k, v in service.fees.items()},
        "currency": project.settings.currency,
        "test_mode": service.test_only,
    }
    return {
        "type": "payment-services",
        "id": service.id,
        "attributes": attributes,
        "relationships": {
            "payment-method": {"data": {"type": "payment-methods", "id": service.method}},
            "payment-service": {"data": {"type": "payment-services", "id": service.code}},
        },
        "links": {"self": f"{PATH}/{service.id}"},
    }


async def list_services(request: web.Request) -> web.Response:
    number_, size = page_params(request.query)
    services = request.app[RUNTIME].invoices.services.services
    pages = max(1, math.ceil(len(services) / size))
    chosen = services[(number_ - 1) * size : number_ * size]
    project = request[PROJECT]
    doc = {
        "meta": {"total": len(services), "pages": pages, "page": number_},
        "links": page_links(PATH, number_, size, pages),
        "data": [service_resource(s, project) for s in chosen],
    }
    return json_reply(doc).response()


async def get_service(request: web.Request) -> web.Response:
    """By the resource's id (``comcps_...``) or by the service's code (what invoices name it by)."""
    service = request.app[RUNTIME].invoices.services.get(request.match_info["service_id"])
    if service is None:
        raise ApiError(404, error_list(404))
    return json_reply({"data": service_resource(service, request[PROJECT])}).response()
