"""An invoice paid from its hpp_url in Debian's chromium (Playwright, the rig of tests/browser.py): the page shows
the invoice's amount and description, takes the card, and sends the cardholder to ``return_urls.success``;
a declined card lands on ``return_urls.fail``. Nothing on the page comes from another host.
"""

from __future__ import annotations

from typing import Any

import pytest
from browser import Shop, base_url, new_page
from browser import browser as browser  # fixtures
from browser import front as front
from browser import shop as shop
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from playwright.async_api import Browser, expect
from test_http_e2e import Front
from test_invoices import create_invoice

pytestmark = pytest.mark.timeout(90)

PAN = "4111111111111111"
DECLINED = "4276990011343663"


async def invoice_for(front: Front, shop: Shop, reference_id: str) -> dict[str, Any]:
    returns = {"success": shop.url + "?paid", "fail": shop.url + "?failed", "pending": shop.url + "?pending"}
    return await create_invoice(front, reference_id=reference_id, return_urls=returns, return_url=shop.url)


async def pay_in_browser(browser: Browser, url: str, pan: str) -> list[str]:
    page = await new_page(browser)
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    await page.goto(url)
    await expect(page.locator("#amount")).to_have_text("100.00 USD")
    await expect(page.locator("body")).to_contain_text("Invoice Example")
    for field, value in (("#number", pan), ("#exp_month", "12"), ("#exp_year", "30"), ("#cvc", "123")):
        await page.fill(field, value)
    await page.fill("#holder", "JOHN SMITH")
    await page.click("#pay-button")
    await expect(page.locator("#shop")).to_be_visible()
    return urls


async def test_an_invoice_is_paid_from_its_hpp_url_and_the_cardholder_lands_on_return_urls_success(
    front: Front, browser: Browser, shop: Shop
) -> None:
    inv = await invoice_for(front, shop, "browser-paid")
    urls = await pay_in_browser(browser, inv["attributes"]["hpp_url"], PAN)
    assert shop.visits[0] == "/done?paid"  # (then the browser may ask the shop for its favicon)
    _, doc = await front.call("GET", f"/api/payment-invoices/{inv['id']}")
    assert (doc["data"]["attributes"]["status"], doc["data"]["attributes"]["resolution"]) == ("processed", "ok")
    page_requests = [u for u in urls if not u.startswith(shop.url)]
    assert page_requests and all(u.startswith(base_url(front)) for u in page_requests), urls
    assert not any(PAN in u for u in urls)


async def test_a_declined_card_sends_the_cardholder_to_return_urls_fail(
    front: Front, browser: Browser, shop: Shop
) -> None:
    inv = await invoice_for(front, shop, "browser-declined")
    await pay_in_browser(browser, inv["attributes"]["hpp_url"], DECLINED)
    assert shop.visits[0] == "/done?failed"
    _, doc = await front.call("GET", f"/api/payment-invoices/{inv['id']}")
    assert (doc["data"]["attributes"]["status"], doc["data"]["attributes"]["resolution"]) == (
        "process_failed", "declined",
    )  # fmt: skip
