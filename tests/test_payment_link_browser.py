"""A payment link paid in Debian's chromium (Playwright, the rig of tests/browser.py): the link's URL opens the
pre-payment page, the payer fills in the link's parameters, goes on to the invoice's hosted page, pays, and lands
at the shop; bad values come back with errors next to their fields. Nothing comes from another host.
"""

from __future__ import annotations

import pytest
from browser import Shop, base_url, new_page, screenshot, screenshot_dir
from browser import browser as browser  # fixtures
from browser import front as front
from browser import shop as shop
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from playwright.async_api import Browser, expect
from test_http_e2e import Front
from test_payment_links import create_link

pytestmark = pytest.mark.timeout(90)

PAN = "4111111111111111"


async def test_a_payment_link_is_paid_in_chromium_from_its_pre_payment_page_to_the_shop(
    front: Front, browser: Browser, shop: Shop, tmp_path_factory: pytest.TempPathFactory
) -> None:
    link = await create_link(front, return_url=shop.url, customer_fields=["email", "full_name"])
    page = await new_page(browser, width=360, height=780, mobile=True)
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    await page.goto(link["attributes"]["url"])
    await expect(page.locator("#link-title")).to_have_text("Pay for your T-shirt")
    await expect(page.locator("#amount")).to_have_text("25.00 USD")
    await expect(page.locator("#p_campaign")).to_have_value("spring")
    await page.get_by_label("Order number").fill("004217")
    await page.get_by_label("Size").fill("L")
    await page.get_by_label("E-mail").fill("payer@example.com")
    await page.get_by_label("Full name").fill("Jane Payer")
    await screenshot(page, screenshot_dir(tmp_path_factory.mktemp("shots")), "payment-link.png")
    await page.click("#continue-button")
    # The invoice's hosted page: the link's amount and description, the card form.
    await expect(page.locator("#pay-button")).to_be_visible()
    await expect(page.locator("#amount")).to_have_text("25.00 USD")
    await expect(page.locator("body")).to_contain_text("One T-shirt")
    for field, value in (("#number", PAN), ("#exp_month", "12"), ("#exp_year", "30"), ("#cvc", "123")):
        await page.fill(field, value)
    await page.fill("#holder", "JANE PAYER")
    await page.click("#pay-button")
    await expect(page.locator("#shop")).to_be_visible()
    assert shop.visits[0] == "/done"
    _, doc = await front.call("GET", "/api/payment-invoices")
    [invoice] = doc["data"]
    attrs = invoice["attributes"]
    assert (attrs["source"], attrs["status"], attrs["resolution"]) == ("payment_link", "processed", "ok")
    assert attrs["metadata"]["parameters"] == {"order_no": "004217", "size": "L", "campaign": "spring"}
    assert attrs["metadata"]["customer"] == {"email": "payer@example.com", "full_name": "Jane Payer"}
    ours = [u for u in urls if not u.startswith(shop.url)]
    assert ours and all(u.startswith(base_url(front)) for u in ours), urls
    assert not any(PAN in u for u in urls)


async def test_bad_values_come_back_with_errors_next_to_their_fields_and_the_fix_goes_through(
    front: Front, browser: Browser, shop: Shop
) -> None:
    link = await create_link(front, return_url=shop.url)
    page = await new_page(browser, javascript=False)  # the page is a plain form: no script needed
    await page.goto(link["attributes"]["url"])
    await page.get_by_label("Order number").fill("12")
    await page.get_by_label("Size").fill("XXL")
    await page.click("#continue-button")
    await expect(page.locator("#form-error")).to_have_text("Please correct the fields marked below.")
    await expect(page.locator("#err-p_order_no")).to_have_text("This value is not in the expected format.")
    await expect(page.locator("#err-p_size")).to_have_text("This value is not in the expected format.")
    await expect(page.locator("#err-email")).to_have_text("Please fill in this field.")
    await expect(page.locator("#p_order_no")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#p_size")).to_have_value("XXL")
    _, doc = await front.call("GET", "/api/payment-invoices")
    assert doc["data"] == []
    await page.get_by_label("Order number").fill("123456")
    await page.get_by_label("Size").fill("S")
    await page.get_by_label("E-mail").fill("payer@example.com")
    await page.click("#continue-button")
    await expect(page.locator("#pay-button")).to_be_visible()
    _, doc = await front.call("GET", "/api/payment-invoices")
    assert [i["attributes"]["metadata"]["parameters"]["order_no"] for i in doc["data"]] == ["123456"]
