"""The store-and-forward queue in PostgreSQL (table ``saf``, schemas/sql/003_saf.sql): every statement of
:mod:`switch.saf`.

A row is one reversal the switch owes a host: the original's identity as it
went out (MTI, DE 11, DE 7, RRN, amount, DE 32, DE 41, DE 42, processing
code) and the destination, never the PAN. States: ``pending`` (due at
``next_attempt_at``), ``done`` (a host answered), ``manual`` (left for a
person). Claims and recovery lock rows with ``FOR UPDATE SKIP LOCKED``, so
several nodes share one queue; their statements run in one transaction
(:meth:`SafStore.transaction`), the single-row updates straight on the pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

__all__ = ["SAF_STATES", "SafCounts", "SafStore", "SafTransaction", "counts", "list_entries"]

SAF_STATES = ("pending", "manual", "done")

_COLUMNS = (
    "id, order_id, operation_id, destination, mti, stan, transmission_time, rrn, auth_code, amount, currency,"
    " acquirer_id, terminal_id, merchant_id, processing_code, advice_stan, advice_time, state, attempts,"
    " next_attempt_at, response_code, last_error, created, updated"
)

_QUEUE = """
INSERT INTO saf (order_id, operation_id, destination, mti, stan, transmission_time, rrn, auth_code, amount,
    currency, acquirer_id, terminal_id, merchant_id, processing_code, state, next_attempt_at, last_error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, now() + $16 * interval '1 second', $17)
ON CONFLICT (order_id, operation_id) DO NOTHING
RETURNING id
"""

_QUEUED_ID = "SELECT id FROM saf WHERE order_id = $1 AND operation_id = $2"

_CLAIM = f"""
SELECT {", ".join("s." + c.strip() for c in _COLUMNS.split(","))}, o.card_key_id, o.card_blob
FROM saf s JOIN orders o ON o.id = s.order_id
WHERE s.state = 'pending' AND s.next_attempt_at <= now()
ORDER BY s.next_attempt_at
LIMIT $1
FOR UPDATE OF s SKIP LOCKED
"""

_LEASE = """
UPDATE saf SET attempts = attempts + 1, next_attempt_at = now() + $2 * interval '1 second',
    advice_stan = $3, advice_time = $4, updated = now()
WHERE id = $1
"""

_DONE = """
UPDATE saf SET state = 'done', response_code = $2, last_error = NULL, updated = now()
WHERE id = $1 AND state = 'pending'
"""

_RETRY = """
UPDATE saf SET state = CASE WHEN attempts >= $3 THEN 'manual' ELSE 'pending' END,
    next_attempt_at = now() + $2 * interval '1 second', last_error = $4, updated = now()
WHERE id = $1 AND state = 'pending'
RETURNING state
"""

_ADVICE_STAN = "UPDATE saf SET advice_stan = $2 WHERE id = $1"

# The immediate 0400 got no answer: due for the worker's first 0420 now.
_FIRST_UNANSWERED = """
UPDATE saf SET next_attempt_at = now(), last_error = $2, updated = now()
WHERE id = $1 AND state = 'pending' AND attempts = 0
"""

_MANUAL = "UPDATE saf SET state = 'manual', last_error = $2, updated = now() WHERE id = $1 AND state = 'pending'"

_ORPHANS = """
SELECT p.order_id, p.id, p.type, p.mti, p.stan, p.transmission_time, p.rrn, p.amount, p.currency,
       p.terminal_id, p.acquirer_id, p.processing_code, p.destination, o.project_id
FROM operations p JOIN orders o ON o.id = p.order_id
WHERE p.status = 'pending' AND p.created < now() - $2 * interval '1 second'
  -- Ours only when no task of this process works on it any more (a result write that failed).
  AND (p.owner IS DISTINCT FROM $1 OR NOT EXISTS (
      SELECT 1 FROM unnest($4::text[], $5::integer[]) AS w (order_id, id)
      WHERE w.order_id = p.order_id AND w.id = p.id))
ORDER BY p.created
LIMIT $3
FOR UPDATE OF p, o SKIP LOCKED
"""

_LAST_AUTHORIZATION = (
    "SELECT mti, stan, transmission_time, rrn, auth_code, amount, acquirer_id, processing_code"
    " FROM operations WHERE order_id = $1 AND type = 'authorize' AND status = 'success'"
    " ORDER BY id DESC LIMIT 1"
)

_LAST_AUTH_CODE = (
    "SELECT auth_code FROM operations WHERE order_id = $1 AND type = 'authorize'"
    " AND status = 'success' ORDER BY id DESC LIMIT 1"
)

# The order's change to `error` is a webhook event like any other (008_webhooks.sql): written in the
# same statement, for each live endpoint of the project and the order's notification URL. Its
# payload is left NULL: the delivery worker renders the order when it sends it (recovery has no view).
_ORPHAN_DONE = """
WITH op AS (
    UPDATE operations SET status = 'error', iso_message = $3, cashflow = $4, updated = now()
    WHERE order_id = $1 AND id = $2 AND status = 'pending'
), o AS (
    UPDATE orders SET status = 'error', updated = now(), version = version + 1 WHERE id = $1
    RETURNING id, project_id, version, notification_url
)
INSERT INTO webhook_outbox (event_id, project_id, order_id, event_type, payload, endpoint_id, url)
SELECT 'evt_' || o.id || '_' || o.version, o.project_id, o.id, 'order.error', NULL::jsonb, e.id, NULL
FROM o JOIN webhook_endpoints AS e ON e.project_id = o.project_id AND e.removed_at IS NULL
UNION ALL
SELECT 'evt_' || o.id || '_' || o.version, o.project_id, o.id, 'order.error', NULL, NULL, o.notification_url
FROM o WHERE o.notification_url IS NOT NULL
"""

_COUNTS = (
    "SELECT count(*) FILTER (WHERE state = 'pending') AS pending,"
    " count(*) FILTER (WHERE state = 'manual') AS manual,"
    " count(*) FILTER (WHERE state = 'done') AS done,"
    " coalesce(extract(epoch FROM now() - min(created) FILTER (WHERE state = 'pending')), 0) AS oldest"
    " FROM saf"
)

_LIST = f"SELECT {_COLUMNS} FROM saf WHERE ($1::text IS NULL OR state = $1) ORDER BY id LIMIT $2"


@dataclass(frozen=True, slots=True)
class SafCounts:
    """What the metrics show: rows by state and the age (s) of the oldest pending one."""

    pending: int
    manual: int
    done: int
    oldest_pending_seconds: float


def _queue_args(
    order_id: str,
    operation_id: int,
    destination: str | None,
    original: Mapping[str, Any],
    state: str,
    delay: float,
    last_error: str | None,
) -> tuple[Any, ...]:
    """``original``: the keys of :func:`switch.saf.original_fields` (mti, amount and currency required)."""
    o = original
    return (
        order_id,
        operation_id,
        destination,
        o["mti"],
        o.get("stan"),
        o.get("transmission_time"),
        o.get("rrn"),
        o.get("auth_code"),
        o["amount"],
        o["currency"],
        o.get("acquirer_id"),
        o.get("terminal_id"),
        o.get("merchant_id"),
        o.get("processing_code"),
        state,
        delay,
        last_error,
    )


class SafTransaction:
    """The statements that run together in one transaction: a claim and its leases, a recovery batch."""

    __slots__ = ("_conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def claim(self, batch: int) -> list[asyncpg.Record]:
        """Up to ``batch`` due pending rows, locked (others skip them), each with its order's sealed card."""
        rows: list[asyncpg.Record] = await self._conn.fetch(_CLAIM, batch)
        return rows

    async def lease(self, leases: Sequence[tuple[int, float, str | None, str | None]]) -> None:
        """(row id, seconds, advice DE 11, advice DE 7) each: count the attempt, due again after the lease."""
        await self._conn.executemany(_LEASE, leases)

    async def orphans(
        self, owner: str, grace: float, limit: int, working: Collection[tuple[str, int]]
    ) -> list[asyncpg.Record]:
        """Pending operations older than ``grace`` s of another owner, or ours that no task of ours works on."""
        busy = list(working)
        rows: list[asyncpg.Record] = await self._conn.fetch(
            _ORPHANS, owner, grace, limit, [k[0] for k in busy], [k[1] for k in busy]
        )
        return rows

    async def last_authorization(self, order_id: str) -> asyncpg.Record | None:
        """The original fields of the order's last successful authorization."""
        row: asyncpg.Record | None = await self._conn.fetchrow(_LAST_AUTHORIZATION, order_id)
        return row

    async def last_auth_code(self, order_id: str) -> str | None:
        code: str | None = await self._conn.fetchval(_LAST_AUTH_CODE, order_id)
        return code

    async def queue(
        self,
        order_id: str,
        operation_id: int,
        destination: str | None,
        original: Mapping[str, Any],
        *,
        state: str,
        delay: float,
        last_error: str | None,
    ) -> None:
        """Queue a reversal unless the operation has one already."""
        await self._conn.execute(
            _QUEUE, *_queue_args(order_id, operation_id, destination, original, state, delay, last_error)
        )

    async def orphan_to_error(self, order_id: str, operation_id: int, message: str, cashflow: Any) -> None:
        """Mark a pending operation and its order ``error`` (its events, and its invoice's callback, with it)."""
        # Here, not at the top: switch.invoices imports the orders' model, which imports this package.
        from switch.invoices.store import add_error_callback

        await self._conn.execute(_ORPHAN_DONE, order_id, operation_id, message, cashflow)
        await add_error_callback(self._conn, order_id)


class SafStore:
    """The queue's rows: single-row writes on the pool, claims and recovery in :meth:`transaction`."""

    __slots__ = ("_pool",)

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SafTransaction]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield SafTransaction(conn)

    async def queue(
        self, order_id: str, operation_id: int, destination: str | None, original: Mapping[str, Any], *, hold: float
    ) -> int:
        """A pending row due in ``hold`` seconds; its id (the existing row's when the operation has one)."""
        row_id = await self._pool.fetchval(
            _QUEUE, *_queue_args(order_id, operation_id, destination, original, "pending", hold, None)
        )
        if row_id is None:  # queued already (a recovering node was first)
            row_id = await self._pool.fetchval(_QUEUED_ID, order_id, operation_id)
        return int(row_id)

    async def done(self, row_id: int, response_code: str | None) -> None:
        """A host answered (whatever DE 39): delivered."""
        await self._pool.execute(_DONE, row_id, response_code)

    async def retry(self, row_id: int, delay: float, max_attempts: int, error: str) -> str | None:
        """Unanswered: due again in ``delay`` s, or ``manual`` past ``max_attempts``; the new state."""
        state: str | None = await self._pool.fetchval(_RETRY, row_id, delay, max_attempts, error)
        return state

    async def first_unanswered(self, row_id: int, error: str) -> None:
        """The immediate 0400 got no answer: due for the worker now."""
        await self._pool.execute(_FIRST_UNANSWERED, row_id, error)

    async def manual(self, row_id: int, error: str) -> None:
        """Left for a person (nothing can be sent)."""
        await self._pool.execute(_MANUAL, row_id, error)

    async def record_advice_stan(self, row_id: int, stan: str) -> None:
        """The DE 11 the link stamped on the first advice, so each 0421 repeats it."""
        await self._pool.execute(_ADVICE_STAN, row_id, stan)

    async def counts(self) -> SafCounts:
        return await counts(self._pool)


async def counts(pool: asyncpg.Pool) -> SafCounts:
    """Rows by state and the oldest pending row's age."""
    row = await pool.fetchrow(_COUNTS)
    return SafCounts(int(row["pending"]), int(row["manual"]), int(row["done"]), float(row["oldest"]))


async def list_entries(pool: asyncpg.Pool, state: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """The queue's rows (oldest first) as JSON-ready dicts; no card data is stored, so none is shown."""
    if state is not None and state not in SAF_STATES:
        raise ValueError("state must be pending, manual or done")
    rows = await pool.fetch(_LIST, state, limit)
    out = []
    for r in rows:
        d = dict(r)
        for k in ("next_attempt_at", "created", "updated"):
            d[k] = d[k].isoformat()
        out.append(d)
    return out
