"""The portal's account area in Debian's chromium (Playwright, the rig of tests/browser.py): a recovery mail read
from the SMTP sink of ``isoswitch up`` and its link used once, the e-mail code turned on and used to log in, the
API keys page (a key shown once, then masked, taken by the API until deleted with the password) at 360 px, and the
project switcher. Real front, real PostgreSQL, real simulator, mails through the real SMTP client.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from browser import base_url, new_page, screenshot, screenshot_dir
from browser import browser as browser  # fixtures
from browser import front as front
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from playwright.async_api import Browser, Page, expect
from test_http_e2e import Front
from test_portal_browser import NEW_PASSWORD, add_user, first_login, log_in
from waiting import wait_for

from http_front.outbound.smtp import SmtpSender
from isoswitch.mailsink import MailSink, read_mails
from switch.mail import MailConfig

pytestmark = pytest.mark.timeout(120)

_CODE = re.compile(r"\b(\d{6})\b")


@pytest.fixture
async def sink(front: Front, tmp_path: Path) -> AsyncIterator[MailSink]:
    """The SMTP sink, and the front's outbox sending to it."""
    s = MailSink(tmp_path / "mail", port=0)
    await s.start()
    front.runtime.mail.start(SmtpSender(MailConfig(port=s.port, poll_interval=0.05)))
    try:
        yield s
    finally:
        await s.close()


def mails_to(sink: MailSink, address: str) -> list[EmailMessage]:
    return [m for m in read_mails(sink.directory) if m["To"] == address]


def part(mail: EmailMessage, kind: str) -> str:
    body = mail.get_body((kind,))
    assert body is not None
    return str(body.get_content())


async def signed_in(browser: Browser, front: Front, email: str, role: str = "owner", **size: int) -> Page:
    page = await new_page(browser, **size) if size else await new_page(browser)
    await first_login(page, front, email, await add_user(front, email, role=role))
    return page


async def test_a_recovery_mail_read_from_the_smtp_sink_sets_a_new_password_once(
    front: Front, browser: Browser, sink: MailSink, tmp_path: Path
) -> None:
    await signed_in(browser, front, "owner@shop.test")
    page = await new_page(browser)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    await page.goto(base_url(front) + "/portal/login")
    await page.click("#forgot")
    await page.fill("input[autocomplete=username]", "owner@shop.test")
    await screenshot(page, screenshot_dir(tmp_path), "portal-account-recover.png")
    await page.click("#recover-button")
    await expect(page.locator("#recover-sent")).to_contain_text("If this address has an account")
    (mail,) = await wait_for(lambda: mails_to(sink, "owner@shop.test"), what="the recovery mail in the sink")
    # The mail as a mail client shows it: a local file, its link the way back to the portal.
    letter = tmp_path / "recovery.html"
    letter.write_text(part(mail, "html"))
    await page.goto(letter.as_uri())
    await page.click("#recover-link")
    await expect(page.locator("h1")).to_have_text("Choose a new password")
    link = page.url
    new = "Rainy#Night77"
    await page.fill("#new_password", new)
    await page.fill("#confirm_password", new)
    await page.click("#reset-button")
    await expect(page.locator("#recovered")).to_be_visible()
    await page.click("#to-login")
    await log_in(page, front, "owner@shop.test", new)
    await expect(page.locator("#who")).to_have_text("owner@shop.test")
    # Used once: the same link again is refused, and the password it would set does not work.
    answer = await page.goto(link)
    assert answer is not None and answer.status == 410
    await expect(page.locator("#error-message")).to_contain_text("unknown, used or expired")
    await page.goto(base_url(front) + "/portal/")
    await page.click("#logout")
    await log_in(page, front, "owner@shop.test", NEW_PASSWORD)
    await expect(page.locator("#login-error")).to_have_text("Wrong e-mail or password.")
    # An unknown address: the same answer, and no mail.
    await page.goto(base_url(front) + "/portal/recover")
    await page.fill("#email", "nobody@shop.test")
    await page.click("#recover-button")
    await expect(page.locator("#recover-sent")).to_contain_text("If this address has an account")
    assert len(read_mails(sink.directory)) == 1
    portal_requests = [u for u in requests if not u.startswith("file:")]
    assert all(u.startswith(base_url(front)) for u in portal_requests), portal_requests


async def test_an_owner_turns_on_the_email_code_and_logs_in_with_the_code_from_the_sink(
    front: Front, browser: Browser, sink: MailSink, tmp_path: Path
) -> None:
    page = await signed_in(browser, front, "owner@shop.test")
    await page.goto(base_url(front) + "/portal/security")
    await page.fill("#email_password", NEW_PASSWORD)
    await page.click("#email-code-start")
    (mail,) = await wait_for(lambda: mails_to(sink, "owner@shop.test"), what="the enrolment code")
    code = _CODE.search(part(mail, "plain"))
    assert code is not None
    await page.fill("#code", code[1])
    await page.click("#email-code-confirm")
    await expect(page.locator("#email-code-state")).to_contain_text("on")
    await screenshot(page, screenshot_dir(tmp_path), "portal-account-security.png")

    await page.click("#logout")
    await log_in(page, front, "owner@shop.test", NEW_PASSWORD)
    await expect(page.locator("#code-by-email")).to_be_visible()
    mails = await wait_for(lambda: mails_to(sink, "owner@shop.test")[1:], what="the login code")
    login_code = _CODE.search(part(mails[0], "plain"))
    assert login_code is not None
    await page.fill("input[autocomplete=one-time-code]", login_code[1])
    await page.click("#code-button")
    await expect(page.locator("#who")).to_have_text("owner@shop.test")
    await page.goto(base_url(front) + "/portal/security")
    results = await page.locator("#history tbody td:last-child").all_inner_texts()
    assert results[0] == "email_code", results


async def test_an_api_key_is_shown_once_then_masked_works_on_the_api_and_is_deleted_with_the_password(
    front: Front, browser: Browser, tmp_path: Path
) -> None:
    page = await signed_in(browser, front, "admin@shop.test", role="admin", width=360, height=740, mobile=True)
    await page.click("a[href='/portal/api-keys']")
    await page.fill("#key_name", "Shop backend")
    await page.click("#key-generate")
    login = (await page.locator("#new-key-login").inner_text()).strip()
    password = (await page.locator("#new-key-password").inner_text()).strip()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scrolling at 360 px
    await screenshot(page, screenshot_dir(tmp_path), "portal-account-keys-360.png")
    auth = {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}
    assert (await front.call("GET", "/orders/", headers=auth))[0] == 200
    await page.goto(base_url(front) + "/portal/api-keys")
    await expect(page.locator("#keys")).to_contain_text(f"{password[:3]}…{password[-3:]}")
    assert password not in await page.content()
    await page.click("a[aria-label='Delete Shop backend']")
    await page.fill("#delete_password", "Wrong#Pass1")
    await page.click("#key-delete")
    await expect(page.locator("#delete-error")).to_have_text("The password is wrong.")
    await page.fill("#delete_password", NEW_PASSWORD)
    await page.click("#key-delete")
    await expect(page.locator("#no-keys")).to_be_visible()
    assert (await front.call("GET", "/orders/", headers=auth))[0] == 401


async def test_a_user_of_two_projects_switches_to_the_other_and_gets_its_role(
    front: Front, browser: Browser, tmp_path: Path
) -> None:
    page = await signed_in(browser, front, "ann@shop.test")
    await front.runtime.portal.add_user("ann@shop.test", "other", "viewer")
    await page.click("a[href='/portal/api-keys']")
    await page.fill("#key_name", "Reporting")
    await page.click("#key-generate")
    await expect(page.locator("#new-key")).to_be_visible()
    await screenshot(page, screenshot_dir(tmp_path), "portal-account-keys.png")
    await page.click("a[href='/portal/projects']")
    await expect(page.locator("#projects")).to_contain_text("other")
    await screenshot(page, screenshot_dir(tmp_path), "portal-account-projects.png")
    await page.click("button[aria-label='Switch to other']")
    await expect(page.locator("#project")).to_have_text("other")
    await expect(page.locator("#role")).to_have_text("viewer")
    await expect(page.locator("a[href='/portal/api-keys']")).to_have_count(0)
