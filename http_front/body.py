"""Request bodies: content type, size, JSON text -> Python, with every failure a 422 or 413.

Numbers with a fraction become ``Decimal`` so that an amount keeps the
digits the client wrote (a float would turn "9.999999999999999999" into
10.0 before anyone could refuse it); ``validation`` turns them back into
strings or floats. An empty body is ``{}``: the seed's PUTs send none.

>>> parse_json(b'{"amount": 9.99, "n": 2}')
{'amount': Decimal('9.99'), 'n': 2}
>>> parse_json(b"  ")
{}
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from aiohttp import hdrs, web

from http_front.failures import FieldError, HttpFailure, ValidationFailed

__all__ = ["parse_json", "read_json", "too_large"]

# JSON, plus what generic clients send when not told: curl's --data default (the seed's
# own POST /orders/credit example has no -H) and "bytes" (application/octet-stream).
_ACCEPTED_TYPES = frozenset(
    {"application/json", "text/json", "application/x-www-form-urlencoded", "application/octet-stream"}
)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _malformed(message: str) -> ValidationFailed:
    return ValidationFailed([FieldError("#", message, "json", ("(RFC 8259)",))])


def parse_json(raw: bytes) -> Any:
    """The JSON value of ``raw`` (UTF-8), ``{}`` when it is blank; ``ValidationFailed`` otherwise."""
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("Body is not UTF-8") from None
    try:
        value = json.loads(text, parse_float=Decimal, parse_int=_int64, parse_constant=_no_constants)
    except RecursionError:
        raise _malformed("JSON nested too deeply") from None
    except _OutOfRange:
        raise _malformed("Integer out of range (64-bit)") from None
    except ValueError:
        # JSONDecodeError, NaN/Infinity, or an integer over the int-string limit.
        raise _malformed("Malformed JSON") from None
    # PostgreSQL text cannot hold NUL: refuse it here as bad input, not later as a 500.
    # Only an escaped \u0000 can put one in a JSON string; walk the value only then.
    if "\\u0000" in text and _has_nul(value):
        raise _malformed("Strings must not contain NUL (\\u0000)")
    return value


class _OutOfRange(ValueError):
    pass


def _int64(digits: str) -> int:
    # What is stored (jsonb) and serialized (orjson) must fit in 64 bits: refuse
    # a larger integer here as bad input, not later as a 500.
    n = int(digits)
    if not -(2**63) <= n < 2**64:
        raise _OutOfRange(digits[:24])
    return n


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def too_large(limit: int) -> HttpFailure:
    return HttpFailure(413, "validation", f"Request body is larger than {limit} bytes")


async def read_json(request: web.Request) -> Any:
    """The request's JSON body; 422 for a wrong content type or bad JSON, 413 when too large."""
    if request.body_exists:
        ctype = request.headers.get(hdrs.CONTENT_TYPE)
        if ctype is not None:
            main = request.content_type
            if main not in _ACCEPTED_TYPES and not main.endswith("+json"):
                raise ValidationFailed(
                    [FieldError("#", "Content-Type must be application/json", "content_type", ("(application/json)",))]
                )
            charset = request.charset
            if charset is not None and charset.lower() not in ("utf-8", "utf8"):
                raise ValidationFailed([FieldError("#", "Body must be UTF-8", "charset", ("(utf-8)",))])
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(request.client_max_size) from None
    return parse_json(raw)
