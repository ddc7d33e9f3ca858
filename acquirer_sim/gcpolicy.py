"""Full garbage collections only while the simulator is idle.

With a few hundred thousand remembered requests, one full (generation 2)
collection walks every record: ~170 ms at 300,000 records, measured. Run
automatically, such pauses land in the middle of a load test and show up as
the p99.9 of whatever is being benchmarked through the simulator. The hot
path makes no reference cycles (the ledger breaks its own when it forgets a
record), so the young generations are enough while traffic flows, and the
full pass can wait for a quiet second.

This changes the process-wide collector thresholds, so only the CLI (a
process of its own) installs it; an in-process ``SimServer`` leaves the
host's collector alone.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

__all__ = ["IdleCollector"]


class IdleCollector:
    """Defer automatic full collections; run one when ``activity()`` stops moving.

    ``activity`` is any counter that grows with traffic (requests received).
    A full collection runs after ``idle_s`` without change, and in any case
    every ``max_interval_s`` so a process never busy-idle forever keeps its
    memory in check.
    """

    def __init__(self, activity: Callable[[], int], *, idle_s: float = 1.0, max_interval_s: float = 600.0) -> None:
        self._activity = activity
        self._idle_s = idle_s
        self._max_interval_s = max_interval_s
        self._saved: tuple[int, int, int] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_seen = -1
        self._collected_at_activity = -1
        self._last_full = time.monotonic()
        #: full collections run so far
        self.collections = 0

    def start(self) -> None:
        self._saved = gc.get_threshold()
        t0, t1, _ = self._saved
        # Generation 2 is collected after threshold2 collections of generation 1:
        # make that never happen on its own.
        gc.set_threshold(t0, t1, 1_000_000_000)
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def _schedule(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._idle_s, self._tick)

    def _tick(self) -> None:
        seen = self._activity()
        now = time.monotonic()
        idle = seen == self._last_seen and seen != self._collected_at_activity
        if idle or now - self._last_full >= self._max_interval_s:
            gc.collect()
            self.collections += 1
            self._collected_at_activity = seen
            self._last_full = now
        self._last_seen = seen
        self._schedule()
