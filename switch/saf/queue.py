"""The orders service's side: reserve the STAN, queue the reversal durably, send the 0400 at once.

:class:`Reversals` is also the one object the runtime holds: it owns the
worker (:mod:`.worker`) and recovery (:mod:`.recovery`) and closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import asyncpg

from switch.errors import NoRoute, TranslationError
from switch.saf.config import SafConfig
from switch.saf.entry import NOT_ANSWERED, Router, Tally, Vault, entry_of, original_fields, reason, send, utcnow
from switch.saf.recovery import Recovery
from switch.saf.worker import AdviceWorker
from switch.store.saf import SafCounts, SafStore
from switch.translate import reversal_of
from switch.wire.codec import Message

__all__ = ["Reversals"]

log = logging.getLogger("isoswitch.saf")

T = TypeVar("T")

#: Seconds :meth:`Reversals.close` gives in-flight 0400s when no timeout is passed.
CLOSE_TIMEOUT = 5.0


class Reversals:
    """The reversal path of the orders service and the store-and-forward worker (package doc)."""

    def __init__(
        self,
        router: Router,
        pool: asyncpg.Pool,
        vault: Vault,
        *,
        owner: str,
        config: SafConfig | None = None,
        projects: Any = None,
        hold: float = 15.0,
    ) -> None:
        """``hold``: seconds the worker leaves a new row alone while its 0400 is in flight (> that timeout).

        ``projects`` (``switch.store.Projects``) gives recovery the DE 42 of an orphan's project.
        """
        self._router = router
        self._store = SafStore(pool)
        self.owner = owner
        self.config = config or SafConfig()
        self._hold = hold
        self._tasks: set[asyncio.Task[None]] = set()
        self._working: set[tuple[str, int]] = set()  # (order id, operation id) this process is exchanging
        self._closing = False
        # Counters (the metrics issue reads them) and isoswitch_reversals by MTI; the depth and age
        # gauges come from counts() at each scrape.
        self._tally = Tally()
        self._worker = AdviceWorker(
            router, self._store, vault, config=self.config, hold=hold, tally=self._tally, recover=self.recover
        )
        self._recovery = Recovery(
            self._store,
            owner=owner,
            config=self.config,
            working=self._working,
            tally=self._tally,
            projects=projects,
            on_recovered=self._worker.kick,
        )

    # -- tallies ---------------------------------------------------------------------

    @property
    def reversals_sent(self) -> int:
        return self._tally.reversals_sent

    @property
    def advices_sent(self) -> int:
        return self._tally.advices_sent

    @property
    def delivered(self) -> int:
        return self._tally.delivered

    @property
    def manual(self) -> int:
        return self._tally.manual

    @property
    def recovered(self) -> int:
        return self._tally.recovered

    # -- the orders service's side ------------------------------------------------

    def prepare(self, msg: Message, *, test_mode: bool = False) -> tuple[str | None, str | None]:
        """Reserve DE 11 in ``msg`` from its destination's STAN space; (STAN, destination) for the intent.

        (None, None) when the PAN routes nowhere: the send then fails fast and nothing needs reversing.
        ``test_mode``: a test-mode order's, routed to the test destination (``[routing] test``).
        """
        try:
            pool = self._router.pool_for(msg.get("2", ""), test_mode=test_mode)
        except NoRoute:
            return None, None
        stan: str = pool.next_stan()
        msg["11"] = stan
        return stan, pool.name

    async def working(self, order_id: str, operation_id: int, exchange: Awaitable[T]) -> T:
        """Await ``exchange`` with the operation marked as this process's: recovery leaves it alone meanwhile."""
        key = (order_id, operation_id)
        self._working.add(key)
        try:
            return await exchange
        finally:
            self._working.discard(key)

    async def queue(self, order_id: str, operation_id: int, destination: str | None, msg: Message, cur: str) -> int:
        """The reversal of an unknown outcome, durable when this returns; the row's id.

        The worker leaves it alone for ``hold`` seconds (the 0400 goes first).
        """
        f = original_fields(msg, cur)
        return await self._store.queue(order_id, operation_id, destination, f, hold=self._hold)

    def reverse_soon(self, row_id: int, destination: str | None, msg: Message, cur: str) -> None:
        """Send the 0400 in the background; the row stays for the worker if it is not answered."""
        if self._closing:
            return  # the row is durable: the worker of this or another node sends it
        task = asyncio.ensure_future(self._reverse_now(row_id, destination, msg, cur))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reverse_now(self, row_id: int, destination: str | None, sent: Message, cur: str) -> None:
        f = original_fields(sent, cur)
        entry = entry_of({**f, "id": row_id, "order_id": "", "destination": destination, "attempts": 0,
                          "advice_stan": None, "advice_time": None})  # fmt: skip
        try:
            if entry.original is None:
                await self._store.manual(row_id, "original not recorded completely")
                return
            msg = reversal_of(
                entry.original,
                pan=sent["2"],
                terminal_id=entry.terminal_id,
                merchant_id=entry.merchant_id,
                now=utcnow(),
            )
            self._tally.sent("0400")
            try:
                resp = await send(self._router, destination, msg, self.config.timeout)
            except NOT_ANSWERED as e:
                await self._store.first_unanswered(row_id, f"0400 not answered: {reason(e)}")
                self._worker.kick()
                return
            self._tally.delivered += 1
            await self._store.done(row_id, resp.get("39"))
            log.info("reversal answered", extra={"saf_id": row_id, "iso_response_code": resp.get("39")})
        except (TranslationError, KeyError) as e:
            with contextlib.suppress(Exception):
                await self._store.manual(row_id, f"reversal cannot be built: {e}")
        except Exception:
            # The database may be down: the row is durable and becomes due after its hold.
            log.warning("immediate reversal could not be recorded", extra={"saf_id": row_id}, exc_info=True)

    # -- the worker and recovery ---------------------------------------------------

    def start(self) -> None:
        """Run the worker (and periodic recovery) in the background until :meth:`close`."""
        self._worker.start()

    async def work_once(self) -> int:
        """One round of the worker: claim the due advices and send them; how many were claimed."""
        return await self._worker.work_once()

    async def recover(self, *, grace: float | None = None, limit: int = 500) -> int:
        """Queue the reversal of every orphaned pending operation and mark it and its order error; how many."""
        return await self._recovery.recover(grace=grace, limit=limit)

    def kick(self) -> None:
        """Wake the worker now (tests, or after queueing)."""
        self._worker.kick()

    async def counts(self) -> SafCounts:
        """Rows by state and the oldest pending row's age: what the metrics issue exports."""
        return await self._store.counts()

    async def close(self, *, timeout: float | None = None) -> None:
        """Stop the worker; give in-flight 0400s ``timeout`` seconds (None: ``CLOSE_TIMEOUT``); their rows
        stay pending otherwise."""
        self._closing = True
        await self._worker.close()
        tasks = list(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT if timeout is None else timeout)
            for t in late:
                t.cancel()
            if late:
                await asyncio.wait(late)
