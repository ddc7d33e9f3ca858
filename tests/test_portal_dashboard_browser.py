"""The dashboard and the balance in Debian's chromium (issue 13 items 5 and 8): every figure the pages show
equals what the orders API (``GET /orders/``, ``GET /operations/``) says of the same books, the charts are drawn
without a script and with nothing from another host, the pages fit 360 px, and the daily report downloads.
Real front, real PostgreSQL, real simulator (the books of tests/test_portal_dashboard.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from browser import base_url, new_page, screenshot, screenshot_dir
from browser import browser as browser  # fixtures
from browser import front as front
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from playwright.async_api import Browser, Page, expect
from test_http_e2e import Front
from test_portal_browser import add_user, first_login
from test_portal_dashboard import make_books

from switch.money import from_minor, to_minor
from switch.reports import csv_text, daily_report

pytestmark = pytest.mark.timeout(180)

_SUCCESSFUL = {"authorized", "charged", "reversed", "refunded", "chargedback"}
_FAILED = {"declined", "rejected", "fraud", "error"}


async def _api(front: Front, path: str) -> Any:
    status, doc = await front.call("GET", path)
    assert status == 200, (path, doc)
    return doc


def _signed(amount: str, cur: str) -> int:
    """Minor units of a decimal string the API shows, a refund's ``-2.00`` included."""
    return -to_minor(amount[1:], cur) if amount.startswith("-") else to_minor(amount, cur)


def _pct(part: int, whole: int) -> str:
    return f"{(Decimal(part) * 100 / whole).quantize(Decimal('0.01'))}%" if whole else "—"


async def expected_from_the_api(front: Front, since: str) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """Per currency, the dashboard's totals as the API's orders give them; and the refusal codes."""
    orders = (await _api(front, f"/orders/?created_from={since}&page_size=2000&expand=operations"))["orders"]
    invoiced = {o["id"] for o in (await _api(front, "/orders/?invoice_id=inv-1&page_size=2000"))["orders"]}
    by_cur: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in orders:
        if o["status"] != "credited":
            by_cur[o["currency"]].append(o)
    want: dict[str, dict[str, str]] = {}
    for cur, items in by_cur.items():

        def units(o: dict[str, Any], key: str, cur: str = cur) -> int:
            return to_minor(o[key], cur)

        ok = [o for o in items if o["status"] in _SUCCESSFUL]
        intents = {"inv-1" if o["id"] in invoiced else o["id"] for o in items}
        ok_intents = {"inv-1" if o["id"] in invoiced else o["id"] for o in ok}
        charged, refunded = (
            sum(units(o, "amount_charged") for o in items),
            sum(units(o, "amount_refunded") for o in items),
        )
        want[cur] = {
            "payments": str(len(items)),
            "successful": str(len(ok)),
            "failed": str(sum(o["status"] in _FAILED for o in items)),
            "pending": str(sum(o["status"] in ("new", "prepared") for o in items)),
            "conversion": _pct(len(ok), len(items)),
            "unique_payments": str(len(intents)),
            "unique_successful": str(len(ok_intents)),
            "unique_conversion": _pct(len(ok_intents), len(intents)),
            "gross_successful": from_minor(sum(units(o, "amount") for o in ok if o["status"] != "reversed"), cur),
            "gross_canceled": from_minor(sum(units(o, "amount") for o in ok if o["status"] == "reversed"), cur),
            "charged": from_minor(charged, cur),
            "refunded": from_minor(refunded, cur),
            "net": from_minor(charged - refunded, cur),
        }
    refusals: Counter[str] = Counter()
    for o in orders:
        if o["status"] in _FAILED:
            failed = [op for op in o["operations"] if op["status"] in ("failure", "error")]
            refusals[failed[-1]["iso_response_code"] if failed else "none"] += 1
    return want, dict(refusals)


async def _cells(page: Page, selector: str) -> dict[str, str]:
    cells = page.locator(f"{selector} td[data-k]")
    keys = [await cells.nth(i).get_attribute("data-k") for i in range(await cells.count())]
    texts = await cells.all_inner_texts()
    return {str(k): t.strip() for k, t in zip(keys, texts, strict=True)}


async def test_the_dashboards_figures_equal_what_the_orders_api_says_of_the_same_books(
    front: Front, browser: Browser, tmp_path: Path
) -> None:
    await make_books(front)
    today = front.runtime.portal.clock().astimezone(UTC).date()
    since = (today - timedelta(days=1)).isoformat()
    want, refusals = await expected_from_the_api(front, since)
    assert set(want) == {"USD", "EUR"} and refusals == {"05": 3, "96": 1}  # the books are what they should be

    page = await new_page(browser, javascript=False)  # drawn on the server: no script needed
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    await first_login(page, front, "owner@shop.test", await add_user(front, "owner@shop.test"))
    await page.click("nav a[href='/portal/dashboard']")
    await page.fill("#from", since)
    await page.select_option("#period", "week")
    await page.click("#range-button")
    await expect(page.locator("#conversion-USD")).to_be_visible()
    for cur, figures in want.items():
        shown: dict[str, str] = {}
        for table in ("conversion", "counts", "gross", "net"):
            shown |= await _cells(page, f"#{table}-{cur} tfoot tr.total")
        assert shown == figures, cur
        # The week's row says what the total does (the books are of one day), and its chart is drawn.
        week = await _cells(page, f"#net-{cur} tbody tr")
        assert week["net"] == figures["net"]
        await expect(page.locator(f"svg#chart-net-{cur} rect.bar")).to_have_count(2)
    rows = page.locator("#refusals tbody tr")
    shown_refusals = {
        str(await rows.nth(i).get_attribute("data-code")): int(
            await rows.nth(i).locator("td[data-k=count]").inner_text()
        )
        for i in range(await rows.count())
    }
    assert shown_refusals == refusals
    assert all(u.startswith(base_url(front)) for u in requests)  # nothing from another host
    await screenshot(page, screenshot_dir(tmp_path), "portal-dashboard.png")


async def test_the_balance_equals_the_operations_cash_flow_and_the_daily_report_downloads(
    front: Front, browser: Browser, tmp_path: Path
) -> None:
    await make_books(front)
    today = front.runtime.portal.clock().astimezone(UTC).date()
    ops = (await _api(front, "/operations/?expand=cashflow&page_size=2000"))["operations"]
    want: dict[str, dict[str, int]] = defaultdict(lambda: Counter())
    for op in ops:
        if op["status"] != "success":
            continue
        cf, cur = op["cashflow"], op["currency"]
        amount = _signed(cf["amount"], cur)
        w = want[cur]
        w["receipts_count"] += amount > 0
        w["receipts"] += max(amount, 0)
        w["withdrawals_count"] += amount < 0
        w["withdrawals"] += max(-amount, 0)
        for k, name in (
            ("fee", "fees"),
            ("incoming", "incoming"),
            ("reserve", "reserve"),
            ("receivable", "receivable"),
        ):
            w[name] += _signed(cf[k], cur)

    page = await new_page(browser, width=360, height=740, mobile=True)
    await first_login(page, front, "owner@shop.test", await add_user(front, "owner@shop.test"))
    await page.goto(base_url(front) + "/portal/balance")
    await expect(page.locator("#balance")).to_be_visible()
    for cur, w in want.items():
        shown = await _cells(page, f"#balance tr[data-currency={cur}]")
        expected = {k: (str(v) if k.endswith("_count") else from_minor(v, cur)) for k, v in w.items()}
        assert shown == expected, cur
    await expect(page.locator("#movements tbody tr")).to_have_count(
        sum(w["receipts_count"] + w["withdrawals_count"] for w in want.values())
    )
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scrolling at 360 px
    await screenshot(page, screenshot_dir(tmp_path), "portal-balance-360.png")

    await page.fill("#day", today.isoformat())
    async with page.expect_download() as info:
        await page.click("#report-button")
    download = await info.value
    assert download.suggested_filename.endswith(f"-{today.isoformat()}.csv")
    saved = await download.path()
    got = await asyncio.to_thread(lambda: Path(saved).read_bytes().decode("utf-8"))
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    assert got == csv_text([row async for row in daily_report(front.runtime.db.pool, project.id, today)])

    await page.goto(base_url(front) + "/portal/dashboard")
    await expect(page.locator("#conversion-USD")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await screenshot(page, screenshot_dir(tmp_path), "portal-dashboard-360.png")
