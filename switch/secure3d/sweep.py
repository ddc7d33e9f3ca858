"""The sweep of abandoned 3-D Secure sessions: a cardholder who never came back leaves the order ``declined``.

Without it an order stays ``prepared`` until someone returns to its session
(a completion, a /resume), which may be never. Like the store-and-forward and
webhook workers it runs in every serving process: each round claims at most
``sweep_batch`` sessions past their deadline with ``FOR UPDATE SKIP LOCKED``
(:meth:`SessionRepo.sweep`), so processes share the work and never end one
session twice. Each order is declined through the orders' normal write path
(:meth:`OrderRepo.save_waiting`, version-guarded), which writes its
``order.declined`` event with it; ``secure3d.scenario`` says ``expired``, as
when the cardholder comes back too late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from switch.orders.model import OrderStatus
from switch.orders.repo import OrderRepo
from switch.secure3d.sessions import SessionRepo

__all__ = ["ExpirySweep"]

log = logging.getLogger("isoswitch.secure3d")

# close() lets a running round finish for this long, then cancels it (its transaction rolls back: nothing lost).
CLOSE_TIMEOUT = 2.0


class ExpirySweep:
    """Ends expired sessions every ``interval`` seconds (or when kicked), ``batch`` per round at most."""

    def __init__(
        self,
        sessions: SessionRepo,
        orders: OrderRepo,
        clock: Callable[[], datetime],
        forget: Callable[[str], object],
        *,
        interval: float,
        batch: int,
    ) -> None:
        """``forget``: drop a CVV this process kept for the order (:class:`~switch.secure3d.service.Secure3D`)."""
        self._sessions = sessions
        self._orders = orders
        self._clock = clock
        self._forget = forget
        self.interval = interval
        self.batch = batch
        self.ended = 0  # sessions this process ended
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._stopping = False

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.ensure_future(self.run())

    def kick(self) -> None:
        self._kick.set()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._kick.set()
        await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run(self) -> None:
        while not self._stopping:
            try:
                ended = await self.work_once()
            except Exception:
                log.warning("sweep of expired 3-D Secure sessions failed", exc_info=True)
                ended = 0
            if self._stopping:
                break
            if ended >= self.batch:
                continue  # more may be due
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.interval)

    async def work_once(self) -> int:
        """One round: the due sessions ended, their orders declined; how many."""
        now = self._clock()
        ended = await self._sessions.sweep(
            now, self.batch, lambda order_id, project_id: self._decline(order_id, project_id, now)
        )
        self.ended += ended
        if ended:
            log.info("expired 3-D Secure sessions ended", extra={"count": ended})
        return ended

    async def _decline(self, order_id: str, project_id: int, now: datetime) -> bool:
        """The order of an expired session declined (True), or left alone when it no longer waits (True too:
        only the session is left to end); False (the session stays for the next round) when it cannot be now."""
        try:
            order = await self._orders.get(project_id, order_id)
            if order is None or order.status is not OrderStatus.PREPARED:
                return True
            self._forget(order_id)
            order.status = OrderStatus.DECLINED
            order.secure3d = {**order.secure3d, "scenario": "expired"}
            order.updated = now
            return await self._orders.save_waiting(order)
        except Exception:
            log.warning("expired 3-D Secure order not declined; retried", extra={"order_id": order_id}, exc_info=True)
            return False
