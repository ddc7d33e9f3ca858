"""The hosted payment page in Debian's chromium (Playwright): paid, declined, errors as you type and from
the server, expired, already paid, JavaScript off, 360 px and the keyboard; and with 3-D Secure, on the
rig of tests/secure3d_rig.py (the simulator's DS and ACS): the page's script gives 3-D Secure 2 its
browser details (method in a hidden frame, then the ACS's challenge), without the script the page runs
3-D Secure 1 through the visible buttons.

Screenshots: ``ISOSWITCH_SCREENSHOTS=1 pytest tests/test_hpp_browser.py`` writes docs/hpp.png,
docs/hpp-mobile.png and docs/hpp-3ds.png (the README shows them); without it they go to pytest's tmp dir.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import secure3d_rig
from browser import Shop, base_url, new_page, screenshot, screenshot_dir
from browser import browser as browser  # fixtures
from browser import front as front
from browser import shop as shop
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from playwright.async_api import Browser, Page, expect
from secure3d_rig import Rig
from test_http_e2e import Front

from switch.orders.engine import Engine

pytestmark = pytest.mark.timeout(90)

PAN = "4111111111111111"
DECLINED = "4276990011343663"


async def create(front: Front | Rig, extra_fields: dict[str, Any] | None = None, **options: Any) -> tuple[str, str]:
    """A page for 9.99 USD: its URL (the create answer's Location) and the order id."""
    body: dict[str, Any] = {"amount": "9.99", "description": "Book sale #453", "options": options}
    if extra_fields is not None:
        body["extra_fields"] = extra_fields
    resp = await front.http.post("/orders/create", json=body, headers=front.auth)
    doc = await resp.json()
    assert resp.status == 201, doc
    return resp.headers["Location"], doc["orders"][0]["id"]


async def order_status(front: Front | Rig, order_id: str) -> str:
    _, doc = await front.call("GET", f"/orders/{order_id}")
    status: str = doc["orders"][0]["status"]
    return status


def watch(page: Page, front: Front | Rig) -> tuple[list[str], list[str]]:
    """Every URL the page requests and every console message (CSP violations land there)."""
    urls: list[str] = []
    console: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.on("console", lambda m: console.append(m.text))
    return urls, console


async def fill_card(page: Page, pan: str = PAN) -> None:
    await page.fill("#number", pan)
    await page.fill("#exp_month", "12")
    await page.fill("#exp_year", "30")
    await page.fill("#cvc", "123")
    await page.fill("#holder", "JOHN SMITH")


async def test_the_page_is_paid_from_the_keyboard_and_the_cardholder_lands_on_return_url(
    front: Front, browser: Browser, shop: Shop, tmp_path: Path
) -> None:
    url, order_id = await create(front, return_url=shop.url)
    page = await new_page(browser)
    urls, console = watch(page, front)
    await page.goto(url)
    await expect(page.locator("#amount")).to_have_text("9.99 USD")
    # Keyboard only: focus the number, then Tab from field to field, Enter to pay.
    await page.focus("#number")
    for value in (PAN, "12", "30", "123", "JOHN SMITH"):
        await page.keyboard.type(value)
        await page.keyboard.press("Tab")
    await expect(page.locator("#err-number")).to_have_text("")
    await screenshot(page, screenshot_dir(tmp_path), "hpp.png")
    await page.focus("#holder")
    await page.keyboard.press("Enter")
    await page.wait_for_url(shop.url)
    await expect(page.locator("#shop")).to_be_visible()
    assert await order_status(front, order_id) == "authorized"
    origin = base_url(front)
    page_requests = [u for u in urls if not u.startswith(shop.url)]
    assert page_requests and all(u.startswith(origin) for u in page_requests), urls  # nothing from other hosts
    assert not any(PAN in u for u in urls)
    assert not [m for m in console if "Content Security Policy" in m], console
    assert len(front.iso("0100")) == 1


async def test_a_declined_card_shows_the_decline_and_its_reason(front: Front, browser: Browser, shop: Shop) -> None:
    url, order_id = await create(front, return_url=shop.url)
    page = await new_page(browser)
    await page.goto(url)
    await fill_card(page, DECLINED)
    await page.click("#pay-button")
    await expect(page.locator("#result")).to_have_attribute("data-state", "declined")
    await expect(page.locator("#reason")).to_contain_text("Reason:")
    await expect(page.locator("#back")).to_have_attribute("href", shop.url)
    assert await order_status(front, order_id) == "declined"


async def test_a_luhn_error_shows_next_to_the_number_as_you_type_and_again_from_the_server(
    front: Front, browser: Browser
) -> None:
    url, _ = await create(front)
    page = await new_page(browser)
    await page.goto(url)
    await page.locator("#number").press_sequentially("4111111111111112")
    error = page.locator("#err-number")
    await expect(error).to_have_text("This card number is not valid.")  # no submit, no blur: as typed
    await expect(page.locator("#number")).to_have_attribute("aria-invalid", "true")
    await page.locator("#number").press("Backspace")
    await page.locator("#number").press_sequentially("1")
    await expect(error).to_have_text("")
    # The server checks the same: a browser without the script posts the bad number.
    plain = await new_page(browser, javascript=False)
    await plain.goto(url)
    await fill_card(plain, "4111111111111112")
    await plain.click("#pay-button")
    await expect(plain.locator("#err-number")).to_have_text("This card number is not valid.")
    await expect(plain.locator("#number")).to_have_attribute("aria-describedby", "err-number")
    await expect(plain.locator("#number")).to_have_value("")  # never echoed back
    assert front.iso("0100") == []


async def test_a_project_without_cvv_and_holder_required_shows_them_optional_and_its_page_pays_without_them(
    front: Front, browser: Browser, shop: Shop
) -> None:
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    await front.runtime.projects.update_settings(project.id, cvv_required=False, holder_required=False)
    url, order_id = await create(front, return_url=shop.url)
    page = await new_page(browser)
    await page.goto(url)
    for name, label in (("cvc", "Security code (CVC) (optional)"), ("holder", "Name on card (optional)")):
        await expect(page.locator(f"label[for={name}]")).to_have_text(label)
        assert not await page.locator(f"#{name}").evaluate("e => e.required")
    await page.fill("#number", PAN)
    await page.fill("#exp_month", "12")
    await page.fill("#exp_year", "30")
    await page.click("#pay-button")  # the page's script lets the empty code and name through
    await page.wait_for_url(shop.url)
    assert await order_status(front, order_id) == "authorized"
    (msg,) = front.iso("0100")
    assert "120" not in msg


async def test_an_expired_page_says_so(front: Front, browser: Browser) -> None:
    url, order_id = await create(front, expiration_timeout="1m")
    engine: Engine = front.runtime.orders.engine
    clock = engine.clock
    engine.clock = lambda: clock() + timedelta(minutes=5)
    try:
        page = await new_page(browser)
        await page.goto(url)
        await expect(page.locator("#result")).to_have_attribute("data-state", "expired")
        await expect(page.locator("h1")).to_have_text("This payment page has expired")
        assert await page.locator("#number").count() == 0
    finally:
        engine.clock = clock
    assert await order_status(front, order_id) == "new"


async def test_an_already_paid_page_says_so_and_offers_no_form(front: Front, browser: Browser) -> None:
    url, _ = await create(front)
    page = await new_page(browser)
    await page.goto(url)
    await fill_card(page)
    await page.click("#pay-button")
    await expect(page.locator("#result")).to_have_attribute("data-state", "paid")
    again = await new_page(browser)
    await again.goto(url)
    await expect(again.locator("h1")).to_have_text("Payment successful")
    assert await again.locator("form").count() == 0
    assert len(front.iso("0100")) == 1


async def test_with_javascript_off_the_page_pays_by_a_plain_form_post(
    front: Front, browser: Browser, shop: Shop
) -> None:
    url, order_id = await create(front, return_url=shop.url, language="ru")
    page = await new_page(browser, javascript=False)
    await page.goto(url)
    await expect(page.locator("#pay-button")).to_contain_text("Оплатить")
    await fill_card(page)
    await page.click("#pay-button")
    await page.wait_for_url(shop.url)
    assert await order_status(front, order_id) == "authorized"
    assert "/done" in shop.visits


async def test_the_page_is_usable_at_360_px(front: Front, browser: Browser, tmp_path: Path) -> None:
    url, order_id = await create(front, mobile=1)
    page = await new_page(browser, width=360, height=740, mobile=True)
    await page.goto(url)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360  # no sideways scrolling
    for field in ("#number", "#exp_month", "#exp_year", "#cvc", "#holder", "#pay-button"):
        box = await page.locator(field).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360, field
    await page.locator("#number").press_sequentially("4111 1111 1111 1112")
    await expect(page.locator("#err-number")).not_to_be_empty()
    await screenshot(page, screenshot_dir(tmp_path), "hpp-mobile.png")
    await page.fill("#number", PAN)
    await page.fill("#exp_month", "12")
    await page.fill("#exp_year", "2030")
    await page.fill("#cvc", "123")
    await page.fill("#holder", "JOHN SMITH")
    await page.click("#pay-button")
    await expect(page.locator("#result")).to_have_attribute("data-state", "paid")
    assert await order_status(front, order_id) == "authorized"


# -- with 3-D Secure ------------------------------------------------------------------------------

ALWAYS_CHALLENGE = "4000000000003220"  # 3DS2: method URL, always a challenge; 3DS1: a challenge
NOT_ENROLLED = "4276838748917319"


@pytest.fixture
async def rig(fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Rig]:  # noqa: F811
    async for r in secure3d_rig.open_rig(fresh_dsn, scratch_dir):
        yield r


async def through_acs(page: Page, code: str) -> None:
    """The ACS's challenge: type ``code``, confirm (its answer page posts on to the switch by itself)."""
    await page.get_by_label("One-time code").fill(code)
    await page.get_by_role("button", name="Confirm").click()


async def test_the_page_with_3ds_sends_the_cardholder_through_the_acs_and_lands_on_return_url_authorized(
    rig: Rig, browser: Browser, shop: Shop, tmp_path: Path
) -> None:
    url, order_id = await create(rig, return_url=shop.url, force3d=1)
    page = await new_page(browser)
    urls, console = watch(page, rig)
    await page.goto(url)
    await fill_card(page, ALWAYS_CHALLENGE)
    await page.click("#pay-button")
    # The script gave the browser details: 3-D Secure 2, its method in the hidden frame, then the challenge.
    await page.get_by_label("One-time code").wait_for()
    assert "/acs/3ds2/challenge" in page.url
    await screenshot(page, screenshot_dir(tmp_path), "hpp-3ds.png")
    await through_acs(page, "1234")
    await page.wait_for_url(shop.url)
    assert await order_status(rig, order_id) == "authorized"
    (msg,) = rig.iso("0100")
    assert msg["121"] == "05" and "122" in msg
    _, doc = await rig.call("GET", f"/orders/{order_id}?expand=secure3d")
    assert doc["orders"][0]["secure3d"]["version"] == "2" and doc["orders"][0]["secure3d"]["scenario"] == "full"
    assert any("/acs/3ds2/method" in u for u in urls)
    assert not any(ALWAYS_CHALLENGE in u for u in urls)
    assert not [m for m in console if "Content Security Policy" in m], console


async def test_a_wrong_code_at_the_acs_shows_the_page_declined_and_nothing_is_authorized(
    rig: Rig, browser: Browser, shop: Shop
) -> None:
    url, order_id = await create(rig, return_url=shop.url, force3d=1)
    page = await new_page(browser)
    await page.goto(url)
    await fill_card(page, ALWAYS_CHALLENGE)
    await page.click("#pay-button")
    await through_acs(page, "0000")
    await expect(page.locator("#result")).to_have_attribute("data-state", "declined")
    await expect(page.locator("#reason")).to_contain_text("3-D Secure")
    assert await order_status(rig, order_id) == "declined"
    assert rig.iso("0100") == []
    again = await new_page(browser)
    await again.goto(url)
    await expect(again.locator("#result")).to_have_attribute("data-state", "declined")


async def test_a_card_not_enrolled_pays_on_the_page_without_a_challenge(rig: Rig, browser: Browser, shop: Shop) -> None:
    url, order_id = await create(rig, return_url=shop.url, force3d=1)
    page = await new_page(browser)
    urls, _ = watch(page, rig)
    await page.goto(url)
    await fill_card(page, NOT_ENROLLED)
    await page.click("#pay-button")
    await page.wait_for_url(shop.url)
    assert await order_status(rig, order_id) == "authorized"
    (msg,) = rig.iso("0100")
    assert msg["121"] == "07"  # Visa, no authentication
    assert not any("/acs/" in u for u in urls)


async def test_with_javascript_off_the_page_runs_3ds1_through_the_acs_by_its_visible_buttons_and_keeps_the_card(
    rig: Rig, browser: Browser, shop: Shop
) -> None:
    oneclick = {"oneclick": {"customer_id": "cust42", "prechecked": 0}}
    url, order_id = await create(rig, oneclick, return_url=shop.url, force3d=1)
    page = await new_page(browser, javascript=False)
    await page.goto(url)
    await fill_card(page, PAN)
    await expect(page.locator("#save_card")).not_to_be_checked()
    await page.get_by_label("Save this card for next time").check()
    await page.click("#pay-button")
    await expect(page.locator("#continue-button")).to_be_visible()
    await page.click("#continue-button")  # no script: the cardholder takes the form to the ACS
    assert "/acs/3ds1" in page.url
    await through_acs(page, "1234")
    await page.get_by_role("button", name="Continue").click()  # the ACS's answer, posted by hand
    await page.wait_for_url(shop.url)
    assert await order_status(rig, order_id) == "authorized"
    (msg,) = rig.iso("0100")
    assert msg["121"] == "05" and "122" in msg and "123" in msg
    _, doc = await rig.call("GET", f"/orders/{order_id}?expand=secure3d")
    assert doc["orders"][0]["secure3d"]["version"] == "1"
    _, cards = await rig.call("GET", "/customers/cust42/cards")
    (kept,) = cards["cards"]  # ticked before 3-D Secure, kept once the ACS's answer authorized it
    assert kept["pan"] == "411111****1111"


async def test_a_require_3ds_project_runs_3ds_on_its_page_and_a_failed_one_is_declined(
    rig: Rig, browser: Browser, shop: Shop
) -> None:
    project = await rig.runtime.projects.by_login("project")
    assert project is not None
    await rig.runtime.projects.update_settings(project.id, require_3ds=True)
    url, order_id = await create(rig, return_url=shop.url)
    page = await new_page(browser, javascript=False)
    await page.goto(url)
    await fill_card(page, PAN)
    await page.click("#pay-button")
    await page.click("#continue-button")
    await through_acs(page, "9999")
    await page.get_by_role("button", name="Continue").click()
    await expect(page.locator("#result")).to_have_attribute("data-state", "declined")
    _, doc = await rig.call("GET", f"/orders/{order_id}?expand=secure3d")
    assert doc["orders"][0]["status"] == "declined"
    assert doc["orders"][0]["secure3d"]["reason"] == "require_3ds"
    assert rig.iso("0100") == []
