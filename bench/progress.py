"""A progress bar on stderr while a bench runs, so stdout keeps only the report.

The bar (tqdm) counts the seconds of warmup and measurement and shows the
phase, the answers so far and the last interval's throughput and p99. It is
redrawn by a loop timer twice a second, never from the hot path, and is
wiped when the run ends (``leave=False``), before the report is printed.

>>> progress_wanted(None, tty=False), progress_wanted(None, tty=True), progress_wanted(True, tty=False)
(False, True, True)
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from typing import TextIO

from tqdm import tqdm

from bench.measure import Tally, Window
from bench.stats import fmt_rate, fmt_us

__all__ = ["progress_bar", "progress_status", "progress_wanted"]

_REFRESH_S = 0.5
_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s{postfix}"


class _Bar(tqdm):
    # tqdm's monitor thread looks for bars left without updates; ours is redrawn by a loop timer.
    monitor_interval = 0


def progress_wanted(flag: bool | None, *, tty: bool | None = None) -> bool:
    """``--progress`` / ``--no-progress`` when given; otherwise on when stderr is a terminal."""
    if flag is not None:
        return flag
    return sys.stderr.isatty() if tty is None else tty


def progress_status(tally: Tally, window: Window) -> str:
    """What the bar shows after its counter: phase, answers, the last interval.

    >>> from bench.measure import Tally, Window
    >>> progress_status(Tally(10), Window(None))
    'warmup, 0 answers'
    """
    if not window.t0:
        return f"warmup, {tally.responses_outside_window:,} answers"
    phase = "measuring" if not window.t1 else "draining"
    parts = [phase, f"{tally.responses:,} answers"]
    if tally.series:
        last = tally.series[-1]
        parts.append(f"{fmt_rate(last['throughput_per_s'])} p99 {fmt_us(last['p99'])}")
    errors = sum(tally.errors.values())
    if errors:
        parts.append(f"{errors:,} errors")
    return ", ".join(parts)


@contextlib.asynccontextmanager
async def progress_bar(
    label: str | None, tally: Tally, window: Window, seconds: float, *, file: TextIO | None = None
) -> AsyncIterator[None]:
    """Show a bar labelled ``label`` over ``seconds`` (warmup + duration) for the block; none when ``label`` is None."""
    if label is None:
        yield
        return
    loop = asyncio.get_running_loop()
    bar = _Bar(
        total=seconds,
        desc=label,
        file=file if file is not None else sys.stderr,
        leave=False,
        dynamic_ncols=True,
        bar_format=_FORMAT,
        postfix=progress_status(tally, window),
    )
    start = time.perf_counter()
    timer: asyncio.TimerHandle | None = None

    def redraw() -> None:
        nonlocal timer
        bar.n = min(time.perf_counter() - start, seconds)
        bar.set_postfix_str(progress_status(tally, window), refresh=False)
        bar.refresh()
        timer = loop.call_later(_REFRESH_S, redraw)

    redraw()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
        bar.close()
