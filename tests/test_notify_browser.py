"""Notifications in Debian's chromium: an owner chooses e-mail and Telegram for approved payments on the
preferences page, a payment through the API reaches the fake bot API, the SMTP sink and the notification centre,
where it is marked read; the pages at 360 px. Real front, real simulator, real PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from browser import base_url, new_page, screenshot, screenshot_dir
from browser import browser as browser  # fixtures
from browser import front as front
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from playwright.async_api import Browser, Page, expect
from test_http_e2e import Front
from test_mail import sending
from test_mail import sink as sink  # fixture
from test_notify import FakeBot, config, mail_to
from test_notify import bot as bot  # fixture
from test_portal_browser import add_user, first_login
from waiting import wait_for

from http_front.outbound.telegram import TelegramHttpSender
from isoswitch.mailsink import MailSink

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
async def notifying(front: Front, sink: MailSink, bot: FakeBot) -> AsyncIterator[Front]:
    mailer = sending(front, sink.port)
    cfg = config(bot)
    front.runtime.notify.start(mailer, TelegramHttpSender(cfg), cfg)
    try:
        yield front
    finally:
        await front.runtime.notify.close()
        await mailer.close()


async def no_sideways_scroll(page: Page) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360


async def test_an_owner_chooses_channels_and_a_payment_reaches_telegram_the_mailbox_and_the_centre(
    notifying: Front, browser: Browser, sink: MailSink, bot: FakeBot, tmp_path: Path
) -> None:
    front = notifying
    page = await new_page(browser)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    await first_login(page, front, "owner@shop.test", await add_user(front, "owner@shop.test"))
    await page.click("nav >> text=Notifications")
    await expect(page.locator("#no-notifications")).to_be_visible()
    await page.click("#notify-settings")
    await page.check("#email_payment_approved")
    await page.check("#telegram_payment_approved")
    await page.check("#on_refund")
    await page.fill("#telegram_chat", "4242")
    await page.click("#notify-save")
    await expect(page.locator("#notify-saved")).to_be_visible()
    await expect(page.locator("#on_payment_approved")).to_be_checked()  # a channel means "notify me"
    await screenshot(page, screenshot_dir(tmp_path), "portal-notify-prefs.png")

    status, doc = await front.call("POST", "/orders/authorize", {**_required(), "merchant_order_id": "shop-77"})
    assert status == 200
    oid = doc["orders"][0]["id"]
    (msg,) = await wait_for(lambda: bot.messages, what="the Telegram message")
    assert msg["chat_id"] == "4242" and oid in msg["text"] and "shop-77" in msg["text"]
    (mail,) = await wait_for(lambda: mail_to(sink, "owner@shop.test"), what="the e-mail")
    assert mail["Subject"] == "Payment approved: 9.99 USD"

    await page.goto(base_url(front) + "/portal/notifications")
    await expect(page.locator("#unread-count")).to_have_text("1 unread")
    item = page.locator(".notify-item.unread")
    await expect(item).to_contain_text("Payment approved: 9.99 USD")
    await expect(item).to_contain_text("email: sent")
    await expect(item).to_contain_text("telegram: sent")
    await screenshot(page, screenshot_dir(tmp_path), "portal-notify.png")
    await item.get_by_role("link", name="Open").click()
    await expect(page).to_have_url(base_url(front) + f"/portal/payments/{oid}")
    await page.goto(base_url(front) + "/portal/notifications?show=unread")
    await page.get_by_role("button", name="Mark “Payment approved: 9.99 USD” read").click()
    await expect(page.locator("#no-notifications")).to_have_text("Nothing unread.")
    await page.click("#show-all")
    await expect(page.locator(".notify-item")).to_have_count(1)
    await expect(page.locator(".notify-item.unread")).to_have_count(0)
    origin = base_url(front)
    assert all(u.startswith(origin) for u in requests), [u for u in requests if not u.startswith(origin)]

    small = await new_page(browser, width=360, height=740, mobile=True)
    await small.context.add_cookies(await page.context.cookies())
    await small.goto(base_url(front) + "/portal/notifications")
    await expect(small.locator(".notify-item")).to_have_count(1)
    await no_sideways_scroll(small)
    await screenshot(small, screenshot_dir(tmp_path), "portal-notify-360.png")
    await small.goto(base_url(front) + "/portal/notifications/settings")
    await screenshot(small, screenshot_dir(tmp_path), "portal-notify-prefs-360.png")
    await no_sideways_scroll(small)


def _required() -> dict[str, object]:
    from test_http_e2e import REQUIRED

    return dict(REQUIRED)
