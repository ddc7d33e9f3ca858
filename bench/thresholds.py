"""Pass/fail thresholds on a bench result (the k6 convention: a missed threshold makes the run exit 99).

A threshold is ``METRIC OP VALUE[UNIT]``:

- latency: ``p50``, ``p90``, ``p99``, ``p99.9``, ``max``, ``mean``, in ``us``
  (or ``µs``), ``ms`` (the default) or ``s``;
- ``rate`` (or ``throughput``): responses a second, ``/s`` optional;
- ``errors``: the count of errors in the window;
- ``slo_rate``: with a rate curve (``bench rest --rates``), the highest
  offered rate whose p99 met the SLO.

``OP`` is one of ``<``, ``<=``, ``>``, ``>=``.

>>> t = parse_threshold("p99<25ms")
>>> t.metric, t.op, t.limit, t.check(24_000), t.check(25_000)
('p99', '<', 25000.0, True, False)
>>> parse_threshold("rate>=5000/s").limit, parse_threshold("p99.9 <= 1.5s").limit
(5000.0, 1500000.0)
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "THRESHOLDS_MISSED",
    "Threshold",
    "apply_thresholds",
    "format_verdicts",
    "judge",
    "parse_threshold",
]

THRESHOLDS_MISSED: Final = 99  # the exit status when one is missed (k6's)

_LATENCY = ("p50", "p90", "p99", "p99.9", "max", "mean")
_ALIASES = {"throughput": "rate", "error": "errors", "p999": "p99.9"}
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_UNITS_US = {"us": 1.0, "µs": 1.0, "ms": 1_000.0, "s": 1_000_000.0, "": 1_000.0}
_SYNTAX = re.compile(r"^\s*([a-z_][a-z0-9_.]*)\s*(<=|>=|<|>)\s*([0-9][0-9_]*(?:\.[0-9]+)?)\s*([a-zµ/]*)\s*$")


@dataclass(frozen=True, slots=True)
class Threshold:
    text: str  # as given
    metric: str  # p50 .. max, mean, rate, errors, slo_rate
    op: str
    limit: float  # in the metric's unit: µs for latency, per second for rates, a count for errors

    def check(self, value: float) -> bool:
        return _OPS[self.op](value, self.limit)


def parse_threshold(text: str) -> Threshold:
    """Parse one threshold; ValueError says what is wrong."""
    m = _SYNTAX.match(text.lower())
    if m is None:
        raise ValueError(f"expected METRIC<VALUE (e.g. p99<25ms, rate>5000, errors<1), got {text!r}")
    metric, op, number, unit = m.groups()
    metric = _ALIASES.get(metric, metric)
    value = float(number.replace("_", ""))
    if metric in _LATENCY:
        if unit not in _UNITS_US:
            raise ValueError(f"{text!r}: a latency is in us, ms or s, not {unit!r}")
        value *= _UNITS_US[unit]
    elif metric in ("rate", "slo_rate"):
        if unit not in ("", "/s"):
            raise ValueError(f"{text!r}: a rate is a number a second (e.g. rate>5000 or rate>5000/s)")
    elif metric == "errors":
        if unit:
            raise ValueError(f"{text!r}: errors is a count, without a unit")
    else:
        raise ValueError(f"{text!r}: unknown metric {metric!r} (p50 p90 p99 p99.9 max mean rate errors slo_rate)")
    return Threshold(text.strip(), metric, op, value)


def _value(t: Threshold, figures: Mapping[str, Any], slo_rate: float | None) -> float | None:
    if t.metric in _LATENCY:
        return float(figures["latency_us"][t.metric])
    if t.metric == "rate":
        return float(figures["throughput_per_s"])
    if t.metric == "errors":
        return float(figures["errors_total"])
    return slo_rate


def judge(
    thresholds: Sequence[Threshold], figures: Mapping[str, Any], *, slo_rate: float | None = None
) -> list[dict[str, Any]]:
    """Each threshold against a run's ``figures``: ``{"threshold", "metric", "value", "pass"}``.

    A threshold that cannot be judged (``slo_rate`` without a curve, or no
    rate of the curve met the SLO) fails, with value None.

    >>> figs = {"latency_us": {"p99": 30_000}, "throughput_per_s": 6000.0, "errors_total": 0}
    >>> [v["pass"] for v in judge([parse_threshold("p99<25ms"), parse_threshold("rate>5000")], figs)]
    [False, True]
    """
    out = []
    for t in thresholds:
        value = _value(t, figures, slo_rate)
        ok = value is not None and t.check(value)
        out.append({"threshold": t.text, "metric": t.metric, "value": value, "pass": ok})
    return out


def format_verdicts(verdicts: Sequence[Mapping[str, Any]]) -> list[str]:
    """One report line per threshold, ``pass`` or ``FAIL`` with the measured value."""
    lines = []
    for v in verdicts:
        value = v["value"]
        if value is None:
            shown = "n/a"
        elif v["metric"] in _LATENCY:
            shown = f"{value / 1000:.3g} ms"
        elif v["metric"] == "errors":
            shown = f"{value:,.0f}"
        else:
            shown = f"{value:,.0f}/s"
        lines.append(f"  threshold       {v['threshold']:<20} {'pass' if v['pass'] else 'FAIL'} ({shown})")
    return lines


def apply_thresholds(doc: dict[str, Any], thresholds: Sequence[Threshold]) -> bool:
    """Judge ``doc["figures"]`` (and a curve's ``slo_rate``), store the verdicts as ``doc["thresholds"]``;
    True when all pass (or there are none)."""
    if not thresholds:
        return True
    curve = doc.get("curve")
    verdicts = judge(thresholds, doc["figures"], slo_rate=curve.get("slo_rate") if curve else None)
    doc["thresholds"] = verdicts
    return all(v["pass"] for v in verdicts)
