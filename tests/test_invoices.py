"""The invoice API of seeds/002 end to end: HTTP -> the real runtime (PostgreSQL, vault, group writer, router
over TCP) -> the real simulator, on the front of tests/test_http_e2e.py.

The seed's examples come from another system: they are replayed by keys and types (:func:`same_shape`),
never by values (ids, times, URLs differ by nature); where a value is ours to match (status, resolution,
amounts, the request's own fields), it is compared too.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_http_e2e import Front, basic
from test_http_e2e import front as front  # fixture

pytestmark = pytest.mark.timeout(90)


def kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    return type(v).__name__


def same_shape(ours: Any, theirs: Any, where: str = "$") -> None:
    """``ours`` has every key of ``theirs`` (recursively; lists by their first item), with the same JSON type
    wherever the seed's value is not null."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), (where, ours)
        missing = set(theirs) - set(ours)
        assert not missing, (where, sorted(missing))
        for k, v in theirs.items():
            same_shape(ours[k], v, f"{where}.{k}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list), (where, ours)
        if theirs and ours:
            same_shape(ours[0], theirs[0], f"{where}[0]")
    elif theirs is not None:
        assert kind(ours) == kind(theirs), (where, ours, theirs)


# -- the seed's examples (seeds/002), transcribed ---------------------------------------

SERVICE = json.loads("""{ "type":"payment-services", "id":"comcps_u1xxlHVw1NyeqmjJ", "attributes":{
"service":"payment_card_usd_hpp", "service_method":"payment_card", "service_currency":"USD", "available":true,
"active":false, "enabled":true, "amount_min":0.01, "amount_max":1000000, "fee_min":0, "fee_max":0, "fee_rate":0,
"fee_fix":0, "reserve_lifetime":0, "reserve_rate":0, "currency":"GBP", "test_mode":true },
"relationships":{ "payment-method":{ "data":{ "type":"payment-methods", "id":"payment_card" } },
"payment-service":{ "data":{ "type":"payment-services", "id":"payment_card_usd_hpp" } } },
"links":{ "self":"/api/payment-services/comcps_u1xxlHVw1NyeqmjJ" } }""")
SERVICES_META = {"total": 124, "pages": 7, "page": 1}
UNAUTHORIZED = {"errors": [{"status": "Unauthorized", "code": "401"}]}
NOT_FOUND = {"errors": [{"status": "Not Found", "code": "404"}]}
NOT_ALLOWED = {"errors": [{"status": "Method Not Allowed", "code": "405"}]}


# -- payment services ----------------------------------------------------------------------


async def test_payment_services_are_listed_as_the_seeds_json_api_resources_paged(front: Front) -> None:
    status, doc = await front.call("GET", "/api/payment-services")
    assert status == 200, doc
    same_shape(doc["meta"], SERVICES_META)
    assert doc["meta"]["page"] == 1 and doc["meta"]["pages"] == 1 and doc["meta"]["total"] == len(doc["data"])
    assert doc["links"] == {
        "first": "/api/payment-services?page[number]=1&page[size]=20",
        "last": "/api/payment-services?page[number]=1&page[size]=20",
    }
    by_code = {s["attributes"]["service"]: s for s in doc["data"]}
    assert {"payment_card_usd_hpp", "payment_card_eur_hpp", "test_usd_test"} <= set(by_code)
    card = by_code["payment_card_usd_hpp"]
    same_shape(card, SERVICE)
    assert card["id"] == SERVICE["id"] and card["relationships"] == SERVICE["relationships"]
    assert card["links"] == SERVICE["links"]
    expected = {**SERVICE["attributes"], "currency": "USD", "test_mode": False}  # the project's currency; live too
    assert card["attributes"] == expected
    assert by_code["test_usd_test"]["attributes"]["test_mode"] is True  # the test flow exists in test mode only


async def test_payment_services_pages_link_first_prev_next_and_last(front: Front) -> None:
    _, all_ = await front.call("GET", "/api/payment-services")
    total = all_["meta"]["total"]
    status, doc = await front.call("GET", "/api/payment-services?page[number]=2&page[size]=2")
    assert status == 200
    assert doc["meta"] == {"total": total, "pages": (total + 1) // 2, "page": 2}
    assert [s["id"] for s in doc["data"]] == [s["id"] for s in all_["data"][2:4]]
    assert doc["links"]["prev"] == "/api/payment-services?page[number]=1&page[size]=2"
    assert doc["links"]["next"] == "/api/payment-services?page[number]=3&page[size]=2"
    status, bad = await front.call("GET", "/api/payment-services?page[size]=0")
    assert status == 422 and set(bad["errors"]) == {"page[size]"}


async def test_a_payment_service_is_read_by_its_id_or_its_code(front: Front) -> None:
    status, doc = await front.call("GET", "/api/payment-services/comcps_u1xxlHVw1NyeqmjJ")
    assert status == 200, doc
    same_shape(doc, {"data": SERVICE})
    _, by_code = await front.call("GET", "/api/payment-services/payment_card_usd_hpp")
    assert by_code == doc
    assert await front.call("GET", "/api/payment-services/comcps_nothingHereAtAll") == (404, NOT_FOUND)


async def test_the_private_api_answers_the_seeds_401_404_and_405(front: Front) -> None:
    assert await front.call("GET", "/api/payment-services", headers={}) == (401, UNAUTHORIZED)
    assert await front.call("GET", "/api/payment-services", headers=basic("project", "wrong")) == (401, UNAUTHORIZED)
    assert await front.call("GET", "/api/nothing-here") == (404, NOT_FOUND)
    assert await front.call("DELETE", "/api/payment-services") == (405, NOT_ALLOWED)
    # The orders API keeps its own shape.
    status, doc = await front.call("GET", "/orders/1", headers={})
    assert status == 401 and doc["failure_type"] == "validation"


# -- invoices, private API -------------------------------------------------------------------

CREATE_REQUEST = json.loads("""{ "data":{ "type":"payment-invoices", "attributes":{
"reference_id":"a30ebec4-035c-4fc5-8c48-b525ca601f37", "amount":100, "currency":"USD",
"service":"payment_card_usd_hpp", "flow":"charge", "test_mode":true, "description":"Invoice Example",
"gateway_options":{ "cardgate":{ "tokenize":false } }, "customer":{ "reference_id":"1203515",
"email":"somename@domain.com", "name":"John Wick", "phone":"+380987654321",
"metadata":{ "key1":"value1", "key2":"value2" } }, "metadata":{ "key":"value" }, "return_url":"https://example.com",
"return_urls": { "success":"https://example.com/1", "pending":"https://example.com/2", "fail":"https://example.com/3" },
"callback_url":"https://example.com", "expires": "2020-12-13T15:52:00+00:00" } } }""")

# The seed's invoice attributes; metadata is the merchant's own, echoed as sent (the seed's platform adds its
# "merchant_url" to it, ours adds nothing).
_ATTRIBUTES = """"serial_number": "HeSWMM9LvQonCcQc", "moderation_required": false, "amount": 100,
"payment_amount": 100, "currency": "USD", "service_currency": "USD",
"reference_id": "70d42236-2cc4-4e26-8f2f-987fd8fbc276", "test_mode": true, "fee": 0, "deposit": 100,
"metadata": { "key": "value" },
"flow_data": { "action": "https://cardgate-staging.psp.name/hpp/cgi_G0bsyhroZj802zQU", "method": "GET",
"params": [], "metadata": { "sid": "cgi_G0bsyhroZj802zQU", "token": "eyJ0eXAi" } }, "flow": "hpp",
"payment_flow": "charge", "created": 1597833098, "description": "Invoice Example", "descriptor": null,
"callback_url": "https://example.com", "return_url": "https://example.com", "rrn": null, "approval_code": null,
"reserved_amount": null, "reserve_expires": null, "unreserved": null, "source": "merchant_api" """
_RELATIONSHIPS = """"relationships": { "payment-service": { "data": { "type": "payment-services",
"id": "payment_card_usd_hpp" } }, "payment-method": { "data": { "type": "payment-methods", "id": "payment_card" } },
"customer": { "data": { "type": "customers", "id": "cus_Tjhe1ufEB3kRrgWy" } } },
"links": { "self": "/api/payment-invoices/cpi_HeSWMM9LvQonCcQc" }"""
CREATED = json.loads(
    """{ "data": { "type": "payment-invoices", "id": "cpi_HeSWMM9LvQonCcQc", "attributes": {"""
    + _ATTRIBUTES
    + """, "status": "process_pending", "resolution": "ok", "processed": null, "processed_amount": null,
"refunded_amount": null, "processed_fee": null, "processed_deposit": null,
"hpp_url": "https://pay.psp.name/redirect/hpp/?cpi=cpi_Y8Puis4vtNjAYZwb", "updated": 1597833098, "payload": null,
"original_data": { "external_id": null, "merchant_id": null, "provider_id": null,
"external_mid": "org_02HJ5jTUtan8ZXaT", "provider_code": null }, "callback_logs": [] }, """
    + _RELATIONSHIPS
    + "} }"
)
RECONCILED = json.loads(
    """{ "data": { "type": "payment-invoices", "id": "cpi_HeSWMM9LvQonCcQc", "attributes": {"""
    + _ATTRIBUTES
    + """, "status": "processed", "resolution": "ok", "processed": 1597833205, "processed_amount": 100,
"refunded_amount": null, "processed_fee": 0, "processed_deposit": 100, "updated": 1597833207,
"payload": { "token": null, "client_ip": "", "payment_card": { "last": "0000", "mask": "512381******0000",
"brand": "mastercard", "first": "512381", "holder": null, "network": "mastercard", "expiry_year": "24",
"issuer_name": "FIRST DATA CORPORATION", "expiry_month": "12", "issuer_country": "US" } },
"original_data": { "external_id": "cgi_8A8vc28Hr15D8tZ3", "merchant_id": "host2hostTest", "provider_id": null,
"external_mid": "org_02HJ5jTUtan8ZXaT", "provider_code": "test" } }, """
    + _RELATIONSHIPS
    + "} }"
)
# An invoice read after its creation: its callback_url's first callback (process_pending) is logged by then.
READ = copy.deepcopy(CREATED)
READ["data"]["attributes"]["callback_logs"] = {}
LIST_META = {"count": 17, "size": 20, "before": "cpi_o8CBGwATmJag4p32", "after": "cpi_HeSWMM9LvQonCcQc"}


def body(**changes: Any) -> dict[str, Any]:
    """The seed's create request with an ``expires`` a day ahead (the seed's is in 2020) and ``changes``."""
    attrs = {**CREATE_REQUEST["data"]["attributes"], "expires": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
    for key, value in changes.items():
        if value is DROP:
            attrs.pop(key, None)
        else:
            attrs[key] = value
    return {"data": {"type": "payment-invoices", "attributes": attrs}}


DROP = object()


async def create_invoice(front: Front, **changes: Any) -> dict[str, Any]:
    status, doc = await front.call("POST", "/api/payment-invoices", body(**changes))
    assert status == 201, doc
    invoice: dict[str, Any] = doc["data"]
    return invoice


async def pay(front: Front, invoice: dict[str, Any], pan: str = "4111111111111111") -> Any:
    """The cardholder opens hpp_url and posts the page's card form (no browser: the page works without JS)."""
    path = urlsplit(invoice["attributes"]["hpp_url"]).path
    page = await front.http.get(path)
    assert page.status == 200
    html = await page.text()
    nonce = re.search(r'name="nonce" value="([^"]+)"', html)
    assert nonce, html
    form = {"number": pan, "exp_month": "12", "exp_year": "30", "cvc": "123", "holder": "JOHN SMITH"}
    return await front.http.post(path, data={**form, "nonce": nonce.group(1)}, allow_redirects=False)


async def test_an_invoice_is_created_as_the_seed_shows_with_a_waiting_order_and_its_page(front: Front) -> None:
    status, doc = await front.call("POST", "/api/payment-invoices", body())
    assert status == 201, doc
    same_shape(doc, CREATED)
    inv = doc["data"]
    attrs = inv["attributes"]
    assert re.fullmatch(r"cpi_[A-Za-z0-9]{16}", inv["id"]) and attrs["serial_number"] == inv["id"][4:]
    assert inv["links"] == {"self": f"/api/payment-invoices/{inv['id']}"}
    assert inv["relationships"]["customer"]["data"]["id"].startswith("cus_")
    sent = CREATE_REQUEST["data"]["attributes"]
    assert {k: attrs[k] for k in ("reference_id", "description", "callback_url", "return_url", "metadata")} == {
        k: sent[k] for k in ("reference_id", "description", "callback_url", "return_url", "metadata")
    }
    # The project's fee is 3 %: 100 USD -> 3 fee, 97 deposit.
    assert (attrs["status"], attrs["resolution"], attrs["amount"], attrs["fee"], attrs["deposit"]) == (
        "process_pending", "ok", 100, 3, 97,
    )  # fmt: skip
    assert attrs["test_mode"] is True and attrs["payment_flow"] == "charge" and attrs["callback_logs"] == []
    assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+/pay/[A-Za-z0-9_-]{43}", attrs["hpp_url"])
    assert attrs["flow_data"]["action"] == attrs["hpp_url"] and attrs["flow_data"]["method"] == "GET"
    # Its payment is an order of the orders API: waiting (new), for the amount, naming the invoice.
    order_id = attrs["original_data"]["external_id"]
    status, orders = await front.call("GET", f"/orders/{order_id}")
    assert status == 200
    order = orders["orders"][0]
    assert (order["status"], order["amount"], order["currency"]) == ("new", "100.00", "USD")
    assert order["description"] == "Invoice Example"
    # The page shows the invoice's amount and description.
    page = await front.http.get(urlsplit(attrs["hpp_url"]).path)
    html = await page.text()
    assert page.status == 200 and "Invoice Example" in html and "100.00" in html


async def test_paying_the_hpp_url_processes_the_invoice_and_reconciles_as_the_seed_shows(front: Front) -> None:
    inv = await create_invoice(front)
    resp = await pay(front, inv)
    assert resp.status == 303 and resp.headers["Location"] == "https://example.com/1"  # return_urls.success
    status, doc = await front.call("GET", f"/api/payment-invoices/{inv['id']}")
    assert status == 200, doc
    same_shape(doc, RECONCILED)
    attrs = doc["data"]["attributes"]
    assert (attrs["status"], attrs["resolution"], attrs["processed_amount"]) == ("processed", "ok", 100)
    assert (attrs["processed_fee"], attrs["processed_deposit"]) == (3, 97)
    card = attrs["payload"]["payment_card"]
    assert (card["first"], card["last"], card["mask"], card["expiry_month"]) == (
        "411111",
        "1111",
        "411111******1111",
        "12",
    )
    assert attrs["rrn"] and attrs["approval_code"]
    # flow charge: the order is charged (the page charges at once).
    _, orders = await front.call("GET", f"/orders/{attrs['original_data']['external_id']}")
    assert orders["orders"][0]["status"] == "charged"
    # Paying twice is impossible: the page is closed and nothing more goes to the issuer.
    sent = len(front.iso("0100"))
    again = await front.http.get(urlsplit(attrs["hpp_url"]).path)
    assert 'data-state="paid"' in await again.text()
    assert len(front.iso("0100")) == sent


async def test_a_verify_invoice_is_processed_when_the_card_is_authorized(front: Front) -> None:
    inv = await create_invoice(front, flow="verify", reference_id="verify-1")
    await pay(front, inv)
    _, doc = await front.call("GET", f"/api/payment-invoices/{inv['id']}")
    attrs = doc["data"]["attributes"]
    assert (attrs["status"], attrs["payment_flow"], attrs["processed_amount"]) == ("processed", "verify", 100)
    _, orders = await front.call("GET", f"/orders/{attrs['original_data']['external_id']}")
    assert orders["orders"][0]["status"] == "authorized"


async def test_a_declined_card_fails_the_invoice_declined(front: Front) -> None:
    inv = await create_invoice(front, reference_id="declined-1")
    await pay(front, inv, pan="4276990011343663")
    _, doc = await front.call("GET", f"/api/payment-invoices/{inv['id']}")
    attrs = doc["data"]["attributes"]
    assert (attrs["status"], attrs["resolution"], attrs["processed"]) == ("process_failed", "declined", None)


async def test_an_invoice_past_its_expiry_fails_expired_and_its_page_takes_no_payment(front: Front) -> None:
    inv = await create_invoice(front, reference_id="late-1")
    engine = front.runtime.orders.engine
    clock = engine.clock
    engine.clock = lambda: clock() + timedelta(days=1, minutes=1)
    try:
        _, doc = await front.call("GET", f"/api/payment-invoices/{inv['id']}")
        attrs = doc["data"]["attributes"]
        assert (attrs["status"], attrs["resolution"]) == ("process_failed", "expired")
        page = await front.http.get(urlsplit(attrs["hpp_url"]).path)
        assert 'data-state="expired"' in await page.text()
    finally:
        engine.clock = clock
    assert front.iso("0100") == []


async def test_the_test_flow_service_takes_its_outcome_from_the_status_field(front: Front) -> None:
    ok = await create_invoice(
        front, service="test_usd_test", service_fields={"status": "success"}, reference_id="t-1", return_urls=DROP
    )
    assert (ok["attributes"]["status"], ok["attributes"]["hpp_url"], ok["attributes"]["flow"]) == (
        "processed", None, "test",
    )  # fmt: skip
    failed = await create_invoice(front, service="test_usd_test", service_fields={"status": "fail"}, reference_id="t-2")
    assert (failed["attributes"]["status"], failed["attributes"]["resolution"]) == ("process_failed", "declined")
    status, doc = await front.call(
        "POST", "/api/payment-invoices", body(service="test_usd_test", service_fields={"status": "bad value!"})
    )
    assert status == 422 and doc == {"errors": {"service_fields.status": "This value is not valid."}}
    status, doc = await front.call(
        "POST", "/api/payment-invoices", body(service="test_usd_test", test_mode=False, service_fields={"status": "ok"})
    )
    assert status == 422 and set(doc["errors"]) == {"service"}


async def test_a_duplicate_reference_id_is_409_with_the_invoice_made_first(front: Front) -> None:
    first = await create_invoice(front, reference_id="dup-1")
    _, before = await front.call("GET", "/orders/")
    status, doc = await front.call("POST", "/api/payment-invoices", body(reference_id="dup-1", amount=5))
    assert status == 409
    assert doc["data"]["id"] == first["id"] and doc["data"]["attributes"]["amount"] == 100
    same_shape(doc, READ)
    _, after = await front.call("GET", "/orders/")
    assert len(after["orders"]) == len(before["orders"]), "no second order"


async def test_invoices_are_found_by_reference_id_and_listed_newest_first_by_cursor(front: Front) -> None:
    made = [(await create_invoice(front, reference_id=f"list-{i}"))["id"] for i in range(5)]
    status, doc = await front.call("GET", "/api/payment-invoices?filter[reference_id]=list-3")
    assert status == 200 and [d["id"] for d in doc["data"]] == [made[3]]
    same_shape(doc["meta"], LIST_META)
    same_shape(doc["data"][0], READ["data"])
    assert doc["links"] == {"prev": "", "next": ""}
    _, page1 = await front.call("GET", "/api/payment-invoices?page[size]=2")
    assert [d["id"] for d in page1["data"]] == made[::-1][:2]
    assert page1["meta"] == {"count": 5, "size": 2, "before": made[4], "after": made[3]}
    assert page1["links"]["prev"] == ""
    _, page2 = await front.call("GET", page1["links"]["next"])
    assert [d["id"] for d in page2["data"]] == made[::-1][2:4]
    _, back = await front.call("GET", page2["links"]["prev"])
    assert [d["id"] for d in back["data"]] == made[::-1][:2]
    _, page3 = await front.call("GET", page2["links"]["next"])
    assert [d["id"] for d in page3["data"]] == [made[0]] and page3["links"]["next"] == ""
    # Another project sees none of them.
    status, other = await front.call("GET", "/api/payment-invoices", headers=front.other)
    assert status == 200 and other["data"] == [] and other["meta"]["count"] == 0
    status, _ = await front.call("GET", f"/api/payment-invoices/{made[0]}", headers=front.other)
    assert status == 404


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"amount": 0}, {"amount": "This value should be greater than 0."}),  # the seed's own 422 example
        ({"amount": "12.345"}, {"amount": "This value has more decimals than USD has."}),
        ({"amount": 2000000}, {"amount": "This value should be between 0.01 and 1000000."}),
        ({"service": "nope_usd_hpp"}, {"service": "This value is not valid."}),
        ({"currency": "EUR"}, {"currency": "This value should be the service's currency."}),
        ({"flow": "pay"}, {"flow": "This value should be charge or verify."}),
        ({"customer": {"name": "John"}}, {"customer.reference_id": "This value should not be blank."}),
        ({"return_urls": {"success": "https://e.com"}}, {"return_urls.pending": "This value should not be blank."}),
        ({"callback_url": "ftp://x"}, {"callback_url": "This value is not a valid URL."}),
    ],
)
async def test_bad_invoices_are_422_in_the_seeds_shape_and_nothing_is_made(
    front: Front, changes: dict[str, Any], errors: dict[str, str]
) -> None:
    status, doc = await front.call("POST", "/api/payment-invoices", body(**changes))
    assert (status, doc) == (422, {"errors": errors})
    _, listed = await front.call("GET", "/api/payment-invoices")
    _, orders = await front.call("GET", "/orders/")
    assert listed["data"] == [] and orders["orders"] == []


@pytest.mark.parametrize("minutes", [13, 2 * 24 * 60 + 1])
async def test_an_expiry_outside_14_minutes_to_2_days_is_422(front: Front, minutes: int) -> None:
    expires = (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()
    status, doc = await front.call("POST", "/api/payment-invoices", body(expires=expires))
    assert status == 422 and set(doc["errors"]) == {"expires"}


async def test_the_invoice_api_answers_the_seeds_400_401_404_and_405(front: Front) -> None:
    resp = await front.http.post(
        "/api/payment-invoices", data=b"{not json", headers={**front.auth, "Content-Type": "application/json"}
    )
    doc = await resp.json()
    assert resp.status == 400 and doc["errors"][0]["status"] == "Bad Request" and doc["errors"][0]["code"] == "400"
    assert await front.call("POST", "/api/payment-invoices", body(), headers={}) == (401, UNAUTHORIZED)
    assert await front.call("GET", "/api/payment-invoices/cpi_AAAAAAAAAAAAAAAA") == (404, NOT_FOUND)
    assert await front.call("GET", "/api/payment-invoices/garbage") == (404, NOT_FOUND)
    assert await front.call("PUT", "/api/payment-invoices") == (405, NOT_ALLOWED)
    status, doc = await front.call("POST", "/api/payment-invoices", {"type": "payment-invoices"})
    assert status == 422 and set(doc["errors"]) == {"data"}
    # A reference the merchant does not give is made and sent back.
    made = await create_invoice(front, reference_id=DROP)
    assert re.fullmatch(r"[0-9a-f-]{36}", made["attributes"]["reference_id"])


# -- invoices, public API --------------------------------------------------------------------

PUBLIC_REQUEST = json.loads("""{ "public_key": "pk_test_ClSQHi2T9WXuFa76WcwwBB6rspRpg6ANM69cS9zNOJy",
"reference_id": "7135b08b-701b-4fbc-a7d2-b2763d96d415", "description": "Invoice Example",
"service": "payment_card_usd_hpp", "currency": "USD", "amount": 123.45 }""")
PUBLIC_CREATED = json.loads("""{ "data": { "id": "cpi_QGcJxoBxnYStkuvN", "serial_number": "QGcJxoBxnYStkuvN",
"created": 1595846278, "test_mode": true, "reference_id": "7135b08b-701b-4fbc-a7d2-b2763d96d415", "currency": "USD",
"amount": 123.45, "payment_amount": 123.45, "processed_amount": null, "refunded_amount": null,
"description": "Invoice Example", "has_return_url": false, "status": "process_pending", "resolution": "OK",
"service": "payment_card_usd_hpp", "service_method": "payment_card", "service_flow": "hpp", "service_currency": "USD",
"metadata": { "merchant_url": "https://lets.doc.it" },
"hpp_url": "https://pay.psp.name/redirect/hpp/?cpi=cpi_Y8Puis4vtNjAYZwb",
"active_payment": { "payload": { "action": "https://cardgate-staging.psp.name/hpp/cgi_8z1WIRwAtwvyI3G9",
"method": "GET", "params": [], "metadata": { "sid": "cgi_8z1WIRwAtwvyI3G9", "token": "eyJ0eXAi" } },
"status": "invoked", "resolution": "OK" } } }""")


async def keys_of(front: Front, login: str) -> tuple[str, str]:
    project = await front.runtime.projects.by_login(login)
    assert project is not None
    keys = await front.runtime.projects.public_keys(project.id)
    assert keys is not None
    return keys.test, keys.live


async def test_the_public_api_creates_and_reads_an_invoice_by_public_key_as_the_seed_shows(front: Front) -> None:
    test_key, live_key = await keys_of(front, "project")
    status, doc = await front.call("POST", "/public-api/payment-invoices", {**PUBLIC_REQUEST, "public_key": test_key})
    assert status == 201, doc
    # metadata is the merchant's own: none was sent, none is shown (the seed's platform adds its merchant_url).
    same_shape(doc, {"data": {**PUBLIC_CREATED["data"], "metadata": None}})
    data = doc["data"]
    assert (data["amount"], data["status"], data["resolution"], data["test_mode"]) == (
        123.45,
        "process_pending",
        "OK",
        True,
    )
    assert data["active_payment"]["payload"]["action"] == data["hpp_url"]
    path = f"/public-api/payment-invoices/{data['id']}"
    status, read = await front.call("GET", f"{path}?public_key={test_key}", headers={})
    assert status == 200 and read == doc
    # The same invoice through the private API says where it came from.
    _, private = await front.call("GET", f"/api/payment-invoices/{data['id']}")
    assert private["data"]["attributes"]["source"] == "public_api"
    # A live key makes live invoices; paying the page processes the invoice, seen by either key.
    live = await front.call(
        "POST", "/public-api/payment-invoices", {**PUBLIC_REQUEST, "public_key": live_key, "reference_id": "live-1"}
    )
    assert live[0] == 201 and live[1]["data"]["test_mode"] is False
    resp = await pay(front, {"attributes": {"hpp_url": data["hpp_url"]}})
    # No return URL: back to the page, which shows the result.
    assert resp.status == 303 and resp.headers["Location"].endswith(urlsplit(data["hpp_url"]).path)
    _, paid = await front.call("GET", f"{path}?public_key={live_key}", headers={})
    assert (paid["data"]["status"], paid["data"]["processed_amount"]) == ("processed", 123.45)


async def test_the_public_api_refuses_wrong_keys_other_projects_and_a_forbidding_project(front: Front) -> None:
    test_key, _ = await keys_of(front, "project")
    other_key, _ = await keys_of(front, "other")
    no_key = {k: v for k, v in PUBLIC_REQUEST.items() if k != "public_key"}
    for key in (None, "pk_test_" + "x" * 43, "garbage"):
        sent = no_key if key is None else {**no_key, "public_key": key}
        assert await front.call("POST", "/public-api/payment-invoices", sent, headers={}) == (401, UNAUTHORIZED)
    status, doc = await front.call("POST", "/public-api/payment-invoices", {**PUBLIC_REQUEST, "public_key": test_key})
    assert status == 201
    invoice_id = doc["data"]["id"]
    # Another project's key does not read it; a public key is no HTTP Basic login.
    path = f"/public-api/payment-invoices/{invoice_id}"
    assert await front.call("GET", f"{path}?public_key={other_key}", headers={}) == (404, NOT_FOUND)
    assert await front.call("GET", path, headers={}) == (401, UNAUTHORIZED)
    assert await front.call("GET", f"/api/payment-invoices/{invoice_id}", headers=basic(test_key, "")) == (
        401, UNAUTHORIZED,
    )  # fmt: skip
    # A duplicate reference is the seed's 409 with the first invoice.
    status, dup = await front.call("POST", "/public-api/payment-invoices", {**PUBLIC_REQUEST, "public_key": test_key})
    assert status == 409 and dup["data"]["id"] == invoice_id
    # The project forbids creation through the public API: 403, nothing made.
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    await front.runtime.projects.update_settings(project.id, forbid_public_invoices=True)
    sent = {**PUBLIC_REQUEST, "public_key": test_key, "reference_id": "forbidden-1"}
    status, doc = await front.call("POST", "/public-api/payment-invoices", sent, headers={})
    assert status == 403 and doc["errors"][0]["code"] == "403"
    _, listed = await front.call("GET", "/api/payment-invoices?filter[reference_id]=forbidden-1")
    assert listed["data"] == []
    status, bad = await front.call(
        "POST", "/public-api/payment-invoices", {**PUBLIC_REQUEST, "public_key": other_key, "amount": 0}, headers={}
    )
    assert (status, bad) == (422, {"errors": {"amount": "This value should be greater than 0."}})


PREREQUEST = json.loads(
    """{ "data": { "currency": "USD", "test_mode": true, "services": { "payment_card_usd_hpp": {
"code": "payment_card_usd_hpp", "method": "payment_card", "flow": "hpp", "currency": "USD", "fields": [],
"amount_min": 0.01, "amount_max": 1000000 }, "test_usd_test": { "code": "test_usd_test", "method": "test",
"flow": "test", "currency": "USD", "fields": [ { "key": "status", "type": "string",
"label": { "ru": "Статус", "en": "Status", "uk": "Статус" }, "example": null,
"hint": { "ru": "Введите статус", "en": "Enter Status", "uk": "Введіть статус" }, "regexp": "^[a-zA-Z_]*$",
"required": true, "position": 0 } ], "amount_min": 0.01, "amount_max": 9999999 } },
"methods": { "payment_card": { "code": "payment_card", "category": "payment_card", "description": "",
"name": { "en": "Payment card", "ru": "Платежная карта", "uk": "Платіжна карта" },
"logo": "https://static.openfintech.io/payment_methods/payment_card/logo.svg",
"icon": "https://static.openfintech.io/payment_methods/payment_card/icon.svg", "metadata": null, "position": null,
"hide": null }, "test": { "code": "test", "category": "alternative", "description": "",
"name": { "en": "Test", "ru": "Тест", "uk": "Тест" }, "logo": "https://static.openfintech.io/payment_methods/test/logo.png",
"icon": "https://static.openfintech.io/payment_methods/test/icon.svg", "metadata": null, "position": null,
"hide": null } }, "account": { "name": "4Docs", "description": "4Docs only",
"icon": "https://static-dev.psp.name/images/default.svg?1595844446", "website": null } } }"""
)


async def test_the_prerequest_lists_a_currencys_services_and_methods_as_the_seed_shows(front: Front) -> None:
    test_key, live_key = await keys_of(front, "project")
    path = "/public-api/payment-prerequest"
    status, doc = await front.call("POST", path, {"public_key": test_key, "currency": "USD"})
    assert status == 200, doc
    # Logos and icons: none (our pages load nothing from other hosts); the seed's are URLs of its CDN.
    want = copy.deepcopy(PREREQUEST)
    for method in want["data"]["methods"].values():
        method["logo"] = method["icon"] = None
    want["data"]["account"]["icon"] = None
    same_shape(doc, want)
    assert doc["data"]["services"] == want["data"]["services"]
    assert doc["data"]["account"]["name"] == "project"
    status, live = await front.call("POST", path, {"public_key": live_key, "currency": "usd"})
    assert status == 200 and list(live["data"]["services"]) == ["payment_card_usd_hpp"]
    assert list(live["data"]["methods"]) == ["payment_card"] and live["data"]["test_mode"] is False
    assert await front.call("POST", path, {"currency": "USD"}, headers={}) == (401, UNAUTHORIZED)


async def test_concurrent_creates_of_one_reference_make_one_invoice_and_one_order(front: Front) -> None:
    answers = await asyncio.gather(
        *(front.call("POST", "/api/payment-invoices", body(reference_id="race-1")) for _ in range(4))
    )
    assert sorted(status for status, _ in answers) == [201, 409, 409, 409]
    assert len({doc["data"]["id"] for _, doc in answers}) == 1
    assert all(doc["data"]["attributes"]["status"] == "process_pending" for _, doc in answers)
    _, orders = await front.call("GET", "/orders/")
    assert len(orders["orders"]) == 1


async def test_the_html_form_of_a_payment_link_makes_the_invoice_and_sends_the_browser_to_its_page(
    front: Front,
) -> None:
    test_key, _ = await keys_of(front, "project")
    form = {
        "public_key": test_key,
        "reference_id": "link-1",
        "currency": "USD",
        "amount": "100",
        "service": "payment_card_usd_hpp",
        "customer[reference_id]": "cust-7",
        "customer[name]": "Test Customer",
        "customer[address][full_address]": "Test Address",
    }
    resp = await front.http.post("/public-api/payment-invoices/process", data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    location = resp.headers["Location"]
    assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+/pay/[A-Za-z0-9_-]{43}", location)
    _, listed = await front.call("GET", "/api/payment-invoices?filter[reference_id]=link-1")
    (inv,) = listed["data"]
    assert inv["attributes"]["hpp_url"] == location and inv["attributes"]["source"] == "public_api"
    assert inv["relationships"]["customer"]["data"]["id"].startswith("cus_")
    # The link clicked again: the same invoice's page, no second invoice.
    again = await front.http.post("/public-api/payment-invoices/process", data=form, allow_redirects=False)
    assert again.status == 303 and again.headers["Location"] == location
    # A customer without its reference is refused, nothing made.
    bad = {**form, "reference_id": "link-2", "customer[reference_id]": ""}
    resp = await front.http.post("/public-api/payment-invoices/process", data=bad, allow_redirects=False)
    assert resp.status == 422 and await resp.json() == {
        "errors": {"customer.reference_id": "This value should not be blank."}
    }
    _, none = await front.call("GET", "/api/payment-invoices?filter[reference_id]=link-2")
    assert none["data"] == []


async def test_gateway_options_take_the_seeds_tokenize_false_and_refuse_what_they_cannot_honour(front: Front) -> None:
    def request(options: object, reference: str) -> dict[str, Any]:
        attrs = {"reference_id": reference, "service": "payment_card_usd_hpp", "currency": "USD", "amount": 10}
        return {"data": {"type": "payment-invoices", "attributes": {**attrs, "gateway_options": options}}}

    status, doc = await front.call("POST", "/api/payment-invoices", request({"cardgate": {"tokenize": False}}, "g1"))
    assert status == 201, doc
    for options, field in (
        ({"cardgate": {"tokenize": True}}, "gateway_options.cardgate.tokenize"),
        ({"checkout": {"theme": "dark"}}, "gateway_options.checkout"),
        ({"cardgate": {"tokenize": False, "skin": 1}}, "gateway_options.cardgate.skin"),
    ):
        status, doc = await front.call("POST", "/api/payment-invoices", request(options, "g2"))
        assert status == 422 and set(doc["errors"]) == {field}, doc
    _, listed = await front.call("GET", "/api/payment-invoices?filter[reference_id]=g2")
    assert listed["data"] == []
