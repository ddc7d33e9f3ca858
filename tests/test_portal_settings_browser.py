"""The portal's settings in Debian's chromium (Playwright, tests/browser.py's rig): an owner changes settings on
the page and sees them take effect -- the payment page's logo, template and final page for the cardholder (then
the final page switched off again: straight back to the shop), auto-capture charging an authorization once its
capture time has passed (the job's clock moved), and a webhook endpoint whose secret is shown once. Real front,
real PostgreSQL, real simulator; nothing on the pages comes from another host.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from browser import Shop, base_url, new_page, screenshot, screenshot_dir
from browser import browser as browser  # fixtures
from browser import front as front
from browser import shop as shop
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from playwright.async_api import Browser, Page, expect
from test_hpp_browser import create, fill_card, watch
from test_http_e2e import Front
from test_portal_browser import add_user, first_login
from test_portal_settings import PNG
from waiting import wait_for

pytestmark = pytest.mark.timeout(150)


async def open_settings(page: Page) -> None:
    await page.click("nav >> text=Settings")
    await expect(page.locator("#settings-form")).to_be_visible()


async def save(page: Page) -> None:
    await page.click("#settings-save")
    await expect(page.locator("#settings-saved")).to_have_text("Settings saved.")


async def test_an_owner_sets_the_logo_template_and_final_page_and_the_cardholder_sees_them(
    front: Front, browser: Browser, shop: Shop, tmp_path: Path
) -> None:
    shots = screenshot_dir(tmp_path)
    page = await new_page(browser)
    await first_login(page, front, "owner@shop.test", await add_user(front, "owner@shop.test"))
    await open_settings(page)
    await page.check("#s_show_final_page")
    await page.select_option("#s_page_template", "dark")
    await save(page)
    await expect(page.locator("#s_show_final_page")).to_be_checked()
    await page.set_input_files("#logo", files=[{"name": "logo.png", "mimeType": "image/png", "buffer": PNG}])
    await page.click("#logo-upload")
    await expect(page.locator("#logo-preview")).to_be_visible()
    assert await page.locator("#logo-preview").evaluate("img => img.naturalWidth") == 160  # served and decoded
    await screenshot(page, shots, "portal-settings.png")

    # The cardholder's page: the logo from this origin, the dark template, and after paying the final page.
    url, order_id = await create(front, return_url=shop.url)
    payer = await new_page(browser)
    urls, console = watch(payer, front)
    await payer.goto(url)
    await expect(payer.locator("body")).to_have_class("tpl-dark")
    assert await payer.locator("#logo").evaluate("img => img.naturalWidth") == 160
    await fill_card(payer)
    await payer.click("#pay-button")
    await expect(payer.locator("#final-page")).to_contain_text(order_id)
    await expect(payer.locator("#final-page")).to_contain_text("411111")  # the masked card, never the whole number
    await expect(payer.locator("#back")).to_have_attribute("href", shop.url)
    assert shop.visits == []  # shown the final page, not sent back
    await screenshot(payer, shots, "portal-settings-final-page.png")
    assert all(u.startswith(base_url(front)) for u in urls), urls
    assert not [m for m in console if "Content Security Policy" in m], console

    # Switched off again: the next payment goes straight back to the shop.
    await page.goto(base_url(front) + "/portal/settings")
    await page.uncheck("#s_show_final_page")
    await save(page)
    url, _ = await create(front, return_url=shop.url)
    await payer.goto(url)
    await fill_card(payer)
    await payer.click("#pay-button")
    await expect(payer.locator("#shop")).to_be_visible()

    # Narrow screen: the settings page reads at 360 px without sideways scrolling.
    narrow = await new_page(browser, width=360, height=740, mobile=True)
    await narrow.context.add_cookies(await page.context.cookies())
    await narrow.goto(base_url(front) + "/portal/settings")
    await expect(narrow.locator("#settings-form")).to_be_visible()
    assert await narrow.evaluate("document.documentElement.scrollWidth") <= 360
    await screenshot(narrow, shots, "portal-settings-360.png")


async def test_auto_capture_set_on_the_page_charges_the_authorization_when_its_time_has_come(
    front: Front, browser: Browser
) -> None:
    page = await new_page(browser)
    await first_login(page, front, "admin@shop.test", await add_user(front, "admin@shop.test", role="admin"))
    await open_settings(page)
    await page.check("#s_auto_capture")
    await page.fill("#s_capture_hours", "0")
    await page.click("#settings-save")
    await expect(page.locator("#settings-error")).to_contain_text(
        "Capture time (in hours): capture_hours must be 1..720"
    )
    await page.fill("#s_capture_hours", "3")
    await save(page)

    order = await front.order()
    job = front.runtime.autocapture
    assert job is not None
    start = datetime.now(UTC)
    job.clock = lambda: start + timedelta(hours=2)
    await job.work_once()
    await page.goto(base_url(front) + f"/portal/payments/{order['id']}")
    await expect(page.locator("#order-status")).to_have_text("authorized")
    job.clock = lambda: start + timedelta(hours=3, minutes=1)
    job.kick()  # the running job's next round, as its interval would bring it

    async def charged() -> bool:
        _, doc = await front.call("GET", f"/orders/{order['id']}")
        return bool(doc["orders"][0]["status"] == "charged")

    await wait_for(charged, timeout=20, what="the auto-capture")
    await page.goto(base_url(front) + f"/portal/payments/{order['id']}")
    await expect(page.locator("#order-status")).to_have_text("charged")


async def test_a_webhook_endpoint_added_on_the_page_shows_its_secret_once(
    front: Front, browser: Browser, tmp_path: Path
) -> None:
    page = await new_page(browser)
    await first_login(page, front, "owner@shop.test", await add_user(front, "owner@shop.test"))
    await page.click("nav >> text=Webhooks")
    await page.fill("#endpoint_name", "shop")
    await page.fill("#endpoint_url", "http://127.0.0.1:9/hooks")
    await page.click("#endpoint-add")
    secret = await page.locator("#webhook-secret").inner_text()
    assert secret.startswith("whsec_")
    await front.order()
    await page.goto(base_url(front) + "/portal/webhooks")
    await expect(page.locator("#deliveries")).to_contain_text("order.authorized")
    await expect(page.locator("body")).not_to_contain_text(secret)
    await screenshot(page, screenshot_dir(tmp_path), "portal-webhooks.png")
    await page.click("#deliveries button:text('Redeliver')")
    await expect(page.locator("#webhooks-notice")).to_contain_text("is sent again")
