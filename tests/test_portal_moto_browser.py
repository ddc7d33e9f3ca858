"""The portal's virtual terminal and invoices in Debian's chromium (Playwright, the rig of tests/browser.py): an
operator keys a telephone order and the simulator receives it as one (DE 22 010, DE 25 08); an operator issues an
invoice with a cart imported from a CSV file, and the customer's mail is read from the SMTP sink of ``isoswitch up``.
Real front, real PostgreSQL, real simulator; nothing on the pages comes from another host.
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
from test_portal_browser import add_user, first_login
from waiting import wait_for

from http_front.outbound.smtp import SmtpSender
from isoswitch.mailsink import MailSink, read_mails
from switch.mail import MailConfig

pytestmark = pytest.mark.timeout(120)

PAN = "4111111111111111"
CSV = "name,quantity,price,measure\nGreen tea,2,12.50,pcs\nHoney,1.5,50,kg\n"


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[MailSink]:
    s = MailSink(tmp_path / "mail", port=0)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


async def operator(front: Front, browser: Browser, *, width: int = 1280, mobile: bool = False) -> Page:
    one_time = await add_user(front, "clerk@shop.test", role="operator")
    page = await new_page(browser, width=width, height=860, mobile=mobile)
    await first_login(page, front, "clerk@shop.test", one_time)
    return page


async def test_an_operator_keys_a_telephone_order_and_the_simulator_receives_a_moto_authorization(
    front: Front, browser: Browser, tmp_path: Path
) -> None:
    page = await operator(front, browser)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    await page.click("a[href='/portal/terminal']")
    await screenshot(page, screenshot_dir(tmp_path), "portal-moto-terminal.png")
    await page.fill("#merchant_order_id", "phone-42")
    await page.fill("#description", "Two boxes of tea, by telephone")
    await page.fill("#amount", "25.00")
    await page.check("#stage-two")  # pre-authorization: held, charged later
    await page.fill("#number", "4111 1111 1111 1111")
    await page.fill("#exp_month", "12")
    await page.fill("#exp_year", "30")
    await page.fill("#holder", "JOHN SMITH")
    await page.click("#moto-send")
    await expect(page.locator("#moto-word")).to_have_text("Approved")
    await expect(page.locator("#moto-status")).to_have_text("authorized")
    assert await page.locator("#number").input_value() == ""  # the form comes back empty of the card
    (auth,) = front.iso("0100")
    assert (auth["22"], auth["25"], auth["2"], auth["4"]) == ("010", "08", PAN, "000000002500")
    assert "120" not in auth  # no security code given, none sent
    await page.click("#moto-payment")
    await expect(page.locator("#order-status")).to_have_text("authorized")
    await expect(page.locator("#order-amount")).to_have_text("25.00 USD")
    assert all(u.startswith(base_url(front)) for u in requests), requests
    assert not any(PAN in u for u in requests)  # never in a URL

    small = await operator_360(front, browser)
    await small.goto(base_url(front) + "/portal/terminal")
    assert await small.evaluate("document.documentElement.scrollWidth") <= 360
    await screenshot(small, screenshot_dir(tmp_path), "portal-moto-terminal-360.png")


async def operator_360(front: Front, browser: Browser) -> Page:
    one_time = await add_user(front, "phone@shop.test", role="operator")
    page = await new_page(browser, width=360, height=740, mobile=True)
    await first_login(page, front, "phone@shop.test", one_time)
    return page


async def test_an_operator_issues_an_invoice_with_a_csv_cart_and_the_customer_gets_it_by_mail(
    front: Front, browser: Browser, sink: MailSink, tmp_path: Path
) -> None:
    front.runtime.mail.start(SmtpSender(MailConfig(port=sink.port)))
    page = await operator(front, browser)
    await page.click("a[href='/portal/invoices']")
    await page.click("#invoice-new")
    await page.fill("#reference_id", "inv-77")
    await page.fill("#customer_name", "Ann Lee")
    await page.fill("#email", "ann@example.com")
    await page.fill("#description", "Tea and honey")
    csv = tmp_path / "cart.csv"
    csv.write_text(CSV)
    await page.set_input_files("#csv", str(csv))
    await page.click("#cart-import")
    await expect(page.locator("#cart-imported")).to_contain_text("2 lines imported")
    await expect(page.locator("#cart-1-name")).to_have_value("Honey")
    await expect(page.locator("#email")).to_have_value("ann@example.com")  # the rest of the form is kept
    await page.click("#cart-add")
    await expect(page.locator("#cart tbody tr")).to_have_count(3)
    await page.fill("#cart-2-name", "Cup")
    await page.fill("#cart-2-price", "5")
    await page.fill("#cart-2-quantity", "1")
    await screenshot(page, screenshot_dir(tmp_path), "portal-moto-invoice-new.png")
    await page.click("#invoice-create")
    await expect(page.locator("#invoice-notice")).to_contain_text("queued for sending")
    await expect(page.locator("#invoice-amount")).to_have_text("105.00 USD")
    await expect(page.locator("#invoice-cart")).to_contain_text("Cup")
    invoice_id = (await page.locator("#invoice-id").inner_text()).strip()
    link = await page.locator("#invoice-link").get_attribute("href")
    (mail,) = await wait_for(lambda: read_mails(sink.directory), what="the invoice's mail in the sink")
    assert mail["To"] == "ann@example.com"
    html = mail.get_body(("html",))
    assert html is not None and link is not None and link in html.get_content()
    assert "Green tea" in html.get_content() and "Cup" in html.get_content()
    await page.click("a[href='/portal/invoices']")
    await expect(page.locator("#invoices")).to_contain_text(invoice_id)
    await page.fill("#search-reference", "inv-77")
    await page.click("#search-button")
    await expect(page.locator("#invoices tbody tr")).to_have_count(1)
    await screenshot(page, screenshot_dir(tmp_path), "portal-moto-invoices.png")
    await page.set_viewport_size({"width": 360, "height": 740})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scrolling at 360 px
    await screenshot(page, screenshot_dir(tmp_path), "portal-moto-invoices-360.png")
    # Send again from the list: a second mail to the customer.
    await page.click(f"button[aria-label='Send {invoice_id} by e-mail']")
    await expect(page.locator("#invoice-notice")).to_contain_text("queued for sending")
    await wait_for(lambda: len(read_mails(sink.directory)) == 2 or None, what="the second mail")


async def test_an_admin_makes_a_payment_link_template_and_disables_it_from_the_list(
    front: Front, browser: Browser, tmp_path: Path
) -> None:
    one_time = await add_user(front, "admin@shop.test", role="admin")
    page = await new_page(browser, width=360, height=740, mobile=True)
    await first_login(page, front, "admin@shop.test", one_time)
    await page.goto(base_url(front) + "/portal/links")
    await page.fill("#link_name", "Tea box")
    await page.fill("#link_title", "Green tea, a box")
    await page.fill("#link_amount", "12.00")
    await page.check("#link_field_email")
    await page.click("#link-create")
    row = page.locator("#links tbody tr").first
    await expect(row).to_contain_text("active")
    url = await row.locator("td.url a").get_attribute("href")
    assert url is not None and url.startswith(base_url(front) + "/link/")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await screenshot(page, screenshot_dir(tmp_path), "portal-moto-links-360.png")
    await page.click("button[aria-label='Disable Tea box']")
    await expect(page.locator("#links tbody tr").first).to_contain_text("disabled")
    await page.set_viewport_size({"width": 1280, "height": 860})
    await screenshot(page, screenshot_dir(tmp_path), "portal-moto-links.png")
    payer = await new_page(browser)
    await payer.goto(url)
    await expect(payer.locator("main")).not_to_contain_text("Green tea, a box")
