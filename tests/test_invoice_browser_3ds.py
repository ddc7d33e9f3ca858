"""3-D Secure on an invoice's page (issue 12 item 6), in Debian's chromium: the rig of tests/secure3d_rig.py (the
simulator's directory server and ACS, real PostgreSQL, real TCP), the project requiring 3-D Secure. The invoice's
hpp_url takes the card, the ACS's challenge runs, and the cardholder lands on ``return_urls.success`` (paid),
``fail`` (a failed challenge) or, having left the ACS, finds the page pending with its way back to
``return_urls.pending``.
"""

from __future__ import annotations

from typing import Any

import pytest
from browser import Shop, new_page
from browser import browser as browser  # fixtures
from browser import shop as shop
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from playwright.async_api import Browser, expect
from secure3d_rig import Rig
from test_hpp_browser import ALWAYS_CHALLENGE, fill_card, through_acs, watch
from test_hpp_browser import rig as rig  # fixture
from test_invoices import body

pytestmark = pytest.mark.timeout(120)


async def invoice_for(rig: Rig, shop: Shop, reference_id: str, **changes: Any) -> dict[str, Any]:
    project = await rig.runtime.projects.by_login("project")
    assert project is not None
    await rig.runtime.projects.update_settings(project.id, require_3ds=True)
    returns = {"success": shop.url + "?paid", "fail": shop.url + "?failed", "pending": shop.url + "?pending"}
    doc = body(reference_id=reference_id, return_urls=returns, return_url=shop.url, callback_url=None, **changes)
    status, created = await rig.call("POST", "/api/payment-invoices", doc)
    assert status == 201, created
    invoice: dict[str, Any] = created["data"]
    return invoice


async def invoice_state(rig: Rig, invoice_id: str) -> tuple[str, str, dict[str, Any]]:
    status, doc = await rig.call("GET", f"/api/payment-invoices/{invoice_id}")
    assert status == 200, doc
    attrs = doc["data"]["attributes"]
    _, orders = await rig.call("GET", f"/orders/{attrs['original_data']['external_id']}?expand=secure3d")
    return attrs["status"], attrs["resolution"], orders["orders"][0]


async def test_an_invoice_is_paid_through_the_acs_challenge_and_lands_on_return_urls_success(
    rig: Rig, browser: Browser, shop: Shop
) -> None:
    inv = await invoice_for(rig, shop, "3ds-paid")
    page = await new_page(browser)
    urls, console = watch(page, rig)
    await page.goto(inv["attributes"]["hpp_url"])
    await expect(page.locator("#amount")).to_have_text("100.00 USD")
    await fill_card(page, ALWAYS_CHALLENGE)
    await page.click("#pay-button")
    await page.get_by_label("One-time code").wait_for()  # 3-D Secure 2: the method frame, then the challenge
    assert "/acs/3ds2/challenge" in page.url
    await through_acs(page, "1234")
    await page.wait_for_url(shop.url + "?paid")
    status, resolution, order = await invoice_state(rig, inv["id"])
    assert (status, resolution) == ("processed", "ok")
    assert order["status"] == "charged" and order["secure3d"]["reason"] == "require_3ds"
    assert order["secure3d"]["scenario"] == "full"
    (msg,) = rig.iso("0100")
    assert msg["121"] == "05" and "122" in msg  # ECI and CAVV went to the issuer
    assert not any(ALWAYS_CHALLENGE in u for u in urls)
    assert not [m for m in console if "Content Security Policy" in m], console


async def test_a_failed_challenge_sends_the_cardholder_to_return_urls_fail_and_nothing_is_sent(
    rig: Rig, browser: Browser, shop: Shop
) -> None:
    inv = await invoice_for(rig, shop, "3ds-failed")
    page = await new_page(browser, javascript=False)  # 3-D Secure 1, by the visible buttons
    await page.goto(inv["attributes"]["hpp_url"])
    await fill_card(page, ALWAYS_CHALLENGE)
    await page.click("#pay-button")
    await page.click("#continue-button")
    assert "/acs/3ds1" in page.url
    await through_acs(page, "0000")
    await page.get_by_role("button", name="Continue").click()
    await page.wait_for_url(shop.url + "?failed")
    status, resolution, order = await invoice_state(rig, inv["id"])
    assert (status, resolution, order["status"]) == ("process_failed", "declined", "declined")
    assert rig.iso("0100") == []


async def test_a_cardholder_who_leaves_the_acs_finds_the_invoice_pending_and_goes_back_by_return_urls_pending(
    rig: Rig, browser: Browser, shop: Shop
) -> None:
    inv = await invoice_for(rig, shop, "3ds-left")
    page = await new_page(browser)
    await page.goto(inv["attributes"]["hpp_url"])
    await fill_card(page, ALWAYS_CHALLENGE)
    await page.click("#pay-button")
    await page.get_by_label("One-time code").wait_for()
    # The cardholder opens the invoice's link again instead of finishing the challenge.
    again = await new_page(browser)
    await again.goto(inv["attributes"]["hpp_url"])
    await expect(again.locator("#result")).to_have_attribute("data-state", "pending")
    await expect(again.locator("#number")).to_have_count(0)  # no second payment while this one is under way
    await again.click("#back")
    await again.wait_for_url(shop.url + "?pending")
    status, resolution, order = await invoice_state(rig, inv["id"])
    assert (status, resolution, order["status"]) == ("process_pending", "ok", "prepared")
    # The challenge left open still finishes the payment.
    await through_acs(page, "1234")
    await page.wait_for_url(shop.url + "?paid")
    assert (await invoice_state(rig, inv["id"]))[:2] == ("processed", "ok")
