"""The portal's virtual terminal, invoices and payment links below the browser (http_front/portal/moto*.py): what the
simulator received for a telephone order (DE 22 010, DE 25 08), no card data kept or logged, the roles refused on
the server with a forged POST, an invoice with a CSV cart mailed through the outbox, a link template disabled.
Real front, real PostgreSQL, real simulator (tests/test_http_e2e.py's rig).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from aiohttp import FormData
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_http_e2e import Front
from test_http_e2e import front as front  # fixture
from test_invoices import body

pytestmark = pytest.mark.timeout(90)

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PASSWORD = "Sunny#Day42x"
PAN, DECLINED_PAN, CVC = "4111111111111111", "4276990011343663", "739"
CSV = "name,quantity,price,measure\nGreen tea,2,12.50,pcs\nHoney,1.5,50,kg\n"


async def csrf_of(front: Front, path: str) -> str:
    page = await front.http.get(path)
    match = _CSRF.search(await page.text())
    assert match is not None, (path, page.status)
    return match[1]


async def signed_in(front: Front, role: str, email: str | None = None) -> str:
    """``front.http`` signed in as a new user of project "project" with ``role``; the session's CSRF token."""
    email = email or f"{role}@shop.test"
    _, _, one_time = await front.runtime.portal.add_user(email, "project", role)
    front.http.session.cookie_jar.clear()
    form = {"csrf": await csrf_of(front, "/portal/login"), "email": email, "password": one_time}
    assert (await front.http.post("/portal/login", data=form, allow_redirects=False)).status == 303
    form = {"csrf": await csrf_of(front, "/portal/password"), "current_password": one_time}
    form |= {"new_password": PASSWORD, "confirm_password": PASSWORD}
    answer = await front.http.post("/portal/password", data=form, allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/portal/"
    return await csrf_of(front, "/portal/")


def keyed(csrf: str, pan: str = PAN, **changes: str) -> dict[str, str]:
    form = {"csrf": csrf, "merchant_order_id": "phone-1", "description": "Order by phone", "currency": "USD"}
    form |= {"amount": "25.00", "stage": "one", "customer_id": "cust-7", "number": pan, "exp_month": "12"}
    form |= {"exp_year": "30", "cvc": CVC, "holder": "JOHN SMITH"}
    return form | changes


async def post(front: Front, path: str, data: Any) -> tuple[int, str, str]:
    answer = await front.http.post(path, data=data, allow_redirects=False)
    return answer.status, answer.headers.get("Location", ""), await answer.text()


async def test_the_virtual_terminal_sends_a_keyed_card_as_a_telephone_order_and_keeps_no_card_data(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    csrf = await signed_in(front, "operator")
    status, location, _ = await post(front, "/portal/terminal", keyed(csrf))
    assert status == 303 and location.startswith("/portal/terminal?done="), location
    order_id = location.rsplit("=", 1)[1]
    (auth,) = front.iso("0100")
    assert (auth["22"], auth["25"]) == ("010", "08")  # manual key entry, mail/telephone order (MESSAGES.md)
    assert (auth["2"], auth["4"], auth["120"], auth["49"]) == (PAN, "000000002500", CVC, "840")
    assert "121" not in auth and "124" not in auth  # no 3-D Secure, no stored credential
    assert len(front.iso("0220")) == 1  # one step: authorized and charged
    code, doc = await front.call("GET", f"/orders/{order_id}")
    assert code == 200 and doc["orders"][0]["status"] == "charged", doc
    assert (doc["orders"][0]["merchant_order_id"], doc["orders"][0]["description"]) == ("phone-1", "Order by phone")
    row = await front.runtime.db.pool.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
    assert row is not None and row["source"] == "moto"
    stored = repr(dict(row))
    assert PAN not in stored and CVC not in stored.replace(order_id, "")  # the PAN sealed, the code nowhere
    page = await (await front.http.get(location)).text()
    assert 'id="moto-word">Approved' in page and "charged" in page and PAN not in page
    assert PAN not in caplog.text  # neither the front's logs nor the core's name the card
    keyed_by = [r for r in caplog.records if r.name == "isoswitch.portal" and getattr(r, "order_id", None) == order_id]
    assert len(keyed_by) == 1 and keyed_by[0].portal_user is not None  # who keyed it, for the merchant's records
    # The API's own authorize is e-commerce as before (DE 25 59) with the source "rest".
    api = await front.order()
    assert [m["25"] for m in front.iso("0100")] == ["08", "59"]
    assert await front.runtime.db.pool.fetchval("SELECT source FROM orders WHERE id = $1", api["id"]) == "rest"


async def test_a_pre_authorization_without_a_security_code_or_holder_only_holds_the_amount(front: Front) -> None:
    csrf = await signed_in(front, "operator")
    status, _, page = await post(front, "/portal/terminal", keyed(csrf, stage="two", cvc="", holder=""))
    assert status == 422 and 'id="holder-error"' in page  # the project's holder_required (on by default)
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    await front.runtime.projects.update_settings(project.id, holder_required=False)
    status, location, _ = await post(front, "/portal/terminal", keyed(csrf, stage="two", cvc="", holder=""))
    assert status == 303, location
    (auth,) = front.iso("0100")
    assert (auth["22"], auth["25"]) == ("010", "08") and "120" not in auth
    assert front.iso("0220") == []  # two steps: charged later, from the payment's page
    _, doc = await front.call("GET", f"/orders/{location.rsplit('=', 1)[1]}")
    assert doc["orders"][0]["status"] == "authorized"


async def test_a_declined_card_shows_the_issuers_answer_and_the_form_comes_back_without_the_card(
    front: Front,
) -> None:
    csrf = await signed_in(front, "operator")
    status, _, page = await post(front, "/portal/terminal", keyed(csrf, DECLINED_PAN))
    assert status == 200 and 'id="moto-word">Declined' in page
    assert DECLINED_PAN not in page and CVC not in page  # nothing of the card is echoed into the form
    assert 'value="phone-1"' in page  # the rest of the order is, to try another card
    assert [m["25"] for m in front.iso("0100")] == ["08"]


async def test_a_wrong_card_is_named_on_the_form_and_nothing_is_sent(front: Front) -> None:
    csrf = await signed_in(front, "operator")
    for forged in ("", "forged"):  # no token, or a wrong one: refused before anything is read
        assert (await post(front, "/portal/terminal", keyed(csrf) | {"csrf": forged}))[0] == 403
    bad = keyed(csrf, "4111111111111112", exp_month="13", amount="-1", cvc="12")
    status, _, page = await post(front, "/portal/terminal", bad)
    assert status == 422
    for field in ("number", "exp", "amount", "cvc"):
        assert f'id="{field}-error"' in page, field
    assert front.sent == []


async def test_a_viewer_is_not_offered_the_terminal_and_a_forged_post_is_refused_with_nothing_sent(
    front: Front,
) -> None:
    csrf = await signed_in(front, "viewer")
    home = await (await front.http.get("/portal/")).text()
    assert "/portal/terminal" not in home and "/portal/invoices" in home  # the viewer reads invoices only
    assert (await front.http.get("/portal/terminal")).status == 403
    status, _, page = await post(front, "/portal/terminal", keyed(csrf))
    assert status == 403 and "viewer" in page
    assert (await post(front, "/portal/invoices/new", {"csrf": csrf, "currency": "USD", "amount": "5"}))[0] == 403
    assert front.sent == [] and await front.runtime.db.pool.fetchval("SELECT count(*) FROM payment_invoices") == 0


def _cart_form(csrf: str, action: str, csv: str | None = None, **values: str) -> FormData:
    data = FormData()
    for key, value in ({"csrf": csrf, "currency": "USD", "action": action} | values).items():
        data.add_field(key, value)
    if csv is not None:
        data.add_field("csv", csv.encode(), filename="cart.csv", content_type="text/csv")
    return data


def _rows(page: str) -> dict[str, str]:
    return dict(re.findall(r'name="(cart-\d+-\w+)" value="([^"]*)"', page))


async def test_an_invoice_with_a_cart_imported_from_csv_is_mailed_and_found_by_its_reference(front: Front) -> None:
    csrf = await signed_in(front, "operator")
    status, _, page = await post(front, "/portal/invoices/new", _cart_form(csrf, "import", CSV, reference_id="inv-1"))
    assert status == 200 and 'id="cart-imported"' in page
    rows = _rows(page)
    assert (rows["cart-0-name"], rows["cart-0-price"], rows["cart-1-quantity"]) == ("Green tea", "12.5", "1.5")
    values = {"reference_id": "inv-1", "customer_name": "Ann Lee", "email": "ann@example.com"} | rows
    status, location, _ = await post(front, "/portal/invoices/new", _cart_form(csrf, "create", **values))
    assert status == 303 and location.endswith("?sent=1"), location
    invoice_id = location.split("/")[-1].split("?")[0]
    code, doc = await front.call("GET", f"/api/payment-invoices/{invoice_id}")
    attrs = doc["data"]["attributes"]
    assert code == 200 and (attrs["amount"], attrs["currency"], attrs["source"]) == (100, "USD", "portal")
    assert [line["name"] for line in attrs["cart"]] == ["Green tea", "Honey"]
    assert doc["data"]["relationships"]["customer"]["data"]["type"] == "customers"
    pool = front.runtime.db.pool
    assert await pool.fetchval("SELECT count(*) FROM mail_outbox WHERE kind = 'invoice'") == 1
    page = await (await front.http.get(location)).text()
    assert "queued for sending" in page and "Green tea" in page and 'id="invoice-link"' in page
    found = await (await front.http.get("/portal/invoices?reference_id=inv-1")).text()
    assert invoice_id in found and "process_pending" in found
    none = await (await front.http.get("/portal/invoices?reference_id=nope")).text()
    assert invoice_id not in none and 'id="no-invoices"' in none
    status, location, _ = await post(front, f"/portal/invoices/{invoice_id}/send", {"csrf": csrf})
    assert status == 303 and await pool.fetchval("SELECT count(*) FROM mail_outbox WHERE kind = 'invoice'") == 2


async def test_a_csv_with_a_bad_row_names_its_line_and_fills_no_row(front: Front) -> None:
    csrf = await signed_in(front, "operator")
    bad = "name,quantity,price\nTea,2,1.50\nCake,x,3\n"
    status, _, page = await post(front, "/portal/invoices/new", _cart_form(csrf, "import", bad))
    assert status == 422 and "line 3.quantity" in page
    assert set(_rows(page).values()) == {""}  # the empty rows of a new form, nothing of the file


async def test_an_invoice_without_sending_is_made_and_not_mailed_and_bad_fields_are_named(front: Front) -> None:
    csrf = await signed_in(front, "operator")
    wrong = _cart_form(csrf, "create", email="not-an-address", amount="1.234", **{"cart-0-name": ""})
    status, _, page = await post(front, "/portal/invoices/new", wrong)
    assert status == 422 and 'id="amount-error"' in page
    ok = {"reference_id": "quiet", "email": "ann@example.com", "amount": "9.99", "no_send": "on"}
    status, location, _ = await post(front, "/portal/invoices/new", _cart_form(csrf, "create", **ok))
    assert status == 303 and "sent" not in location
    assert await front.runtime.db.pool.fetchval("SELECT count(*) FROM mail_outbox") == 0


async def test_an_admin_makes_a_payment_link_and_disables_it_and_an_operator_may_not(front: Front) -> None:
    csrf = await signed_in(front, "admin")
    form = {"csrf": csrf, "name": "Tea box", "title": "Green tea, a box", "currency": "USD", "amount": "12.00"}
    status, location, _ = await post(front, "/portal/links", form | {"field_email": "on"})
    assert status == 303, location
    link_id = location.rsplit("=", 1)[1]
    code, doc = await front.call("GET", f"/api/payment-links/{link_id}")
    attrs = doc["data"]["attributes"]
    assert code == 200 and (attrs["amount"], attrs["status"], attrs["customer_fields"]) == (12, "active", ["email"])
    page = await (await front.http.get("/portal/links")).text()
    assert attrs["url"] in page and "Disable Tea box" in page
    assert (await post(front, f"/portal/links/{link_id}/disable", {"csrf": csrf}))[0] == 303
    _, doc = await front.call("GET", f"/api/payment-links/{link_id}")
    assert doc["data"]["attributes"]["status"] == "disabled"
    missing = await post(front, "/portal/links", {"csrf": csrf, "currency": "USD", "amount": "1"})
    assert missing[0] == 422 and 'id="link_name-error"' in missing[2] and 'id="link_title-error"' in missing[2]

    csrf = await signed_in(front, "operator")
    page = await (await front.http.get("/portal/links")).text()
    assert "Enable Tea box" not in page and 'id="link-form"' not in page
    assert (await post(front, f"/portal/links/{link_id}/enable", {"csrf": csrf}))[0] == 403
    _, doc = await front.call("GET", f"/api/payment-links/{link_id}")
    assert doc["data"]["attributes"]["status"] == "disabled"


async def test_another_projects_invoice_and_link_are_not_found_by_a_forged_id(front: Front) -> None:
    status, doc = await front.call("POST", "/api/payment-invoices", body(reference_id="theirs"), headers=front.other)
    assert status == 201, doc
    theirs = doc["data"]["id"]
    link = {
        "data": {
            "type": "payment-links",
            "attributes": {"name": "Theirs", "title": "Theirs", "service": "payment_card_usd_hpp"},
        }
    }
    status, doc = await front.call("POST", "/api/payment-links", link, headers=front.other)
    assert status == 201, doc
    their_link = doc["data"]["id"]
    csrf = await signed_in(front, "owner")
    assert (await front.http.get(f"/portal/invoices/{theirs}")).status == 404
    assert (await post(front, f"/portal/invoices/{theirs}/send", {"csrf": csrf}))[0] == 404
    assert theirs not in await (await front.http.get("/portal/invoices?reference_id=theirs")).text()
    assert (await post(front, f"/portal/links/{their_link}/disable", {"csrf": csrf}))[0] == 404
    _, doc = await front.call("GET", f"/api/payment-links/{their_link}", headers=front.other)
    assert doc["data"]["attributes"]["status"] == "active"
    assert await front.runtime.db.pool.fetchval("SELECT count(*) FROM mail_outbox") == 0
