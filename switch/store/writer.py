"""Group commit: many callers' writes share one transaction and one commit.

A durable write costs a WAL flush at commit, and on the hot path (the
write-ahead intent before the host sees a request, the result before the
merchant sees it) that flush would bound throughput at one commit per
request. Here callers queue their statements and one writer task drains
the queue: everything queued (up to ``max_batch``) goes into one
transaction, grouped by SQL text into ``executemany`` calls, then one
commit, then every caller is released. There is no timer: a batch
starts as soon as a writer is free, so a lone request pays one commit, and
under load the requests that arrive during a batch share the next one
(natural batching). Up to ``connections`` batches run at once, each on its
own connection: while one waits for its statements or its commit (and for
the event loop to get back to it, which under load is the longer wait), the
next is already executing, so the database and the loop work side by side.

Within a batch, statements run grouped by SQL text in order of each text's
first appearance; a caller that needs one write to precede another awaits
the first (or puts both in one :meth:`GroupWriter.run`). Batches in flight
together commit in any order, which is why such a caller must await.

When a batch's transaction fails, every write in it fails with that
error: the caller decides whether to retry (a retry lands in a later batch).
An error at or after COMMIT means the outcome is unknown, as with any
database write.

A statement wrapped in :class:`Columns` runs once per batch however many
callers queued it: parameter ``$i`` is the array of every caller's ``i``-th
argument (``unnest($1::text[], ...)``), which costs the server a fraction
of one execution per row. A batch that is one statement (one write, one
``executemany``, one :class:`Columns`) runs without BEGIN and COMMIT: a
single statement is atomic on its own and commits as it ends.

Each committed batch is observed in the metrics (:mod:`switch.metrics`):
its size (``isoswitch_db_write_batch_size``) and how long it took from its
first statement to the end of its commit (``isoswitch_db_write_duration_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from switch import metrics
from switch.store.errors import WriterClosed

__all__ = ["Columns", "GroupWriter"]

log = logging.getLogger("isoswitch.store")

T = TypeVar("T")

# The writer's connections run only statements keyed by primary keys (the orders' create and
# finish over unnest arrays, an operation's insert, idempotency and audit rows) and the foreign
# key checks those fire. Each is planned once per connection (a generic plan), not once per
# execution: with custom plans, PostgreSQL planned every batch's statement and, worse, the
# foreign key check of every row (pg_stat_statements: 23 µs of planning per row for the check
# alone, 46 µs per authorization in all, a quarter of the database's CPU). A generic plan made
# while the tables were nearly empty would pick sequential scans and hash joins and keep them as
# the tables grow (it cost 3x the CPU before custom plans were used), so on these connections the
# planner is not offered them: every plan is a nested loop over index lookups, right at any size.
# The pool's reset undoes these settings when a connection goes back.
_SESSION = (
    "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off;"
    " SET enable_hashjoin = off; SET enable_mergejoin = off"
)


@dataclass(frozen=True, slots=True)
class Columns:
    """A statement over column arrays: queued with one row's arguments, run once for all rows of a batch.

    ``sql``'s ``$i`` is the array of the ``i``-th argument of every row
    queued, in queue order (a lone row gives arrays of one).
    """

    sql: str


# One queued write: (sql, args, fn, future). Exactly one of sql/fn is set.
_Sql = str | Columns
_Item = tuple[_Sql | None, tuple[Any, ...], Callable[[asyncpg.Connection], Awaitable[Any]] | None, asyncio.Future[Any]]


class GroupWriter:
    """Writer tasks, one transaction per batch. Counters are plain attributes."""

    __slots__ = (
        "_closing",
        "_connections",
        "_max_batch",
        "_max_delay",
        "_metric_duration",
        "_metric_size",
        "_pool",
        "_queue",
        "_tasks",
        "_wakeup",
        "batches",
        "commit_seconds_total",
        "failed_batches",
        "last_batch_size",
        "last_commit_seconds",
        "rows",
    )

    def __init__(
        self, pool: asyncpg.Pool, *, max_batch: int = 512, max_delay: float = 0.0, connections: int = 2
    ) -> None:
        """``max_delay`` > 0 holds a batch that is not full up to that long for company; 0 (default) never waits.

        ``connections`` (default 2) is how many batches may be in flight at once; each writer task holds
        its pool connection while it runs (no acquire and reset per batch), so the pool needs that many
        more than the readers use.
        """
        if max_batch < 1 or max_delay < 0 or connections < 1:
            raise ValueError("max_batch and connections must be >= 1 and max_delay >= 0")
        self._pool = pool
        self._connections = connections
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._queue: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.batches = 0  # transactions committed
        self.failed_batches = 0  # transactions that failed (their writes got the error)
        self.rows = 0  # writes committed (a run() counts as one)
        self.last_batch_size = 0
        # Duration of the last COMMIT alone; of a batch of one statement, that statement (it commits as it ends).
        self.last_commit_seconds = 0.0
        self.commit_seconds_total = 0.0
        self._metric_size = metrics.histogram("isoswitch_db_write_batch_size")
        self._metric_duration = metrics.histogram("isoswitch_db_write_duration_seconds")

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def execute(self, sql: str | Columns, args: tuple[Any, ...] = ()) -> None:
        """Run ``sql`` with ``args`` in the next batch; returns once it is committed.

        Cancelling the caller does not withdraw a queued write.
        """
        fut = self._new_future()
        self._queue.append((sql, args, None, fut))
        self._wakeup.set()
        await fut

    async def run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Await ``fn(conn)`` inside the next batch's transaction; its result once committed.

        ``conn`` is planned for writes by key (:data:`_SESSION`): no sequential scans, no hash
        joins. A query that has to scan a table belongs on the pool, not here.
        """
        fut = self._new_future()
        self._queue.append((None, (), fn, fut))
        self._wakeup.set()
        result: T = await fut
        return result

    async def close(self, *, timeout: float | None = None) -> None:
        """Refuse new writes, write what is queued, stop. After ``timeout`` seconds the rest fails with
        WriterClosed; None: no deadline (every queued write is written)."""
        self._closing = True
        self._wakeup.set()
        tasks = self._tasks
        if not tasks:
            return
        done = asyncio.gather(*tasks)
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await done
        self._fail_all(list(self._queue), WriterClosed("group writer closed before this write was queued to a batch"))
        self._queue.clear()

    # -- internals -----------------------------------------------------------

    def _new_future(self) -> asyncio.Future[Any]:
        if self._closing:
            raise WriterClosed("group writer is closed")
        loop = asyncio.get_running_loop()
        if not self._tasks:
            self._tasks = [
                loop.create_task(self._drain(), name=f"isoswitch-group-writer-{i}", context=contextvars.Context())
                for i in range(self._connections)
            ]
        return loop.create_future()

    async def _drain(self) -> None:
        queue = self._queue
        conn: asyncpg.Connection | None = None
        try:
            while True:
                if not queue:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if self._max_delay and len(queue) < self._max_batch and not self._closing:
                    await asyncio.sleep(self._max_delay)
                    if not queue:  # another writer took it meanwhile
                        continue
                n = min(len(queue), self._max_batch)
                batch = [queue.popleft() for _ in range(n)]
                try:
                    if conn is None:
                        conn = await self._connect()
                    await self._write(conn, batch)
                except asyncio.CancelledError:
                    self._fail_all(batch, WriterClosed("group writer stopped during the batch: outcome unknown"))
                    raise
                except Exception as e:  # the batch fails, the writer goes on
                    self.failed_batches += 1
                    log.warning("group commit failed", extra={"batch_size": n, "error": e.__class__.__name__})
                    self._fail_all(batch, e)
                    # The connection may be broken: the pool resets or discards it; take a fresh one next time.
                    if conn is not None:
                        await self._release(conn)
                        conn = None
        finally:
            if conn is not None:
                await asyncio.shield(self._release(conn))

    async def _connect(self) -> asyncpg.Connection:
        conn: asyncpg.Connection = await self._pool.acquire()
        try:
            await conn.execute(_SESSION)
        except BaseException:
            await self._release(conn)
            raise
        return conn

    async def _release(self, conn: asyncpg.Connection) -> None:
        try:
            await self._pool.release(conn)
        except Exception as e:
            log.warning("group writer could not release its connection", extra={"error": e.__class__.__name__})

    async def _write(self, conn: asyncpg.Connection, batch: list[_Item]) -> None:
        groups: dict[object, list[_Item]] = {}
        for item in batch:
            # Each run() is its own group, at its place in the order.
            groups.setdefault(item[0] if item[2] is None else object(), []).append(item)
        start = time.monotonic()
        if len(groups) == 1 and batch[0][2] is None:
            # One statement: atomic alone, its own commit; no BEGIN/COMMIT round trips.
            t = time.monotonic()
            await _statement(conn, batch)
            commit = time.monotonic() - t
            results: list[tuple[asyncio.Future[Any], Any]] = [(it[3], None) for it in batch]
        else:
            results = []
            tr = conn.transaction()
            await tr.start()
            try:
                for items in groups.values():
                    fn, fut = items[0][2], items[0][3]
                    if fn is not None:
                        results.append((fut, await fn(conn)))
                        continue
                    await _statement(conn, items)
                    results.extend((it[3], None) for it in items)
            except BaseException:
                with contextlib.suppress(Exception):
                    await tr.rollback()
                raise
            t = time.monotonic()
            await tr.commit()
            commit = time.monotonic() - t
        self._metric_size.observe(len(batch))
        self._metric_duration.observe(time.monotonic() - start)
        self.batches += 1
        self.rows += len(batch)
        self.last_batch_size = len(batch)
        self.last_commit_seconds = commit
        self.commit_seconds_total += commit
        for fut, value in results:
            if not fut.done():  # a cancelled caller
                fut.set_result(value)

    @staticmethod
    def _fail_all(batch: list[_Item], error: BaseException) -> None:
        for item in batch:
            fut = item[3]
            if not fut.done():
                fut.set_exception(error)


async def _statement(conn: asyncpg.Connection, items: list[_Item]) -> None:
    """Every write of one SQL text: one execution, one ``executemany``, or one over column arrays."""
    sql = items[0][0]
    if isinstance(sql, Columns):
        await conn.execute(sql.sql, *map(list, zip(*(it[1] for it in items), strict=True)))
    elif len(items) == 1:
        assert sql is not None
        await conn.execute(sql, *items[0][1])
    else:
        assert sql is not None
        await conn.executemany(sql, [it[1] for it in items])
