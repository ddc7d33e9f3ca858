"""A payment link's template and the checks of what its pre-payment page collects.

A template (seeds/000 "Payment links") says what is paid (service, currency,
a fixed amount or a range the payer enters), what the payer reads (title,
payment description) and what the payer fills in: the seed's standard fields
(e-mail, full name, phone, address; each shown one is required) and the
merchant's own parameters (name, label, placeholder, required, a regexp, or a
fixed value the payer cannot change).

Regexps are the merchant's: when the template is saved they must be Python's
syntax, at most 200 characters, with counted repeats that stay small once
spelled out (compiling ``(a{1000}){1000}`` takes a second), and compile
(:func:`check_regexp`); each match runs with a time limit (``regex``'s
``timeout``), so a pattern that backtracks without end costs one field error,
not a worker. A value must match the whole pattern (fullmatch).

>>> p = LinkParameter(name="size", label="Size", required=True, regexp="[SML]")
>>> check_values((p,), (), {"p_size": "M"})
({'size': 'M'}, {}, {})
>>> check_values((p,), ("email",), {"p_size": "XL", "email": "a@b"})
({}, {}, {'email': 'invalid', 'p_size': 'invalid'})
>>> check_regexp("(unclosed"), check_regexp("[0-9]{4}")
('This regexp does not compile: missing ), unterminated subpattern at position 0', None)
"""

from __future__ import annotations

import re
import re._parser as sre  # the standard parser: the pattern's tree, to weigh its counted repeats before compiling
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import regex

__all__ = [
    "CUSTOMER_FIELDS",
    "MAX_PARAMETERS",
    "REGEXP_MAX",
    "VALUE_MAX",
    "WEIGHT_MAX",
    "LinkParameter",
    "LinkRequest",
    "PaymentLink",
    "check_name",
    "check_regexp",
    "check_values",
    "state_of",
]

CUSTOMER_FIELDS = ("email", "full_name", "phone", "address")  # the seed's "Additional parameters", in page order
MAX_PARAMETERS = 20
REGEXP_MAX = 200  # characters of a pattern; with values of at most 255, a match is small work, and timed anyway
WEIGHT_MAX = 4096  # the pattern's size with its counted repeats spelled out (compiling costs that much)
VALUE_MAX = 255
_MATCH_SECONDS = 0.05  # per value: a well-behaved pattern takes microseconds on 255 characters
_NAME = regex.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")

# The standard fields' own checks (shown ones are required): loose on purpose, the payer is not the merchant's
# database; the e-mail one matches what the browser's type=email accepts.
_STANDARD: dict[str, tuple[Any, int]] = {
    "email": (regex.compile(r"[^@\s]{1,64}@[^@\s.]{1,63}(?:\.[^@\s.]{1,63})+"), 254),
    "full_name": (regex.compile(r"\S.{0,98}\S|\S"), 100),
    "phone": (regex.compile(r"\+?[0-9][0-9 ()-]{3,22}[0-9]"), 25),
    "address": (regex.compile(r"\S[\s\S]{0,253}\S|\S"), 255),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkParameter:
    """One of the merchant's own parameters (seeds/000: label, name, placeholder, regexp, value, required)."""

    name: str  # the key in the invoice's metadata: Latin letters, digits, underscores
    label: str  # what the payer reads
    required: bool = False
    regexp: str | None = None
    placeholder: str | None = None
    value: str | None = None  # fixed: shown, not editable; the posted one is ignored

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "required": self.required,
            "regexp": self.regexp,
            "placeholder": self.placeholder,
            "value": self.value,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> LinkParameter:
        return cls(
            name=str(doc["name"]),
            label=str(doc["label"]),
            required=bool(doc.get("required")),
            regexp=doc.get("regexp"),
            placeholder=doc.get("placeholder"),
            value=doc.get("value"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkRequest:
    """A template as the merchant asked for it (checked by the front; amounts in minor units)."""

    name: str  # the merchant's own name for it
    title: str  # the pre-payment page's heading
    service: str
    currency: str
    amount: int | None  # None: the payer enters it, between amount_min and amount_max
    amount_min: int | None = None
    amount_max: int | None = None
    description: str | None = None  # the merchant's note, never shown to the payer
    payment_description: str | None = None  # shown to the payer, the invoice's description
    parameters: tuple[LinkParameter, ...] = ()
    customer_fields: tuple[str, ...] = ()
    test_mode: bool = False
    language: str = "en"
    return_url: str | None = None
    callback_url: str | None = None
    active: bool = True
    active_from: datetime | None = None  # None: from now
    active_until: datetime | None = None  # None: for ever (the seed's "Indefinite")


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentLink:
    """A row of payment_links (schemas/sql/026_payment_links.sql)."""

    id: str
    project_id: int
    slug: str
    form_key: bytes
    name: str
    title: str
    service: str
    currency: str
    amount: int | None
    amount_min: int | None
    amount_max: int | None
    description: str | None
    payment_description: str | None
    parameters: tuple[LinkParameter, ...]
    customer_fields: tuple[str, ...]
    test_mode: bool
    language: str
    return_url: str | None
    callback_url: str | None
    active: bool
    active_from: datetime
    active_until: datetime | None
    created: datetime
    updated: datetime


def state_of(link: PaymentLink, now: datetime) -> str:
    """``active``, ``disabled`` (by the merchant), ``scheduled`` (before active_from) or ``expired``."""
    if not link.active:
        return "disabled"
    if now < link.active_from:
        return "scheduled"
    if link.active_until is not None and now >= link.active_until:
        return "expired"
    return "active"


def _weight(nodes: Any) -> int:
    """How big ``nodes`` (the standard parser's tree) grows once its counted repeats are spelled out: what
    compiling costs (``(a{1000}){1000}`` takes regex a second to compile; its weight is a million)."""
    total = 0
    for op, av in nodes:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = av
            total += max(low if high == sre.MAXREPEAT else high, 1) * _weight(sub)
        elif name == "SUBPATTERN":
            total += _weight(av[-1])
        elif name == "BRANCH":
            total += sum(_weight(branch) for branch in av[1])
        elif name in ("ASSERT", "ASSERT_NOT"):
            total += _weight(av[1])
        elif name == "ATOMIC_GROUP":
            total += _weight(av)
        elif name == "GROUPREF_EXISTS":
            total += _weight(av[1]) + (_weight(av[2]) if av[2] else 0)
        else:
            total += 1
    return total


def check_regexp(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a parameter's regexp (None: it can): Python's syntax (the standard parser must
    read it too), at most 200 characters, counted repeats that stay small.

    >>> check_regexp("(a{1000}){1000}"), check_regexp("[A-Z]{2}[0-9]{6}")
    ('This regexp repeats too much (at most 4096 characters once its counts are spelled out).', None)
    """
    if len(pattern) > REGEXP_MAX:
        return f"This regexp should be at most {REGEXP_MAX} characters."
    try:
        weight = _weight(sre.parse(pattern))
        if weight > WEIGHT_MAX:  # weighed before regex compiles it: that is the costly step
            return f"This regexp repeats too much (at most {WEIGHT_MAX} characters once its counts are spelled out)."
        regex.compile(pattern)
    except (re.error, regex.error, OverflowError, RecursionError) as e:
        return f"This regexp does not compile: {e}"
    return None


def check_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def _matches(pattern: str, value: str) -> bool:
    try:
        return regex.fullmatch(pattern, value, timeout=_MATCH_SECONDS) is not None
    except TimeoutError:
        return False  # the merchant's pattern backtracks without end: the value is not accepted
    except regex.error:
        return False  # checked when saved; a pattern a later regex release refuses accepts nothing


def check_values(
    parameters: tuple[LinkParameter, ...], customer_fields: tuple[str, ...], posted: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The payer's values: (parameters, customer fields, errors by form field: a
    parameter's is ``p_<name>``). Error codes: ``required``,
    ``invalid`` (no match), ``too_long``. A fixed parameter takes its template's value whatever was posted."""
    values: dict[str, str] = {}
    customer: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name in customer_fields:
        pattern, limit = _STANDARD[name]
        raw = posted.get(name, "").strip()
        if not raw:
            errors[name] = "required"
        elif len(raw) > limit:
            errors[name] = "too_long"
        elif pattern.fullmatch(raw) is None:
            errors[name] = "invalid"
        else:
            customer[name] = raw
    for p in parameters:
        raw = p.value if p.value is not None else posted.get(f"p_{p.name}", "").strip()
        if not raw:
            if p.required:
                errors[f"p_{p.name}"] = "required"
            continue
        if len(raw) > VALUE_MAX:
            errors[f"p_{p.name}"] = "too_long"
        elif p.regexp is not None and not _matches(p.regexp, raw):
            errors[f"p_{p.name}"] = "invalid"
        else:
            values[p.name] = raw
    return values, customer, errors
