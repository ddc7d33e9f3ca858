"""The invoice API of seeds/002 end to end: HTTP -> the real runtime (PostgreSQL, vault, group writer, router
over TCP) -> the real simulator, on the front of tests/test_http_e2e.py.

The seed's examples come from another system: they are replayed by keys and types (:func:`same_shape`),
never by values (ids, times, URLs differ by nature); where a value is ours to match (status, resolution,
amounts, the request's own fields), it is compared too.
"""

from __future__ import annotations

import json
from typing import Any

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
    wherever the seed's value is not null. Keys the seed lacks are allowed only when listed by the caller."""
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
