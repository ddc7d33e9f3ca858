"""The portal's dashboard, balance and daily report (issue 13 items 5 and 8; seeds/000 "Dashboard", seeds/004
"Balance").

- ``GET /portal/dashboard?from=&to=&period=``: per currency, conversion and unique conversion (by
  ``invoice_id``), payment counts, gross and net amounts per day, week or month, and the refusal codes -- each
  an SVG chart drawn here (:mod:`http_front.portal.charts`) with its numbers in a table beside it. The
  figures are :class:`switch.orders.stats.OrderStats`' (their definitions are there), read through the orders
  service with the session's project.
- ``GET /portal/balance?from=&to=&page=``: receipts and withdrawals per currency from the operations' cash
  flow, and the movements, newest first.
- ``GET /portal/reports/daily?day=&tz=``: the day's CSV (:mod:`switch.reports.daily`), streamed as a download.

Days are calendar days in UTC (the report's time zone is a choice of its own); a range is at most
:data:`switch.orders.stats.MAX_DAYS` days, by default the last 30. Bad input answers the page again with 422
and what was wrong; nothing here changes anything, so every form is a GET and every role may read.
"""

from __future__ import annotations

import contextlib
import csv
from datetime import UTC, date, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import hdrs, web

from http_front.pages.component import secure
from http_front.portal.charts import Series, bar_chart, hbar_chart
from http_front.portal.guard import SESSION, PortalRuntime, portal_of, render
from switch.money import from_minor
from switch.orders.stats import MAX_DAYS, PERIODS, Bucket, Dashboard, StatsRange, StatsTooSlow
from switch.reports import zone

__all__ = ["NAV", "ROUTES"]

_DEFAULT_DAYS = 30
_MOVED = ("amount", "fee", "incoming", "reserve", "receivable")
_CHUNK = 64 * 1024  # bytes of CSV per write to the socket


class _Bad(ValueError):
    """A query value the page refuses, said to the user."""


def _runtime(request: web.Request) -> PortalRuntime:
    runtime = portal_of(request)
    assert runtime is not None  # the guard answered 404 otherwise
    return runtime


def _today(request: web.Request) -> date:
    return _runtime(request).portal.clock().astimezone(UTC).date()


def _day(raw: str, name: str) -> date:
    try:
        if len(raw) != 10:
            raise ValueError
        day = date.fromisoformat(raw)
        if not 1900 <= day.year <= 2999:  # a range around it must stay inside what dates can count (year 1..9999)
            raise ValueError
        return day
    except ValueError:
        raise _Bad(f"{name} must be a date, YYYY-MM-DD") from None


def _range(request: web.Request) -> tuple[StatsRange, dict[str, str]]:
    """The range the query asks for (the last 30 days by day when it asks none) and the form's values."""
    q = request.query
    today = _today(request)
    last = _day(q["to"], "To") if q.get("to") else today
    first = _day(q["from"], "From") if q.get("from") else last - timedelta(days=_DEFAULT_DAYS - 1)
    period = q.get("period") or "day"
    form = {"from": first.isoformat(), "to": last.isoformat(), "period": period if period in PERIODS else "day"}
    try:
        return StatsRange(first, last, period), form
    except ValueError as e:
        raise _Bad(str(e).capitalize() + ".") from None


def _presets(request: web.Request) -> list[tuple[str, str]]:
    """The seed's period menu: (label, query) for today, the last 7 and 30 days and the last 12 months."""
    today = _today(request)
    out = []
    for label, days, period in (("Today", 1, "day"), ("7 days", 7, "day"), ("30 days", 30, "day"),
                                ("12 months", MAX_DAYS - 1, "month")):  # fmt: skip
        first = today - timedelta(days=days - 1)
        out.append((label, f"from={first.isoformat()}&to={today.isoformat()}&period={period}"))
    return out


def _default_form(request: web.Request) -> dict[str, str]:
    today = _today(request)
    first = today - timedelta(days=_DEFAULT_DAYS - 1)
    return {"from": first.isoformat(), "to": today.isoformat(), "period": "day"}


def _too_slow(request: web.Request, e: StatsTooSlow) -> web.Response:
    response = render(request, "error.html", 503, title="Try a shorter range", message=str(e).capitalize() + ".")
    response.headers[hdrs.RETRY_AFTER] = "5"
    return response


# -- the dashboard -------------------------------------------------------------------------------


def _label(start: date, period: str) -> str:
    if period == "month":
        return start.strftime("%Y-%m")
    return start.strftime("%d %b")


def _pct(value: Decimal | None) -> str:
    return "—" if value is None else f"{value}%"


def _row(b: Bucket, period: str) -> dict[str, Any]:
    cur = b.currency
    if b.start is None:
        name = "Total"
    elif period == "week":
        name = f"week of {b.start.isoformat()}"
    elif period == "month":
        name = b.start.strftime("%Y-%m")
    else:
        name = b.start.isoformat()
    return {
        "name": name,
        "period": b.start.isoformat() if b.start is not None else "total",
        "payments": b.payments,
        "successful": b.successful,
        "failed": b.failed,
        "pending": b.pending,
        "conversion": _pct(b.conversion),
        "unique_payments": b.unique_payments,
        "unique_successful": b.unique_successful,
        "unique_conversion": _pct(b.unique_conversion),
        "gross_successful": from_minor(b.gross_successful, cur),
        "gross_canceled": from_minor(b.gross_canceled, cur),
        "charged": from_minor(b.charged, cur),
        "refunded": from_minor(b.refunded, cur),
        "net": from_minor(b.net, cur),
    }


def _currency_view(board: Dashboard, cur: str) -> dict[str, Any]:
    period = board.range.period
    buckets = board.periods.get(cur, [])
    labels = [_label(b.start, period) for b in buckets if b.start is not None]

    def money(v: int | float | Decimal) -> str:
        return from_minor(int(v), cur)

    charts = {
        "conversion": bar_chart(
            f"chart-conversion-{cur}",
            f"Conversion, {cur}",
            labels,
            [Series("Conversion", [b.conversion for b in buckets]),
             Series("Unique conversion", [b.unique_conversion for b in buckets])],
            percent=True,
        ),
        "counts": bar_chart(
            f"chart-counts-{cur}",
            f"Payments count, {cur}",
            labels,
            [Series("Successful", [b.successful for b in buckets]), Series("Failed", [b.failed for b in buckets]),
             Series("Pending", [b.pending for b in buckets])],
            stacked=True,
        ),
        "gross": bar_chart(
            f"chart-gross-{cur}",
            f"Gross payments amounts, {cur}",
            labels,
            [Series("Successful", [b.gross_successful for b in buckets]),
             Series("Canceled", [b.gross_canceled for b in buckets])],
            fmt=money,
        ),
        "net": bar_chart(
            f"chart-net-{cur}",
            f"Net payments amounts, {cur}",
            labels,
            [Series("Charged", [b.charged for b in buckets]), Series("Refunded", [b.refunded for b in buckets])],
            fmt=money,
        ),
    }  # fmt: skip
    return {
        "currency": cur,
        "rows": [_row(b, period) for b in buckets],
        "total": _row(board.totals[cur], period),
        "charts": charts,
    }


async def dashboard(request: web.Request) -> web.StreamResponse:
    try:
        rng, form = _range(request)
    except _Bad as e:
        return render(request, "dashboard_page.html", 422, form=_default_form(request), error=str(e), board=None,
                      currencies=[], refusals=None, periods=PERIODS, max_days=MAX_DAYS,
                      presets=_presets(request))  # fmt: skip
    try:
        board = await _runtime(request).orders.stats.dashboard(request[SESSION].project.id, rng)
    except StatsTooSlow as e:
        return _too_slow(request, e)
    refusals: list[dict[str, Any]] = [
        {"code": r.code or "none", "message": r.message or "refused before the issuer was asked", "count": r.count}
        for r in board.refusals
    ]
    # The chart names the codes only (a phone's width has no room for more); the table beside it says them.
    chart = hbar_chart("chart-refusals", "Refusal codes", [r["code"] for r in refusals], [r["count"] for r in refusals])
    return render(
        request,
        "dashboard_page.html",
        form=form,
        error=None,
        board=board,
        currencies=[_currency_view(board, c) for c in board.currencies],
        refusals={"rows": refusals, "chart": chart},
        periods=PERIODS,
        max_days=MAX_DAYS,
        presets=_presets(request),
    )


# -- the balance ---------------------------------------------------------------------------------


def _page_no(raw: str) -> int:
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 6 and int(raw) > 0 else 1


async def balance(request: web.Request) -> web.StreamResponse:
    report_day = _today(request).isoformat()
    try:
        rng, form = _range(request)
    except _Bad as e:
        return render(request, "dashboard_balance.html", 422, form=_default_form(request), error=str(e),
                      rows=[], movements=[], page=1, has_next=False, report_day=report_day)  # fmt: skip
    page = _page_no(request.query.get("page", "1"))
    try:
        got = await _runtime(request).orders.stats.balance(request[SESSION].project.id, rng, page=page)
    except StatsTooSlow as e:
        return _too_slow(request, e)
    rows = [
        {
            "currency": r.currency,
            "receipts_count": r.receipts_count,
            "withdrawals_count": r.withdrawals_count,
            **{k: from_minor(getattr(r, k), r.currency) for k in (
                "receipts", "fees", "withdrawals", "incoming", "reserve", "receivable")},
        }
        for r in got.rows
    ]  # fmt: skip
    movements = [
        {
            "created": m.created.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "order_id": m.order_id,
            "type": m.type,
            "currency": m.currency,
            "direction": "receipt" if m.amount > 0 else "withdrawal",
            **{k: from_minor(getattr(m, k), m.currency) for k in _MOVED},
        }
        for m in got.movements
    ]
    return render(request, "dashboard_balance.html", form=form, error=None, rows=rows, movements=movements,
                  page=got.page, has_next=got.has_next, report_day=report_day)  # fmt: skip


# -- the daily report ----------------------------------------------------------------------------


async def daily_report(request: web.Request) -> web.StreamResponse:
    q = request.query
    try:
        day = _day(q.get("day", ""), "Day")
        tz = zone(q.get("tz") or "UTC")
    except ValueError as e:
        return render(request, "error.html", 422, title="No such report", message=str(e).capitalize() + ".")
    project = request[SESSION].project
    name = f"isoswitch-{project.id}-{day.isoformat()}.csv"
    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: "text/csv; charset=utf-8",
            hdrs.CONTENT_DISPOSITION: f'attachment; filename="{name}"',
        }
    )
    secure(response)
    await response.prepare(request)
    out = _Writer()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180, as the command line writes it
    rows = _runtime(request).orders.stats.daily_report(project.id, day, tz)
    async with contextlib.aclosing(rows):  # a browser gone mid-download gives the connection back at once
        async for row in rows:
            writer.writerow(row)
            if out.size() >= _CHUNK:
                await response.write(out.take())
    await response.write(out.take())
    await response.write_eof()
    return response


class _Writer:
    """A text sink for :func:`write_csv` whose bytes are taken a chunk at a time."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0

    def write(self, s: str) -> int:
        self._parts.append(s)
        self._size += len(s)
        return len(s)

    def size(self) -> int:
        return self._size

    def take(self) -> bytes:
        data = "".join(self._parts).encode()
        self._parts, self._size = [], 0
        return data


#: (method, path, handler, least role): every page here only reads, so every role may open it.
ROUTES = (
    ("GET", "/portal/dashboard", dashboard, "viewer"),
    ("GET", "/portal/balance", balance, "viewer"),
    ("GET", "/portal/reports/daily", daily_report, "viewer"),
)

#: (label, href, least role)
NAV = (
    ("Dashboard", "/portal/dashboard", "viewer"),
    ("Balance", "/portal/balance", "viewer"),
)
