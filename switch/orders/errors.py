"""Errors of the orders service, one class per kind of failure; none knows HTTP.

Split by who said no (STYLE.md, Errors): the issuer declined (:class:`Declined`)
or suspected fraud (:class:`Fraud`); the gateway's own rules refused the
operation (:class:`Rejected`, and :class:`OrderNotFound` for an order that is
not the project's); the issuer could not be asked or did not answer
(:class:`IssuerError`); the request itself was wrong (:class:`InvalidInput`,
with a :class:`Problem` per attribute). ``failure_type`` is the seed's word for
the kind; the REST front maps kinds to HTTP statuses and bodies
(``http_front.orders.status``), the ISO listener to response codes.

>>> e = Declined("Soft-Decline", order_id="123")
>>> e.failure_type, e.message, e.order_id
('declined', 'Soft-Decline', '123')
>>> InvalidInput.one("Required", "card/cvv").problems[0].field
'card/cvv'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from switch.errors import SwitchError, TranslationError

__all__ = [
    "Declined",
    "FailureType",
    "Fraud",
    "InvalidInput",
    "IssuerError",
    "OrderError",
    "OrderNotFound",
    "Problem",
    "Rejected",
]

FailureType = Literal["declined", "fraud", "rejected", "error", "validation"]


class OrderError(SwitchError):
    """An operation that did not succeed: its kind, a message, the order if one was made.

    Never carries card data. Raise one of the subclasses; this root is for ``except``.
    """

    failure_type: ClassVar[FailureType] = "error"

    def __init__(self, message: str, *, order_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.order_id = order_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, order_id={self.order_id!r})"


class Declined(OrderError):
    """The issuer declined (DE 39 05, 51, A1 ...); the message is the code's text."""

    failure_type = "declined"


class Fraud(OrderError):
    """The issuer suspects fraud (DE 39 59, 63)."""

    failure_type = "fraud"


class Rejected(OrderError):
    """The gateway's rules refused the operation (status table, amounts, a concurrent change)."""

    failure_type = "rejected"


class OrderNotFound(Rejected):
    """No such order for this project (another project's orders are not found either)."""

    def __init__(self, order_id: str | None) -> None:
        super().__init__("Order not found", order_id=None)
        self.missing_id = order_id


class IssuerError(OrderError):
    """The issuer answered with an error code, could not be reached, or its answer is unknown (timeout)."""

    failure_type = "error"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a request: the attribute's path (``card/cvv``; None: the whole request) and why.

    ``attribute``/``details`` name a rule that failed (``required``, ``["(true)"]``), as the seed's 422 shows.
    """

    message: str
    field: str | None = None
    attribute: str | None = None
    details: tuple[str, ...] | None = None


class InvalidInput(OrderError):
    """The request cannot be carried out as written; ``problems`` says where (empty: the message says it all)."""

    failure_type = "validation"

    def __init__(self, message: str = "Validation failed", problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)

    @classmethod
    def one(
        cls, message: str, field: str | None, *, attribute: str | None = None, details: Sequence[str] = ()
    ) -> InvalidInput:
        """Validation failed on one attribute."""
        return cls(problems=[Problem(message, field, attribute, tuple(details) if details else None)])

    @classmethod
    def required(cls, field: str) -> InvalidInput:
        return cls.one("Required", field, attribute="required", details=["(true)"])

    @classmethod
    def of_translation(cls, e: TranslationError, field: str | None = None) -> InvalidInput:
        """A translate/money refusal: at ``field``, else at the attribute its DE came from.

        The texts of those errors never hold card data (STYLE.md, Errors).
        """
        de = getattr(e, "field", None)  # switch.translate.InvalidField names the DE
        where = field or (_FIELD_OF_DE.get(de) if isinstance(de, str) else "amount")
        return cls.one(str(e), where)


# Which request attribute a DE came from.
_FIELD_OF_DE = {
    "2": "pan",
    "4": "amount",
    "14": "card/expiration_month",
    "49": "currency",
    "43": "extra_fields/dynamic_descriptor",
    "120": "card/cvv",
    "121": "secure3d/eci",
    "122": "secure3d/cavv",
    "123": "secure3d/xid",
    "124": "recurring_details/indicator",
}
