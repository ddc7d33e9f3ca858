"""Group commit: many callers' writes share one transaction and one commit.

A durable write costs a WAL flush at commit, and on the hot path (the
write-ahead intent before the host sees a request, the result before the
merchant sees it) that flush would bound throughput at one commit per
request. Here callers queue their statements and one writer task drains
the queue: everything queued (up to ``max_batch``) goes into one
transaction, grouped by SQL text into ``executemany`` calls, then one
commit, then every caller is released. There is no timer: the next batch
starts as soon as the previous commit returns, so a lone request pays one
commit, and under load the requests that arrive during a commit share the
next one (natural batching).

Within a batch, statements run grouped by SQL text in order of each text's
first appearance; a caller that needs one write to precede another awaits
the first (or puts both in one :meth:`GroupWriter.run`).

When a batch's transaction fails, every write in it fails with that
error: the caller decides whether to retry (a retry lands in a later batch).
An error at or after COMMIT means the outcome is unknown, as with any
database write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from switch.store.errors import WriterClosed

__all__ = ["GroupWriter"]

log = logging.getLogger("isoswitch.store")

T = TypeVar("T")

# One queued write: (sql, args, fn, future). Exactly one of sql/fn is set.
_Item = tuple[str | None, tuple[Any, ...], Callable[[asyncpg.Connection], Awaitable[Any]] | None, asyncio.Future[Any]]


class GroupWriter:
    """One writer task, one transaction per batch. Counters are plain attributes."""

    __slots__ = (
        "_closing",
        "_max_batch",
        "_max_delay",
        "_pool",
        "_queue",
        "_task",
        "_wakeup",
        "batches",
        "commit_seconds_total",
        "failed_batches",
        "last_batch_size",
        "last_commit_seconds",
        "rows",
    )

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 512, max_delay: float = 0.0) -> None:
        """``max_delay`` > 0 holds a batch that is not full up to that long for company; 0 (default) never waits."""
        if max_batch < 1 or max_delay < 0:
            raise ValueError("max_batch must be >= 1 and max_delay >= 0")
        self._pool = pool
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._queue: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0  # transactions committed
        self.failed_batches = 0  # transactions that failed (their writes got the error)
        self.rows = 0  # writes committed (a run() counts as one)
        self.last_batch_size = 0
        self.last_commit_seconds = 0.0  # duration of the last COMMIT alone
        self.commit_seconds_total = 0.0

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def execute(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        """Run ``sql`` with ``args`` in the next batch; returns once it is committed.

        Cancelling the caller does not withdraw a queued write.
        """
        await self._submit((sql, args, None, self._new_future()))

    async def run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Await ``fn(conn)`` inside the next batch's transaction; its result once committed."""
        result: T = await self._submit((None, (), fn, self._new_future()))
        return result

    async def close(self, timeout: float | None = None) -> None:
        """Refuse new writes, write what is queued, stop. After ``timeout`` the rest fails with WriterClosed."""
        self._closing = True
        self._wakeup.set()
        task = self._task
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail_all(list(self._queue), WriterClosed("group writer closed before this write was queued to a batch"))
        self._queue.clear()

    # -- internals -----------------------------------------------------------

    def _new_future(self) -> asyncio.Future[Any]:
        if self._closing:
            raise WriterClosed("group writer is closed")
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._drain(), name="isoswitch-group-writer")
        return loop.create_future()

    async def _submit(self, item: _Item) -> Any:
        self._queue.append(item)
        self._wakeup.set()
        return await item[3]

    async def _drain(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._max_delay and len(queue) < self._max_batch and not self._closing:
                await asyncio.sleep(self._max_delay)
            n = min(len(queue), self._max_batch)
            batch = [queue.popleft() for _ in range(n)]
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                self._fail_all(batch, WriterClosed("group writer stopped during the batch: outcome unknown"))
                raise
            except Exception as e:  # the batch fails, the writer goes on
                self.failed_batches += 1
                log.warning("group commit failed", extra={"batch_size": n, "error": e.__class__.__name__})
                self._fail_all(batch, e)

    async def _write(self, batch: list[_Item]) -> None:
        groups: dict[object, list[_Item]] = {}
        for item in batch:
            # Each run() is its own group, at its place in the order.
            groups.setdefault(item[0] if item[2] is None else object(), []).append(item)
        results: list[tuple[asyncio.Future[Any], Any]] = []
        async with self._pool.acquire() as conn:
            tr = conn.transaction()
            await tr.start()
            try:
                for items in groups.values():
                    sql, args, fn, fut = items[0]
                    if fn is not None:
                        results.append((fut, await fn(conn)))
                        continue
                    assert sql is not None
                    if len(items) == 1:
                        await conn.execute(sql, *args)
                    else:
                        await conn.executemany(sql, [it[1] for it in items])
                    results.extend((it[3], None) for it in items)
            except BaseException:
                # The connection may be broken too; the pool discards it then.
                with contextlib.suppress(Exception):
                    await tr.rollback()
                raise
            t = time.monotonic()
            await tr.commit()
            commit = time.monotonic() - t
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
