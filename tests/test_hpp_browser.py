"""The hosted payment page in Debian's chromium (Playwright): paid, declined, errors as you type and from
the server, expired, already paid, JavaScript off, 360 px and the keyboard.

Screenshots: ``ISOSWITCH_SCREENSHOTS=1 pytest tests/test_hpp_browser.py`` writes docs/hpp.png and
docs/hpp-mobile.png (the README shows them); without it they go to pytest's tmp dir.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from browser import Shop, base_url, new_page, screenshot, screenshot_dir
from browser import browser as browser  # fixtures
from browser import front as front
from browser import shop as shop
from playwright.async_api import Browser, Page, expect
from test_http_e2e import Front

from switch.orders.engine import Engine

pytestmark = pytest.mark.timeout(90)

PAN = "4111111111111111"
DECLINED = "4276990011343663"


async def create(front: Front, **options: Any) -> tuple[str, str]:
    """A page for 9.99 USD: its URL (the create answer's Location) and the order id."""
    body = {"amount": "9.99", "description": "Book sale #453", "options": options}
    resp = await front.http.post("/orders/create", json=body, headers=front.auth)
    doc = await resp.json()
    assert resp.status == 201, doc
    return resp.headers["Location"], doc["orders"][0]["id"]


async def order_status(front: Front, order_id: str) -> str:
    _, doc = await front.call("GET", f"/orders/{order_id}")
    status: str = doc["orders"][0]["status"]
    return status


def watch(page: Page, front: Front) -> tuple[list[str], list[str]]:
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
