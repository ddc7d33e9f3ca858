"""Errors of the orders API, shaped like its failure responses (seeds/003, Error handling).

>>> e = OrderError("declined", "Soft-Decline", order_id="123")
>>> e.http_status, e.body()
(402, {'failure_type': 'declined', 'failure_message': 'Soft-Decline', 'order_id': '123'})
>>> OrderNotFound("1").http_status
404
"""

from __future__ import annotations

from typing import Any, Literal

from switch.errors import SwitchError

__all__ = ["FailureType", "OrderError", "OrderNotFound"]

FailureType = Literal["declined", "fraud", "rejected", "error", "validation"]

# seeds/003 Response codes: 402 declined by the acquirer or rejected by the
# gateway, 422 validation, 500 error. It has no 504, so a timeout is a 500
# too (the body's failure_type says "error" either way).
_HTTP: dict[str, int] = {"declined": 402, "fraud": 402, "rejected": 402, "error": 500, "validation": 422}


class OrderError(SwitchError):
    """An operation that did not succeed: ``failure_type``, a message, the order if one was made.

    ``errors`` (validation only) is the list of ``{"attribute"?, "details"?,
    "message", "uri"}`` of the 422 body. Never carries card data.
    """

    def __init__(
        self,
        failure_type: FailureType,
        message: str,
        *,
        order_id: str | None = None,
        http_status: int | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.failure_type: FailureType = failure_type
        self.message = message
        self.order_id = order_id
        self.http_status = http_status if http_status is not None else _HTTP[failure_type]
        self.errors = errors

    def body(self) -> dict[str, Any]:
        """The seed's failure body (``errors`` first when present, as in its 422 example)."""
        out: dict[str, Any] = {}
        if self.errors is not None:
            out["errors"] = self.errors
        out["failure_type"] = self.failure_type
        out["failure_message"] = self.message
        out["order_id"] = self.order_id
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.failure_type!r}, {self.message!r}, order_id={self.order_id!r})"


class OrderNotFound(OrderError):
    """No such order for this project (another project's orders are not found either)."""

    def __init__(self, order_id: str | None) -> None:
        super().__init__("rejected", "Order not found", order_id=None, http_status=404)
        self.missing_id = order_id
