"""The seed's failure shape, the errors that carry it, and a finished reply.

Every non-2xx answer of the front is one JSON object::

    {"failure_type": ..., "failure_message": ..., "order_id": ...}

plus ``errors`` (a list of ``attribute``/``details``/``message``/``uri``
items) when the input failed validation. Keys are sorted, as in the seed.

>>> failure_body("declined", "Do not honor", order_id="1")
b'{"failure_message":"Do not honor","failure_type":"declined","order_id":"1"}'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

__all__ = [
    "FieldError",
    "HttpFailure",
    "Reply",
    "ValidationFailed",
    "dumps",
    "failure_body",
    "json_reply",
]

_JSON = "application/json"


def dumps(obj: Any) -> bytes:
    """JSON bytes with sorted keys (the seed's examples are key-sorted)."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One item of a 422's ``errors``: where (``uri``, a JSON pointer fragment) and what.

    ``attribute`` is the schema keyword that failed and ``details`` its value,
    both left out for errors that are not about a keyword (an unknown property).
    """

    uri: str
    message: str
    attribute: str | None = None
    details: tuple[str, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.attribute is not None:
            out["attribute"] = self.attribute
        if self.details is not None:
            out["details"] = list(self.details)
        out["message"] = self.message
        out["uri"] = self.uri
        return out


def failure_body(
    failure_type: str,
    message: str,
    *,
    order_id: str | None = None,
    errors: Iterable[FieldError | Mapping[str, Any]] | None = None,
) -> bytes:
    body: dict[str, Any] = {"failure_type": failure_type, "failure_message": message, "order_id": order_id}
    if errors is not None:
        body["errors"] = [e.as_dict() if isinstance(e, FieldError) else dict(e) for e in errors]
    return dumps(body)


@dataclass(frozen=True, slots=True)
class Reply:
    """A finished answer: status, JSON body bytes, extra headers. What idempotency stores."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        return web.Response(status=self.status, body=self.body, content_type=_JSON, headers=self.headers or None)


def json_reply(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, dumps(obj), headers or {})


class HttpFailure(Exception):
    """An answer in the failure shape, raised from anywhere below a handler.

    The text is what the client reads: never put card data in it.
    """

    def __init__(
        self,
        status: int,
        failure_type: str,
        message: str,
        *,
        order_id: str | None = None,
        errors: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.failure_type = failure_type
        self.message = message
        self.order_id = order_id
        self.errors = errors
        self.headers = dict(headers or {})

    def reply(self) -> Reply:
        body = failure_body(self.failure_type, self.message, order_id=self.order_id, errors=self.errors)
        return Reply(self.status, body, self.headers)


class ValidationFailed(HttpFailure):
    """422 ``failure_type: validation`` with every problem found in ``errors``."""

    def __init__(self, errors: Sequence[FieldError], message: str = "Validation failed") -> None:
        super().__init__(422, "validation", message, errors=list(errors))
