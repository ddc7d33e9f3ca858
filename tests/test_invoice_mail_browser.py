"""An invoice sent by e-mail and paid from the mail, in Debian's chromium (Playwright, the rig of tests/browser.py):
the mail is read from the SMTP sink of ``isoswitch up`` (isoswitch/mailsink.py) as the cardholder's mail client
would get it, its HTML opened in the browser, its pay link followed, and the card paid on the hosted page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from browser import Shop, new_page, screenshot, screenshot_dir
from browser import browser as browser  # fixtures
from browser import front as front
from browser import shop as shop
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from playwright.async_api import Browser, expect
from test_http_e2e import Front
from test_invoices import body
from waiting import wait_for

from http_front.outbound.smtp import SmtpSender
from isoswitch.mailsink import MailSink, read_mails
from switch.mail import MailConfig

pytestmark = pytest.mark.timeout(90)

CART = [
    {"name": "Green tea", "quantity": 2, "price": 12.5, "amount": 25, "measure": "pcs"},
    {"name": "Honey", "quantity": 1.5, "price": 50, "amount": 75},
]


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[MailSink]:
    s = MailSink(tmp_path / "mail", port=0)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


async def test_the_pay_link_of_an_invoice_mail_read_from_the_smtp_sink_pays_the_invoice_in_chromium(
    front: Front, browser: Browser, shop: Shop, sink: MailSink, tmp_path: Path
) -> None:
    front.runtime.mail.start(SmtpSender(MailConfig(port=sink.port)))
    returns = {"success": shop.url + "?paid", "fail": shop.url + "?failed", "pending": shop.url + "?pending"}
    status, doc = await front.call(
        "POST", "/api/payment-invoices", body(reference_id="mail-pay", cart=CART, send_email=True, return_urls=returns)
    )
    assert status == 201, doc
    invoice_id = doc["data"]["id"]
    (mail,) = await wait_for(lambda: read_mails(sink.directory), what="the invoice's mail in the sink")
    html = mail.get_body(("html",))
    assert html is not None
    # The mail as a mail client shows it: a local file, the link the only way to the page.
    letter = tmp_path / "letter.html"
    letter.write_text(html.get_content())
    page = await new_page(browser)
    await page.goto(letter.as_uri())
    await expect(page.locator("#cart")).to_contain_text("Green tea")
    await expect(page.locator("#amount")).to_contain_text("100.00 USD")
    await screenshot(page, screenshot_dir(tmp_path), "invoice-mail.png")
    await page.click("#pay")
    await expect(page.locator("#amount")).to_have_text("100.00 USD")
    for field, value in (("#number", "4111111111111111"), ("#exp_month", "12"), ("#exp_year", "30")):
        await page.fill(field, value)
    await page.fill("#cvc", "123")
    await page.fill("#holder", "JOHN SMITH")
    await page.click("#pay-button")
    await expect(page.locator("#shop")).to_be_visible()
    assert shop.visits[0] == "/done?paid"
    _, doc = await front.call("GET", f"/api/payment-invoices/{invoice_id}")
    assert (doc["data"]["attributes"]["status"], doc["data"]["attributes"]["resolution"]) == ("processed", "ok")
