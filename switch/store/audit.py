"""The audit log of back-office operations: who did what to which order, when, and how it ended.

Charge, reverse, refund, cancel, credit and rebill each leave one
``audit_log`` row (``schemas/sql/005_audit.sql``), written through the
group writer. When the call got as far as an operation, the row is queued
together with the operation's result (same batch, so normally the same
commit) and the caller's answer waits for both; a call refused before that
(status table, amount, unknown order) is written before its answer too.
Never card data.

Who and where from: the orders service knows the project (and so the
login); the request's address, id and ``Idempotency-Key`` are the front's.
The front puts them in :data:`SOURCE` for the request (a context variable,
so the orders service keeps its signatures and the ISO listener can set its
own channel) with :func:`request_source`.

``isoswitch audit list`` (the ``isoswitch`` command package) prints :func:`list_entries`.

>>> AuditEntry(action="charge", project_id=1, actor="shop", result="success").row()[3:6]
('charge', None, None)
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

__all__ = [
    "ACTIONS",
    "SOURCE",
    "AuditEntry",
    "AuditLog",
    "AuditNote",
    "RequestSource",
    "list_entries",
    "request_source",
]

ACTIONS = ("charge", "reverse", "refund", "cancel", "credit", "rebill")

_COLUMNS = (
    "at, project_id, actor, action, order_id, new_order_id, operation_id, amount, currency, result, message,"
    " request_id, idempotency_key, source_ip, channel, portal_user"
)
_INSERT = f"INSERT INTO audit_log ({_COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, 17))})"


@dataclass(frozen=True, slots=True)
class RequestSource:
    """Where a request came from: the client's address, an id for it, its ``Idempotency-Key``, the channel."""

    ip: str | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    idempotency_key: str | None = None
    channel: str = "rest"
    user: str | None = None  # the merchant portal's user (e-mail) who pressed the button (channel "portal")


#: The current request's source; None outside a request (tests calling the service directly).
SOURCE: contextvars.ContextVar[RequestSource | None] = contextvars.ContextVar("isoswitch_audit_source", default=None)


@contextlib.contextmanager
def request_source(source: RequestSource) -> Iterator[RequestSource]:
    """``SOURCE`` is ``source`` inside the block (and in tasks started there)."""
    token = SOURCE.set(source)
    try:
        yield source
    finally:
        SOURCE.reset(token)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One row of ``audit_log``."""

    action: str
    project_id: int
    actor: str
    result: str  # success | a failure type
    order_id: str | None = None
    new_order_id: str | None = None
    operation_id: int | None = None
    amount: int | None = None
    currency: str | None = None
    message: str | None = None
    source: RequestSource | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> tuple[Any, ...]:
        s = self.source
        return (
            self.at,
            self.project_id,
            self.actor,
            self.action,
            self.order_id,
            self.new_order_id,
            self.operation_id,
            self.amount,
            self.currency,
            self.result,
            self.message,
            s.request_id if s else None,
            s.idempotency_key if s else None,
            s.ip if s else None,
            s.channel if s else "rest",
            s.user if s else None,
        )


@dataclass(slots=True)
class AuditNote:
    """What one back-office call did so far; the orders service fills it, then writes it once."""

    action: str
    project_id: int
    actor: str
    order_id: str | None
    source: RequestSource | None
    new_order_id: str | None = None
    operation_id: int | None = None
    amount: int | None = None
    currency: str | None = None
    written: bool = False

    def entry(self, result: str, message: str | None = None) -> AuditEntry:
        return AuditEntry(
            action=self.action,
            project_id=self.project_id,
            actor=self.actor,
            result=result,
            order_id=self.order_id,
            new_order_id=self.new_order_id,
            operation_id=self.operation_id,
            amount=self.amount,
            currency=self.currency,
            message=message,
            source=self.source,
        )


class _Writer(Protocol):
    async def execute(self, sql: Any, args: tuple[Any, ...] = ...) -> None: ...


class AuditLog:
    """Writes entries through the group writer; reads straight from the pool."""

    __slots__ = ("_pool", "_writer")

    def __init__(self, writer: _Writer, pool: asyncpg.Pool | None = None) -> None:
        self._writer = writer
        self._pool = pool

    async def record(self, entry: AuditEntry) -> None:
        """Queue ``entry``; returns once committed."""
        await self._writer.execute(_INSERT, entry.row())

    async def list(self, **filters: Any) -> list[dict[str, Any]]:
        """:func:`list_entries` on this log's pool."""
        assert self._pool is not None, "AuditLog built without a pool cannot read"
        return await list_entries(self._pool, **filters)


async def list_entries(
    pool: asyncpg.Pool,
    *,
    project_id: int | None = None,
    actor: str | None = None,
    order_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Rows matching every filter given, oldest first, as JSON-ready dicts (``at`` in ISO 8601)."""
    if action is not None and action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
    if limit < 1:
        raise ValueError("limit must be at least 1")
    rows = await pool.fetch(
        f"SELECT id, {_COLUMNS} FROM audit_log"
        " WHERE ($1::bigint IS NULL OR project_id = $1) AND ($2::text IS NULL OR actor = $2)"
        " AND ($3::text IS NULL OR order_id = $3 OR new_order_id = $3) AND ($4::text IS NULL OR action = $4)"
        " AND ($5::timestamptz IS NULL OR at >= $5)"
        " ORDER BY at, id LIMIT $6",
        project_id,
        actor,
        order_id,
        action,
        since,
        limit,
    )
    out = []
    for r in rows:
        d = dict(r)
        d["at"] = d["at"].isoformat()
        out.append(d)
    return out
