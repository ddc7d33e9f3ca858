"""The daily report of a project (issue 12 item 8; seeds/002: "Daily transactional reports are also available on
the portal"): every order and every operation of one day, then the day's totals per currency, as CSV rows.

The day is ``[00:00, 24:00)`` of a calendar date in a time zone (UTC unless asked), by ``created``. Three kinds
of row, told apart by the first column, ``record``:

- ``order``: an order created that day, as it stands now (status, amount asked, charged, refunded);
- ``operation``: an operation created that day (of an order of that day or older: a refund of last week's
  sale is in today's books), with the cash flow it booked (``cash_amount``, ``fee``, ``incoming``,
  ``reserve``, ``receivable``: :mod:`switch.orders.cashflow`). Operations still pending (their outcome not
  known yet: the API never shows them either) are left out;
- ``total``: per currency and mode, one ``orders`` row (count, amounts asked, charged, refunded) and one
  ``operations`` row (count, the sums of the cash flow columns).

The last column, ``mode``, is ``live`` or ``test`` (an order of a ``pk_test_`` key or a test-mode invoice, routed
to ``[routing] test``): test money never adds to live totals.

Card data: the stored mask (``first6****last4``) only; the sealed card is never read. Amounts are decimal
strings in the currency's exponent (``9.99``, ``-9.99``). Texts the merchant wrote (description, order id)
that a spreadsheet would take for a formula get a leading ``'`` (CSV injection).

The rows come from a server-side cursor, so a busy day is never held in memory whole: the command line writes
them to a file, the portal can stream them as a download.

>>> from datetime import date
>>> [t.isoformat() for t in day_bounds(date(2026, 3, 29), ZoneInfo("Europe/Kyiv"))]
['2026-03-28T22:00:00+00:00', '2026-03-29T21:00:00+00:00']
>>> _text("=HYPERLINK(1)"), _text("-5"), _text("ok"), _text(None)
("'=HYPERLINK(1)", "'-5", 'ok', '')
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import asyncpg

from switch.money import from_minor

__all__ = ["COLUMNS", "DailyReport", "csv_text", "daily_report", "day_bounds", "write_csv", "zone"]

COLUMNS = (
    "record", "created", "order_id", "operation_id", "type", "status", "currency",
    "amount", "charged", "refunded", "cash_amount", "fee", "incoming", "reserve", "receivable", "count",
    "pan_mask", "card_type", "rrn", "auth_code", "merchant_order_id", "invoice_id", "description", "mode",
)  # fmt: skip

_CASH = ("amount", "fee", "incoming", "reserve", "receivable")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_BATCH = 500  # rows per round trip of the cursor

_ORDERS = """
SELECT id, status, amount, amount_charged, amount_refunded, currency, auth_code, rrn, pan_mask, card_type,
       merchant_order_id, invoice_id, description, created, test_mode
FROM orders WHERE project_id = $1 AND created >= $2 AND created < $3
ORDER BY created, id
"""

_OPERATIONS = """
SELECT p.order_id, p.id, p.type, p.status, p.amount, p.currency, p.rrn, p.auth_code, p.cashflow, p.created,
       o.pan_mask, o.card_type, o.merchant_order_id, o.invoice_id, o.description, o.test_mode
FROM operations AS p JOIN orders AS o ON o.id = p.order_id
WHERE p.project_id = $1 AND p.created >= $2 AND p.created < $3 AND p.status <> 'pending'
ORDER BY p.created, p.order_id, p.id
"""


def day_bounds(day: date, tz: tzinfo = UTC) -> tuple[datetime, datetime]:
    """The first instant of ``day`` in ``tz`` and the first of the next day, in UTC (a DST day is 23 or 25 h)."""
    start = datetime.combine(day, time(), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def _text(value: str | None) -> str:
    """A text cell; one a spreadsheet would read as a formula is quoted with a leading apostrophe."""
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA) else value


def _mode(r: asyncpg.Record) -> str:
    """``test`` for a test-mode order's rows (routed to ``[routing] test``: not the merchant's money), else ``live``;
    totals are kept apart by it."""
    return "test" if r["test_mode"] else "live"


def _money(units: int | None, cur: str) -> str:
    return "" if units is None else from_minor(int(units), cur)


@dataclass(slots=True)
class _Totals:
    orders: int = 0
    asked: int = 0
    charged: int = 0
    refunded: int = 0
    operations: int = 0
    cash: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_CASH, 0))


@dataclass(slots=True)
class DailyReport:
    """One project's day: what :func:`daily_report` reads, with the totals it adds up while reading."""

    project_id: int
    day: date
    tz: tzinfo = UTC
    totals: dict[tuple[str, str], _Totals] = field(default_factory=dict)  # by (currency, mode)

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return day_bounds(self.day, self.tz)

    def _local(self, when: datetime) -> str:
        return when.astimezone(self.tz).isoformat()

    def _order(self, r: asyncpg.Record) -> list[str]:
        cur = r["currency"]
        t = self.totals.setdefault((cur, _mode(r)), _Totals())
        t.orders += 1
        t.asked += r["amount"]
        t.charged += r["amount_charged"] or 0
        t.refunded += r["amount_refunded"] or 0
        row = {
            "record": "order",
            "created": self._local(r["created"]),
            "order_id": r["id"],
            "status": r["status"],
            "currency": cur,
            "amount": _money(r["amount"], cur),
            "charged": _money(r["amount_charged"] or 0, cur),
            "refunded": _money(r["amount_refunded"] or 0, cur),
            "rrn": r["rrn"],
            "auth_code": r["auth_code"],
        }
        return self._row(row, r)

    def _operation(self, r: asyncpg.Record) -> list[str]:
        cur = r["currency"]
        cf: dict[str, Any] = r["cashflow"] or {}
        t = self.totals.setdefault((cur, _mode(r)), _Totals())
        t.operations += 1
        for k in _CASH:
            t.cash[k] += int(cf.get(k, 0))
        row = {
            "record": "operation",
            "created": self._local(r["created"]),
            "order_id": r["order_id"],
            "operation_id": str(r["id"]),
            "type": r["type"],
            "status": r["status"],
            "currency": cur,
            "amount": _money(r["amount"], cur),
            **{("cash_amount" if k == "amount" else k): _money(int(cf.get(k, 0)), cur) for k in _CASH},
            "rrn": r["rrn"],
            "auth_code": r["auth_code"],
        }
        return self._row(row, r)

    @staticmethod
    def _row(row: dict[str, str | None], r: asyncpg.Record) -> list[str]:
        row |= {
            "pan_mask": r["pan_mask"],
            "card_type": r["card_type"],
            "merchant_order_id": _text(r["merchant_order_id"]),
            "invoice_id": r["invoice_id"],
            "description": _text(r["description"]),
            "mode": _mode(r),
        }
        return [row.get(c) or "" for c in COLUMNS]

    def total_rows(self) -> list[list[str]]:
        """Per currency (alphabetical) and mode (live first): the ``orders`` row, then the ``operations`` row."""
        out = []
        for (cur, mode), t in sorted(self.totals.items()):
            orders = {
                "record": "total",
                "type": "orders",
                "currency": cur,
                "count": str(t.orders),
                "amount": _money(t.asked, cur),
                "charged": _money(t.charged, cur),
                "refunded": _money(t.refunded, cur),
                "mode": mode,
            }
            ops = {
                "record": "total",
                "type": "operations",
                "currency": cur,
                "count": str(t.operations),
                **{("cash_amount" if k == "amount" else k): _money(v, cur) for k, v in t.cash.items()},
                "mode": mode,
            }
            out += [[row.get(c, "") for c in COLUMNS] for row in (orders, ops)]
        return out


async def daily_report(pool: asyncpg.Pool, project_id: int, day: date, tz: tzinfo = UTC) -> AsyncGenerator[list[str]]:
    """The rows of the report: the header, the orders, the operations, the totals (see the module's text).

    One connection and one read-only REPEATABLE READ transaction: the orders, the operations and the totals are
    one snapshot of the books, however long the reading takes. A reader that may stop early (a download the
    browser gave up) closes the generator (``contextlib.aclosing``), which gives the connection back at once.
    """
    report = DailyReport(project_id, day, tz)
    start, end = report.bounds
    yield list(COLUMNS)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        async for r in conn.cursor(_ORDERS, project_id, start, end, prefetch=_BATCH):
            yield report._order(r)
        async for r in conn.cursor(_OPERATIONS, project_id, start, end, prefetch=_BATCH):
            yield report._operation(r)
    for row in report.total_rows():
        yield row


async def write_csv(rows: AsyncIterator[list[str]], out: TextIO) -> int:
    """``rows`` written to ``out`` as CSV (RFC 4180, CRLF line ends); the number of rows written."""
    writer = csv.writer(out, lineterminator="\r\n")
    n = 0
    async for row in rows:
        writer.writerow(row)
        n += 1
    return n


def csv_text(rows: Iterable[list[str]]) -> str:
    """Rows as one CSV text (for small reports and tests)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue()


def zone(name: str) -> tzinfo:
    """A time zone by its IANA name ("UTC", "Europe/Kyiv"); ValueError for an unknown one.

    >>> zone("UTC") is UTC, str(zone("Europe/Kyiv"))
    (True, 'Europe/Kyiv')
    """
    if name.upper() == "UTC":
        return UTC  # needs no time zone database (a slim container may have none)
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError) as e:  # ZoneInfoNotFoundError is a KeyError; "America" a directory
        raise ValueError(f"unknown time zone {name!r}") from e
