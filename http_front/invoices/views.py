"""An invoice as seeds/002 shows it: the private API's ``payment-invoices`` resource.

Amounts are JSON numbers in the invoice's currency (``100``, ``123.45``),
times Unix seconds. What belongs to another system in the seed's examples
is ours here: ``flow_data`` and ``hpp_url`` open our hosted page,
``original_data`` names the order that pays the invoice (``external_id``)
and the acceptor's ids; ``payload.payment_card`` is the paying card, masked.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from http_front.invoices.services import number
from http_front.pages.order_page import page_path
from http_front.urls import public_url
from switch.invoices.service import InvoiceView
from switch.money import from_minor
from switch.orders.model import Order
from switch.store.projects import Project

__all__ = ["PATH", "invoice_resource", "money"]

PATH = "/api/payment-invoices"


def money(units: int | None, currency: str) -> int | float | None:
    return None if units is None else number(Decimal(from_minor(units, currency)))


def _ts(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp())


def _payment_card(order: Order) -> dict[str, Any] | None:
    mask = order.pan_mask
    if not mask:
        return None
    month, year = order.expiry_month, order.expiry_year
    return {
        "last": mask[-4:],
        "mask": mask.replace("****", "******"),
        "brand": order.card_type,
        "first": mask[:6],
        "holder": order.card_holder,
        "network": order.card_type,
        "expiry_year": None if year is None else f"{year % 100:02d}",
        "issuer_name": order.issuer.get("title"),
        "expiry_month": None if month is None else f"{month:02d}",
        "issuer_country": order.issuer.get("country"),
    }


def _payload(order: Order | None) -> dict[str, Any] | None:
    """What the cardholder paid with (None before a card was given)."""
    if order is None or order.pan_mask is None:
        return None
    return {"token": None, "client_ip": (order.location or {}).get("ip", ""), "payment_card": _payment_card(order)}


def _cart_line(stored: dict[str, Any], currency: str) -> dict[str, Any]:
    return {
        **stored,
        "quantity": number(Decimal(stored["quantity"])),
        "price": money(stored["price"], currency),
        "amount": money(stored["amount"], currency),
    }


def invoice_resource(request: web.Request, project: Project, view: InvoiceView) -> dict[str, Any]:
    inv, order, cur = view.invoice, view.order, view.invoice.currency
    processed = view.status == "processed"
    hpp_url = public_url(request, page_path(view.token)) if view.token is not None else None
    flow_data: dict[str, Any] = (
        {"action": hpp_url, "method": "GET", "params": [], "metadata": {"sid": inv.id, "token": view.token}}
        if hpp_url is not None
        else {"action": None, "method": None, "params": [], "metadata": {"sid": inv.id, "token": None}}
    )
    processed_amount = None
    if processed and order is not None:
        processed_amount = order.amount_charged if inv.payment_flow == "charge" else order.amount
    elif processed:
        processed_amount = inv.amount  # the test flow
    settings = project.settings
    attributes: dict[str, Any] = {
        "serial_number": inv.serial_number,
        "status": view.status,
        "resolution": view.resolution,
        "moderation_required": False,
        "amount": money(inv.amount, cur),
        "payment_amount": money(inv.amount, cur),
        "currency": cur,
        "service_currency": view.service.currency if view.service else cur,
        "reference_id": inv.reference_id,
        "test_mode": inv.test_mode,
        "fee": money(view.fee, cur),
        "deposit": money(inv.amount - view.fee, cur),
        "processed": _ts(order.updated if order is not None else inv.updated) if processed else None,
        "processed_amount": money(processed_amount, cur),
        "refunded_amount": money(order.amount_refunded, cur) if order is not None and order.amount_refunded else None,
        "processed_fee": money(view.fee, cur) if processed else None,
        "processed_deposit": money(inv.amount - view.fee, cur) if processed else None,
        "metadata": inv.metadata,
        "flow_data": flow_data,
        "flow": view.service.flow if view.service else "hpp",
        "hpp_url": hpp_url,
        "payment_flow": inv.payment_flow,
        "created": _ts(inv.created),
        "updated": _ts(max(inv.updated, order.updated) if order is not None else inv.updated),
        "payload": _payload(order),
        "description": inv.description,
        "descriptor": order.descriptor if order is not None else None,
        "callback_url": inv.callback_url,
        "return_url": inv.return_url,
        "original_data": {
            "external_id": inv.order_id,
            "merchant_id": settings.merchant_id,
            "provider_id": None,
            "external_mid": settings.terminal_id,
            "provider_code": "isoswitch",
        },
        "rrn": order.rrn if order is not None else None,
        "approval_code": order.auth_code if order is not None else None,
        "reserved_amount": None,
        "reserve_expires": None,
        "unreserved": None,
        "source": inv.source,
        "callback_logs": inv.callback_logs or [],  # the seed: [] while empty, an object keyed by time after
        # Not in seeds/002: the cart of seeds/000 (line items; price and amount as numbers, like amount).
        "cart": None if inv.cart is None else [_cart_line(d, cur) for d in inv.cart],
    }
    method = view.service.method if view.service else "payment_card"
    customer = {"type": "customers", "id": inv.customer_id} if inv.customer_id else None
    return {
        "type": "payment-invoices",
        "id": inv.id,
        "attributes": attributes,
        "relationships": {
            "payment-service": {"data": {"type": "payment-services", "id": inv.service}},
            "payment-method": {"data": {"type": "payment-methods", "id": method}},
            "customer": {"data": customer},
        },
        "links": {"self": f"{PATH}/{inv.id}"},
    }
