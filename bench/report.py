"""``--report DIR``: a bench result as a directory a person reads: charts, a page, the JSON.

:func:`write_report` takes a result document (``bench iso``, ``bench rest``,
or the suite's summary with its runs' documents under ``results``) and writes::

    DIR/result.json      the document, per-interval series included
    DIR/throughput.png   answers per second, interval by interval
    DIR/latency.png      p50 and p99 per interval
    DIR/percentiles.png  latency by percentile over the whole window (HDR plot, 1/(1-p) axis)
    DIR/index.html       parameters, the summary table and the charts: no script, no CDN

Every run of the document (direct; full and bare; the suite's scenarios) is
one colour on every chart. The charts are drawn with matplotlib's ``Figure``
and its Agg canvas directly (no pyplot), so no global backend is chosen and
no window can open.

>>> curve = percentile_curve(_hist(range(1, 101)))  # 1 .. 100 µs
>>> [(x, v) for x, v in curve if x in (1.0, 10.0, 100.0)]  # the minimum, p90, the maximum
[(1.0, 1), (10.0, 90), (100.0, 100)]
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from bench.measure import INTERVAL_S
from bench.stats import fmt_counts, fmt_rate, fmt_us, new_histogram, write_result

__all__ = ["CHARTS", "Run", "percentile_curve", "report_runs", "write_report"]

# File name -> what the page says under it.
CHARTS: dict[str, str] = {
    "throughput.png": "Answers per second, each point one interval of the measured window.",
    "latency.png": "p50 (dashed) and p99 (solid) latency of each interval.",
    "percentiles.png": "Latency by percentile over the whole measured window (HDR histogram).",
}

_SIZE_IN = (8.0, 3.6)
_DPI = 80  # 640 x 288 pixels: readable, and a few tens of kB per chart
_SHORT = 0.5  # an interval shorter than this share of INTERVAL_S (the window's last) is left off the charts
_PERCENTILE_TICKS = {2: "50%", 10: "90%", 100: "99%", 1_000: "99.9%", 10_000: "99.99%"}
_PERCENTILE_TICKS |= {100_000: "99.999%", 1_000_000: "99.9999%", 10_000_000: "99.99999%"}


@dataclass(frozen=True, slots=True)
class Run:
    """One measured run of a document, as the report shows it."""

    label: str
    figures: Mapping[str, Any]
    parameters: Mapping[str, Any]
    command: str = ""
    notes: dict[str, str] = field(default_factory=dict)  # e.g. the suite's target and verdict


def report_runs(doc: Mapping[str, Any]) -> list[Run]:
    """The runs of a result document; ValueError when it is no bench result.

    >>> report_runs({"benchmark": "other"})
    Traceback (most recent call last):
    ...
    ValueError: not a bench result (benchmark: 'other')
    """
    kind = doc.get("benchmark")
    if kind == "iso8583":
        suite = doc.get("suite") or {}
        notes = {"target": suite["target"]} if "target" in suite else {}
        label = suite.get("scenario") or doc["mode"]
        return [Run(label, doc["figures"], doc["parameters"], doc.get("command", ""), notes)]
    if kind == "rest":
        runs = [Run("full", doc["figures"], doc["parameters"], doc.get("command", ""))]
        bare = doc.get("bare") or {}
        if "figures" in bare:
            params = {**doc["parameters"], "url": bare.get("url", "")}
            runs.append(Run("bare", bare["figures"], params, doc.get("command", "") + " (bare path)"))
        return runs
    if kind == "suite":
        verdicts = {r["scenario"]: r for r in doc.get("runs", [])}
        out: list[Run] = []
        for result in doc.get("results", []):
            for run in report_runs(result):
                summary = verdicts.get(run.label, {})
                if "verdict" in summary:
                    run.notes["verdict"] = summary["verdict"]
                out.append(run)
        return out
    raise ValueError(f"not a bench result (benchmark: {kind!r})")


def _hist(values: Iterable[int]) -> HdrHistogram:
    h = new_histogram()
    for v in values:
        h.record_value(v)
    return h


def percentile_curve(hist: HdrHistogram) -> list[tuple[float, int]]:
    """(1/(1-p), latency) pairs, twenty a decade, from the fastest answer (x = 1) to the slowest (x = count)."""
    count = hist.get_total_count()
    if not count:
        return []
    xs = [10 ** (k / 20) for k in range(int(20 * math.log10(count)) + 1)]
    xs = [x for x in xs if x < count * (1 - 1e-9)]  # the last point is the maximum itself
    pcts = [100.0 * (1.0 - 1.0 / x) for x in xs]
    values = hist.get_percentile_to_value_dict(pcts)
    return [(x, values[p]) for x, p in zip(xs, pcts, strict=True)] + [(float(count), hist.get_max_value())]


# -- charts -------------------------------------------------------------------------------


def _points(run: Run) -> list[Mapping[str, Any]]:
    series = run.figures.get("series") or {}
    interval = series.get("interval_s", INTERVAL_S)
    return [p for p in series.get("points", []) if p["length_s"] >= _SHORT * interval]


def _axes(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=_SIZE_IN, dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig: Figure, ax: Axes, path: Path, empty: bool) -> None:
    if empty:  # no answers, or a result written before results had a series
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no data in this result", ha="center", va="center", transform=ax.transAxes)
    elif ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    # No "Software" metadata: the same chart gives the same bytes whatever matplotlib wrote it.
    fig.savefig(path, format="png", metadata={"Software": None})


def _ms(us: float, _pos: object = None) -> str:
    return f"{us / 1000:g}"


def _throughput_chart(runs: Sequence[Run], path: Path) -> None:
    fig, ax = _axes("Throughput per interval")
    empty = True
    for i, run in enumerate(runs):
        pts = _points(run)
        if not pts:
            continue
        empty = False
        x = [p["t_s"] + p["length_s"] for p in pts]
        ax.plot(x, [p["throughput_per_s"] for p in pts], marker="o", ms=3, color=f"C{i}", label=run.label)
    ax.set_xlabel("seconds into the measured window")
    ax.set_ylabel("answers / s")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    _save(fig, ax, path, empty)


def _latency_chart(runs: Sequence[Run], path: Path) -> None:
    fig, ax = _axes("p50 and p99 latency per interval")
    values: list[float] = []
    for i, run in enumerate(runs):
        pts = _points(run)
        x = [p["t_s"] + p["length_s"] for p in pts]
        for key, style in (("p99", "-"), ("p50", "--")):
            y = [p[key] for p in pts if p["responses"]]
            if not y:
                continue
            xs = [t for t, p in zip(x, pts, strict=True) if p["responses"]]
            ax.plot(xs, y, style, marker="o", ms=3, color=f"C{i}", label=f"{run.label} {key}")
            values += y
    if values and max(values) > 30 * max(min(values), 1):
        ax.set_yscale("log")  # runs an order of magnitude apart (the suite's) stay readable
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(_ms))
    ax.set_xlabel("seconds into the measured window")
    ax.set_ylabel("latency (ms)")
    ax.set_xlim(left=0)
    _save(fig, ax, path, not values)


def _percentile_chart(runs: Sequence[Run], path: Path) -> None:
    fig, ax = _axes("Latency by percentile")
    top = 1.0
    for i, run in enumerate(runs):
        encoded = run.figures.get("latency_us", {}).get("hdr")
        if not encoded:
            continue
        curve = percentile_curve(HdrHistogram.decode(encoded))
        if not curve:
            continue
        top = max(top, curve[-1][0])
        ax.plot([x for x, _ in curve], [v for _, v in curve], color=f"C{i}", label=run.label)
    ax.set_xscale("log")
    ticks = [t for t in _PERCENTILE_TICKS if t <= top * 1.01]
    ax.set_xticks(ticks, [_PERCENTILE_TICKS[t] for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(1, max(top, 2))
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(_ms))
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    _save(fig, ax, path, top == 1.0)


# -- the page -------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; vertical-align: top; }
th:first-child, td:first-child, table.kv td { text-align: left; }
th { background: #f3f3f3; }
code { background: #f6f6f6; padding: 0.1em 0.3em; word-break: break-all; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""


def _e(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, Mapping):
        value = ", ".join(f"{k}={v}" for k, v in value.items())
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_rows(runs: Sequence[Run]) -> tuple[list[str], list[list[Any]]]:
    headers = ["run", "answers", "seconds", "throughput", "p50", "p90", "p99", "p99.9", "max", "mean", "errors"]
    headers += ["codes", "bench CPU / answer", "target CPU / answer", "other processes"]
    notes = sorted({k for r in runs for k in r.notes})
    rows = []
    for r in runs:
        f = r.figures
        lat = f["latency_us"]
        cpu = f.get("cpu", {})
        codes = f.get("response_codes", f.get("status_codes", {}))
        target_cpu = cpu.get("target_us_per_response")
        others = cpu.get("others_cores")
        rows.append(
            [
                r.label,
                f"{f['responses']:,}",
                f"{f['elapsed_s']:.2f}",
                fmt_rate(f["throughput_per_s"]),
                *(fmt_us(lat[k]) for k in ("p50", "p90", "p99", "p99.9", "max", "mean")),
                fmt_counts(f["errors"]),
                fmt_counts(codes),
                f"{cpu['bench_us_per_response']:.1f} µs" if "bench_us_per_response" in cpu else None,
                f"{target_cpu:.1f} µs" if target_cpu is not None else None,
                f"{others:.2f} cores" if others is not None else None,
                *(r.notes.get(k) for k in notes),
            ]
        )
    return headers + notes, rows


def _parameter_rows(runs: Sequence[Run]) -> list[list[Any]]:
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r.parameters if k not in keys]
    if all(r.parameters == runs[0].parameters for r in runs):
        return [[k, runs[0].parameters[k]] for k in keys]
    return [[k, *(r.parameters.get(k) for r in runs)] for k in keys]


def _page(doc: Mapping[str, Any], runs: Sequence[Run], json_name: str) -> str:
    kind = doc.get("benchmark", "")
    title = f"{kind} bench, {', '.join(r.label for r in runs)}, {doc.get('date', '')}"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    if doc.get("command"):
        parts.append(f"<p>Command: <code>{_e(doc['command'])}</code></p>")
    parts.append("<h2>Summary</h2>")
    headers, rows = _summary_rows(runs)
    parts.append(_table(headers, rows))
    extra = []
    if doc.get("ratio"):
        extra.append(["full / bare", doc["ratio"]])
    for name, t in (doc.get("targets") or {}).items():
        extra.append([f"target {name}", f"{t['target']}: {t['value']} ({'met' if t['met'] else 'MISSED'})"])
    if extra:
        parts.append(_table(["", ""], extra, "kv"))
    parts.append("<h2>Charts</h2>")
    for name, caption in CHARTS.items():
        alt = caption.split(",")[0].rstrip(".")
        parts.append(
            f'<figure><img src="{name}" alt="{_e(alt)}" width="640" height="288">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    parts.append("<h2>Parameters</h2>")
    multi = len(runs) > 1 and any(r.parameters != runs[0].parameters for r in runs)
    parts.append(_table(["parameter", *([r.label for r in runs] if multi else ["value"])], _parameter_rows(runs), "kv"))
    commands = [(r.label, r.command) for r in runs if r.command and r.command != doc.get("command")]
    if commands:
        parts.append(_table(["run", "equivalent command"], commands, "kv"))
    machine = doc.get("machine") or next((r.get("machine") for r in doc.get("results", [])), None)
    if machine:
        parts.append("<h2>Machine</h2>")
        parts.append(_table(["", ""], list(machine.items()), "kv"))
    parts.append(f'<p>The whole result, with the encoded histograms: <a href="{json_name}">{json_name}</a>.</p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(doc: Mapping[str, Any], directory: Path) -> Path:
    """Write the report of ``doc`` into ``directory`` (created); the path of its ``index.html``."""
    runs = report_runs(doc)
    directory.mkdir(parents=True, exist_ok=True)
    json_name = "result.json"
    write_result(doc, directory / json_name)
    _throughput_chart(runs, directory / "throughput.png")
    _latency_chart(runs, directory / "latency.png")
    _percentile_chart(runs, directory / "percentiles.png")
    index = directory / "index.html"
    index.write_text(_page(doc, runs, json_name), encoding="utf-8")
    return index
