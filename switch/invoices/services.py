"""Payment services of invoices (seeds/002), read from ``schemas/payment_services.json``.

A service is data: its code (``payment_card_usd_hpp``), method, flow (``hpp``:
the hosted payment page; ``h2h``: host to host, the card in ``service_fields``,
authorized when the invoice is made; ``test``: the outcome is the request's
``status`` service field), currency, amount bounds and the fields a request must
carry. Adding one is an edit of the file, not of code.

An ``h2h`` service names which of its fields are the card (``card_fields``: ``pan``,
``expiry`` as ``MM/YY`` or ``MM/YYYY``, ``cvv``, ``holder``): those become the
order's card (sealed by the vault, the CVV sent once) and are never kept with the invoice.

>>> s = PaymentServices.load()
>>> s.get("payment_card_usd_hpp").flow, s.get("comcps_u1xxlHVw1NyeqmjJ").code, s.get("nope")
('hpp', 'payment_card_usd_hpp', None)
>>> h2h = s.get("payment_card_usd_h2h")
>>> fields = {"card_number": "4111111111111111", "card_expiry": "12/30", "card_cvv": "123", "note": "x"}
>>> h2h.card_of(fields), h2h.kept_fields(fields)
(Card(pan='411111****1111', expiry='3012', cvv=True), {'note': 'x'})
>>> try:
...     h2h.card_of(fields | {"card_number": "4111111111111112"})
... except CardFieldError as e:
...     print(e.key, e.message)
service_fields.card_number This value is not a valid card number.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from schemas import SCHEMAS_DIR
from switch.errors import TranslationError
from switch.money import currency
from switch.translate import Card
from switch.wire.cards import luhn_ok

__all__ = ["SERVICES_PATH", "CardFieldError", "PaymentService", "PaymentServices", "ServiceField"]

SERVICES_PATH = SCHEMAS_DIR / "payment_services.json"
_ID = re.compile(r"comcps_[A-Za-z0-9]{16}")
_CODE = re.compile(r"[a-z0-9_]{1,64}")
_FLOWS = frozenset({"hpp", "h2h", "test"})
_CARD_PARTS = frozenset({"pan", "expiry", "cvv", "holder"})
_EXPIRY = re.compile(r"(0[1-9]|1[0-2])/([0-9]{2}|[0-9]{4})")
# The card field whose value a translator refusal is about (its DE): errors name the merchant's field.
_PART_OF_DE = {"2": "pan", "14": "expiry", "120": "cvv"}


class CardFieldError(ValueError):
    """A card field of an ``h2h`` request is not usable; ``key`` is the 422's (``service_fields.<field>``).

    The text never holds the value (card data)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


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
    card_fields: dict[str, str] | None = None  # h2h: card part (pan, expiry, cvv, holder) -> field key

    def card_of(self, given: dict[str, Any]) -> Card:
        """The card an ``h2h`` request carries (its fields passed :meth:`check_fields`); :class:`CardFieldError`."""
        assert self.card_fields is not None
        values = {part: given.get(key) for part, key in self.card_fields.items()}
        pan, expiry = values.get("pan"), values.get("expiry")
        if not (isinstance(pan, str) and luhn_ok(pan)):
            raise CardFieldError(f"service_fields.{self.card_fields['pan']}", "This value is not a valid card number.")
        month = year = None
        if isinstance(expiry, str):
            m = _EXPIRY.fullmatch(expiry)
            if m is None:
                raise CardFieldError(f"service_fields.{self.card_fields['expiry']}", "This value should be MM/YY.")
            month, year = m.group(1), m.group(2)
        cvv, holder = values.get("cvv"), values.get("holder")
        try:
            return Card(
                pan,
                month,
                year,
                cvv if isinstance(cvv, str) and cvv else None,
                holder if isinstance(holder, str) and holder else None,
            )
        except TranslationError as e:
            part = _PART_OF_DE.get(str(getattr(e, "field", "")), "pan")
            raise CardFieldError(f"service_fields.{self.card_fields.get(part, part)}", str(e)) from None

    def kept_fields(self, given: dict[str, Any]) -> dict[str, Any]:
        """``service_fields`` as the invoice keeps them: without the card (never stored, never shown)."""
        card_keys = set((self.card_fields or {}).values())
        return {k: v for k, v in given.items() if k not in card_keys}

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
        card_fields = entry.get("card_fields")
        if (entry["flow"] == "h2h") != (card_fields is not None):
            raise ValueError("card_fields are given for (and only for) an h2h service")
        if card_fields is not None:
            keys = {f.key for f in fields}
            if not ({"pan", "expiry"} <= set(card_fields) <= _CARD_PARTS and set(card_fields.values()) <= keys):
                raise ValueError(f"card_fields: pan and expiry, of {sorted(_CARD_PARTS)}, each naming a field")
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
            card_fields=dict(card_fields) if card_fields is not None else None,
        )
    except (KeyError, TypeError, ValueError, ArithmeticError, re.error) as e:
        raise ValueError(f"payment service {code}: {e}") from None
