"""Payment links (issue 12 item 7, seeds/000 "Payment links") end to end over HTTP: templates under
``/api/payment-links`` (HTTP Basic, JSON:API), the public pre-payment page at ``/link/{slug}`` and the invoice a
submission makes (source ``payment_link``), paid on its hosted page: the real runtime, PostgreSQL and simulator
(the front of tests/test_http_e2e.py). The browser's side is tests/test_payment_link_browser.py.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_http_e2e import Front
from test_http_e2e import front as front  # fixture
from test_invoices import pay

from switch.links.model import LinkParameter, check_regexp, check_values

pytestmark = pytest.mark.timeout(90)

PARAMETERS = [
    {"name": "order_no", "label": "Order number", "required": True, "regexp": "[0-9]{6}", "placeholder": "123456"},
    {"name": "size", "label": "Size", "regexp": "S|M|L|XL"},
    {"name": "campaign", "label": "Campaign", "value": "spring"},
]


def template(**changes: Any) -> dict[str, Any]:
    attrs = {
        "name": "T-shirts",
        "title": "Pay for your T-shirt",
        "service": "payment_card_usd_hpp",
        "currency": "USD",
        "amount": "25.00",
        "description": "for the shop's staff only",
        "payment_description": "One T-shirt",
        "parameters": PARAMETERS,
        "customer_fields": ["email"],
        **changes,
    }
    return {"data": {"type": "payment-links", "attributes": attrs}}


async def create_link(front: Front, **changes: Any) -> dict[str, Any]:
    status, doc = await front.call("POST", "/api/payment-links", template(**changes))
    assert status == 201, doc
    link: dict[str, Any] = doc["data"]
    return link


async def open_form(front: Front, link: dict[str, Any]) -> tuple[str, str]:
    """The page's path and its form's nonce."""
    path = urlsplit(link["attributes"]["url"]).path
    page = await front.http.get(path)
    assert page.status == 200, await page.text()
    nonce = re.search(r'name="nonce" value="([^"]+)"', await page.text())
    assert nonce
    return path, nonce.group(1)


async def submit(front: Front, link: dict[str, Any], form: dict[str, str], nonce: str | None = None) -> Any:
    path, fresh = await open_form(front, link)
    return await front.http.post(path, data={**form, "nonce": nonce or fresh}, allow_redirects=False)


GOOD = {"p_order_no": "004217", "p_size": "M", "p_campaign": "autumn", "email": "payer@example.com"}


async def invoices(front: Front) -> list[dict[str, Any]]:
    status, doc = await front.call("GET", "/api/payment-invoices")
    assert status == 200, doc
    found: list[dict[str, Any]] = doc["data"]
    return found


# -- templates ---------------------------------------------------------------------------


def test_a_regexp_that_backtracks_without_end_refuses_the_value_within_its_time_limit() -> None:
    pattern = "(a|aa)+$"  # compiles, and is small: only its match on a long near-miss explodes
    assert check_regexp(pattern) is None
    param = LinkParameter(name="code", label="Code", regexp=pattern)
    started = time.monotonic()
    assert check_values((param,), (), {"p_code": "a" * 100 + "b"}) == ({}, {}, {"p_code": "invalid"})
    assert time.monotonic() - started < 2  # the 50 ms limit, with room for a busy machine
    assert check_values((param,), (), {"p_code": "aaaa"}) == ({"code": "aaaa"}, {}, {})


async def test_a_link_template_is_created_read_listed_updated_and_deleted_as_json_api(front: Front) -> None:
    link = await create_link(front)
    attrs = link["attributes"]
    assert link["type"] == "payment-links" and re.fullmatch(r"cpl_[A-Za-z0-9]{16}", link["id"])
    assert link["links"] == {"self": f"/api/payment-links/{link['id']}"}
    assert (attrs["amount"], attrs["arbitrary_amount"], attrs["status"], attrs["test_mode"]) == (
        25,
        False,
        "active",
        False,
    )
    assert attrs["parameters"][0] == {**PARAMETERS[0], "value": None}
    assert re.fullmatch(r"http://[^/]+/link/[A-Za-z0-9_-]{32}", attrs["url"])
    # seeds/000: "one month from the current date" unless the merchant says otherwise
    assert attrs["active_until"] is not None
    assert await front.call("GET", f"/api/payment-links/{link['id']}") == (200, {"data": link})
    status, listed = await front.call("GET", "/api/payment-links?page[size]=5")
    assert status == 200 and listed["meta"] == {"total": 1, "pages": 1, "page": 1}
    assert [x["id"] for x in listed["data"]] == [link["id"]]
    patch = {
        "data": {"type": "payment-links", "id": link["id"], "attributes": {"title": "New title", "active_until": None}}
    }
    status, doc = await front.call("PATCH", f"/api/payment-links/{link['id']}", patch)
    assert status == 200, doc
    changed = doc["data"]["attributes"]
    assert (changed["title"], changed["active_until"], changed["url"]) == ("New title", None, attrs["url"])
    assert changed["parameters"] == attrs["parameters"]  # what the patch did not name is kept
    deleted = await front.http.delete(f"/api/payment-links/{link['id']}", headers=front.auth)
    assert deleted.status == 204
    assert (await front.call("GET", f"/api/payment-links/{link['id']}"))[0] == 404
    assert (await front.http.get(urlsplit(attrs["url"]).path)).status == 404


async def test_a_template_with_bad_parameters_is_refused_with_every_error_at_once_and_nothing_is_made(
    front: Front,
) -> None:
    bad = [
        {"name": "order no", "label": "Order number", "regexp": "(unclosed"},
        {"name": "size", "label": "", "regexp": "x" * 201},
        {"name": "code", "label": "Code", "regexp": "[0-9]{4}", "value": "abc"},
        {"name": "slow", "label": "Slow to compile", "regexp": "(a{1000}){1000}"},
    ]
    status, doc = await front.call("POST", "/api/payment-links", template(parameters=bad, customer_fields=["fax"]))
    assert status == 422, doc
    assert set(doc["errors"]) == {
        "parameters[0].name",
        "parameters[0].regexp",
        "parameters[1].label",
        "parameters[1].regexp",
        "parameters[2].value",
        "parameters[3].regexp",
        "customer_fields",
    }
    assert "does not compile" in doc["errors"]["parameters[0].regexp"]
    assert "repeats too much" in doc["errors"]["parameters[3].regexp"]
    status, doc = await front.call("POST", "/api/payment-links", template(service="test_usd_test", amount="0"))
    assert status == 422 and set(doc["errors"]) == {"service"}
    status, doc = await front.call("POST", "/api/payment-links", template(amount_min="5.00"))
    assert status == 422 and set(doc["errors"]) == {"amount_min"}
    _, listed = await front.call("GET", "/api/payment-links")
    assert listed["meta"]["total"] == 0


async def test_another_projects_link_is_not_found_by_its_id(front: Front) -> None:
    link = await create_link(front)
    assert (await front.call("GET", f"/api/payment-links/{link['id']}", headers=front.other))[0] == 404
    status, doc = await front.call("GET", "/api/payment-links", headers=front.other)
    assert status == 200 and doc["data"] == []


# -- the page and the invoice ---------------------------------------------------------


async def test_the_links_url_opens_a_pre_payment_page_asking_for_its_parameters_with_strict_headers(
    front: Front,
) -> None:
    link = await create_link(front)
    page = await front.http.get(urlsplit(link["attributes"]["url"]).path)
    html = await page.text()
    assert page.status == 200
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self'")
    assert page.headers["Cache-Control"] == "no-store"
    for text in ("Pay for your T-shirt", "One T-shirt", "25.00 USD", 'for="p_order_no"', 'placeholder="123456"'):
        assert text in html, text
    assert 'autocomplete="email"' in html and "for the shop&#39;s staff only" not in html
    assert re.search(r'id="p_campaign"[^>]*value="spring" readonly', html)


async def test_the_access_log_keeps_six_characters_of_a_links_slug(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="isoswitch.http.access")
    link = await create_link(front)
    path = urlsplit(link["attributes"]["url"]).path
    await front.http.get(path)
    logged = [r.getMessage() for r in caplog.records if r.name == "isoswitch.http.access"]
    assert f"GET {path[:12]}... 200" in " ".join(logged), logged
    assert not any(path in line for line in logged)


async def test_submitting_the_link_makes_a_payment_link_invoice_and_redirects_to_its_hpp_url(front: Front) -> None:
    link = await create_link(front)
    answer = await submit(front, link, GOOD)
    assert answer.status == 303, await answer.text()
    [invoice] = await invoices(front)
    attrs = invoice["attributes"]
    assert answer.headers["Location"] == attrs["hpp_url"]
    assert (attrs["source"], attrs["amount"], attrs["currency"], attrs["description"]) == (
        "payment_link", 25, "USD", "One T-shirt",
    )  # fmt: skip
    assert attrs["metadata"] == {
        "payment_link": {"id": link["id"], "name": "T-shirts"},
        "parameters": {"order_no": "004217", "size": "M", "campaign": "spring"},  # the fixed value, not the posted
        "customer": {"email": "payer@example.com"},
    }
    paid = await pay(front, invoice)
    assert paid.status == 303
    _, doc = await front.call("GET", f"/api/payment-invoices/{invoice['id']}")
    assert (doc["data"]["attributes"]["status"], doc["data"]["attributes"]["resolution"]) == ("processed", "ok")


async def test_a_links_language_is_its_pages_and_its_invoices_pages(front: Front) -> None:
    link = await create_link(front, language="ru")
    page = await front.http.get(urlsplit(link["attributes"]["url"]).path)
    assert "Перейти к оплате" in await page.text()
    answer = await submit(front, link, GOOD)
    assert answer.status == 303
    card_page = await front.http.get(urlsplit(answer.headers["Location"]).path)
    assert "Оплатить" in await card_page.text()


async def test_bad_parameter_values_re_render_the_form_with_field_errors_and_make_no_invoice(front: Front) -> None:
    link = await create_link(front)
    answer = await submit(front, link, {"p_order_no": "42", "p_size": "XXL", "email": "not-an-email"})
    html = await answer.text()
    assert answer.status == 422
    for field in ("p_order_no", "p_size", "email"):
        assert re.search(rf'<p class="error" id="err-{field}" role="alert">This value is not in the expected', html)
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', html.replace("\n", " ")), field
    assert 'value="XXL"' in html  # what the payer typed, to correct
    missing = await submit(front, link, {"p_size": "M"})
    assert missing.status == 422
    assert 'id="err-p_order_no" role="alert">Please fill in this field.' in await missing.text()
    assert await invoices(front) == []


async def test_the_same_form_posted_twice_makes_one_invoice(front: Front) -> None:
    link = await create_link(front)
    _, nonce = await open_form(front, link)
    first = await submit(front, link, GOOD, nonce)
    second = await submit(front, link, GOOD, nonce)
    assert first.status == second.status == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert len(await invoices(front)) == 1
    other = await submit(front, link, GOOD)  # another rendering of the form: another payment
    assert other.status == 303 and other.headers["Location"] != first.headers["Location"]


async def test_a_payers_amount_is_checked_against_the_links_range(front: Front) -> None:
    link = await create_link(front, amount=None, arbitrary_amount=True, amount_min="5", amount_max="50.00")
    assert (link["attributes"]["amount_min"], link["attributes"]["amount_max"]) == (5, 50)
    page = await front.http.get(urlsplit(link["attributes"]["url"]).path)
    assert "From 5.00 to 50.00" in await page.text()
    for amount, error in (("500", "within the range"), ("abc", "for example 12.50"), ("1.234", "for example")):
        answer = await submit(front, link, {**GOOD, "amount": amount})
        assert answer.status == 422 and error in await answer.text(), amount
    answer = await submit(front, link, {**GOOD, "amount": "12,50"})
    assert answer.status == 303
    [invoice] = await invoices(front)
    assert invoice["attributes"]["amount"] == 12.5


async def test_a_disabled_expired_or_unknown_link_shows_why_and_makes_no_invoice(front: Front) -> None:
    link = await create_link(front)
    path, nonce = await open_form(front, link)
    patch = {"data": {"type": "payment-links", "attributes": {"active": False}}}
    status, doc = await front.call("PATCH", f"/api/payment-links/{link['id']}", patch)
    assert status == 200 and doc["data"]["attributes"]["status"] == "disabled"
    page = await front.http.get(path)
    assert page.status == 410 and "This payment link is not active" in await page.text()
    posted = await front.http.post(path, data={**GOOD, "nonce": nonce}, allow_redirects=False)
    assert posted.status == 410
    soon = (front.runtime.invoices.now() + timedelta(hours=1)).isoformat()
    later = await create_link(front, active_from=soon)
    assert later["attributes"]["status"] == "scheduled"
    assert (await front.http.get(urlsplit(later["attributes"]["url"]).path)).status == 410
    assert (await front.http.get("/link/" + "A" * 32)).status == 404
    assert await invoices(front) == []


async def test_a_form_not_rendered_for_this_link_is_refused(front: Front) -> None:
    link = await create_link(front)
    other = await create_link(front)
    _, foreign = await open_form(front, other)
    for nonce in (foreign, "1.abc.def", "garbage"):
        answer = await submit(front, link, GOOD, nonce)
        assert answer.status == 403, nonce
        assert "This form is out of date" in await answer.text()
    assert await invoices(front) == []
