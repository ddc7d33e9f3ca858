"""The loop of the background workers that run in every serving process (mail, notifications, invoice expiry,
auto-capture): a round now and then, at once when kicked.

A worker subclasses :class:`Periodic` and writes :meth:`~Periodic.work_once` (one round; a count) and, when a
round's count means more is due at once, :meth:`~Periodic.more_due`. The loop clears the kick *before* each
round, so a kick that comes during a round (a new mail queued while the last batch is claimed) makes the next
round start at once instead of being lost until the interval. A failing round (the database restarting) is
logged and the loop carries on: the work is in the database, the next round finds it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Callable

__all__ = ["CLOSE_TIMEOUT", "Periodic"]

# close() lets a running round finish for this long, then cancels it (the round's leases or transaction make
# a cancel lose nothing).
CLOSE_TIMEOUT = 2.0


class Periodic(abc.ABC):
    """Runs :meth:`work_once` every ``interval()`` seconds (read again each time) or when :meth:`kick`\\ ed,
    at once again while :meth:`more_due`; a round that raises is logged on ``log`` as ``failed``."""

    def __init__(self, *, log: logging.Logger, failed: str, interval: Callable[[], float]) -> None:
        self._loop_log = log
        self._loop_failed = failed
        self._loop_interval = interval
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._stopping = False

    def start(self) -> None:
        """Run in the background until :meth:`close`."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.ensure_future(self.run())

    def kick(self) -> None:
        """Start a round now (or right after the one running)."""
        self._kick.set()

    async def close(self, *, timeout: float | None = None) -> None:
        """Stop the loop: the round running gets ``timeout`` seconds (None: ``CLOSE_TIMEOUT``), then is cancelled."""
        await self._stop_loop(timeout)

    async def _stop_loop(self, timeout: float | None) -> bool:
        """:meth:`close`'s part for the loop; False when it was not running."""
        task, self._task = self._task, None
        if task is None:
            return False
        self._stopping = True
        self._kick.set()
        await asyncio.wait({task}, timeout=CLOSE_TIMEOUT if timeout is None else timeout)
        task.cancel()  # nothing when it has ended
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True

    async def run(self) -> None:
        while not self._stopping:
            self._kick.clear()  # before the round: a kick that comes during it is not lost
            try:
                done = await self.work_once()
            except Exception:
                self._loop_log.warning(self._loop_failed, exc_info=True)
                done = 0
            if self._stopping:
                break
            if self.more_due(done):
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self._loop_interval())

    @abc.abstractmethod
    async def work_once(self) -> int:
        """One round; a count (what it claimed, closed, sent) that :meth:`more_due` reads."""

    def more_due(self, done: int) -> bool:
        """Whether the round that returned ``done`` leaves more due now (the next round starts at once).
        By default: the round did something."""
        return done > 0
