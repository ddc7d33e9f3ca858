"""The worker supervisor of `isoswitch up --workers N` on real processes: a dead worker is started
again, one that keeps dying waits longer each time (up to a cap), and stopping gives each worker
SIGTERM, then kills the one that outlives the deadline. (`tests/test_cli_up.py` kills a real worker
of `up` and sees it replaced.)"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from isoswitch.supervisor import Backoff, Supervisor

pytestmark = pytest.mark.timeout(60)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
DIES_AT_ONCE = [sys.executable, "-c", "raise SystemExit(3)"]


async def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    async with asyncio.timeout(seconds):
        # Polling on purpose: process states and counters, no event to wait on.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("previous", "ran_for", "expected"),
    [
        (0.5, 1.0, 1.0),  # died soon after its start: twice the wait
        (1.0, 59.0, 2.0),
        (40.0, 1.0, 60.0),  # capped
        (60.0, 1.0, 60.0),
        (60.0, 61.0, 0.5),  # had been running a while: at once again
    ],
)
def test_backoff_doubles_for_a_worker_that_keeps_dying_and_resets_for_one_that_ran(
    previous: float, ran_for: float, expected: float
) -> None:
    assert Backoff().next(previous, ran_for) == expected


async def test_a_killed_worker_is_reported_and_started_again() -> None:
    exited: list[int] = []
    sup = Supervisor([SLEEPER, SLEEPER], on_exit=exited.append, poll=0.02, backoff=Backoff(first=0.01))
    sup.start()
    stop = asyncio.Event()
    running = asyncio.ensure_future(sup.run(stop))
    try:
        first, second = sup.pids
        assert first is not None and second is not None
        os.kill(first, signal.SIGKILL)
        await until(lambda: sup.pids[0] not in (None, first))
        assert exited == [first] and sup.pids[1] == second and sup.restarts() == [1, 0]
    finally:
        stop.set()
        await running
        await sup.stop(10.0)
    assert sup.pids == [None, None]


async def test_a_worker_that_keeps_dying_waits_longer_each_time_up_to_the_cap() -> None:
    exited: list[int] = []
    backoff = Backoff(first=0.01, cap=0.08, stable_after=60.0)
    sup = Supervisor([DIES_AT_ONCE], on_exit=exited.append, poll=0.01, backoff=backoff)
    sup.start()
    stop = asyncio.Event()
    running = asyncio.ensure_future(sup.run(stop))
    try:
        await until(lambda: sup.restarts()[0] >= 5)
        # 0.01 doubled at each death: 0.02, 0.04, 0.08, then the cap.
        assert sup.delays()[0] == 0.08
        assert len(exited) >= 5 and len(set(exited)) == len(exited), "each death reported once"
    finally:
        stop.set()
        await running
        await sup.stop(10.0)


async def test_stop_sends_sigterm_and_kills_a_worker_that_outlives_the_deadline(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    stubborn = [
        sys.executable,
        "-c",
        "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(ready)!r}).touch(); time.sleep(120)",
    ]
    exited: list[int] = []
    sup = Supervisor([SLEEPER, stubborn], on_exit=exited.append, poll=0.02)
    sup.start()
    pids = list(sup.pids)
    await until(ready.exists)  # it ignores SIGTERM from now on
    stop = asyncio.Event()
    running = asyncio.ensure_future(sup.run(stop))
    stop.set()
    await running
    await sup.stop(0.5)
    assert sup.returncodes() == [-signal.SIGTERM, -signal.SIGKILL]
    assert exited == pids
