"""What a bench run counts: the tally of the measured window, its clocks, the pacer, the machine.

Only what happens inside the window (after the warmup, before the end)
counts. CPU time is read for the bench process, the target process when its
pid is known, and the whole machine, so a run on a box that something else
was also using shows it.

>>> error_kind(RequestTimeout("x")), error_kind(DestinationUnavailable("x")), error_kind(KeyError("x"))
('timeout', 'not_ready', 'KeyError')
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from typing import Any

from hdrh.histogram import HdrHistogram

from bench.stats import new_histogram
from switch.codec import DecodeError, EncodeError
from switch.errors import (
    DestinationUnavailable,
    DuplicateRequest,
    LinkBusy,
    LinkClosed,
    LinkNotReady,
    RequestTimeout,
)
from switch.framing import FramingError

__all__ = ["BenchError", "Pacer", "Tally", "Window", "error_kind", "machine_info"]


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
    """Figures of the measured window, shared by every connection or worker of a run."""

    __slots__ = (
        "hist",
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
    )

    def __init__(self, max_requests: int) -> None:
        self.hist: HdrHistogram = new_histogram()  # µs
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
    """Wall and CPU clocks at the start and the end of the measured window."""

    def __init__(self, target_pid: int | None) -> None:
        self.target_pid = target_pid
        self.t0 = self.t1 = 0.0
        self.cpu0 = self.cpu1 = 0.0
        self.target0: float | None = None
        self.target1: float | None = None
        self.machine0: float | None = None
        self.machine1: float | None = None
        self.loadavg = ""

    def open(self, tally: Tally) -> None:
        if tally.measuring or self.t1:
            return
        tally.measuring = True
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.target0 = _proc_cpu_seconds(self.target_pid)
        self.machine0 = _machine_busy_seconds()

    def close(self, tally: Tally) -> None:
        if not tally.measuring:
            return
        tally.measuring = False
        self.t1 = time.perf_counter()
        self.cpu1 = time.process_time()
        self.target1 = _proc_cpu_seconds(self.target_pid)
        self.machine1 = _machine_busy_seconds()
        try:
            self.loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())
        except OSError:
            pass

    @property
    def elapsed(self) -> float:
        return max(self.t1 - self.t0, 1e-9)

    def cpu(self, responses: int) -> dict[str, float | str | None]:
        """CPU seconds and µs per response of the bench, the target, and everything else on the box."""
        per = max(responses, 1)
        bench_s = self.cpu1 - self.cpu0
        out: dict[str, float | str | None] = {
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
        if self.machine0 is not None and self.machine1 is not None:
            busy = self.machine1 - self.machine0
            out["machine_busy_cores"] = round(busy / self.elapsed, 2)
            # Processes other than the bench and the target (other people's jobs, the kernel).
            out["others_cores"] = round(max(busy - bench_s - target_s, 0.0) / self.elapsed, 2)
        return out


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
