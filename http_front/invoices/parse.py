"""The invoice request of seeds/002 (``data.attributes`` of ``POST /api/payment-invoices``) as an
:class:`~switch.invoices.model.InvoiceRequest`, or the seed's 400 / 422.

Every problem found is reported at once, by attribute: ``{"errors": {"amount": "This value should be greater
than 0.", "customer.reference_id": "This value should not be blank."}}`` (the seed's 422 shape).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web

from http_front.body import read_json
from http_front.failures import ValidationFailed
from http_front.invoices.jsonapi import ApiError, error_list, invalid
from switch.errors import TranslationError
from switch.invoices.cart import check_cart
from switch.invoices.model import InvoiceRequest
from switch.invoices.services import CardFieldError, PaymentServices
from switch.mail import check_address
from switch.money import from_minor, to_minor

__all__ = ["EXPIRES_MAX", "EXPIRES_MIN", "invoice_request", "read_body"]

EXPIRES_MIN = timedelta(minutes=14)
EXPIRES_MAX = timedelta(days=2)
_BLANK = "This value should not be blank."
_INVALID = "This value is not valid."
_URL = re.compile(r"https?://[^\s]{1,2040}")
_CUSTOMER_TEXT = ("reference_id", "name", "email", "phone", "individual_tax_id", "date_of_birth")
_ADDRESS_TEXT = ("country", "region", "city", "street", "full_address", "post_code")


async def read_body(request: web.Request) -> Any:
    """The JSON body; the seed's 400 when it is not JSON (or not UTF-8, or not sent as JSON)."""
    try:
        return await read_json(request)
    except ValidationFailed as e:
        detail = e.errors[0].message if e.errors else e.message
        raise ApiError(400, error_list(400, detail)) from None


def _text(attrs: Mapping[str, Any], key: str, errors: dict[str, str], *, limit: int = 255) -> str | None:
    value = attrs.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        errors[key] = f"This value should be a string of at most {limit} characters."
        return None
    return value


def _object(attrs: Mapping[str, Any], key: str, errors: dict[str, str]) -> dict[str, Any] | None:
    value = attrs.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        errors[key] = "This value should be an object."
        return None
    return value


def _gateway_options(attrs: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any] | None:
    """seeds/002's ``gateway_options`` ("the set and possible values for each account"): ours is the seed's
    ``{"cardgate": {"tokenize": false}}`` only. An invoice page never keeps the card, so ``tokenize: true`` and
    any other option are refused rather than accepted and ignored.

    >>> errors: dict[str, str] = {}
    >>> _gateway_options({"gateway_options": {"cardgate": {"tokenize": False}}}, errors), errors
    ({'cardgate': {'tokenize': False}}, {})
    >>> _ = _gateway_options({"gateway_options": {"cardgate": {"tokenize": True}, "x": 1}}, errors)
    >>> sorted(errors)
    ['gateway_options.cardgate.tokenize', 'gateway_options.x']
    """
    options = _object(attrs, "gateway_options", errors)
    if options is None:
        return None
    for key in options.keys() - {"cardgate"}:
        errors[f"gateway_options.{key}"] = "This option is not supported."
    cardgate = options.get("cardgate", {})
    if not isinstance(cardgate, dict):
        errors["gateway_options.cardgate"] = "This value should be an object."
        return options
    for key in cardgate.keys() - {"tokenize"}:
        errors[f"gateway_options.cardgate.{key}"] = "This option is not supported."
    tokenize = cardgate.get("tokenize", False)
    if not isinstance(tokenize, bool):
        errors["gateway_options.cardgate.tokenize"] = "This value should be true or false."
    elif tokenize:
        errors["gateway_options.cardgate.tokenize"] = "Saving the card is not offered on invoice pages."
    return options


def _url(value: object, key: str, errors: dict[str, str]) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and _URL.fullmatch(value)):
        errors[key] = "This value is not a valid URL."
        return None
    return value


def _expires(value: object, now: datetime, errors: dict[str, str]) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        errors["expires"] = "This value is not a valid datetime (ISO 8601 with a time zone)."
        return None
    if not now + EXPIRES_MIN <= when <= now + EXPIRES_MAX:
        errors["expires"] = "This value should be between 14 minutes and 2 days from now."
        return None
    return when


def _customer(attrs: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any] | None:
    customer = _object(attrs, "customer", errors)
    if customer is None:
        return None
    for key in _CUSTOMER_TEXT:
        value = customer.get(key)
        if value is not None and not (isinstance(value, str | int) and not isinstance(value, bool)):
            errors[f"customer.{key}"] = _INVALID
    ref = customer.get("reference_id")
    if ref is None or (isinstance(ref, str) and not ref.strip()):
        errors["customer.reference_id"] = _BLANK  # required when the customer is sent (seeds/002)
    address = customer.get("address")
    if address is not None:
        if not isinstance(address, dict):
            errors["customer.address"] = "This value should be an object."
        else:
            for key in _ADDRESS_TEXT:
                if address.get(key) is not None and not isinstance(address[key], str):
                    errors[f"customer.address.{key}"] = _INVALID
    if customer.get("metadata") is not None and not isinstance(customer["metadata"], dict):
        errors["customer.metadata"] = "This value should be an object."
    return customer


def _return_urls(attrs: Mapping[str, Any], errors: dict[str, str]) -> dict[str, str] | None:
    urls = _object(attrs, "return_urls", errors)
    if urls is None:
        return None
    if urls.get("pending") is None:
        errors["return_urls.pending"] = _BLANK  # required in the object (seeds/002)
    out = {}
    for key in ("success", "pending", "fail"):
        checked = _url(urls.get(key), f"return_urls.{key}", errors)
        if checked is not None:
            out[key] = checked
    return out


def _amount(attrs: Mapping[str, Any], currency: str | None, errors: dict[str, str]) -> tuple[Decimal, int] | None:
    raw = attrs.get("amount")
    if raw is None and attrs.get("cart") is not None:
        return None  # the cart's total (seeds/000: "populated automatically" from the cart)
    if raw is None:
        errors["amount"] = _BLANK
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal | str):
        errors["amount"] = _INVALID
        return None
    try:
        value = Decimal(str(raw))
    except ArithmeticError:
        errors["amount"] = _INVALID
        return None
    if not value.is_finite() or value <= 0:
        errors["amount"] = "This value should be greater than 0."
        return None
    if currency is None:
        return None
    try:
        return value, to_minor(value, currency)
    except (TranslationError, ValueError):
        errors["amount"] = f"This value has more decimals than {currency} has."
        return None


def _cart(
    attrs: Mapping[str, Any], currency: str | None, amount: tuple[Decimal, int] | None, errors: dict[str, str]
) -> tuple[list[dict[str, Any]] | None, tuple[Decimal, int] | None]:
    """The cart's lines checked in minor units against the amount (``cart[i].field`` names a bad line), and the
    amount: the one sent, else the cart's total."""
    if attrs.get("cart") is None or currency is None or "amount" in errors:
        return None, amount
    lines, problems = check_cart(attrs["cart"], currency, amount[1] if amount else None)
    errors.update(problems)
    if amount is None and not problems:
        total = sum(line.amount for line in lines)
        if total > 0:
            amount = (Decimal(from_minor(total, currency)), total)
        else:
            errors["amount"] = "This value should be greater than 0."
    return [line.stored() for line in lines], amount


def _send_email(attrs: Mapping[str, Any], source: str, errors: dict[str, str]) -> bool:
    """``send_email: true``: the pay link is mailed to ``customer.email`` (the private API only: a public key
    is in web pages, and must not send mail to anyone)."""
    send = attrs.get("send_email", False)
    if not isinstance(send, bool):
        errors["send_email"] = "This value should be true or false."
        return False
    if send and source != "merchant_api":
        errors["send_email"] = "This value is accepted by the private API only."
        return False
    customer = attrs.get("customer")
    email = customer.get("email") if isinstance(customer, dict) else None
    if send and not (isinstance(email, str) and check_address(email)):
        errors["customer.email"] = _BLANK if email is None else "This value is not a valid email address."
    return send


def invoice_request(
    doc: Any, services: PaymentServices, now: datetime, *, source: str = "merchant_api"
) -> InvoiceRequest:
    """``{"data": {"type": "payment-invoices", "attributes": {...}}}`` checked whole; 422 with every problem."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("type") != "payment-invoices"
        or not isinstance(data.get("attributes"), dict)
    ):
        raise invalid({"data": 'This value should be {"type": "payment-invoices", "attributes": {...}}.'})
    return attributes_request(data["attributes"], services, now, source=source)


def attributes_request(
    attrs: Mapping[str, Any], services: PaymentServices, now: datetime, *, source: str = "merchant_api"
) -> InvoiceRequest:
    """The attributes of an invoice (the private API's ``data.attributes``, the public API's body)."""
    errors: dict[str, str] = {}
    code = attrs.get("service")
    service = services.get(code) if isinstance(code, str) else None
    if service is None:
        errors["service"] = _BLANK if code is None else _INVALID
    currency = attrs.get("currency")
    if not isinstance(currency, str) or currency.upper() != (service.currency if service else currency.upper()):
        errors["currency"] = _BLANK if currency is None else "This value should be the service's currency."
        currency = None
    amount = _amount(attrs, currency.upper() if isinstance(currency, str) else None, errors)
    cart, amount = _cart(attrs, currency.upper() if isinstance(currency, str) else None, amount, errors)
    if amount is not None and service is not None and not service.amount_min <= amount[0] <= service.amount_max:
        errors["amount"] = f"This value should be between {service.amount_min} and {service.amount_max}."
    flow = attrs.get("flow", "charge")
    if flow not in ("charge", "verify"):
        errors["flow"] = "This value should be charge or verify."
    test_mode = attrs.get("test_mode", False)
    if not isinstance(test_mode, bool):
        errors["test_mode"] = "This value should be true or false."
    elif service is not None and service.test_only and not test_mode:
        errors["service"] = "This service is available in test mode only."
    reference_id = attrs.get("reference_id")
    if reference_id is None:
        reference_id = str(uuid.uuid4())  # seeds/002: generated when not given, and sent back
    elif not (isinstance(reference_id, str) and 0 < len(reference_id.strip()) and len(reference_id) <= 255):
        errors["reference_id"] = "This value should be a string of 1 to 255 characters."
    service_fields = _object(attrs, "service_fields", errors) or {}
    card = None
    if service is not None:
        errors.update(service.check_fields(service_fields))
        if service.flow == "h2h" and source != "merchant_api":
            # Card data goes host to host only, with the private API's credentials, never with a public key.
            errors["service"] = "This service is available through the private API only."
        elif service.flow == "h2h" and not errors.keys() & {f"service_fields.{f.key}" for f in service.fields}:
            try:
                card = service.card_of(service_fields)
            except CardFieldError as e:
                errors[e.key] = e.message
        if service.card_fields is not None:
            service_fields = service.kept_fields(service_fields)  # the card is the order's, sealed; never here
    send_email = _send_email(attrs, source, errors)
    if send_email and service is not None and service.flow != "hpp":
        errors["send_email"] = "This service has no payment page to send."
    req_kwargs = {
        "description": _text(attrs, "description", errors),
        "customer": _customer(attrs, errors),
        "metadata": _object(attrs, "metadata", errors),
        "return_url": _url(attrs.get("return_url"), "return_url", errors),
        "return_urls": _return_urls(attrs, errors),
        "callback_url": _url(attrs.get("callback_url"), "callback_url", errors),
        "gateway_options": _gateway_options(attrs, errors),
        "expires": _expires(attrs.get("expires"), now, errors),
    }
    if errors:
        raise invalid(errors)
    assert service is not None and amount is not None and isinstance(currency, str)
    return InvoiceRequest(
        reference_id=str(reference_id),
        service=service.code,
        amount=amount[1],
        currency=currency.upper(),
        payment_flow=str(flow),
        test_mode=bool(test_mode),
        service_fields=service_fields,
        card=card,
        source=source,
        cart=cart,
        send_email=send_email,
        **req_kwargs,  # type: ignore[arg-type]
    )
