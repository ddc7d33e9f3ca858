"""What an exchange with the issuer came to, and what that does to the operation and its order.

:data:`VERDICTS` is DESIGN.md's DE 39 table as data (see :mod:`switch.orders.engine` for the
path around it): the operation's status, the order's status when the operation made the
order or otherwise, and the error a merchant's call raises.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from switch.orders.errors import Declined, Fraud, IssuerError, OrderError
from switch.orders.model import Operation, OperationStatus, OperationType, OrderStatus
from switch.translate import Outcome, Result
from switch.wire.codec import Message

__all__ = [
    "ISSUER_BUSY",
    "ISSUER_UNAVAILABLE",
    "LINK_LOST",
    "MADE_BY",
    "NOT_ENCODED",
    "NOT_SENT_REASONS",
    "TIMED_OUT",
    "VERDICTS",
    "Exchanged",
    "Sent",
    "Verdict",
    "reached_issuer",
]


class Sent(enum.Enum):
    """Whether the host got the request."""

    ANSWERED = "answered"
    UNKNOWN = "unknown"  # sent, no answer: timeout or lost link
    NOT_SENT = "not_sent"  # failed fast: no link, no route, busy


class Verdict(enum.Enum):
    """What an exchange came to: the rows of :data:`VERDICTS`."""

    APPROVED = "approved"
    DECLINED = "declined"
    FRAUD = "fraud"
    ISSUER_ERROR = "issuer_error"  # answered with an error code (91, 96, an unknown code)
    UNKNOWN = "unknown"  # timeout, lost link: reversed by store-and-forward
    NOT_SENT = "not_sent"


@dataclass(frozen=True, slots=True)
class _Row:
    operation: OperationStatus
    made_order: OrderStatus | None  # the order's status when this operation made it (None: approved, by type)
    other_order: OrderStatus | None  # the order's status otherwise (None: unchanged)
    error: type[OrderError] | None  # what the merchant's call raises (None: it succeeded)


VERDICTS: dict[Verdict, _Row] = {
    Verdict.APPROVED: _Row(OperationStatus.SUCCESS, None, None, None),
    Verdict.DECLINED: _Row(OperationStatus.FAILURE, OrderStatus.DECLINED, None, Declined),
    Verdict.FRAUD: _Row(OperationStatus.FAILURE, OrderStatus.FRAUD, None, Fraud),
    Verdict.ISSUER_ERROR: _Row(OperationStatus.ERROR, OrderStatus.ERROR, None, IssuerError),
    Verdict.UNKNOWN: _Row(OperationStatus.ERROR, OrderStatus.ERROR, OrderStatus.ERROR, IssuerError),
    Verdict.NOT_SENT: _Row(OperationStatus.ERROR, OrderStatus.ERROR, None, IssuerError),
}
# Why an exchange was not sent (failed fast): the operation's iso_message, and how a stored
# operation tells it never reached the issuer (:func:`reached_issuer`).
ISSUER_UNAVAILABLE = "Issuer unavailable"
# Why a sent request has no answer (its reversal is queued): the operation's iso_message.
TIMED_OUT = "Request timed out"
LINK_LOST = "Connection to the issuer lost"
ISSUER_BUSY = "Issuer busy"
NOT_ENCODED = "Request could not be encoded"
NOT_SENT_REASONS = frozenset({ISSUER_UNAVAILABLE, ISSUER_BUSY, NOT_ENCODED})


def reached_issuer(op: Operation) -> bool:
    """``op``'s request reached (or may have reached) the issuer: answered, or sent and unanswered."""
    if op.status in (OperationStatus.SUCCESS, OperationStatus.FAILURE):
        return True
    if op.status is OperationStatus.ERROR:
        return op.iso_response_code is not None or op.iso_message not in NOT_SENT_REASONS
    return False  # pending: not known yet


# An approved operation that made its order leaves it in this status (else authorized).
MADE_BY = {OperationType.CREDIT: OrderStatus.CREDITED}
_VERDICT_OF = {Outcome.APPROVED: Verdict.APPROVED, Outcome.DECLINED: Verdict.DECLINED, Outcome.FRAUD: Verdict.FRAUD}


@dataclass(frozen=True, slots=True)
class Exchanged:
    """How one request went: sent or not, the interpreted answer, the answer as received."""

    sent: Sent
    result: Result | None = None
    reason: str = ""  # when not answered: why, for iso_message and failure_message
    response: Message | None = None  # the host's answer as received (the ISO listener maps it back)

    @property
    def approved(self) -> bool:
        return self.result is not None and self.result.approved

    @property
    def verdict(self) -> Verdict:
        if self.sent is Sent.UNKNOWN:
            return Verdict.UNKNOWN
        if self.result is None:
            return Verdict.NOT_SENT
        return _VERDICT_OF.get(self.result.outcome, Verdict.ISSUER_ERROR)
