"""The portal's dashboard, balance and daily report download (issue 13 items 5 and 8) below the browser: the
figures of :mod:`switch.orders.stats` over books made through the API (real front, real simulator, real
PostgreSQL), the pages' answers to bad ranges, the CSV download, and one project never seeing another's.
tests/test_portal_dashboard_browser.py reads the same figures off the pages in chromium.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_http_e2e import REQUIRED, Front
from test_http_e2e import front as front  # fixture

from switch.orders.stats import OrderStats, StatsRange, StatsTooSlow
from switch.reports import csv_text, daily_report

pytestmark = pytest.mark.timeout(120)

DECLINED = "4276990011343663"  # the simulator answers 05
BROKEN = "5555555555555599"  # 96
PASSWORD = "Sunny#Day42x"


@dataclass
class Books:
    """What :func:`make_books` did, by name."""

    ids: dict[str, str]


async def _call(front: Front, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
    status, doc = await front.call(method, path, body)
    assert status in ok, (path, status, doc)
    return doc


async def _authorize(front: Front, ok: tuple[int, ...] = (200,), **changes: Any) -> str:
    doc = await _call(front, "POST", "/orders/authorize", {**REQUIRED, **changes}, ok)
    return str(doc["orders"][0]["id"] if "orders" in doc else doc["order_id"])


def _invoice(invoice_id: str) -> dict[str, Any]:
    return {"extra_fields": {"attributes": {"invoice_id": invoice_id}}}


async def make_books(front: Front) -> Books:
    """Two currencies of payments of every kind the dashboard tells apart.

    USD: a sale of 9.99 charged then refunded 2.00; an invoice paid at its second try (declined, then 5.00
    authorized); a plain decline; an issuer error; 3.00 authorized then reversed. EUR: 20.00 charged, one
    decline. Fees: 3 % (the rig's project).
    """
    ids: dict[str, str] = {}
    ids["sale"] = await _authorize(front)
    await _call(front, "PUT", f"/orders/{ids['sale']}/charge")
    await _call(front, "PUT", f"/orders/{ids['sale']}/refund", {"amount": Decimal("2.00")})
    ids["inv_try"] = await _authorize(front, (402,), pan=DECLINED, amount=Decimal("5.00"), **_invoice("inv-1"))
    ids["inv_paid"] = await _authorize(front, amount=Decimal("5.00"), **_invoice("inv-1"))
    ids["declined"] = await _authorize(front, (402,), pan=DECLINED, amount=Decimal("7.00"))
    ids["error"] = await _authorize(front, (500,), pan=BROKEN, amount=Decimal("8.00"))
    ids["reversed"] = await _authorize(front, amount=Decimal("3.00"))
    await _call(front, "PUT", f"/orders/{ids['reversed']}/reverse")
    ids["eur_sale"] = await _authorize(front, amount=Decimal("20.00"), currency="EUR")
    await _call(front, "PUT", f"/orders/{ids['eur_sale']}/charge")
    ids["eur_declined"] = await _authorize(front, (402,), pan=DECLINED, amount=Decimal("4.00"), currency="EUR")
    return Books(ids)


def today_range(front: Front, period: str = "day") -> StatsRange:
    today = front.runtime.portal.clock().astimezone(UTC).date()
    return StatsRange(today - timedelta(days=1), today, period)


async def owner_cookie(
    front: Front, project: str = "project", email: str = "owner@shop.test", role: str = "owner"
) -> dict[str, str]:
    """A logged-in user's cookie header (the one-time password changed first, as the portal demands)."""
    portal = front.runtime.portal
    _, _, one_time = await portal.add_user(email, project, role)
    assert one_time is not None
    first = await portal.login(email, one_time, "127.0.0.1", "test")
    assert first.session is not None
    token = await portal.change_password(first.session, one_time, PASSWORD, "127.0.0.1", "test")
    return {"Cookie": f"isoswitch_portal={token}"}


async def test_the_dashboard_counts_conversion_unique_conversion_refusals_and_amounts_per_currency(
    front: Front,
) -> None:
    await make_books(front)
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    board = await front.runtime.orders.stats.dashboard(project.id, today_range(front, "month"))
    assert board.currencies == ["USD", "EUR"]  # the busiest first
    usd, eur = board.totals["USD"], board.totals["EUR"]
    assert (usd.payments, usd.successful, usd.failed, usd.pending) == (6, 3, 3, 0)
    assert (usd.unique_payments, usd.unique_successful) == (5, 3)  # inv-1's two tries count once
    assert (usd.conversion, usd.unique_conversion) == (Decimal("50.00"), Decimal("60.00"))
    # Gross: successful 9.99 + 5.00, canceled 3.00; net: charged 9.99, refunded 2.00.
    assert (usd.gross_successful, usd.gross_canceled, usd.charged, usd.refunded, usd.net) == (1499, 300, 999, 200, 799)
    assert (eur.payments, eur.successful, eur.failed, eur.conversion, eur.net) == (2, 1, 1, Decimal("50.00"), 2000)
    # By period: one bucket, this month's (a range's days without payments have none).
    assert [(b.start, b.payments) for b in board.periods["USD"]] == [(today_range(front).last.replace(day=1), 6)]
    refusals = {(r.code, r.message): r.count for r in board.refusals}
    assert refusals == {("05", "Do not honor"): 3, ("96", "System malfunction"): 1}
    assert board.refusals[0].code == "05"  # the most frequent first


async def test_the_balance_sums_receipts_and_withdrawals_as_the_operations_api_books_them(front: Front) -> None:
    await make_books(front)
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    balance = await front.runtime.orders.stats.balance(project.id, today_range(front), page_size=2)
    rows = {r.currency: r for r in balance.rows}
    # USD: the charge of 9.99 (fee 0.30) is the receipt, the refund of 2.00 the withdrawal.
    usd = rows["USD"]
    assert (usd.receipts_count, usd.receipts, usd.fees, usd.withdrawals_count, usd.withdrawals) == (1, 999, 30, 1, 200)
    assert (usd.incoming, usd.reserve, usd.receivable) == (999 - 30 - 200, 0, 769)
    assert (rows["EUR"].receipts, rows["EUR"].fees, rows["EUR"].incoming) == (2000, 60, 1940)
    # The same sums from GET /operations/ with the cash flow.
    doc = await _call(front, "GET", "/operations/?expand=cashflow&page_size=2000")
    sums: dict[str, Decimal] = {}
    for op in doc["operations"]:
        cf = op["cashflow"]
        sums[cf["currency"]] = sums.get(cf["currency"], Decimal(0)) + Decimal(cf["incoming"])
    assert sums == {"USD": Decimal("7.69"), "EUR": Decimal("19.40")}
    # The movements: the three operations that moved money (two charges, a refund), newest first, by pages.
    assert len(balance.movements) == 2 and balance.has_next
    rest = await front.runtime.orders.stats.balance(project.id, today_range(front), page=2, page_size=2)
    moved = balance.movements + rest.movements
    assert not rest.has_next and [m.created for m in moved] == sorted((m.created for m in moved), reverse=True)
    assert sorted((m.type, m.currency, m.amount) for m in moved) == [
        ("charge", "EUR", 2000),
        ("charge", "USD", 999),
        ("refund", "USD", -200),
    ]


async def test_the_daily_report_downloads_as_the_same_csv_the_report_module_writes(front: Front) -> None:
    await make_books(front)
    cookie = await owner_cookie(front)
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    day = front.runtime.portal.clock().astimezone(UTC).date()
    answer = await front.http.get(f"/portal/reports/daily?day={day.isoformat()}&tz=UTC", headers=cookie)
    assert answer.status == 200, await answer.text()
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert answer.headers["Content-Disposition"] == f'attachment; filename="isoswitch-{project.id}-{day}.csv"'
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    body = (await answer.read()).decode()
    want = csv_text([row async for row in daily_report(front.runtime.db.pool, project.id, day)])
    assert body == want and body.count("\r\n") == len(want.splitlines())
    assert "4111111111111111" not in body and "\r\ntotal,,,,operations,,EUR," in body


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-02-01&to=2026-01-01", "ends before it starts"),
        ("from=2024-01-01&to=2026-01-01", "at most 366 days"),
        ("from=yesterday", "From must be a date"),
        ("to=2026-13-01", "To must be a date"),
        ("period=year", "period must be one of"),
    ],
)
async def test_a_bad_range_answers_the_page_again_with_422_saying_what_is_wrong(
    front: Front, query: str, message: str
) -> None:
    cookie = await owner_cookie(front)
    for page in ("dashboard", "balance"):
        if page == "balance" and query.startswith("period"):
            continue  # the balance has no periods: the value is not read
        answer = await front.http.get(f"/portal/{page}?{query}", headers=cookie)
        text = await answer.text()
        assert answer.status == 422 and message.lower() in text.lower(), (page, text)
    bad = await front.http.get("/portal/reports/daily?day=2026-01-01&tz=Mars/Olympus", headers=cookie)
    assert bad.status == 422 and "unknown time zone" in (await bad.text()).lower()


async def test_one_projects_dashboard_and_balance_never_count_anothers_payments(front: Front) -> None:
    await make_books(front)
    theirs = await _authorize(front, amount=Decimal("77.77"))  # "project"'s, to tell the pages apart
    status, doc = await front.call("POST", "/orders/authorize", {**REQUIRED, "amount": "66.66"}, headers=front.other)
    assert status == 200, doc
    cookie = await owner_cookie(front, "other", "boss@other.test")
    page = await (await front.http.get("/portal/dashboard", headers=cookie)).text()
    assert "66.66" in page and "77.77" not in page and "9.99" not in page and "EUR" not in page
    totals = re.search(r'id="conversion-USD".*?<tfoot>(.*?)</tfoot>', page, re.S)
    assert totals is not None and '<td class="num" data-k="payments">1</td>' in totals[1]
    balance = await (await front.http.get("/portal/balance", headers=cookie)).text()
    # Their one order is authorized: its operation booked no money (a reserve at most), so nothing moved.
    assert '<td class="num" data-k="receipts">0.00</td>' in balance and 'id="movements"' not in balance
    assert theirs not in balance and theirs not in page


async def test_test_mode_payments_count_in_neither_the_dashboard_nor_the_balance(front: Front) -> None:
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    live = await _authorize(front, amount=Decimal("9.00"))
    await _call(front, "PUT", f"/orders/{live}/charge")
    test = await _authorize(front, amount=Decimal("4.00"))
    await _call(front, "PUT", f"/orders/{test}/charge")
    # A test-mode order (a pk_test_ key, a test_mode invoice: routed to [routing] test) is not the merchant's money.
    await front.runtime.db.pool.execute("UPDATE orders SET test_mode = true WHERE id = $1", test)
    stats = front.runtime.orders.stats
    board = await stats.dashboard(project.id, today_range(front))
    assert (board.totals["USD"].payments, board.totals["USD"].charged) == (1, 900)
    balance = await stats.balance(project.id, today_range(front))
    assert [(r.currency, r.receipts_count, r.receipts) for r in balance.rows] == [("USD", 1, 900)]
    assert {m.order_id for m in balance.movements} == {live}


async def test_the_dashboard_balance_and_report_send_a_browser_without_a_session_to_the_login(front: Front) -> None:
    for path in ("/portal/dashboard", "/portal/balance", "/portal/reports/daily?day=2026-01-01"):
        answer = await front.http.get(path, allow_redirects=False)
        assert (answer.status, answer.headers["Location"]) == (303, "/portal/login"), path


async def test_payments_fall_in_the_day_week_and_month_they_were_created_in(front: Front) -> None:
    books = await make_books(front)
    # The EUR sale eight days back: always another day and another week (a month only sometimes).
    await front.runtime.db.pool.execute(
        "UPDATE orders SET created = created - interval '8 days' WHERE id = $1", books.ids["eur_sale"]
    )
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    today = front.runtime.portal.clock().astimezone(UTC).date()
    then = today - timedelta(days=8)
    monday = {d: d - timedelta(days=d.weekday()) for d in (today, then)}
    expected = {
        "day": [(then, 1, 2000), (today, 1, 0)],
        "week": [(monday[then], 1, 2000), (monday[today], 1, 0)],
        "month": (
            [(today.replace(day=1), 2, 2000)]
            if then.month == today.month
            else [(then.replace(day=1), 1, 2000), (today.replace(day=1), 1, 0)]
        ),
    }
    for period, want in expected.items():
        board = await front.runtime.orders.stats.dashboard(project.id, StatsRange(then, today, period))
        assert [(b.start, b.payments, b.charged) for b in board.periods["EUR"]] == want, period
        assert board.totals["EUR"].payments == 2 and board.totals["USD"].payments == 6
    narrow = await front.runtime.orders.stats.dashboard(project.id, StatsRange(today, today))
    assert narrow.totals["EUR"].payments == 1  # the range is by creation, its first day included


async def test_a_viewer_reads_the_dashboard_the_balance_and_the_report_and_sees_them_in_the_navigation(
    front: Front,
) -> None:
    cookie = await owner_cookie(front, email="viewer@shop.test", role="viewer")
    day = front.runtime.portal.clock().astimezone(UTC).date()
    for path in ("/portal/dashboard", "/portal/balance", f"/portal/reports/daily?day={day}"):
        answer = await front.http.get(path, headers=cookie)
        assert answer.status == 200, path
    page = await (await front.http.get("/portal/dashboard", headers=cookie)).text()
    assert 'href="/portal/dashboard"' in page and 'href="/portal/balance"' in page
    assert "No payments in this range." in page and "<script" not in page
    # The period menu: the last 12 months by month is the longest range a page may ask.
    year = re.search(r'<a href="/portal/dashboard\?(from=[^"]+)">12 months</a>', page)
    assert year is not None
    answer = await front.http.get("/portal/dashboard?" + year[1].replace("&amp;", "&"), headers=cookie)
    assert answer.status == 200 and 'value="month" selected' in await answer.text()


async def test_a_read_past_the_statement_timeout_is_refused_as_too_slow_not_left_running(front: Front) -> None:
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    stats = OrderStats(front.runtime.db.pool, timeout="200ms")
    async with front.runtime.db.pool.acquire() as holder, holder.transaction():
        # Another transaction holds the orders: the dashboard's read waits, and its timeout counts the wait.
        await holder.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(StatsTooSlow, match="shorter range"):
            await stats.dashboard(project.id, today_range(front))
    assert (await stats.dashboard(project.id, today_range(front))).totals == {}  # the pool's connection is fine
