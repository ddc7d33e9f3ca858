"""Request bodies against the JSON Schemas of ``schemas/rest/``, every error reported.

fastjsonschema stops at the first error, but the seed's 422 lists them all
(a missing ``amount`` *and* an unknown ``foo`` in one answer). So the
structure of a schema -- ``properties``, ``required``, ``additionalProperties:
false``, ``items`` -- is walked here, and fastjsonschema checks each node's
own keywords (type, length, pattern, range, enum, standard formats), each
node compiled once at start. A node whose own check fails is not descended.

A few checks a schema cannot express are named in the schema and done here:

- ``"format": "amount"`` / ``"amount-or-zero"``: a decimal string or JSON
  number, positive (or zero), with no more decimals than the currency allows
  (``switch.money``); passed on as a canonical decimal string ("9.99");
- ``"format": "currency"``: an ISO 4217 alpha code of ``schemas/currencies.json``;
- ``"format": "ip"``: an IPv4 or IPv6 address;
- ``"x-max-combined-length": {"properties": [...], "max": N}`` on an object:
  the summed length of those string properties (the dynamic descriptor's
  merchant + city <= 37).

>>> s = RequestSchemas({"create": {
...     "type": "object", "required": ["amount"], "additionalProperties": False,
...     "properties": {"amount": {"type": ["string", "number"], "format": "amount"}}}})
>>> try:
...     s.check("create", {"foo": "bar"})
... except ValidationFailed as e:
...     for err in e.errors or ():
...         print(err.as_dict())
{'attribute': 'required', 'details': ['(true)'], 'message': 'Required', 'uri': '#/amount'}
{'message': 'Unknown property', 'uri': '#/foo'}
>>> s.check("create", {"amount": 9.5})
{'amount': '9.5'}
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import fastjsonschema

from http_front.failures import FieldError, ValidationFailed
from switch.money import MAX_MINOR, Currency, InvalidAmount, UnknownCurrency, currency, to_minor

__all__ = ["RequestSchemas", "plain_json"]

# Walked here, never given to fastjsonschema.
_STRUCTURE = frozenset({"properties", "required", "additionalProperties", "items", "definitions", "$defs", "$ref"})
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "examples", "$comment", "default"})
_COMBINED = "x-max-combined-length"
_CUSTOM_FORMATS = frozenset({"amount", "amount-or-zero", "currency", "ip"})

_AMOUNT_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
# The widest ISO 4217 exponent (CLF, UYW): the limit when the currency is not known yet.
_MAX_EXPONENT = 4

_JSON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "boolean"),
    ((int, float, Decimal), "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in _JSON_TYPES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _escape(key: str) -> str:
    """One JSON pointer reference token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _detail(definition: Any) -> str:
    if isinstance(definition, bool):
        return "(true)" if definition else "(false)"
    if isinstance(definition, (list, tuple)):
        return "(" + ", ".join(str(d) for d in definition) + ")"
    return f"({definition})"


def _message(rule: str, definition: Any, value: Any) -> str:
    """What failed, in words. Never the value itself: it may be a card number."""
    if rule == "type":
        wanted = definition if isinstance(definition, list) else [definition]
        return f"Expected {' or '.join(str(w) for w in wanted)} - got {_json_type(value)}"
    if rule in ("minLength", "maxLength"):
        n = len(value) if isinstance(value, str) else 0
        word = "short" if rule == "minLength" else "long"
        return f"String is too {word}: {n}/{definition}"
    if rule == "pattern":
        return "String does not match pattern"
    if rule == "format":
        return f"Does not match {definition} format"
    if rule == "enum":
        return "Not in enum list: " + ", ".join(str(d) for d in definition)
    if rule == "const":
        return f"Must be {definition}"
    if rule in ("minimum", "exclusiveMinimum"):
        return f"Below minimum ({definition})"
    if rule in ("maximum", "exclusiveMaximum"):
        return f"Above maximum ({definition})"
    if rule in ("maxProperties", "maxItems"):
        n = len(value) if isinstance(value, (dict, list)) else 0
        return f"Too many {'properties' if rule == 'maxProperties' else 'items'}: {n}/{definition}"
    if rule in ("minProperties", "minItems"):
        n = len(value) if isinstance(value, (dict, list)) else 0
        return f"Not enough {'properties' if rule == 'minProperties' else 'items'}: {n}/{definition}"
    if rule in ("anyOf", "oneOf"):
        return "Does not match any allowed form"
    return "Invalid value"


def plain_json(value: Any) -> Any:
    """``value`` with the Decimals the parser made back to floats (ints and strings untouched)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_json(v) for v in value]
    return value


def _canonical(value: Decimal) -> str:
    """Decimal to a plain digit string: no exponent, no trailing fraction zeros beyond the input's."""
    return format(value, "f")


# -- the compiled tree -----------------------------------------------------------


@dataclass(slots=True)
class _Node:
    check: Callable[[Any], Any] | None = None
    fmt: str | None = None
    properties: dict[str, _Node] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    closed: bool = False
    extra: _Node | None = None
    items: _Node | None = None
    combined: tuple[tuple[str, ...], int] | None = None
    structured: bool = False
    steps: dict[str, str] = field(default_factory=dict)  # property name -> "/" + its escaped pointer token


def _resolve(schema: Any, root: Mapping[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """``schema`` with every local ``$ref`` ("#/definitions/x") replaced by its target."""
    if isinstance(schema, list):
        return [_resolve(s, root, seen) for s in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if not ref.startswith("#/") or ref in seen:
            raise ValueError(f"only local, non-recursive $ref are supported, not {ref!r}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _resolve(merged, root, (*seen, ref))
    return {k: (v if k in ("definitions", "$defs") else _resolve(v, root, seen)) for k, v in schema.items()}


def _compile(schema: Mapping[str, Any]) -> _Node:
    node = _Node()
    own: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _STRUCTURE or key in _ANNOTATIONS:
            continue
        if key == "format" and value in _CUSTOM_FORMATS:
            node.fmt = value
        elif key == _COMBINED:
            node.combined = (tuple(value["properties"]), int(value["max"]))
        elif not key.startswith("x-"):
            own[key] = value
    if own:
        node.check = fastjsonschema.compile(own)
    props = schema.get("properties")
    if isinstance(props, dict):
        node.properties = {name: _compile(sub) for name, sub in props.items()}
        node.steps = {name: "/" + _escape(name) for name in props}
    node.required = tuple(schema.get("required", ()))
    additional = schema.get("additionalProperties", True)
    node.closed = additional is False
    if isinstance(additional, dict):
        node.extra = _compile(additional)
    items = schema.get("items")
    if isinstance(items, dict):
        node.items = _compile(items)
    node.structured = bool(node.properties or node.required or node.closed or node.extra or node.combined)
    return node


# -- walking a body --------------------------------------------------------------


@dataclass(slots=True)
class _Walk:
    optional: AbstractSet[str]
    currency: Currency | None
    errors: list[FieldError] = field(default_factory=list)
    # (container, key, canonical value) to write back once the whole body is valid.
    rewrites: list[tuple[dict[str, Any], str, str]] = field(default_factory=list)


def _walk(node: _Node, value: Any, uri: str, w: _Walk, parent: dict[str, Any] | None = None, key: str = "") -> None:
    if node.check is not None:
        try:
            node.check(value)
        except fastjsonschema.JsonSchemaValueException as e:
            sub = "".join("/" + _escape(str(p)) for p in (e.path or [])[1:])
            rule = e.rule or "invalid"
            w.errors.append(
                FieldError(uri + sub, _message(rule, e.rule_definition, e.value), rule, (_detail(e.rule_definition),))
            )
            return
    if node.fmt is not None:
        _check_format(node.fmt, value, uri, w, parent, key)
    if node.structured and isinstance(value, dict):
        for name in node.required:
            if name not in value and (where := f"{uri}/{_escape(name)}") not in w.optional:
                w.errors.append(FieldError(where, "Required", "required", ("(true)",)))
        if node.closed:
            for name in value:
                if name not in node.properties:
                    w.errors.append(FieldError(f"{uri}/{_escape(name)}", "Unknown property"))
        before = len(w.errors)
        for name, sub_value in value.items():
            child = node.properties.get(name, node.extra)
            if child is not None:
                # A known property's pointer was escaped once, at compile time.
                step = node.steps.get(name) or "/" + _escape(name)
                _walk(child, sub_value, uri + step, w, value, name)
        if node.combined is not None and len(w.errors) == before:
            names, most = node.combined
            total = sum(len(v) for n in names if isinstance(v := value.get(n), str))
            if total > most:
                msg = f"Combined length of {' and '.join(names)} is too long: {total}/{most}"
                w.errors.append(FieldError(uri, msg, "maxLength", (f"({most})",)))
    elif node.items is not None and isinstance(value, list):
        for i, item in enumerate(value):
            _walk(node.items, item, f"{uri}/{i}", w)


def _check_format(fmt: str, value: Any, uri: str, w: _Walk, parent: dict[str, Any] | None, key: str) -> None:
    if fmt in ("amount", "amount-or-zero"):
        problem, canonical = _amount(value, w.currency, zero_ok=fmt == "amount-or-zero")
        if problem is not None:
            w.errors.append(FieldError(uri, problem, "format", ("(amount)",)))
        elif parent is not None and canonical is not None:
            w.rewrites.append((parent, key, canonical))
    elif fmt == "currency":
        if not (isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha()):
            w.errors.append(FieldError(uri, "Invalid currency", "format", ("(currency)",)))
            return
        try:
            currency(value)
        except UnknownCurrency:
            w.errors.append(FieldError(uri, "Unknown currency", "format", ("(currency)",)))
            return
        if parent is not None:
            w.rewrites.append((parent, key, value.upper()))
    elif fmt == "ip":
        try:
            ipaddress.ip_address(value if isinstance(value, str) else "")
        except ValueError:
            w.errors.append(FieldError(uri, "Invalid IP address", "format", ("(ip)",)))


def _amount(value: Any, cur: Currency | None, *, zero_ok: bool) -> tuple[str | None, str | None]:
    """(problem, canonical decimal string): exactly one of them is None."""
    if isinstance(value, str):
        if _AMOUNT_RE.fullmatch(value) is None:
            return "Invalid amount", None
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, float):
        # Only from a caller that parsed with floats: repr is the shortest text that
        # round-trips, i.e. what the client most likely wrote.
        number = Decimal(repr(value))
    else:
        return "Invalid amount", None
    try:
        if not number.is_finite() or number < 0:
            return "Invalid amount", None
        if number == 0 and not zero_ok:
            return "Amount must be greater than zero", None
        if cur is None:
            exponent = number.normalize().as_tuple().exponent
            if isinstance(exponent, int) and -exponent > _MAX_EXPONENT:
                return "Too many decimal places", None
            if number.to_integral_value() > MAX_MINOR:
                return "Amount is too large", None
        else:
            to_minor(number, cur)
    except InvalidAmount as e:
        text = str(e)
        if "decimals" in text and cur is not None:
            return f"Too many decimal places for {cur.alpha} (at most {cur.exponent})", None
        return "Amount is too large", None
    except InvalidOperation:
        return "Invalid amount", None
    return None, value if isinstance(value, str) else _canonical(number)


# -- the public object -------------------------------------------------------------


class RequestSchemas:
    """Every request-body schema, compiled once; ``check(name, body)`` validates and normalizes."""

    def __init__(self, schemas: Mapping[str, Mapping[str, Any]]) -> None:
        self._roots: dict[str, _Node] = {}
        for name, schema in schemas.items():
            self._roots[name] = _compile(_resolve(dict(schema), schema))

    @classmethod
    def load(cls, directory: Path) -> RequestSchemas:
        """Every ``*.json`` of ``directory``, named by file stem (``authorize.json`` -> "authorize")."""
        docs: dict[str, Mapping[str, Any]] = {}
        for path in sorted(directory.glob("*.json")):
            with open(path, encoding="utf-8") as f:
                docs[path.stem] = json.load(f)
        if not docs:
            raise FileNotFoundError(f"no request schemas in {directory}")
        return cls(docs)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._roots)

    def check(
        self,
        name: str,
        body: Any,
        *,
        optional: AbstractSet[str] = frozenset(),
        default_currency: str | None = None,
    ) -> dict[str, Any]:
        """The body, normalized (amounts as decimal strings, no Decimals), or ``ValidationFailed``.

        ``optional`` lists pointers ("#/card/cvv") the project waives
        although the schema requires them; ``default_currency`` sets the
        amounts' precision when the body names no currency.
        """
        node = self._roots[name]
        code = body.get("currency") if isinstance(body, dict) else None
        cur: Currency | None = None
        try:
            cur = currency(code if isinstance(code, str) else (default_currency or ""))
        except UnknownCurrency:
            cur = None
        w = _Walk(optional, cur)
        _walk(node, body, "#", w)
        if w.errors:
            raise ValidationFailed(w.errors)
        for parent, key, canonical in w.rewrites:
            parent[key] = canonical
        out = plain_json(body)
        if not isinstance(out, dict):  # a schema without "type": "object"
            raise ValidationFailed([FieldError("#", "Expected object", "type", ("(object)",))])
        return out
