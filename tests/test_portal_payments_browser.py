"""The portal's payments area in Debian's chromium (Playwright, the rig of tests/browser.py): the filter applied from
the page and its CSV export equal to ``GET /orders/`` with the same filter, a template saved and applied, a capture
and a refund pressed on the page and seen by ``GET /orders/:id``, and a viewer without the refund button whose forged
POST is refused. Real front, real PostgreSQL, real simulator; nothing from another host.
"""

from __future__ import annotations

import asyncio
import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest
from browser import base_url, new_page, screenshot, screenshot_dir
from browser import browser as browser  # fixtures
from browser import front as front
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from playwright.async_api import Browser, expect
from test_http_e2e import REQUIRED, Front
from test_portal_browser import add_user, first_login
from test_portal_payments import orders_of, some_orders

pytestmark = pytest.mark.timeout(150)


async def test_the_filter_applied_in_chromium_and_its_csv_export_equal_get_orders_with_the_same_filter(
    front: Front, browser: Browser, tmp_path: Path
) -> None:
    await some_orders(front)
    page = await new_page(browser)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    await first_login(page, front, "owner@shop.test", await add_user(front, "owner@shop.test"))
    await expect(page.locator("#payments tbody tr")).to_have_count(6)
    await page.check("#status-choices input[value=charged]")
    await page.check("#status-choices input[value=authorized]")
    await page.fill("#amount_from", "200")
    await page.fill("#currency", "USD")
    await page.click("#filter-apply")
    expected = await orders_of(front, {"status": "charged,authorized", "amount_from": "200", "currency": "USD"})
    ids = [o["id"] for o in expected]
    assert len(ids) == 4
    await expect(page.locator("#payments td[data-col=id]")).to_have_text(ids)
    await screenshot(page, screenshot_dir(tmp_path), "portal-payments.png")

    async with page.expect_download() as info:
        await page.click("#export-csv")
    download = await info.value
    saved = tmp_path / "payments.csv"
    await download.save_as(saved)
    text = (await asyncio.to_thread(saved.read_bytes)).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["Payment"], r["Amount"], r["Status"]) for r in rows] == [
        (o["id"], o["amount"], o["status"]) for o in expected
    ]

    # Saved as a template, applied again from a page with no filter: the same rows.
    await page.fill("#template_name", "Paid or waiting, USD")
    await page.click("#template-save")
    await page.click("#filter-reset")
    await expect(page.locator("#payments tbody tr")).to_have_count(6)
    await page.click("#templates a.template")
    await expect(page.locator("#payments td[data-col=id]")).to_have_text(ids)
    await expect(page.locator("#status-choices input[value=charged]")).to_be_checked()

    small = await new_page(browser, width=360, height=740, mobile=True)
    await first_login(small, front, "clerk@shop.test", await add_user(front, "clerk@shop.test", role="operator"))
    assert await small.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scrolling
    await screenshot(small, screenshot_dir(tmp_path), "portal-payments-list-360.png")
    assert all(u.startswith(base_url(front)) for u in requests), requests


async def test_a_capture_and_a_refund_pressed_in_chromium_are_what_get_orders_id_answers(
    front: Front, browser: Browser, tmp_path: Path
) -> None:
    oid = (await front.order({**REQUIRED, "amount": Decimal("10.00")}))["id"]
    page = await new_page(browser)
    await first_login(page, front, "clerk@shop.test", await add_user(front, "clerk@shop.test", role="operator"))
    await page.click(f"a[href='/portal/payments/{oid}']")
    await expect(page.locator("#order-uncaptured")).to_have_text("10.00 USD")
    await expect(page.locator("#refund-button")).to_have_count(0)  # nothing charged yet
    await page.fill("#capture-amount", "6.00")
    await page.click("#capture-button")
    await expect(page.locator("#payment-done")).to_have_text("Captured.")
    await expect(page.locator("#order-charged")).to_have_text("6.00 USD")
    _, doc = await front.call("GET", f"/orders/{oid}")
    assert (doc["orders"][0]["status"], doc["orders"][0]["amount_charged"]) == ("charged", "6.00")

    await page.fill("#refund-amount", "1.50")
    await page.click("#refund-button")
    await expect(page.locator("#payment-done")).to_have_text("Refunded.")
    await expect(page.locator("#order-status")).to_have_text("refunded")
    _, doc = await front.call("GET", f"/orders/{oid}")
    got = doc["orders"][0]
    assert (got["status"], got["amount_charged"], got["amount_refunded"]) == ("refunded", "6.00", "1.50")
    await screenshot(page, screenshot_dir(tmp_path), "portal-payment.png")
    await page.click("#tab-activity")
    await expect(page.locator("#operations tbody tr")).to_have_count(3)  # authorize, charge, refund
    users = await front.runtime.db.pool.fetch("SELECT action, portal_user FROM audit_log WHERE order_id = $1", oid)
    assert sorted((r["action"], r["portal_user"]) for r in users) == [
        ("charge", "clerk@shop.test"),
        ("refund", "clerk@shop.test"),
    ]


async def test_a_viewer_in_chromium_has_no_refund_button_and_a_forged_refund_is_refused(
    front: Front, browser: Browser
) -> None:
    oid = (await front.order())["id"]
    status, _ = await front.call("PUT", f"/orders/{oid}/charge", {})
    assert status == 200
    page = await new_page(browser)
    await first_login(page, front, "viewer@shop.test", await add_user(front, "viewer@shop.test", role="viewer"))
    await page.goto(base_url(front) + f"/portal/payments/{oid}")
    await expect(page.locator("#order-status")).to_have_text("charged")
    await expect(page.locator("#refund-button")).to_have_count(0)
    await expect(page.locator("#capture-button")).to_have_count(0)
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf is not None
    answer = await page.request.post(
        base_url(front) + f"/portal/payments/{oid}/refund", form={"csrf": csrf, "amount": "9.99"}, max_redirects=0
    )
    assert answer.status == 403 and "viewer" in await answer.text()
    _, doc = await front.call("GET", f"/orders/{oid}")
    assert (doc["orders"][0]["status"], doc["orders"][0]["amount_refunded"]) == ("charged", "0.00")
