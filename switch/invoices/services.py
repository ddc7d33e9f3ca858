"""Payment services of invoices (seeds/002), read from ``schemas/payment_services.json``.

A service is data: its code (``payment_card_usd_hpp``), method, flow (``hpp``:
the hosted payment page; ``test``: the outcome is the request's ``status``
service field), currency, amount bounds and the fields a request must carry.
Adding one is an edit of the file, not of code.

>>> s = PaymentServices.load()
>>> s.get("payment_card_usd_hpp").flow, s.get("comcps_u1xxlHVw1NyeqmjJ").code, s.get("nope")
('hpp', 'payment_card_usd_hpp', None)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from schemas import SCHEMAS_DIR
from switch.money import currency

__all__ = ["SERVICES_PATH", "PaymentService", "PaymentServices", "ServiceField"]

SERVICES_PATH = SCHEMAS_DIR / "payment_services.json"
_ID = re.compile(r"comcps_[A-Za-z0-9]{16}")
_CODE = re.compile(r"[a-z0-9_]{1,64}")
_FLOWS = frozenset({"hpp", "test"})


@dataclass(frozen=True, slots=True)
class ServiceField:
    """A field the service needs in ``service_fields`` (the seed's ``fields`` entries, kept whole for views)."""

    key: str
    required: bool
    regexp: re.Pattern[str] | None
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PaymentService:
    id: str
    code: str
    method: str
    flow: str
    currency: str
    amount_min: Decimal
    amount_max: Decimal
    fees: dict[str, Decimal | int]  # fee_min, fee_max, fee_rate, fee_fix, reserve_lifetime, reserve_rate
    fields: tuple[ServiceField, ...]
    test_only: bool

    def check_fields(self, given: dict[str, Any]) -> dict[str, str]:
        """Errors of ``service_fields`` by key (the seed's 422 ``errors`` object); empty when they do."""
        errors: dict[str, str] = {}
        for f in self.fields:
            value = given.get(f.key)
            if value is None or value == "":
                if f.required:
                    errors[f"service_fields.{f.key}"] = "This value should not be blank."
                continue
            if not isinstance(value, str) or (f.regexp is not None and not f.regexp.search(value)):
                errors[f"service_fields.{f.key}"] = "This value is not valid."
        return errors


class PaymentServices:
    """The services of the file, by id and by code, in the file's order."""

    def __init__(self, services: list[PaymentService], methods: dict[str, dict[str, Any]]) -> None:
        self.services = tuple(services)
        self.methods = methods
        self._by = {s.id: s for s in services} | {s.code: s for s in services}

    def get(self, id_or_code: str) -> PaymentService | None:
        return self._by.get(id_or_code)

    @classmethod
    def load(cls, path: Path = SERVICES_PATH) -> PaymentServices:
        """The file, checked: a bad entry fails at start, naming it."""
        doc = json.loads(path.read_text(encoding="utf-8"))
        methods: dict[str, dict[str, Any]] = doc["methods"]
        services = [_service(entry, methods) for entry in doc["services"]]
        seen: set[str] = set()
        for s in services:
            if s.id in seen or s.code in seen:
                raise ValueError(f"{path}: service {s.code} repeats an id or code")
            seen |= {s.id, s.code}
        return cls(services, methods)


def _service(entry: dict[str, Any], methods: dict[str, Any]) -> PaymentService:
    code = entry.get("code", "?")
    try:
        if not (_ID.fullmatch(entry["id"]) and _CODE.fullmatch(code)):
            raise ValueError("id must be comcps_ and 16 base62 characters; code [a-z0-9_]")
        if entry["method"] not in methods or entry["flow"] not in _FLOWS:
            raise ValueError(f"unknown method or flow (flows: {sorted(_FLOWS)})")
        cur = currency(entry["currency"])
        amount_min, amount_max = Decimal(entry["amount_min"]), Decimal(entry["amount_max"])
        if not Decimal(0) < amount_min <= amount_max:
            raise ValueError("need 0 < amount_min <= amount_max")
        fees: dict[str, Decimal | int] = {
            k: Decimal(entry[k]) for k in ("fee_min", "fee_max", "fee_rate", "fee_fix", "reserve_rate")
        }
        fees["reserve_lifetime"] = int(entry["reserve_lifetime"])
        fields = tuple(
            ServiceField(f["key"], bool(f["required"]), re.compile(f["regexp"]) if f.get("regexp") else None, f)
            for f in entry["fields"]
        )
        return PaymentService(
            id=entry["id"],
            code=code,
            method=entry["method"],
            flow=entry["flow"],
            currency=cur.alpha,
            amount_min=amount_min,
            amount_max=amount_max,
            fees=fees,
            fields=fields,
            test_only=bool(entry["test_only"]),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError, re.error) as e:
        raise ValueError(f"payment service {code}: {e}") from None
