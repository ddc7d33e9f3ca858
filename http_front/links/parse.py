"""A payment link's template from the merchant's JSON:API body (``data.attributes``), or the seed's 422.

Every problem is reported at once, by attribute (``parameters[1].regexp``), as the invoice API does.
Amounts are decimal strings or numbers in the service's currency; ``arbitrary_amount: true`` lets the payer
enter the amount (between ``amount_min`` and ``amount_max``, the service's limits by default); otherwise
``amount`` is fixed (seeds/000's default 100.00). ``active_until`` omitted is a month after ``active_from``;
``null`` is indefinite (seeds/000's "Indefinite").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from http_front.invoices.jsonapi import invalid
from http_front.pages.i18n import LANGUAGES
from switch.errors import TranslationError
from switch.invoices.services import PaymentService, PaymentServices
from switch.links.model import (
    CUSTOMER_FIELDS,
    MAX_PARAMETERS,
    LinkParameter,
    LinkRequest,
    check_name,
    check_regexp,
    check_values,
)
from switch.links.service import DEFAULT_PERIOD
from switch.money import to_minor

__all__ = ["link_document", "link_request"]

TYPE = "payment-links"
_BLANK = "This value should not be blank."
_INVALID = "This value is not valid."
_URL = re.compile(r"https?://[^\s]{1,2040}")
_ATTRIBUTES = frozenset({
    "name", "title", "service", "currency", "amount", "arbitrary_amount", "amount_min", "amount_max", "description",
    "payment_description", "parameters", "customer_fields", "test_mode", "language", "return_url", "callback_url",
    "active", "active_from", "active_until",
})  # fmt: skip


def link_document(doc: Any, *, link_id: str | None = None) -> dict[str, Any]:
    """``data.attributes`` of ``{"data": {"type": "payment-links", ["id": ...,] "attributes": {...}}}``."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict) or data.get("type") != TYPE or not isinstance(data.get("attributes"), dict):
        raise invalid({"data": 'This value should be {"type": "payment-links", "attributes": {...}}.'})
    if link_id is not None and data.get("id", link_id) != link_id:
        raise invalid({"data.id": "This value should be the id in the URL."})
    attrs: dict[str, Any] = data["attributes"]
    unknown = sorted(set(attrs) - _ATTRIBUTES)
    if unknown:
        raise invalid({k: "This attribute is not known." for k in unknown})
    return attrs


def _text(attrs: Mapping[str, Any], key: str, errors: dict[str, str], *, required: bool = False) -> str | None:
    value = attrs.get(key)
    if value is None or (required and isinstance(value, str) and not value.strip()):
        if required:
            errors[key] = _BLANK
        return None
    if not isinstance(value, str) or len(value) > 255:
        errors[key] = "This value should be a string of at most 255 characters."
        return None
    return value


def _bool(attrs: Mapping[str, Any], key: str, default: bool, errors: dict[str, str]) -> bool:
    value = attrs.get(key, default)
    if not isinstance(value, bool):
        errors[key] = "This value should be true or false."
        return default
    return value


def _url(attrs: Mapping[str, Any], key: str, errors: dict[str, str]) -> str | None:
    value = attrs.get(key)
    if value is not None and not (isinstance(value, str) and _URL.fullmatch(value)):
        errors[key] = "This value is not a valid URL."
        return None
    return value


def _when(value: object, key: str, errors: dict[str, str]) -> datetime | None:
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        errors[key] = "This value is not a valid datetime (ISO 8601 with a time zone)."
        return None
    return when


def _money(value: object, key: str, service: PaymentService, errors: dict[str, str]) -> int | None:
    """Minor units of a decimal within the service's limits."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        errors[key] = _INVALID
        return None
    try:
        amount = Decimal(str(value))
        if not amount.is_finite() or amount <= 0:
            raise ValueError
        minor = to_minor(amount, service.currency)
    except (ArithmeticError, ValueError, TranslationError):
        errors[key] = f"This value should be an amount in {service.currency} greater than 0."
        return None
    if not service.amount_min <= amount <= service.amount_max:
        errors[key] = f"This value should be between {service.amount_min} and {service.amount_max}."
        return None
    return minor


def _parameter(i: int, raw: object, errors: dict[str, str]) -> LinkParameter | None:
    where = f"parameters[{i}]"
    if not isinstance(raw, dict):
        errors[where] = "This value should be an object."
        return None
    mine: dict[str, str] = {}  # this parameter's problems, by its own keys (then placed under ``where``)
    name = raw.get("name")
    if not (isinstance(name, str) and check_name(name)):
        mine["name"] = "Latin letters, digits and underscores, 1 to 32, not starting with a digit."
    label = _text(raw, "label", mine, required=True)
    placeholder = _text(raw, "placeholder", mine)
    value = _text(raw, "value", mine)
    required = raw.get("required", False)
    if not isinstance(required, bool):
        mine["required"] = "This value should be true or false."
    pattern = raw.get("regexp")
    if pattern is not None:
        why = check_regexp(pattern) if isinstance(pattern, str) else "This value should be a string."
        if why is not None:
            mine["regexp"] = why
    for k in raw:
        if k not in ("name", "label", "required", "regexp", "placeholder", "value"):
            mine[k] = "This attribute is not known."
    if not mine:
        assert isinstance(name, str) and label is not None
        param = LinkParameter(
            name=name, label=label, required=bool(required), regexp=pattern, placeholder=placeholder, value=value
        )
        if value is None or not check_values((param,), (), {})[2]:
            return param
        mine["value"] = "The fixed value should match the regexp."
    errors.update({f"{where}.{k}": v for k, v in mine.items()})
    return None


def _parameters(attrs: Mapping[str, Any], errors: dict[str, str]) -> tuple[LinkParameter, ...]:
    raw = attrs.get("parameters") or []
    if not isinstance(raw, list) or len(raw) > MAX_PARAMETERS:
        errors["parameters"] = f"This value should be a list of at most {MAX_PARAMETERS} parameters."
        return ()
    params = [p for i, item in enumerate(raw) if (p := _parameter(i, item, errors)) is not None]
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        errors["parameters"] = "Parameter names should be unique."
    return tuple(params)


def _customer_fields(attrs: Mapping[str, Any], errors: dict[str, str]) -> tuple[str, ...]:
    raw = attrs.get("customer_fields") or []
    if not (isinstance(raw, list) and all(f in CUSTOMER_FIELDS for f in raw) and len(set(raw)) == len(raw)):
        errors["customer_fields"] = f"This value should be a list of distinct: {', '.join(CUSTOMER_FIELDS)}."
        return ()
    return tuple(f for f in CUSTOMER_FIELDS if f in raw)  # the page's order


def _service(attrs: Mapping[str, Any], services: PaymentServices, errors: dict[str, str]) -> PaymentService | None:
    code = attrs.get("service")
    service = services.get(code) if isinstance(code, str) else None
    if service is None:
        errors["service"] = _BLANK if code is None else _INVALID
        return None
    if service.flow != "hpp":
        errors["service"] = "This service is not paid on the hosted page; a link needs one that is."
        return None
    cur = attrs.get("currency", service.currency)
    if not isinstance(cur, str) or cur.upper() != service.currency:
        errors["currency"] = "This value should be the service's currency."
    return service


def _amounts(
    attrs: Mapping[str, Any], service: PaymentService, errors: dict[str, str]
) -> tuple[int | None, int | None, int | None]:
    """(amount, amount_min, amount_max): a fixed amount, or a range for the payer."""
    arbitrary = _bool(attrs, "arbitrary_amount", False, errors)
    if not arbitrary:
        for key in ("amount_min", "amount_max"):
            if attrs.get(key) is not None:
                errors[key] = "Only with arbitrary_amount: true."
        fixed = attrs.get("amount")
        return _money("100.00" if fixed is None else fixed, "amount", service, errors), None, None
    if attrs.get("amount") is not None:
        errors["amount"] = "Not with arbitrary_amount: true (the payer enters it)."
    low, high = (attrs.get(k) for k in ("amount_min", "amount_max"))
    low = _money(str(service.amount_min) if low is None else low, "amount_min", service, errors)
    high = _money(str(service.amount_max) if high is None else high, "amount_max", service, errors)
    if low is not None and high is not None and low > high:
        errors["amount_max"] = "This value should be at least amount_min."
    return None, low, high


def link_request(attrs: Mapping[str, Any], services: PaymentServices, now: datetime) -> LinkRequest:
    """The template of ``attrs`` checked whole; 422 with every problem."""
    errors: dict[str, str] = {}
    service = _service(attrs, services, errors)
    amount = low = high = None
    if service is not None:
        amount, low, high = _amounts(attrs, service, errors)
    test_mode = _bool(attrs, "test_mode", False, errors)
    if service is not None and service.test_only and not test_mode:
        errors["service"] = "This service is available in test mode only."
    language = attrs.get("language", "en")
    if language not in LANGUAGES:
        errors["language"] = f"This value should be one of: {', '.join(sorted(LANGUAGES))}."
    start = _when(attrs["active_from"], "active_from", errors) if attrs.get("active_from") is not None else None
    if "active_until" not in attrs:
        until: datetime | None = (start or now) + DEFAULT_PERIOD
    elif attrs["active_until"] is None:
        until = None
    else:
        until = _when(attrs["active_until"], "active_until", errors)
        if until is not None and until <= (start or now):
            errors["active_until"] = "This value should be after active_from (and now)."
    req = {
        "name": _text(attrs, "name", errors, required=True),
        "title": _text(attrs, "title", errors, required=True),
        "description": _text(attrs, "description", errors),
        "payment_description": _text(attrs, "payment_description", errors),
        "parameters": _parameters(attrs, errors),
        "customer_fields": _customer_fields(attrs, errors),
        "return_url": _url(attrs, "return_url", errors),
        "callback_url": _url(attrs, "callback_url", errors),
        "active": _bool(attrs, "active", True, errors),
    }
    if errors:
        raise invalid(errors)
    assert service is not None
    return LinkRequest(
        service=service.code,
        currency=service.currency,
        amount=amount,
        amount_min=low,
        amount_max=high,
        test_mode=test_mode,
        language=str(language),
        active_from=start,
        active_until=until,
        **req,  # type: ignore[arg-type]
    )
