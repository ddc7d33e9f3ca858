"""What a bench run counts: the tally of the measured window, its clocks, the pacer, the machine.

Only what happens inside the window (after the warmup, before the end)
counts. CPU time is read for the bench process, the target process when its
pid is known, and the whole machine, so a run on a box that something else
was also using shows it.

The window is cut into intervals of :data:`INTERVAL_S`: each has its own HDR
histogram, summed into the run's total when the interval ends, so the
result carries a time series (throughput and percentiles per second) as
well as the totals.

>>> error_kind(RequestTimeout("x")), error_kind(DestinationUnavailable("x")), error_kind(KeyError("x"))
('timeout', 'not_ready', 'KeyError')
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any, Final

from hdrh.histogram import HdrHistogram

from bench.procs import ProcSpec, ProcWatch
from bench.stats import PERCENTILES, latency_summary, new_histogram
from switch.errors import (
    DestinationUnavailable,
    DuplicateRequest,
    LinkBusy,
    LinkClosed,
    LinkNotReady,
    RequestTimeout,
)
from switch.wire.codec import DecodeError, EncodeError
from switch.wire.framing import FramingError

__all__ = [
    "INTERVAL_S",
    "BenchError",
    "Pacer",
    "Tally",
    "Window",
    "error_kind",
    "head_figures",
    "interval_point",
    "run_then_drain",
    "machine_info",
]

INTERVAL_S: Final = 1.0  # length of one point of the time series


class BenchError(RuntimeError):
    """The bench could not run (target unreachable, sign-on refused): no figures."""


# Exception class -> the report's name for it; the nearest class in the MRO wins.
_ERROR_KINDS: dict[type[BaseException], str] = {
    RequestTimeout: "timeout",
    LinkClosed: "link_closed",
    LinkBusy: "busy",
    LinkNotReady: "not_ready",
    DestinationUnavailable: "not_ready",
    DuplicateRequest: "duplicate",
    DecodeError: "decode_error",
    EncodeError: "encode_error",
    FramingError: "framing_error",
    TimeoutError: "timeout",
    ConnectionError: "link_closed",
}


def error_kind(exc: BaseException) -> str:
    for cls in type(exc).__mro__:
        kind = _ERROR_KINDS.get(cls)
        if kind is not None:
            return kind
    return type(exc).__name__


class Tally:
    """Figures of the measured window, shared by every connection or worker of a run.

    Latencies are recorded into ``hist``, the current interval's histogram
    (the hot paths write ``tally.hist.record_value(us)``); :meth:`roll` closes
    the interval into ``series`` and ``total``, which holds the whole window.
    """

    __slots__ = (
        "hist",
        "total",
        "series",
        "codes",
        "errors",
        "outcomes",
        "responses",
        "sent",
        "budget",
        "measuring",
        "sending",
        "responses_outside_window",
        "outside_errors",
        "_errors_rolled",
    )

    def __init__(self, max_requests: int) -> None:
        self.hist: HdrHistogram = new_histogram()  # µs, the current interval
        self.total: HdrHistogram = new_histogram()  # µs, the intervals rolled so far
        self.series: list[dict[str, Any]] = []  # one interval_point() per interval
        self.codes: dict[tuple[int, str], int] = {}  # (card index, DE 39) -> responses
        self.errors: dict[str, int] = {}
        self.outcomes: dict[str, int] = {}  # switch.translate.Outcome value -> responses
        self.responses = 0
        self.sent = 0
        self.budget = max_requests
        self.measuring = False
        self.sending = True
        self.responses_outside_window = 0
        self.outside_errors = 0  # errors before or after the window
        self._errors_rolled = 0

    def error(self, kind: str, n: int = 1) -> None:
        if self.measuring:
            self.errors[kind] = self.errors.get(kind, 0) + n
        else:
            self.outside_errors += n

    def take(self) -> None:
        """Count one request about to be sent; when the window's budget is spent, stop sending."""
        if self.measuring:
            self.sent += 1
            self.budget -= 1
            if self.budget <= 0:
                self.sending = False

    def roll(self, start_s: float, end_s: float) -> None:
        """End the interval from ``start_s`` to ``end_s`` (seconds into the window): a point, a fresh histogram.

        About half a millisecond of loop time at a few tens of thousands of
        answers per interval (one pass over the histogram's counts).
        """
        hist, self.hist = self.hist, new_histogram()
        errors = sum(self.errors.values())
        self.series.append(interval_point(hist, start_s, end_s - start_s, errors - self._errors_rolled))
        self._errors_rolled = errors
        if self.total.get_total_count() == 0:
            # Not add(): hdrh's add() into an empty histogram takes its minimum as 0.
            self.total = hist
        elif hist.get_total_count():
            self.total.add(hist)


def interval_point(hist: HdrHistogram, start_s: float, length_s: float, errors: int) -> dict[str, Any]:
    """One point of the time series: when, how many answers and errors, the percentiles (µs).

    >>> h = new_histogram()
    >>> for us in (100, 200, 300, 400):
    ...     _ = h.record_value(us)
    >>> p = interval_point(h, 1.0, 0.5, 2)
    >>> p["t_s"], p["responses"], p["throughput_per_s"], p["errors"], p["p50"], p["max"]
    (1.0, 4, 8.0, 2, 200, 400)
    """
    count = hist.get_total_count()
    point: dict[str, Any] = {
        "t_s": round(start_s, 3),
        "length_s": round(length_s, 3),
        "responses": count,
        "throughput_per_s": round(count / length_s, 1) if length_s > 0 else 0.0,
        "errors": errors,
    }
    values = hist.get_percentile_to_value_dict(list(PERCENTILES.values())) if count else {}
    for key, pct in PERCENTILES.items():
        point[key] = values.get(pct, 0)
    point["max"] = hist.get_max_value() if count else 0
    return point


class Pacer:
    """Open-loop arrivals: how many requests are due at ``rate`` per second since the start.

    Requests a full in-flight cap could not send stay due (``backlog``) and go
    out as soon as answers free a slot, so a slow target shows as an achieved
    rate below the asked one and a growing backlog, not as a quietly lower rate.

    >>> p = Pacer(1000.0, start=10.0)
    >>> p.due(10.0105)
    10
    >>> p.issued(4); p.due(10.0105), p.max_backlog
    (6, 0)
    """

    __slots__ = ("rate", "start", "_issued", "max_backlog")

    def __init__(self, rate: float, start: float) -> None:
        self.rate = rate
        self.start = start
        self._issued = 0
        self.max_backlog = 0

    def due(self, now: float) -> int:
        return int((now - self.start) * self.rate) - self._issued

    def next_intended(self) -> float:
        """When the next request to issue was due (the schedule's time, whatever the clock says now).

        Latency is measured from here in the open loop, so time a request
        waited for a free slot counts (coordinated omission corrected).

        >>> p = Pacer(1000.0, start=10.0)
        >>> p.issued(4); round(p.next_intended(), 4)
        10.005
        """
        return self.start + (self._issued + 1) / self.rate

    def issued(self, n: int, backlog: int = 0) -> None:
        self._issued += n
        if backlog > self.max_backlog:
            self.max_backlog = backlog


def _proc_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``); None when unreadable."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    # After "(comm)" come fields 3.. of proc(5): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float | None:
    """CPU seconds all cores spent busy since boot (``/proc/stat``); None when unreadable."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            first = f.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy.
    jiffies = [int(v) for v in first[1:9]]
    busy = sum(jiffies) - jiffies[3] - jiffies[4]
    return busy / os.sysconf("SC_CLK_TCK")


class Window:
    """Wall and CPU clocks at the start and the end of the measured window, and its interval timer."""

    def __init__(self, target_pid: int | None, *, interval: float = INTERVAL_S, procs: ProcSpec | None = None) -> None:
        self.target_pid = target_pid
        # The server's processes by group (bench.procs), when more than the target's pid is known.
        if procs is not None and procs.target_pid is None and target_pid is not None:
            procs = ProcSpec(target_pid, procs.pg_pid, procs.pg_data, procs.sim_pid)
        self.procs = ProcWatch(procs) if procs is not None and not procs.empty else None
        self.interval = interval
        self.t0 = self.t1 = 0.0
        self.cpu0 = self.cpu1 = 0.0
        self.target0: float | None = None
        self.target1: float | None = None
        self.machine0: float | None = None
        self.machine1: float | None = None
        self.loadavg = ""
        self._rolled = 0.0  # seconds into the window where the current interval began
        self._timer: asyncio.TimerHandle | None = None

    def open(self, tally: Tally) -> None:
        if tally.measuring or self.t1:
            return
        tally.measuring = True
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.target0 = _proc_cpu_seconds(self.target_pid)
        self.machine0 = _machine_busy_seconds()
        if self.procs is not None:
            self.procs.start()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a unit test): the window is one interval
            return
        start = loop.time()

        def roll(k: int) -> None:
            end = time.perf_counter() - self.t0
            tally.roll(self._rolled, end)
            self._rolled = end
            # On the loop's own clock from the start, so the intervals do not drift.
            self._timer = loop.call_at(start + (k + 1) * self.interval, roll, k + 1)

        self._timer = loop.call_at(start + self.interval, roll, 1)

    def close(self, tally: Tally) -> None:
        if not tally.measuring:
            return
        tally.measuring = False
        self.t1 = time.perf_counter()
        self.cpu1 = time.process_time()
        self.target1 = _proc_cpu_seconds(self.target_pid)
        self.machine1 = _machine_busy_seconds()
        if self.procs is not None:
            self.procs.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tally.roll(self._rolled, self.t1 - self.t0)
        try:
            self.loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())
        except OSError:
            pass

    @property
    def seconds_in(self) -> float:
        """Seconds since the window opened (0 before; its length once closed)."""
        if not self.t0:
            return 0.0
        return (self.t1 or time.perf_counter()) - self.t0

    def series(self, tally: Tally) -> dict[str, Any]:
        """The time series of the result document."""
        return {"interval_s": self.interval, "unit": "us", "points": tally.series}

    @property
    def elapsed(self) -> float:
        return max(self.t1 - self.t0, 1e-9)

    def cpu(self, responses: int) -> dict[str, Any]:
        """CPU seconds and µs per response of the bench, the target (and, with ``procs``, each server
        process group and their sum: ``processes``), and everything else on the box."""
        per = max(responses, 1)
        bench_s = self.cpu1 - self.cpu0
        out: dict[str, Any] = {
            "bench_s": round(bench_s, 3),
            "bench_us_per_response": round(bench_s / per * 1e6, 1),
            "target_s": None,
            "target_us_per_response": None,
            "machine_busy_cores": None,
            "others_cores": None,
            "loadavg": self.loadavg,
        }
        target_s = 0.0
        if self.target0 is not None and self.target1 is not None:
            target_s = self.target1 - self.target0
            out["target_s"] = round(target_s, 3)
            out["target_us_per_response"] = round(target_s / per * 1e6, 1)
        if self.procs is not None and self.t1:
            processes = self.procs.figures(responses, self.elapsed)
            out["processes"] = processes
            if "sum" in processes:
                target_s = processes["sum"]["cpu_s"]
        if self.machine0 is not None and self.machine1 is not None:
            busy = self.machine1 - self.machine0
            out["machine_busy_cores"] = round(busy / self.elapsed, 2)
            # Processes other than the bench and the server's (other people's jobs, the kernel).
            out["others_cores"] = round(max(busy - bench_s - target_s, 0.0) / self.elapsed, 2)
        return out


async def run_then_drain(
    done: asyncio.Event, tally: Tally, window: Window, run_s: float, drain_s: float, draining: Callable[[], bool]
) -> None:
    """Wait up to ``run_s`` for ``done``, close the window and stop sending, then up to ``drain_s`` while
    ``draining()`` (``done`` is set as answers come)."""
    try:
        async with asyncio.timeout(run_s):
            await done.wait()
    except TimeoutError:
        pass
    window.close(tally)
    tally.sending = False
    try:  # drain: what is still in flight is answered outside the window
        async with asyncio.timeout(drain_s):
            while draining():
                done.clear()
                await done.wait()
    except TimeoutError:
        pass


def head_figures(tally: Tally, window: Window) -> dict[str, Any]:
    """The figures every run's result starts with: counts, elapsed time, throughput, latency, errors."""
    elapsed = window.elapsed if window.t1 else 0.0
    return {
        "requests": tally.sent,
        "responses": tally.responses,
        "elapsed_s": round(elapsed, 3),
        "throughput_per_s": round(tally.responses / elapsed, 1) if elapsed else 0.0,
        "latency_us": latency_summary(tally.total),
        "errors": dict(sorted(tally.errors.items())),
        "errors_total": sum(tally.errors.values()),
    }


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    try:
        loop = asyncio.get_running_loop()
        loop_name = f"{type(loop).__module__}.{type(loop).__name__}"
    except RuntimeError:
        loop_name = ""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "event_loop": loop_name,
    }
