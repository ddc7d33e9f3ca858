"""The orders service's errors as HTTP: the status table and the seed's failure body.

seeds/003, Response codes: 402 declined by the acquirer or rejected by the
gateway, 404 an order that is not the project's, 422 validation, 500 error.
It has no 504, so a timeout is a 500 too (the body's ``failure_type`` says
"error" either way).

>>> from switch.orders.errors import Declined, OrderNotFound
>>> http_status(Declined("Soft-Decline")), http_status(OrderNotFound("1"))
(402, 404)
>>> error_body(Declined("Soft-Decline", order_id="123"))
{'failure_type': 'declined', 'failure_message': 'Soft-Decline', 'order_id': '123'}
"""

from __future__ import annotations

from typing import Any

from http_front.failures import FieldError
from switch.orders.errors import (
    Declined,
    Fraud,
    InvalidInput,
    IssuerError,
    OrderError,
    OrderNotFound,
    Problem,
    Rejected,
)

__all__ = ["STATUS_OF", "error_body", "field_error", "http_status"]

# Most specific first: OrderNotFound is a Rejected.
STATUS_OF: tuple[tuple[type[OrderError], int], ...] = (
    (OrderNotFound, 404),
    (InvalidInput, 422),
    (Declined, 402),
    (Fraud, 402),
    (Rejected, 402),
    (IssuerError, 500),
    (OrderError, 500),
)


def http_status(err: OrderError) -> int:
    """The HTTP status of an orders-service error."""
    for kind, status in STATUS_OF:
        if isinstance(err, kind):
            return status
    raise AssertionError("STATUS_OF ends with the root class")  # pragma: no cover


def field_error(p: Problem) -> dict[str, Any]:
    """One item of a 422's ``errors``: ``attribute``/``details`` when a rule failed, the message, the JSON pointer."""
    return FieldError(f"#/{p.field}" if p.field else "#/", p.message, p.attribute, p.details).as_dict()


def error_body(err: OrderError) -> dict[str, Any]:
    """The seed's failure body (``errors`` first when present, as in its 422 example)."""
    out: dict[str, Any] = {}
    if isinstance(err, InvalidInput) and err.problems:
        out["errors"] = [field_error(p) for p in err.problems]
    out["failure_type"] = err.failure_type
    out["failure_message"] = err.message
    out["order_id"] = err.order_id
    return out
