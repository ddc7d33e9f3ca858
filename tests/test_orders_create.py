"""``POST /orders/create`` and its hosted page over plain HTTP (no browser): the seed's examples, validation,
tokens, another project, Idempotency-Key, and the page paid by a plain form POST.

The browser's side of the page is tests/test_hpp_browser.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_http_e2e import Front, basic, seed
from test_http_e2e import front as front
from test_webhooks import Hooks, verified
from test_webhooks import hooks as hooks
from waiting import wait_for

from http_front.pages.i18n import LANGUAGES
from schemas import SCHEMAS_DIR
from switch.orders.engine import Engine
from switch.store import ProjectSettings

pytestmark = pytest.mark.timeout(60)

PAN = "4111111111111111"
DECLINED = "4276990011343663"  # the simulator declines it (seeds/003's test card)
LOCATION = re.compile(r"http://127\.0\.0\.1:[0-9]+/pay/([A-Za-z0-9_-]{43})")

# seeds/003, Order creation: "only required fields provided" and "all the fields provided".
MINIMAL = {"amount": 9.99}
MINIMAL_ANSWER = """{ "orders" : [ { "amount" : "9.99", "amount_charged" : "0.00", "amount_refunded" : "0.00", "card" :
{}, "client" : {}, "created" : "2016-08-22 15:39:42", "currency" : "USD", "custom_fields" : {}, "description" : null,
"id" : "23014805213622230", "issuer" : {}, "location" : {}, "merchant_order_id" : null, "operations" : [],
"secure3d" : {}, "status" : "new", "updated" : "2016-08-22 15:39:42" } ] }"""
ALL = {
    "amount": 9.99,
    "client": {
        "address": "Main ave. 1",
        "city": "San Francisco",
        "country": "USA",
        "email": "foo@bar.com",
        "name": "John Smith",
        "phone": "+1 456 890",
        "state": "CA",
        "zip": "123456",
    },
    "description": "Book sale #453",
    "location": {"ip": "6.6.6.6"},
    "merchant_order_id": "5678",
    "options": {"force3d": 0, "return_url": "http://shop.com", "terminal": ""},
    "segment": "987654321",
}
ALL_ANSWER = """{ "orders" : [ { "amount" : "9.99", "amount_charged" : "0.00", "amount_refunded" : "0.00", "card" : {},
"client" : { "address" : "Main ave. 1", "city" : "San Francisco", "country" : "USA", "email" : "foo@bar.com", "name" :
"John Smith", "phone" : "+1 456 890", "state" : "CA", "zip" : "123456" }, "created" : "2016-08-22 15:39:43",
"currency" : "USD", "custom_fields" : {}, "description" : "Book sale #453", "id" : "23014805439541518", "issuer" : {},
"location" : { "ip" : "6.6.6.6" }, "merchant_order_id" : "5678", "operations" : [], "secure3d" : {}, "segment" :
"987654321", "status" : "new", "updated" : "2016-08-22 15:39:43" } ] }"""


def ours(order: dict[str, Any]) -> dict[str, Any]:
    """The project of the rig has a descriptor ("TESTMERCH/TERM", as the seed's authorize examples show one)."""
    order["descriptor"] = "TESTMERCH/TERM"
    return order


async def create(front: Front, body: dict[str, Any], **headers: str) -> tuple[str, dict[str, Any]]:
    resp = await front.http.post(
        "/orders/create", json=body, headers={**front.auth, "Content-Type": "application/json", **headers}
    )
    doc = await resp.json()
    assert resp.status == 201, doc
    location = resp.headers["Location"]
    assert LOCATION.fullmatch(location), location
    return location, doc["orders"][0]


def page_path(location: str) -> str:
    return location[location.index("/pay/") :]


async def form_of(front: Front, path: str) -> tuple[int, str]:
    resp = await front.http.get(path, allow_redirects=False)
    return resp.status, await resp.text()


def nonce_in(html: str) -> str:
    m = re.search(r'name="nonce" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def card(pan: str = PAN, **changes: str) -> dict[str, str]:
    return {"number": pan, "exp_month": "12", "exp_year": "30", "cvc": "123", "holder": "JOHN SMITH", **changes}


async def post_form(front: Front, path: str, form: dict[str, str]) -> Any:
    return await front.http.post(path, data=form, allow_redirects=False)


# -- the seed's examples ---------------------------------------------------------------------


async def test_the_seeds_two_examples_answer_201_with_the_pages_location_and_the_order_new(front: Front) -> None:
    location, order = await create(front, MINIMAL)
    assert order == ours(seed(MINIMAL_ANSWER)["orders"][0])
    location2, order2 = await create(front, ALL)
    assert order2 == ours(seed(ALL_ANSWER)["orders"][0])
    assert location != location2 and order["id"] not in location
    status, doc = await front.call("GET", f"/orders/{order2['id']}?expand=client")
    assert (
        status == 200 and doc["orders"][0]["status"] == "new" and doc["orders"][0]["client"]["city"] == "San Francisco"
    )
    assert front.iso("0100") == []  # nothing sent until the cardholder pays


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "uri"),
    [
        ({}, "#/amount"),
        ({"amount": "0"}, "#/amount"),
        ({"amount": 1, "options": {"language": "xx"}}, "#/options/language"),
        ({"amount": 1, "options": {"return_url": "javascript:alert(1)"}}, "#/options/return_url"),
        ({"amount": 1, "options": {"return_url": "ftp://shop.com"}}, "#/options/return_url"),
        ({"amount": 1, "options": {"expiration_timeout": "10x"}}, "#/options/expiration_timeout"),
        ({"amount": 1, "options": {"expiration_timeout": "8d"}}, "#/options/expiration_timeout"),
        ({"amount": 1, "options": {"expiration_timeout": 5}}, "#/options/expiration_timeout"),
        ({"amount": 1, "options": {"apple_pay_enabled": 1}}, "#/options/apple_pay_enabled"),
        ({"amount": 1, "options": {"template": "fancy"}}, "#/options/template"),
        ({"amount": 1, "pan": PAN}, "#/pan"),
        (
            {"amount": 1, "extra_fields": {"dynamic_descriptor": {"merchant": "A", "city": "B", "country": "US"}}},
            "#/extra_fields/dynamic_descriptor",
        ),
    ],
)
async def test_bad_create_requests_answer_422_in_the_seeds_shape(front: Front, body: dict[str, Any], uri: str) -> None:
    status, doc = await front.call("POST", "/orders/create", body)
    assert status == 422, doc
    assert doc["failure_type"] == "validation" and doc["order_id"] is None and doc["failure_message"]
    assert uri in [e["uri"] for e in doc["errors"]], doc


@pytest.mark.parametrize(("raw", "seconds"), [("30m", 1800), ("2h", 7200), (600, 600), ("90", 90)])
async def test_the_expiration_timeout_takes_seconds_minutes_and_hours(front: Front, raw: Any, seconds: int) -> None:
    location, _ = await create(front, {"amount": 1, "options": {"expiration_timeout": raw}})
    view = await front.runtime.pages.view(LOCATION.fullmatch(location).group(1))  # type: ignore[union-attr]
    assert view.row.expires_at - view.order.created == timedelta(seconds=seconds)


# -- tokens and projects ------------------------------------------------------------------------


async def test_options_template_chooses_the_pages_layout_over_the_projects(front: Front) -> None:
    location, _ = await create(front, {"amount": 1, "options": {"template": "dark"}})
    status, html = await form_of(front, page_path(location))
    assert status == 200 and 'class="tpl-dark' in html
    location, _ = await create(front, {"amount": 1})
    status, html = await form_of(front, page_path(location))
    assert status == 200 and 'class="tpl-standard' in html  # the project's (default) template


async def test_page_tokens_are_random_and_only_their_hash_is_stored(front: Front) -> None:
    tokens = set()
    for _ in range(5):
        location, order = await create(front, MINIMAL)
        token = LOCATION.fullmatch(location).group(1)  # type: ignore[union-attr]
        assert order["id"] not in token
        tokens.add(token)
    assert len(tokens) == 5
    async with front.runtime.db.pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM payment_pages")
    dump = repr([dict(r) for r in rows])
    assert not any(t in dump for t in tokens)


async def test_the_order_id_alone_opens_no_page_and_another_project_cannot_read_the_order(front: Front) -> None:
    location, order = await create(front, MINIMAL)
    for path in (f"/pay/{order['id']}", f"/pay/{'A' * 43}"):
        status, _ = await form_of(front, path)
        assert status == 404
    resp = await post_form(front, f"/pay/{'A' * 43}", card())
    assert resp.status == 404
    status, doc = await front.call("GET", f"/orders/{order['id']}", headers=front.other)
    assert status == 404 or doc["failure_type"] == "rejected", doc
    status, _ = await form_of(front, page_path(location))
    assert status == 200


async def test_a_create_replayed_with_its_idempotency_key_gives_the_same_order_and_a_page_that_works(
    front: Front,
) -> None:
    first, order = await create(front, MINIMAL, **{"Idempotency-Key": "create-1"})
    again, same = await create(front, MINIMAL, **{"Idempotency-Key": "create-1"})
    assert same["id"] == order["id"] and again != first
    status, html = await form_of(front, page_path(again))
    assert status == 200 and "9.99" in html
    resp = await post_form(front, page_path(again), {**card(), "nonce": nonce_in(html)})
    assert resp.status == 303
    status, html = await form_of(front, page_path(first))  # the first URL shows the same paid order
    assert status == 200 and 'data-state="paid"' in html


# -- the page over plain HTTP ----------------------------------------------------------------------


async def test_the_page_is_paid_by_a_plain_form_post_and_sends_the_cardholder_to_return_url(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    location, order = await create(front, {"amount": "9.99", "options": {"return_url": "https://shop.example/ok"}})
    status, html = await form_of(front, page_path(location))
    assert status == 200
    for token in ("cc-number", "cc-exp-month", "cc-exp-year", "cc-csc", "cc-name"):
        assert f'autocomplete="{token}"' in html
    resp = await post_form(front, page_path(location), {**card(), "nonce": nonce_in(html)})
    assert resp.status == 303 and resp.headers["Location"] == "https://shop.example/ok"
    status, doc = await front.call("GET", f"/orders/{order['id']}?expand=card,operations")
    got = doc["orders"][0]
    assert got["status"] == "authorized" and got["pan"] == "411111****1111" and got["card"]["holder"] == "JOHN SMITH"
    assert [op["type"] for op in got["operations"]] == ["authorize"] and got["rrn"]
    (msg,) = front.iso("0100")
    assert msg["2"] == PAN and msg["120"] == "123" and msg["4"] == "000000000999"
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert PAN not in logged and "/pay/" in logged  # the access log has the page (its token cut), never the card
    assert LOCATION.fullmatch(location).group(1) not in logged  # type: ignore[union-attr]


async def test_every_page_answer_carries_the_strict_headers(front: Front) -> None:
    location, _ = await create(front, MINIMAL)
    for path in (page_path(location), "/pay/static/card.js", "/pay/static/page.css", f"/pay/{'B' * 43}"):
        resp = await front.http.get(path)
        h = resp.headers
        assert h["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self'; style-src 'self'")
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        assert h["X-Content-Type-Options"] == "nosniff" and h["Referrer-Policy"] == "no-referrer"
        assert h["Cache-Control"] in ("no-store", "no-cache")
    html = await (await front.http.get(page_path(location))).text()
    assert "<script>" not in html and "http://" not in html.replace('action="/pay/', "")  # nothing from other hosts


async def test_a_declined_card_ends_the_page_declined_with_the_reason(front: Front) -> None:
    location, order = await create(front, MINIMAL)
    _, html = await form_of(front, page_path(location))
    resp = await post_form(front, page_path(location), {**card(DECLINED), "nonce": nonce_in(html)})
    assert resp.status == 303 and resp.headers["Location"] == page_path(location)
    _, html = await form_of(front, page_path(location))
    assert 'data-state="declined"' in html and 'id="reason"' in html
    resp = await post_form(front, page_path(location), {**card(), "nonce": nonce_in(html) if "nonce" in html else ""})
    assert resp.status == 303
    assert len(front.iso("0100")) == 1  # the second post authorized nothing
    _, doc = await front.call("GET", f"/orders/{order['id']}")
    assert doc["orders"][0]["status"] == "declined"


async def test_a_bad_card_is_refused_on_the_server_next_to_its_field_and_nothing_is_sent(front: Front) -> None:
    location, _ = await create(front, MINIMAL)
    _, html = await form_of(front, page_path(location))
    form = {**card("4111111111111112", exp_month="13"), "nonce": nonce_in(html)}
    resp = await post_form(front, page_path(location), form)
    html = await resp.text()
    assert resp.status == 422
    assert re.search(r'id="err-number" role="alert">[^<]+</p>', html) and re.search(
        r'id="err-exp" role="alert">[^<]+<', html
    )
    assert "4111111111111112" not in html  # the number is never echoed back
    assert front.iso("0100") == []


async def test_a_post_without_the_forms_nonce_pays_nothing(front: Front) -> None:
    location, _ = await create(front, MINIMAL)
    resp = await post_form(front, page_path(location), {**card(), "nonce": "1.forged"})
    assert resp.status == 403 and front.iso("0100") == []


async def test_a_nonce_with_characters_outside_ascii_is_refused_with_403_not_a_server_error(front: Front) -> None:
    location, _ = await create(front, MINIMAL)
    _, html = await form_of(front, page_path(location))
    issued = nonce_in(html).partition(".")[0]  # a fresh issue time: the MAC itself is compared
    resp = await post_form(front, page_path(location), {**card(), "nonce": f"{issued}.\u00e9t\u00e9\u2603"})
    assert resp.status == 403 and front.iso("0100") == []


async def test_an_expired_page_says_so_and_a_post_to_it_authorizes_nothing(front: Front) -> None:
    location, order = await create(front, {"amount": 1, "options": {"expiration_timeout": "1m"}})
    _, html = await form_of(front, page_path(location))
    engine: Engine = front.runtime.orders.engine
    clock = engine.clock
    engine.clock = lambda: clock() + timedelta(minutes=2)
    try:
        status, expired = await form_of(front, page_path(location))
        assert status == 200 and 'data-state="expired"' in expired
        resp = await post_form(front, page_path(location), {**card(), "nonce": nonce_in(html)})
        assert resp.status == 303
    finally:
        engine.clock = clock
    assert front.iso("0100") == []
    _, doc = await front.call("GET", f"/orders/{order['id']}")
    assert doc["orders"][0]["status"] == "new"


async def test_a_force3d_page_refuses_to_pay_without_3d_secure(front: Front) -> None:
    location, order = await create(front, {"amount": 1, "options": {"force3d": 1}})
    _, html = await form_of(front, page_path(location))
    resp = await post_form(front, page_path(location), {**card(), "nonce": nonce_in(html)})
    assert resp.status == 409 and "3-D Secure" in await resp.text()
    assert front.iso("0100") == []
    _, doc = await front.call("GET", f"/orders/{order['id']}?expand=card")
    assert doc["orders"][0]["status"] == "new" and doc["orders"][0]["card"] == {}


async def test_auto_charge_charges_the_page_payment(front: Front) -> None:
    location, order = await create(front, {"amount": "5.00", "options": {"auto_charge": 1}})
    _, html = await form_of(front, page_path(location))
    await post_form(front, page_path(location), {**card(), "nonce": nonce_in(html)})
    _, doc = await front.call("GET", f"/orders/{order['id']}")
    assert doc["orders"][0]["status"] == "charged" and doc["orders"][0]["amount_charged"] == "5.00"


async def test_the_page_speaks_russian_when_asked(front: Front) -> None:
    location, _ = await create(front, {"amount": 1, "options": {"language": "ru"}})
    _, html = await form_of(front, page_path(location))
    assert '<html lang="ru">' in html and "Оплатить" in html


def test_the_create_schemas_languages_are_the_pages_and_each_has_every_word() -> None:
    schema = json.loads((SCHEMAS_DIR / "rest" / "create.json").read_text())
    assert set(schema["definitions"]["options"]["properties"]["language"]["enum"]) == set(LANGUAGES)
    words = [set(table) for table in LANGUAGES.values()]
    assert all(w == words[0] for w in words)


async def test_create_refuses_what_cannot_apply_to_a_page_naming_each_field(front: Front) -> None:
    body = {
        "amount": 1,
        "options": {"exemption_mit": 1, "secure3d20_return_url": "https://shop.example/3ds2"},
        "recurring_details": {"parent_order_id": "123", "trace_id": "MCC8454300719"},
    }
    status, doc = await front.call("POST", "/orders/create", body)
    assert status == 422 and doc["failure_type"] == "validation", doc
    assert [e["uri"] for e in doc["errors"]] == [
        "#/options/exemption_mit",
        "#/options/secure3d20_return_url",
        "#/recurring_details/parent_order_id",
        "#/recurring_details/trace_id",
    ]
    status, _ = await front.call("POST", "/orders/create", {"amount": 1, "options": {"exemption_mit": 0}})
    assert status == 201  # off is no request for it


async def test_a_pages_terminal_is_chosen_at_create_and_is_the_0100s_de_41(front: Front) -> None:
    shop = ProjectSettings(terminal_id="TERM0001", merchant_id="MERCHANT0000002", terminals=("TERM0002",))
    _, password = await front.runtime.projects.create("shop2", shop)
    auth = basic("shop2", password)
    status, doc = await front.call(
        "POST", "/orders/create", {"amount": 1, "options": {"terminal": "TERM0009"}}, headers=auth
    )
    assert status == 422 and [e["uri"] for e in doc["errors"]] == ["#/options/terminal"], doc
    resp = await front.http.post(
        "/orders/create", json={"amount": "9.99", "options": {"terminal": "TERM0002"}}, headers=auth
    )
    assert resp.status == 201, await resp.text()
    path = page_path(resp.headers["Location"])
    _, html = await form_of(front, path)
    assert (await post_form(front, path, {**card(), "nonce": nonce_in(html)})).status == 303
    (msg,) = front.iso("0100")
    assert msg["41"] == "TERM0002"


async def test_two_posts_of_the_same_page_at_once_pay_it_once(front: Front) -> None:
    location, order = await create(front, MINIMAL)
    _, html = await form_of(front, page_path(location))
    form = {**card(), "nonce": nonce_in(html)}
    first, second = await asyncio.gather(
        post_form(front, page_path(location), form), post_form(front, page_path(location), form)
    )
    assert first.status == second.status == 303
    assert len(front.iso("0100")) == 1
    _, doc = await front.call("GET", f"/orders/{order['id']}?expand=operations")
    assert doc["orders"][0]["status"] == "authorized" and len(doc["orders"][0]["operations"]) == 1


# -- notification_url and oneclick ------------------------------------------------------------------


async def _pay_page(http: Any, location: str, form: dict[str, str]) -> Any:
    path = page_path(location)
    resp = await http.get(path)
    html = await resp.text()
    return html, await http.post(path, data={**form, "nonce": nonce_in(html)}, allow_redirects=False)


async def test_a_pages_notification_url_is_stored_and_gets_the_orders_events_signed(hooks: Hooks) -> None:
    project = await hooks.runtime.projects.by_login("shop")
    assert project is not None
    secret = await hooks.worker.store.rotate_project_secret(project.id)
    url = hooks.endpoint.url + "/page-order"
    body = {"amount": "9.99", "options": {"notification_url": url}}
    resp = await hooks.http.post("/orders/create", json=body, headers=hooks.auth)
    assert resp.status == 201
    order_id = (await resp.json())["orders"][0]["id"]
    (row,) = await hooks.rows("SELECT notification_url FROM orders WHERE id = $1", order_id)
    assert row["notification_url"] == url
    _, paid = await _pay_page(hooks.http, resp.headers["Location"], card())
    assert paid.status == 303
    got = await wait_for(lambda: [r for r in hooks.endpoint.ok("/page-order") if b'"authorized"' in r.body] or None)
    event = verified(secret, got[0])
    assert event["data"]["orders"][0]["id"] == order_id and event["data"]["orders"][0]["status"] == "authorized"
    assert all(PAN not in r.body.decode() for r in hooks.endpoint.got)


async def test_a_notification_url_that_is_not_http_is_refused_by_create(front: Front) -> None:
    body = {"amount": "9.99", "options": {"notification_url": "ftp://shop.example/x"}}
    status, doc = await front.call("POST", "/orders/create", body)
    assert status == 422 and doc["failure_type"] == "validation", doc
    assert "notification_url" in json.dumps(doc)


async def test_oneclick_on_a_page_offers_the_box_keeps_the_card_when_ticked_and_a_later_order_pays_with_it(
    front: Front,
) -> None:
    body = {"amount": "9.99", "extra_fields": {"oneclick": {"customer_id": "cust42", "prechecked": 1}}}
    location, order = await create(front, body)
    html, paid = await _pay_page(front.http, location, {**card(), "save_card": "1"})
    _, doc = await front.call("GET", f"/orders/{order['id']}")
    assert doc["orders"][0]["status"] == "authorized"
    assert 'id="save_card"' in html and "Save this card for next time" in html
    assert re.search(r'id="save_card"[^>]*checked', html)
    assert paid.status == 303
    status, doc = await front.call("GET", "/customers/cust42/cards")
    assert status == 200, doc
    (kept,) = doc["cards"]
    assert PAN not in json.dumps(doc)
    later = {"amount": "5.00", "card": {"cvv": "123"}, "location": {"ip": "6.6.6.6"}}
    later["extra_fields"] = {"oneclick": {"customer_id": "cust42"}}
    status, doc = await front.call("POST", "/orders/authorize", later)
    assert status == 200 and doc["orders"][0]["status"] == "authorized", doc
    first, second = front.iso("0100")
    assert first["2"] == second["2"] == PAN and second["4"] == "000000000500"
    assert kept["id"]


async def test_an_unticked_box_keeps_no_card_and_an_unchecked_box_is_offered_when_not_prechecked(
    front: Front,
) -> None:
    body = {"amount": "9.99", "extra_fields": {"oneclick": {"customer_id": "cust7", "prechecked": 0}}}
    location, _ = await create(front, body)
    html, paid = await _pay_page(front.http, location, card())
    assert 'id="save_card"' in html and not re.search(r'id="save_card"[^>]*checked', html)
    assert paid.status == 303
    status, doc = await front.call("GET", "/customers/cust7/cards")
    assert status == 200 and doc["cards"] == [], doc
    location, _ = await create(front, MINIMAL)
    html, _ = await _pay_page(front.http, location, card())
    assert "save_card" not in html


async def test_a_project_without_cvv_and_holder_required_has_its_page_paid_without_them_and_no_de_120_goes_out(
    front: Front,
) -> None:
    lenient = ProjectSettings(terminal_id="TERM0001", merchant_id="MERCHANT0000002", cvv_required=False,
                              holder_required=False)  # fmt: skip
    _, password = await front.runtime.projects.create("lenient", lenient)
    resp = await front.http.post("/orders/create", json={"amount": "9.99"}, headers=basic("lenient", password))
    assert resp.status == 201, await resp.text()
    path, order_id = page_path(resp.headers["Location"]), (await resp.json())["orders"][0]["id"]
    _, html = await form_of(front, path)
    cvc = re.search(r'<label for="cvc">[^\n]*\n<input id="cvc"[^>]*>', html)
    holder = re.search(r'<label for="holder">[^\n]*\n<input id="holder"[^\n]*\n[^>]*>', html)
    assert cvc and holder, html
    for field in (cvc.group(0), holder.group(0)):
        assert "(optional)" in field and "required" not in field
    resp = await post_form(front, path, {**card(cvc="", holder=""), "nonce": nonce_in(html)})
    assert resp.status == 303 and resp.headers["Location"] == path
    _, html = await form_of(front, path)
    assert 'data-state="paid"' in html
    (msg,) = front.iso("0100")
    assert "120" not in msg and msg["2"] == PAN
    _, doc = await front.call("GET", f"/orders/{order_id}?expand=card", headers=basic("lenient", password))
    assert doc["orders"][0]["status"] == "authorized" and "holder" not in doc["orders"][0]["card"]

    # The defaults (both required): the page asks for them as before and refuses an empty code at its field.
    location, _ = await create(front, MINIMAL)
    _, html = await form_of(front, page_path(location))
    assert "(optional)" not in html and re.search(r'<input id="cvc"[^>]*\brequired\b', html)
    resp = await post_form(front, page_path(location), {**card(cvc="", holder=""), "nonce": nonce_in(html)})
    html = await resp.text()
    assert resp.status == 422
    assert re.search(r'id="err-cvc" role="alert">[^<]+</p>', html)
    assert re.search(r'id="err-holder" role="alert">[^<]+</p>', html)
    assert len(front.iso("0100")) == 1  # the lenient page's only
