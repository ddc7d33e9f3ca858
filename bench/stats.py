"""Latency histograms and the small formatting helpers of the bench reports.

Latencies are recorded in microseconds into an HDR histogram (3 significant
digits, 1 µs .. 60 s), so percentiles stay exact to 0.1 % however long the
run, at a fixed memory cost.

>>> h = new_histogram()
>>> for us in (100, 200, 300, 400, 10_000):
...     _ = h.record_value(us)
>>> s = latency_summary(h)
>>> s["count"], s["p50"], s["max"]
(5, 300, 10007)
>>> fmt_us(850), fmt_us(1_234), fmt_us(2_500_000)
('850 µs', '1.23 ms', '2.50 s')
>>> fmt_rate(12_345.6)
'12,346/s'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from hdrh.histogram import HdrHistogram

__all__ = [
    "PERCENTILES",
    "new_histogram",
    "latency_summary",
    "fmt_us",
    "fmt_rate",
    "fmt_counts",
    "fmt_cpu",
    "fmt_processes",
    "render_table",
    "write_result",
]

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3

# Report key -> percentile.
PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}


def new_histogram() -> HdrHistogram:
    """An empty latency histogram in microseconds."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def latency_summary(hist: HdrHistogram) -> dict[str, int | float | str]:
    """Count, min, mean, p50/p90/p99/p99.9, max (µs) and the encoded histogram (for merging later)."""
    count = hist.get_total_count()
    out: dict[str, int | float | str] = {"count": count, "unit": "us"}
    if count == 0:
        for key in ("min", "mean", *PERCENTILES, "max"):
            out[key] = 0
        out["hdr"] = ""
        return out
    out["min"] = hist.get_min_value()
    out["mean"] = round(hist.get_mean_value(), 1)
    for key, pct in PERCENTILES.items():
        out[key] = hist.get_value_at_percentile(pct)
    out["max"] = hist.get_max_value()
    out["stddev"] = round(hist.get_stddev(), 1)
    encoded = hist.encode()
    out["hdr"] = encoded.decode("ascii") if isinstance(encoded, bytes) else str(encoded)
    return out


def fmt_us(us: float) -> str:
    """A latency in µs, ms or s with three significant digits."""
    if us < 1_000:
        return f"{us:.0f} µs"
    if us < 1_000_000:
        return f"{us / 1_000:.3g} ms" if us < 100_000 else f"{us / 1_000:.0f} ms"
    return f"{us / 1_000_000:.2f} s"


def fmt_rate(per_s: float) -> str:
    return f"{per_s:,.0f}/s"


def fmt_counts(counts: Mapping[str, int]) -> str:
    """``{"05": 3, "00": 40}`` -> ``'00=40 05=3'``; ``'none'`` when empty."""
    if not counts:
        return "none"
    return " ".join(f"{k}={v}" for k, v in sorted(counts.items()))


def fmt_cpu(cpu: Mapping[str, Any]) -> str:
    """The ``cpu`` figures of a result: the bench's, the target's and the machine's CPU time."""
    line = f"bench {cpu['bench_s']:.2f} s ({cpu['bench_us_per_response']:.1f} µs/response)"
    if cpu["target_s"] is not None:
        line += f", target {cpu['target_s']:.2f} s ({cpu['target_us_per_response']:.1f} µs/response)"
    if cpu["machine_busy_cores"] is not None:
        line += f"; machine {cpu['machine_busy_cores']:.2f} cores busy, {cpu['others_cores']:.2f} by other processes"
    return line


def fmt_processes(cpu: Mapping[str, Any]) -> str | None:
    """The ``cpu.processes`` figures of a result on one line (µs of CPU per response); None without them.

    >>> fmt_processes({"processes": {"front": {"us_per_response": 400.0, "cores": 0.9},
    ...                              "sum": {"us_per_response": 600.0, "cores": 1.3}}})
    'front 400 µs (0.90 cores), sum 600 µs (1.30 cores) of CPU per response'
    """
    procs = cpu.get("processes")
    if not procs:
        return None
    parts = [f"{name} {g['us_per_response']:,.0f} µs ({g['cores']:.2f} cores)" for name, g in procs.items()]
    return ", ".join(parts) + " of CPU per response"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table, columns right-aligned but the first.

    >>> print(render_table(["run", "rate"], [["direct", "9/s"], ["via", "10/s"]]))
    run     rate
    ------  ----
    direct   9/s
    via     10/s
    """
    widths = [max(len(str(r[i])) for r in (headers, *rows)) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def write_result(result: Mapping[str, Any], path: Path) -> Path:
    """Write a result document as indented JSON, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    return path
