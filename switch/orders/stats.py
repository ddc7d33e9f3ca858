"""The portal's figures over a project's books (issue 13 items 5 and 8): the dashboard and the balance.

**Dashboard** (seeds/000 "Dashboard"): the orders *created* in a range of calendar days, per period (``day``,
``week`` from Monday, ``month``) and currency, and for the whole range per currency:

- ``payments``: every order but payouts (``credited``: an OCT is no payment); ``successful``: the issuer
  approved it (``authorized``, ``charged``, ``reversed``, ``refunded``, ``chargedback``); ``failed``
  (``declined``, ``rejected``, ``fraud``, ``error``); ``pending`` (``new``, ``prepared``: a page not paid yet);
- ``conversion``: successful / payments, in percent; **unique conversion** the same over *buyers' intents*:
  the orders of one ``invoice_id`` count once (an invoice paid at the third try is one success out of one),
  an order without an invoice counts on its own;
- ``gross``: the amount asked of successful payments (``canceled``: of the reversed ones, apart);
  ``net``: charged, refunded and charged - refunded (``amount_charged``/``amount_refunded`` as the API
  shows them);
- **refusal codes**: the failed payments by the ISO response code of their last failed operation (no code:
  refused before the issuer was asked), the most frequent first.

**Balance** (seeds/004 "Balance": receipts and withdrawals): the successful operations created in the range,
per currency, from the cash flow each booked (:mod:`switch.orders.cashflow`): receipts (positive ``amount``:
charges) and withdrawals (negative: refunds and payouts), fees, and the sums of ``incoming``, ``reserve`` and
``receivable``; and the movements themselves, newest first, a page at a time.

Every query is per project, over a range of at most :data:`MAX_DAYS` days, in a read-only transaction with a
statement timeout, and rides on the ``(project_id, created)`` indexes of 002_orders.sql; the answers are
bounded (a row per period and currency; :data:`TOP_REFUSALS` codes; a page of movements).

>>> r = StatsRange(date(2026, 3, 1), date(2026, 3, 31), "week")
>>> r.days, r.bounds[0].isoformat()
(31, '2026-03-01T00:00:00+00:00')
>>> conversion(3, 4), conversion(0, 0)
(Decimal('75.00'), None)
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg

from switch.reports.daily import daily_report, day_bounds

__all__ = [
    "FAILED",
    "MAX_DAYS",
    "PENDING",
    "PERIODS",
    "SUCCESSFUL",
    "TOP_REFUSALS",
    "Balance",
    "BalanceRow",
    "Bucket",
    "Dashboard",
    "Movement",
    "OrderStats",
    "Refusal",
    "StatsRange",
    "StatsTooSlow",
    "conversion",
    "last_days",
]

PERIODS = ("day", "week", "month")
MAX_DAYS = 366
TOP_REFUSALS = 10
SUCCESSFUL = ("authorized", "charged", "reversed", "refunded", "chargedback")
FAILED = ("declined", "rejected", "fraud", "error")
PENDING = ("new", "prepared")
_TIMEOUT = "5s"  # a statement of the dashboard never holds a connection longer
_MAX_ROWS = 4000  # periods x currencies: 367 days x a dozen currencies fits


def conversion(part: int, whole: int) -> Decimal | None:
    """``part / whole`` in percent with two decimals, None when there is nothing to divide."""
    if whole <= 0:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class StatsRange:
    """Calendar days ``first`` .. ``last`` (both included) in ``tz``, grouped by ``period``."""

    first: date
    last: date
    period: str = "day"
    tz: tzinfo = UTC

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ValueError(f"period must be one of {', '.join(PERIODS)}")
        if self.last < self.first:
            raise ValueError("the range ends before it starts")
        if self.days > MAX_DAYS:
            raise ValueError(f"a range is at most {MAX_DAYS} days")

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """The first instant of ``first`` and the first after ``last``, in UTC."""
        return day_bounds(self.first, self.tz)[0], day_bounds(self.last, self.tz)[1]

    @property
    def zone_name(self) -> str:
        return "UTC" if self.tz is UTC else str(self.tz)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One period of one currency (``start`` None: the whole range); amounts in minor units."""

    start: date | None
    currency: str
    payments: int
    successful: int
    failed: int
    pending: int
    unique_payments: int
    unique_successful: int
    gross_successful: int
    gross_canceled: int
    charged: int
    refunded: int

    @property
    def conversion(self) -> Decimal | None:
        return conversion(self.successful, self.payments)

    @property
    def unique_conversion(self) -> Decimal | None:
        return conversion(self.unique_successful, self.unique_payments)

    @property
    def net(self) -> int:
        return self.charged - self.refunded


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str  # "" when no issuer answered
    message: str
    count: int


@dataclass(frozen=True, slots=True)
class Dashboard:
    range: StatsRange
    periods: dict[str, list[Bucket]] = field(default_factory=dict)  # per currency, oldest period first
    totals: dict[str, Bucket] = field(default_factory=dict)  # per currency, the whole range
    refusals: list[Refusal] = field(default_factory=list)
    truncated: bool = False

    @property
    def currencies(self) -> list[str]:
        """The currencies with payments, the busiest first."""
        return sorted(self.totals, key=lambda c: (-self.totals[c].payments, c))


@dataclass(frozen=True, slots=True)
class BalanceRow:
    """One currency's receipts and withdrawals (minor units; withdrawals as a positive sum)."""

    currency: str
    receipts_count: int
    receipts: int
    fees: int
    withdrawals_count: int
    withdrawals: int
    incoming: int
    reserve: int
    receivable: int


@dataclass(frozen=True, slots=True)
class Movement:
    created: datetime
    order_id: str
    operation_id: int
    type: str
    currency: str
    amount: int
    fee: int
    incoming: int
    reserve: int
    receivable: int


@dataclass(frozen=True, slots=True)
class Balance:
    range: StatsRange
    rows: list[BalanceRow]
    movements: list[Movement]
    page: int
    has_next: bool


# Test-mode orders (routed to [routing] test, never the merchant's money) are left out of every figure.
_BUCKETS = """
WITH o AS (
    SELECT date_trunc($4, created AT TIME ZONE $5)::date AS period, currency, status, amount, amount_charged,
           amount_refunded, coalesce('i:' || invoice_id, 'o:' || id) AS intent
    FROM orders
    WHERE project_id = $1 AND created >= $2 AND created < $3 AND status <> 'credited' AND NOT test_mode
)
SELECT period, currency, grouping(period) = 1 AS whole,
       count(*) AS payments,
       count(*) FILTER (WHERE status = ANY($6::text[])) AS successful,
       count(*) FILTER (WHERE status = ANY($7::text[])) AS failed,
       count(*) FILTER (WHERE status = ANY($8::text[])) AS pending,
       count(DISTINCT intent) AS unique_payments,
       count(DISTINCT intent) FILTER (WHERE status = ANY($6::text[])) AS unique_successful,
       coalesce(sum(amount) FILTER (WHERE status = ANY($6::text[]) AND status <> 'reversed'), 0) AS gross_successful,
       coalesce(sum(amount) FILTER (WHERE status = 'reversed'), 0) AS gross_canceled,
       coalesce(sum(amount_charged), 0) AS charged,
       coalesce(sum(amount_refunded), 0) AS refunded
FROM o
GROUP BY GROUPING SETS ((currency, period), (currency))
ORDER BY currency, whole, period
LIMIT $9
"""

_REFUSALS = """
SELECT coalesce(f.code, '') AS code, coalesce(min(f.message), '') AS message, count(*) AS n
FROM orders AS o
LEFT JOIN LATERAL (
    SELECT p.iso_response_code AS code, p.iso_message AS message FROM operations AS p
    WHERE p.order_id = o.id AND p.status IN ('failure', 'error') ORDER BY p.id DESC LIMIT 1
) AS f ON true
WHERE o.project_id = $1 AND o.created >= $2 AND o.created < $3 AND o.status = ANY($4::text[]) AND NOT o.test_mode
GROUP BY 1 ORDER BY n DESC, code LIMIT $5
"""

_CASH = "(cashflow ->> 'amount')::bigint"

_BALANCE_SUMS = tuple(BalanceRow.__dataclass_fields__)[1:]
_BALANCE = f"""
SELECT currency,
       count(*) FILTER (WHERE {_CASH} > 0) AS receipts_count,
       coalesce(sum({_CASH}) FILTER (WHERE {_CASH} > 0), 0) AS receipts,
       coalesce(sum((cashflow ->> 'fee')::bigint), 0) AS fees,
       count(*) FILTER (WHERE {_CASH} < 0) AS withdrawals_count,
       coalesce(-sum({_CASH}) FILTER (WHERE {_CASH} < 0), 0) AS withdrawals,
       coalesce(sum((cashflow ->> 'incoming')::bigint), 0) AS incoming,
       coalesce(sum((cashflow ->> 'reserve')::bigint), 0) AS reserve,
       coalesce(sum((cashflow ->> 'receivable')::bigint), 0) AS receivable
FROM operations
WHERE project_id = $1 AND created >= $2 AND created < $3 AND status = 'success' AND cashflow IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM orders AS t WHERE t.id = order_id AND t.test_mode)
GROUP BY currency ORDER BY currency LIMIT 1000
"""

_MOVEMENTS = f"""
SELECT created, order_id, id, type, currency, {_CASH} AS amount, (cashflow ->> 'fee')::bigint AS fee,
       (cashflow ->> 'incoming')::bigint AS incoming, (cashflow ->> 'reserve')::bigint AS reserve,
       (cashflow ->> 'receivable')::bigint AS receivable
FROM operations
WHERE project_id = $1 AND created >= $2 AND created < $3 AND status = 'success' AND cashflow IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM orders AS t WHERE t.id = order_id AND t.test_mode)
      AND {_CASH} <> 0
ORDER BY created DESC, order_id DESC, id DESC OFFSET $4 LIMIT $5
"""


def _bucket(r: asyncpg.Record) -> Bucket:
    return Bucket(
        start=None if r["whole"] else r["period"],
        currency=r["currency"],
        **{k: int(r[k]) for k in Bucket.__dataclass_fields__ if k not in ("start", "currency")},
    )


class StatsTooSlow(Exception):
    """A read ran past the statement timeout (a huge range of a busy project); nothing is half-shown."""


class OrderStats:
    """The figures of the module doc, read from the pool the orders service writes to."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: str = _TIMEOUT) -> None:
        """``timeout``: PostgreSQL's statement timeout for each read (``"5s"``, ``"200ms"``)."""
        self._pool = pool
        self._timeout = timeout

    async def _read(self, fn: Any) -> Any:
        try:
            async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                await conn.execute("SELECT set_config('statement_timeout', $1, true)", self._timeout)
                return await fn(conn)
        except asyncpg.QueryCanceledError as e:
            raise StatsTooSlow("the figures took too long to read: choose a shorter range") from e

    async def dashboard(self, project_id: int, rng: StatsRange) -> Dashboard:
        start, end = rng.bounds

        async def read(conn: asyncpg.Connection) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
            rows = await conn.fetch(
                _BUCKETS, project_id, start, end, rng.period, rng.zone_name,
                list(SUCCESSFUL), list(FAILED), list(PENDING), _MAX_ROWS + 1,
            )  # fmt: skip
            refusals = await conn.fetch(_REFUSALS, project_id, start, end, list(FAILED), TOP_REFUSALS)
            return rows, refusals

        rows, refusals = await self._read(read)
        board = Dashboard(rng, truncated=len(rows) > _MAX_ROWS)
        for r in rows[:_MAX_ROWS]:
            b = _bucket(r)
            if b.start is None:
                board.totals[b.currency] = b
            else:
                board.periods.setdefault(b.currency, []).append(b)
        board.refusals.extend(Refusal(r["code"], r["message"], int(r["n"])) for r in refusals)
        return board

    async def balance(self, project_id: int, rng: StatsRange, *, page: int = 1, page_size: int = 50) -> Balance:
        start, end = rng.bounds

        async def read(conn: asyncpg.Connection) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
            rows = await conn.fetch(_BALANCE, project_id, start, end)
            moves = await conn.fetch(_MOVEMENTS, project_id, start, end, (page - 1) * page_size, page_size + 1)
            return rows, moves

        rows, moves = await self._read(read)
        return Balance(
            range=rng,
            rows=[BalanceRow(r["currency"], *(int(r[k]) for k in _BALANCE_SUMS)) for r in rows],
            movements=[
                Movement(
                    created=m["created"],
                    order_id=m["order_id"],
                    operation_id=m["id"],
                    type=m["type"],
                    currency=m["currency"],
                    **{k: int(m[k]) for k in ("amount", "fee", "incoming", "reserve", "receivable")},
                )
                for m in moves[:page_size]
            ],
            page=page,
            has_next=len(moves) > page_size,
        )

    def daily_report(self, project_id: int, day: date, tz: tzinfo = UTC) -> AsyncGenerator[list[str]]:
        """The day's CSV rows (:func:`switch.reports.daily_report`): close the iterator when stopping early."""
        return daily_report(self._pool, project_id, day, tz)


def last_days(today: date, days: int, period: str = "day", tz: tzinfo = UTC) -> StatsRange:
    """The ``days`` calendar days ending with ``today``."""
    return StatsRange(today - timedelta(days=days - 1), today, period, tz)
