"""The worker processes of ``isoswitch up --workers N``: started together, started again when
one dies, stopped together within one deadline.

A worker that dies (killed, out of memory) is logged, reported to ``on_exit`` (the metrics
drop its live gauges) and started again; one that keeps dying (it cannot bind, the
database is gone) is retried less and less often (:class:`Backoff`).

>>> b = Backoff()
>>> [b.next(d, ran_for=1.0) for d in (0.5, 1.0, 40.0)], b.next(40.0, ran_for=120.0)
([1.0, 2.0, 60.0], 0.5)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Backoff", "Supervisor"]

log = logging.getLogger("isoswitch.supervisor")


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long a dead worker waits before it is started again."""

    first: float = 0.5  # seconds, for a worker that had been running a while
    cap: float = 60.0  # seconds, at most
    stable_after: float = 60.0  # seconds of life after which a death is not counted as "keeps dying"

    def next(self, previous: float, ran_for: float) -> float:
        """One that ran a while restarts at once; one that keeps dying waits twice as long each time."""
        return self.first if ran_for > self.stable_after else min(previous * 2, self.cap)


@dataclass(slots=True)
class _Worker:
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float = 0.0
    due: float = 0.0  # when it starts again; 0.0 while it runs (or before its death was seen)
    restarts: int = 0


class Supervisor:
    """Runs ``commands`` as worker processes (each in a session of its own) until :meth:`stop`.

    ``number_offset``: the number of the first worker in log lines (the parent process that
    serves too is worker 1 of ``up``).
    """

    def __init__(
        self,
        commands: Sequence[Sequence[str]],
        env: Mapping[str, str] | None = None,
        *,
        backoff: Backoff = Backoff(),
        poll: float = 1.0,
        on_exit: Callable[[int], None] | None = None,
        number_offset: int = 2,
    ) -> None:
        self._workers = [_Worker(list(c), delay=backoff.first) for c in commands]
        self._env = dict(env) if env is not None else None
        self._backoff = backoff
        self._poll = poll
        self._on_exit = on_exit
        self._offset = number_offset
        self._stopped_at: float | None = None

    @property
    def pids(self) -> list[int | None]:
        """Each worker's process id (None while it waits to be started again)."""
        return [w.process.pid if w.process is not None and w.process.poll() is None else None for w in self._workers]

    def restarts(self) -> list[int]:
        """How many times each worker was started again."""
        return [w.restarts for w in self._workers]

    def delays(self) -> list[float]:
        """Each worker's current wait before a restart (doubled at each quick death)."""
        return [w.delay for w in self._workers]

    def returncodes(self) -> list[int | None]:
        """Each worker's exit status (None while it runs); ``-N`` for signal N."""
        return [w.process.returncode if w.process is not None else None for w in self._workers]

    def start(self) -> None:
        """Start every worker; when one cannot be (an OSError propagates), those started are stopped."""
        now = time.monotonic()
        try:
            for w in self._workers:
                w.process = subprocess.Popen(w.command, env=self._env, start_new_session=True)
                w.started = now
        except OSError:
            for w in self._workers:
                if w.process is not None:
                    w.process.kill()
                    w.process.wait()
            raise

    async def run(self, stop: asyncio.Event) -> None:
        """Watch the workers until ``stop`` is set, then send each SIGTERM (they stop together)."""
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._poll)
                if not stop.is_set():
                    self.check(time.monotonic())
        finally:
            self._terminate()

    def check(self, now: float) -> None:
        """Notice the dead, start again those whose wait is over."""
        total = len(self._workers) + self._offset - 1
        for i, w in enumerate(self._workers):
            if w.process is None or w.process.poll() is None:
                if w.process is None and now >= w.due:
                    self._restart(i, w, now, total)
                continue
            if w.due == 0.0:
                log.error("worker %d exited (status %s)", w.process.pid, w.process.returncode)
                if self._on_exit is not None:
                    self._on_exit(w.process.pid)
                w.delay = self._backoff.next(w.delay, now - w.started)
                w.due = now + w.delay
            elif now >= w.due:
                self._restart(i, w, now, total)

    def _restart(self, i: int, w: _Worker, now: float, total: int) -> None:
        log.warning("starting worker %d of %d again", i + self._offset, total)
        w.started, w.due = now, 0.0
        w.restarts += 1
        try:
            w.process = subprocess.Popen(w.command, env=self._env, start_new_session=True)
        except OSError:
            # Tried again after the next wait: a fork that failed once (out of memory) may work later.
            log.exception("worker %d of %d could not be started", i + self._offset, total)
            w.process = None
            w.delay = self._backoff.next(w.delay, 0.0)
            w.due = now + w.delay

    def _terminate(self) -> None:
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()
        for w in self._workers:
            if w.process is not None and w.process.poll() is None:
                w.process.send_signal(signal.SIGTERM)

    async def stop(self, deadline: float) -> None:
        """SIGTERM to every worker (if :meth:`run` did not already), then wait up to ``deadline`` seconds
        from that signal for each; one still running then is killed."""
        self._terminate()
        assert self._stopped_at is not None
        end = self._stopped_at + deadline
        for w in self._workers:
            if w.process is None:
                continue
            try:
                await asyncio.to_thread(w.process.wait, max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop in time: killed", w.process.pid)
                w.process.kill()
                await asyncio.to_thread(w.process.wait)
            if self._on_exit is not None:
                self._on_exit(w.process.pid)  # its live gauges go; its counts stay in the sums
