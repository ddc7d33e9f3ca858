"""The merchant portal in Debian's chromium (Playwright, the rig of tests/browser.py): the first login with a
one-time password, TOTP enrolment and a login with its code, lockout, a POST without the CSRF token, session
expiry by the project's setting, and one project's user never seeing another project's payment by a forged id.
Real front, real PostgreSQL, real simulator; nothing on the pages comes from another host.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from browser import base_url, new_page, screenshot, screenshot_dir
from browser import browser as browser  # fixtures
from browser import front as front
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from playwright.async_api import Browser, Page, expect
from test_http_e2e import REQUIRED, Front

pytestmark = pytest.mark.timeout(120)

NEW_PASSWORD = "Sunny#Day42x"


async def add_user(front: Front, email: str, project: str = "project", role: str = "owner") -> str:
    _, _, password = await front.runtime.portal.add_user(email, project, role)
    assert password is not None
    return password


async def log_in(page: Page, front: Front, email: str, password: str) -> None:
    await page.goto(base_url(front) + "/portal/login")
    await page.fill("input[autocomplete=username]", email)
    await page.fill("input[autocomplete=current-password]", password)
    await page.click("#login-button")


async def first_login(page: Page, front: Front, email: str, one_time: str) -> None:
    """Log in with the one-time password: the portal sends the user to choose a password first."""
    await log_in(page, front, email, one_time)
    await expect(page).to_have_url(base_url(front) + "/portal/password")
    await expect(page.locator("#must-change")).to_be_visible()
    await page.fill("#current_password", one_time)
    await page.fill("#new_password", NEW_PASSWORD)
    await page.fill("#confirm_password", NEW_PASSWORD)
    await page.click("#password-button")
    await expect(page).to_have_url(base_url(front) + "/portal/")


async def test_an_owner_changes_the_one_time_password_enrols_totp_and_logs_in_again_with_a_code(
    front: Front, browser: Browser, tmp_path: Path
) -> None:
    page = await new_page(browser)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    one_time = await add_user(front, "owner@shop.test")
    # A password breaking the seed's policy (no special character) is refused, with the rule said.
    await log_in(page, front, "owner@shop.test", one_time)
    await page.fill("#current_password", one_time)
    await page.fill("#new_password", "Sunnyday42")
    await page.fill("#confirm_password", "Sunnyday42")
    await page.click("#password-button")
    await expect(page.locator("#password-error")).to_contain_text("special character")
    # Still the one-time password: every page leads back to the password form.
    await page.goto(base_url(front) + "/portal/security")
    await expect(page).to_have_url(base_url(front) + "/portal/password")
    await page.fill("#current_password", one_time)
    await page.fill("#new_password", NEW_PASSWORD)
    await page.fill("#confirm_password", NEW_PASSWORD)
    await page.click("#password-button")
    await expect(page.locator("#no-payments")).to_be_visible()

    await page.goto(base_url(front) + "/portal/security")
    await page.fill("#totp_password", NEW_PASSWORD)
    await page.click("#totp-start")
    await expect(page.locator("#qr svg")).to_be_visible()
    secret = "".join((await page.locator("#totp-secret").inner_text()).split())
    await screenshot(page, screenshot_dir(tmp_path), "portal-totp.png")
    await page.fill("#code", pyotp.TOTP(secret).now())
    await page.click("#totp-confirm")
    await expect(page.locator("#recovery-codes li")).to_have_count(10)
    recovery = (await page.locator("#recovery-codes li").first.inner_text()).strip()

    await page.click("#logout")
    await expect(page).to_have_url(base_url(front) + "/portal/login")
    await log_in(page, front, "owner@shop.test", NEW_PASSWORD)
    await expect(page).to_have_url(base_url(front) + "/portal/login/code")
    await expect(page.locator("input[autocomplete=one-time-code]")).to_be_visible()
    await page.fill("#code", "12345")  # not a code at all
    await page.click("#code-button")
    await expect(page.locator("#code-error")).to_be_visible()
    # The next step's code: the enrolment's own code was used up (a code works once).
    await page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
    await page.click("#code-button")
    await expect(page).to_have_url(base_url(front) + "/portal/")
    await expect(page.locator("#who")).to_have_text("owner@shop.test")

    # A recovery code signs in once.
    await page.click("#logout")
    await log_in(page, front, "owner@shop.test", NEW_PASSWORD)
    await page.fill("#code", recovery)
    await page.click("#code-button")
    await expect(page).to_have_url(base_url(front) + "/portal/")
    await page.goto(base_url(front) + "/portal/security")
    results = await page.locator("#history tbody td:last-child").all_inner_texts()
    assert results[:3] == ["recovery_code", "logout", "ok"] and "bad_code" in results, results
    assert all(u.startswith(base_url(front)) for u in requests), requests


async def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(front: Front, browser: Browser) -> None:
    one_time = await add_user(front, "clerk@shop.test", role="operator")
    page = await new_page(browser)
    for _ in range(front.runtime.portal.config.max_failures):
        await log_in(page, front, "clerk@shop.test", "Wrong#Guess1")
        await expect(page.locator("#login-error")).to_have_text("Wrong e-mail or password.")
    await log_in(page, front, "clerk@shop.test", one_time)
    await expect(page.locator("#login-error")).to_contain_text("locked")
    await expect(page).to_have_url(base_url(front) + "/portal/login")
    rows = await front.runtime.db.pool.fetch(
        "SELECT result FROM portal_logins WHERE email = 'clerk@shop.test' ORDER BY id"
    )
    assert [r["result"] for r in rows] == ["bad_password"] * 5 + ["locked"]
    # An unknown address gets the same answer as a wrong password (who has an account is not told).
    await log_in(page, front, "nobody@shop.test", "Wrong#Guess1")
    await expect(page.locator("#login-error")).to_have_text("Wrong e-mail or password.")


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(front: Front, browser: Browser) -> None:
    one_time = await add_user(front, "admin@shop.test", role="admin")
    page = await new_page(browser)
    await first_login(page, front, "admin@shop.test", one_time)
    base = base_url(front)
    # The browser's own session cookie goes along (page.request shares the context's cookies); only the token is
    # missing, or wrong.
    for form in ({}, {"csrf": "forged"}):
        answer = await page.request.post(base + "/portal/logout", form=form, max_redirects=0)
        assert answer.status == 403, answer.status
        assert "default-src 'none'" in answer.headers["content-security-policy"]
    changed = await page.request.post(
        base + "/portal/password",
        form={"current_password": NEW_PASSWORD, "new_password": "Other#Pass99", "confirm_password": "Other#Pass99"},
        max_redirects=0,
    )
    assert changed.status == 403
    await page.goto(base + "/portal/")
    await expect(page.locator("#who")).to_have_text("admin@shop.test")  # still signed in: the logout was not done
    # The login form needs its token too.
    anonymous = await new_page(browser)
    refused = await anonymous.request.post(
        base + "/portal/login", form={"email": "admin@shop.test", "password": NEW_PASSWORD}, max_redirects=0
    )
    assert refused.status == 403
    await page.click("#logout")
    await log_in(page, front, "admin@shop.test", NEW_PASSWORD)  # the password the forged POST named did nothing
    await expect(page).to_have_url(base + "/portal/")


async def test_a_session_ends_after_the_projects_session_duration_without_a_request(
    front: Front, browser: Browser
) -> None:
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    await front.runtime.projects.update_settings(project.id, portal_session_minutes=5)
    one_time = await add_user(front, "viewer@shop.test", role="viewer")
    page = await new_page(browser)
    await first_login(page, front, "viewer@shop.test", one_time)
    portal = front.runtime.portal
    start = datetime.now(UTC)
    portal.clock = lambda: start + timedelta(minutes=4)  # a request within the duration keeps the session alive
    await page.goto(base_url(front) + "/portal/")
    await expect(page.locator("#who")).to_be_visible()
    portal.clock = lambda: start + timedelta(minutes=8)  # 4 minutes after that request: still alive (sliding)
    await page.goto(base_url(front) + "/portal/")
    await expect(page.locator("#who")).to_be_visible()
    portal.clock = lambda: start + timedelta(minutes=14)  # 6 minutes without a request: over
    await page.goto(base_url(front) + "/portal/")
    await expect(page).to_have_url(base_url(front) + "/portal/login")
    cookies = await page.context.cookies()
    session = [c for c in cookies if c["name"] == "isoswitch_portal"]
    assert not session or session[0]["value"] == ""


async def test_a_user_of_one_project_never_sees_another_projects_payment_by_a_forged_id(
    front: Front, browser: Browser, tmp_path: Path
) -> None:
    ours = await front.order()
    status, doc = await front.call("POST", "/orders/authorize", REQUIRED, headers=front.other)
    assert status == 200, doc
    theirs = doc["orders"][0]["id"]
    one_time = await add_user(front, "owner@shop.test")
    page = await new_page(browser, width=360, height=740, mobile=True)
    await first_login(page, front, "owner@shop.test", one_time)
    await expect(page.locator("#payments")).to_contain_text(ours["id"])
    await expect(page.locator("#payments")).not_to_contain_text(theirs)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scrolling at 360 px
    await screenshot(page, screenshot_dir(tmp_path), "portal-payments-360.png")
    await page.click(f"a[href='/portal/payments/{ours['id']}']")
    await expect(page.locator("#order-id")).to_have_text(ours["id"])
    await expect(page.locator("#order-amount")).to_have_text("9.99 USD")
    answer = await page.goto(base_url(front) + f"/portal/payments/{theirs}")
    assert answer is not None and answer.status == 404
    await expect(page.locator("#error-message")).to_have_text("No such payment in this project.")
    assert theirs not in await page.locator("main").inner_text()


async def test_a_viewer_is_refused_the_admin_pages_by_the_server_and_is_not_shown_them(
    front: Front, browser: Browser
) -> None:
    one_time = await add_user(front, "viewer@shop.test", role="viewer")
    page = await new_page(browser)
    await first_login(page, front, "viewer@shop.test", one_time)
    await expect(page.locator("a[href='/portal/team']")).to_have_count(0)
    answer = await page.goto(base_url(front) + "/portal/team")
    assert answer is not None and answer.status == 403
    await expect(page.locator("#error-message")).to_contain_text("viewer")
    # Keyboard: the first Tab reaches the skip link, and the focus is drawn.
    await page.goto(base_url(front) + "/portal/")
    await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.className")
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused == "skip" and outline == "solid"


async def test_an_owner_adds_an_operator_who_logs_in_and_loses_access_when_removed(
    front: Front, browser: Browser
) -> None:
    one_time = await add_user(front, "owner@shop.test")
    owner = await new_page(browser)
    await first_login(owner, front, "owner@shop.test", one_time)
    await owner.click("a[href='/portal/team']")
    await owner.fill("#member_email", "clerk@shop.test")
    await owner.select_option("#member_role", "operator")
    await owner.click("#member-add")
    await expect(owner.locator("#team-added")).to_contain_text("clerk@shop.test is now operator")
    clerk_password = (await owner.locator("#one-time-password").inner_text()).strip()

    clerk = await new_page(browser)
    await first_login(clerk, front, "clerk@shop.test", clerk_password)
    await expect(clerk.locator("#role")).to_have_text("operator")
    answer = await clerk.goto(base_url(front) + "/portal/team")
    assert answer is not None and answer.status == 403  # the team is an admin's page

    await owner.reload()
    await owner.click("button[aria-label='Remove clerk@shop.test']")
    await expect(owner.locator("#team")).not_to_contain_text("clerk@shop.test")
    await clerk.goto(base_url(front) + "/portal/")
    await expect(clerk).to_have_url(base_url(front) + "/portal/login")  # its session ended with its role


async def test_an_admin_can_neither_make_an_owner_nor_remove_one(front: Front, browser: Browser) -> None:
    await add_user(front, "owner@shop.test")
    one_time = await add_user(front, "admin@shop.test", role="admin")
    page = await new_page(browser)
    await first_login(page, front, "admin@shop.test", one_time)
    await page.goto(base_url(front) + "/portal/team")
    await expect(page.locator("#member_role option")).to_have_text(["admin", "operator", "viewer"])
    await expect(page.locator("button[aria-label='Remove owner@shop.test']")).to_have_count(0)
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf is not None
    # Forged forms, with the right CSRF token: the server refuses what the page does not offer.
    made = await page.request.post(
        base_url(front) + "/portal/team", form={"csrf": csrf, "email": "boss@shop.test", "role": "owner"}
    )
    assert made.status == 403
    removed = await page.request.post(
        base_url(front) + "/portal/team/remove", form={"csrf": csrf, "email": "owner@shop.test"}
    )
    assert removed.status == 403
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    members = await front.runtime.portal.team.members(project.id)
    assert sorted((m["email"], m["role"]) for m in members) == [
        ("admin@shop.test", "admin"),
        ("owner@shop.test", "owner"),
    ]
