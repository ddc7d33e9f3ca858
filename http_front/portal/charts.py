"""Bar charts drawn on the server as inline SVG (issue 13 item 5): no script, nothing from another host.

The pages' CSP allows only this origin's stylesheet, so nothing here carries a ``style`` attribute: the colours
are classes (``series-0`` ..) that portal.css fills. Every chart is an ``img`` with a title, each bar has a
``<title>`` (its figure, shown on hover), and the page puts the same numbers in a table beside it -- the table
is what a screen reader reads and what a test compares.

>>> svg = bar_chart("c1", "Payments", ["1 Dec", "2 Dec"], [Series("Paid", [3, 0])])
>>> 'role="img"' in svg and "<title id=\\"c1-title\\">Payments</title>" in svg and svg.count("class=\\"bar ") == 2
True
>>> nice_ceiling(0), nice_ceiling(7), nice_ceiling(13), nice_ceiling(260), nice_ceiling(99.5)
(1, 10, 20, 500, 100)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

__all__ = ["Series", "bar_chart", "hbar_chart", "nice_ceiling"]

Number = int | float | Decimal

_W, _H = 640, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 12, 30, 40
_MAX_LABELS = 8
_MAX_BAR = 48  # a range of one period draws bars, not walls


@dataclass(frozen=True, slots=True)
class Series:
    """One row of bars: its legend, its values (None: no figure, e.g. a conversion of nothing)."""

    name: str
    values: Sequence[Number | None]


def nice_ceiling(value: Number) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above ``value`` (1 for nothing): the top of an axis."""
    v = float(value)
    if v <= 1:
        return 1
    power = 10 ** math.floor(math.log10(v))
    for step in (1, 2, 5, 10):
        if step * power >= v:
            return int(step * power)
    return int(10 * power)  # pragma: no cover (the loop ends at 10)


def _plain(v: Number) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _axis(top: int, fmt: Callable[[Number], str]) -> list[str]:
    plot_h = _H - _TOP - _BOTTOM
    out = []
    for i in range(5):
        y = _TOP + plot_h - plot_h * i / 4
        value = top * i / 4
        label = fmt(int(value) if float(value).is_integer() else value)
        out.append(f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{_W - _RIGHT}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    return out


def _legend(series: Sequence[Series]) -> list[str]:
    out, x = [], _LEFT
    for i, s in enumerate(series):
        out.append(f'<rect class="series-{i}" x="{x}" y="8" width="12" height="12"/>')
        out.append(f'<text class="legend" x="{x + 16}" y="18">{escape(s.name)}</text>')
        x += 28 + 9 * len(s.name)  # room for the name at the 16 px a narrow screen draws it
    return out


def _x_labels(labels: Sequence[str], slot: float) -> list[str]:
    every = max(1, math.ceil(len(labels) / _MAX_LABELS))
    out = []
    for i, label in enumerate(labels):
        if i % every == 0:
            x = _LEFT + slot * (i + 0.5)
            y = _H - _BOTTOM + 16
            out.append(f'<text class="tick" x="{x:.1f}" y="{y}" text-anchor="middle">{escape(label)}</text>')
    return out


def bar_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    stacked: bool = False,
    percent: bool = False,
    fmt: Callable[[Number], str] = _plain,
) -> Markup:
    """Bars per label, the series side by side (or ``stacked``); ``percent``: an axis of 0..100."""
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    values = [[v or 0 for v in s.values] for s in series]
    if stacked:
        peak = max((sum(col) for col in zip(*values, strict=True)), default=0)
    else:
        peak = max((v for row in values for v in row), default=0)
    top = 100 if percent else nice_ceiling(peak)
    axis_fmt = (lambda v: f"{v:g}%") if percent else fmt
    slot = plot_w / max(1, len(labels))
    width = min(_MAX_BAR, slot * 0.8 / (1 if stacked else max(1, len(series))))
    group = width * (1 if stacked else len(series))
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {_W} {_H}" role="img"'
        f' aria-labelledby="{escape(chart_id)}-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        *_axis(top, axis_fmt),
        *_legend(series),
    ]
    for i, label in enumerate(labels):
        base: float = _TOP + plot_h
        for k, s in enumerate(series):
            raw = s.values[i]
            v = float(raw or 0)
            h = plot_h * v / top if top else 0
            x = _LEFT + slot * i + (slot - group) / 2 + (0 if stacked else width * k)  # the group centred
            y = base - h
            shown = "no figure" if raw is None else (f"{raw}%" if percent else fmt(raw))
            tip = escape(f"{label} · {s.name}: {shown}")
            parts.append(
                f'<rect class="bar series-{k}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}">'
                f"<title>{tip}</title></rect>"
            )
            if stacked:
                base = y
    parts += _x_labels(labels, slot)
    parts.append(f'<line class="axis" x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_W - _RIGHT}" y2="{_TOP + plot_h}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # every text above went through escape()


def hbar_chart(chart_id: str, title: str, labels: Sequence[str], values: Sequence[int]) -> Markup:
    """One horizontal bar per label (the refusal codes), the longest the largest."""
    row = 26
    height = _TOP + row * max(1, len(labels)) + 10
    left, plot_w = 180, _W - 180 - 60
    top = max(values, default=0) or 1
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {_W} {height}" role="img"'
        f' aria-labelledby="{escape(chart_id)}-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
    ]
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = _TOP + row * i
        w = plot_w * v / top
        short = label if len(label) <= 26 else label[:25] + "…"
        parts.append(f'<text class="tick" x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(short)}</text>')
        parts.append(
            f'<rect class="bar series-{i % 4}" x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 8}">'
            f"<title>{escape(f'{label}: {v}')}</title></rect>"
        )
        parts.append(f'<text class="tick" x="{left + w + 6:.1f}" y="{y + 15}">{v}</text>')
    if not labels:
        parts.append(f'<text class="legend" x="{left}" y="{_TOP + 15}">No refusals in this range</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
