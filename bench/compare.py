"""``isoswitch bench compare A.json B.json``: how B's figures stand against A's, as ratios B/A.

Any result document can be compared: ``bench iso`` (one run, named after its
mode), ``bench rest`` (``full``, and ``bare`` when it ran) and the suite's
summary (one run per scenario). Two documents of one run each are compared
whatever their runs are called (direct against via-switch, say); otherwise
runs are paired by name, and those on one side only are listed.

For each pair, one line per metric: throughput, the latency percentiles and
the errors, with A's and B's values and B/A (``n/a`` when A's is 0). Above 1
is better for throughput and worse for latency and errors.

>>> a = {"benchmark": "suite", "runs": [{"scenario": "direct", "throughput_per_s": 100.0,
...      "latency_us": {"p50": 1000, "p90": 2000, "p99": 4000, "p99.9": 8000, "max": 9000}, "errors": {}}]}
>>> metrics_of(a)["direct"]["p99"], metrics_of(a)["direct"]["errors"]
(4000, 0)
>>> ratio(150.0, 100.0), ratio(3, 0), ratio(0, 0)
('1.500', 'n/a', 'n/a')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.stats import fmt_rate, fmt_us, render_table

__all__ = ["METRICS", "compare", "describe", "metrics_of", "ratio"]

# Metric -> how its values print.
METRICS: dict[str, str] = {
    "throughput": "rate",
    "p50": "us",
    "p90": "us",
    "p99": "us",
    "p99.9": "us",
    "max": "us",
    "errors": "count",
}

Metrics = dict[str, float]


def _from_figures(f: Mapping[str, Any]) -> Metrics:
    lat = f["latency_us"]
    errors = f.get("errors_total")
    if errors is None:
        errors = sum(f.get("errors", {}).values())
    out: Metrics = {"throughput": f["throughput_per_s"]}
    out |= {k: lat[k] for k in ("p50", "p90", "p99", "p99.9", "max")}
    out["errors"] = errors
    return out


def metrics_of(doc: Mapping[str, Any]) -> dict[str, Metrics]:
    """Run name -> its metrics, for any result document; ValueError when it is no bench result."""
    kind = doc.get("benchmark")
    if kind == "iso8583":
        name = (doc.get("suite") or {}).get("scenario") or doc.get("mode", "iso8583")
        return {name: _from_figures(doc["figures"])}
    if kind == "rest":
        out = {"full": _from_figures(doc["figures"])}
        bare = doc.get("bare") or {}
        if "figures" in bare:
            out["bare"] = _from_figures(bare["figures"])
        return out
    if kind == "suite":
        return {r["scenario"]: _from_figures(r) for r in doc.get("runs", []) if "error" not in r}
    raise ValueError(f"not a bench result (benchmark: {kind!r})")


def describe(doc: Mapping[str, Any]) -> str:
    """One line saying what a document is: its kind, runs and date."""
    runs = ", ".join(metrics_of(doc)) or "no runs"
    return f"{doc.get('benchmark')} ({runs}), {doc.get('date', 'undated')}"


def ratio(b: float, a: float) -> str:
    return f"{b / a:.3f}" if a else "n/a"


def _fmt(kind: str, value: float) -> str:
    if kind == "rate":
        return fmt_rate(value)
    if kind == "us":
        return fmt_us(value)
    return f"{value:,.0f}"


def compare(a: Mapping[str, Any], b: Mapping[str, Any], *, a_name: str = "A", b_name: str = "B") -> str:
    """The comparison as text: a header, then per pair of runs one line per metric."""
    ma, mb = metrics_of(a), metrics_of(b)
    single = len(ma) == 1 and len(mb) == 1
    if single:
        ((na, ra),) = ma.items()
        ((nb, rb),) = mb.items()
        pairs = [(na if na == nb else f"{na} -> {nb}", ra, rb)]
    else:
        pairs = [(name, ma[name], mb[name]) for name in ma if name in mb]
    lines = [f"A  {a_name}: {describe(a)}", f"B  {b_name}: {describe(b)}"]
    for title, ra, rb in pairs:
        rows = [[m, _fmt(kind, ra[m]), _fmt(kind, rb[m]), ratio(rb[m], ra[m])] for m, kind in METRICS.items()]
        lines += ["", title, render_table(["metric", "A", "B", "B/A"], rows)]
    if not pairs:
        lines += ["", "no runs in common"]
    if not single:
        for side, mine, theirs in (("A", ma, mb), ("B", mb, ma)):
            only = [n for n in mine if n not in theirs]
            if only:
                lines.append(f"only in {side}: {', '.join(only)}")
    return "\n".join(lines)
