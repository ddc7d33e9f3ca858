"""The REST front end to end: HTTP -> the real runtime (PostgreSQL, group writer, vault,
router over TCP) -> the real simulator, with the seed's example requests and answers.

Answers are compared field by field with the seed's examples (seeds/003),
transcribed here; what differs by nature (ids, times, auth codes, RRN, ARN)
is matched by form. Where our answer carries a field the example lacks, the
field is added to the expectation with the reason. No fakes anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from waiting import wait_for

from acquirer_sim import SimServer
from http_front import FrontConfig, create_app
from http_front.logs import ACCESS_LOGGER, AccessLog
from switch.config import SwitchConfig
from switch.runtime import Runtime, RuntimeConfig, open_runtime
from switch.store import DbConfig, ProjectSettings
from switch.wire.codec import Message

pytestmark = pytest.mark.timeout(60)

PAN = "4111111111111111"
CARDS = ("4111111111111111", "4276990011343663", "5555555555555599", "2222400060000007")


class Like:
    """Equal to any string of a form: for what differs by nature between the seed and a run."""

    def __init__(self, pattern: str, name: str) -> None:
        self.re = re.compile(pattern)
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.re.fullmatch(other) is not None

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<{self.name}>"


ORDER_ID = Like(r"[0-9]{17}", "order id")
TIME = Like(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", "time")
AUTH_CODE = Like(r"[0-9A-Z]{6}", "auth code")
RRN = Like(r"[0-9A-Z]{12}", "rrn")
ARN = Like(r"[0-9]{23}", "arn")
_BY_NATURE = {"id": ORDER_ID, "order_id": ORDER_ID, "created": TIME, "updated": TIME, "auth_code": AUTH_CODE}


def seed(text: str) -> Any:
    """A JSON example of the seed, with ids, times and auth codes matched by form."""

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (_BY_NATURE[k] if k in _BY_NATURE and v[k] is not None else walk(x)) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(json.loads(text))


def shape(v: Any) -> Any:
    """Field names only, recursively (lists by their first item): for examples from another system."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    if isinstance(v, Like):
        return "str"
    return type(v).__name__ if v is not None else None


def ours(order: dict[str, Any], expiry: str | None = "12/30") -> dict[str, Any]:
    """Fields the seed's examples of these calls leave out but its other examples show:
    ``rrn`` (token_pay example), ``card.expiration`` (credit and token_pay examples),
    ``arn`` on charges and refunds (Order information example)."""
    order["rrn"] = RRN
    if expiry is not None and "card" in order:
        order["card"]["expiration"] = expiry
    for op in order.get("operations", []):
        if op["type"] in ("charge", "refund"):
            op["arn"] = ARN
    return order


# -- the rig -----------------------------------------------------------------------


class _Recorder:
    """The simulator's issuer, keeping every request it handles."""

    def __init__(self, issuer: Any, sent: list[Message]) -> None:
        self._issuer, self._sent = issuer, sent

    def handle(self, msg: Message) -> Any:
        self._sent.append(dict(msg))
        return self._issuer.handle(msg)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._issuer, name)


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


@dataclass
class Front:
    http: TestClient[web.Request, web.Application]
    runtime: Runtime
    sim: SimServer
    auth: dict[str, str]
    other: dict[str, str]
    sent: list[Message] = field(default_factory=list)

    async def call(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = None if body is None else orjson.dumps(body, default=str)
        hdrs = {"Content-Type": "application/json", **(self.auth if headers is None else headers)}
        resp = await self.http.request(method, path, data=data, headers=hdrs)
        return resp.status, orjson.loads(await resp.read())

    async def order(self, body: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
        status, doc = await self.call("POST", "/orders/authorize", {**(body or REQUIRED), **changes})
        assert status == 200, doc
        order: dict[str, Any] = doc["orders"][0]
        return order

    def iso(self, mti: str) -> list[Message]:
        return [m for m in self.sent if m["t"] == mti]


@pytest.fixture
async def front(sim: SimServer, fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Front]:  # noqa: F811
    assert sim.address is not None
    host, port = sim.address
    switch = SwitchConfig.from_dict(
        {
            "destinations": [{"name": "sim", "host": host, "port": port, "links": 2, "echo_interval": 0.0}],
            "routing": {"default": "sim", "test": "sim"},
        }
    )
    runtime = await open_runtime(
        RuntimeConfig(
            db=DbConfig(url=fresh_dsn, data_dir=scratch_dir, min_size=1, max_size=5),
            switch=switch,
            request_timeout=2.0,
            close_timeout=2.0,
            id_block_size=50,
            env={"ISOSWITCH_PAN_KEY": base64.b64encode(secrets.token_bytes(32)).decode()},
        )
    )
    try:
        # The seed's examples: descriptor "TESTMERCH/TERM", a 3 % fee (9.99 -> 0.30), no reserve.
        shop = ProjectSettings(
            terminal_id="TERM0001", merchant_id="MERCHANT0000001", descriptor="TESTMERCH/TERM", fee_rate=Decimal(3)
        )
        _, password = await runtime.projects.create("project", shop)
        _, other = await runtime.projects.create("other", ProjectSettings.defaults(2, "other"))
        front_cfg = FrontConfig(port=0)
        # The production server's access log (tests/browser.py's pages check what it writes).
        server = TestServer(create_app(runtime, front_cfg))
        await server.start_server(access_log_class=AccessLog, access_log=ACCESS_LOGGER)
        async with TestClient(server) as http:
            f = Front(http, runtime, sim, basic("project", password), basic("other", other))
            sim.issuer = _Recorder(sim.issuer, f.sent)  # type: ignore[assignment]
            yield f
    finally:
        await runtime.close()


# -- the seed's requests -------------------------------------------------------------

REQUIRED = {
    "amount": Decimal("9.99"),
    "card": {"cvv": "333", "expiration_month": 12, "expiration_year": 2030, "holder": "John Smith"},
    "location": {"ip": "6.6.6.6"},
    "pan": PAN,
}
ALL_FIELDS = {
    **REQUIRED,
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
    "merchant_order_id": "5678",
    "options": {"force3d": 0, "return_url": "http://shop.com", "terminal": ""},
    "segment": "987654321",
}

# The seed's answers (Authorize, "only required fields" and "all fields").
AUTHORIZED = """{ "orders" : [ { "amount" : "9.99", "amount_charged" : "0.00", "amount_refunded" : "0.00",
"auth_code" : "AUTH12", "card" : { "holder" : "John Smith", "subtype" : "classic", "type" : "visa" }, "client" : {},
"created" : "2016-08-22 15:39:48", "currency" : "USD", "custom_fields" : {}, "description" : null, "descriptor" :
"TESTMERCH/TERM", "id" : "23014806643308174", "issuer" : { "bin" : "411111", "country" : "UKR", "title" : "TestBank" },
"location" : { "ip" : "6.6.6.6" }, "merchant_order_id" : null, "operations" : [ { "amount" : "9.99", "auth_code" :
"AUTH12", "cashflow" : { "amount" : "0.00", "currency" : "USD", "fee" : "0.00", "incoming" : "0.00", "receivable" :
"0.00", "reserve" : "0.00" }, "created" : "2016-08-22 15:39:48", "currency" : "USD", "iso_message" : "Approved",
"iso_response_code" : "00", "status" : "success", "type" : "authorize" } ], "pan" : "411111****1111", "secure3d" : {},
"status" : "authorized", "updated" : "2016-08-22 15:39:48" } ] }"""

AUTHORIZED_ALL = """{ "orders" : [ { "amount" : "9.99", "amount_charged" : "0.00", "amount_refunded" : "0.00",
"auth_code" : "AUTH12", "card" : { "holder" : "John Smith", "subtype" : "classic", "type" : "visa" }, "client" : {
"address" : "Main ave. 1", "city" : "San Francisco", "country" : "USA", "email" : "foo@bar.com", "name" : "John Smith",
"phone" : "+1 456 890", "state" : "CA", "zip" : "123456" }, "created" : "2016-08-22 15:39:49", "currency" : "USD",
"custom_fields" : {}, "description" : "Book sale #453", "descriptor" : "TESTMERCH/TERM", "id" : "23014806815093624",
"issuer" : { "bin" : "411111", "country" : "UKR", "title" : "TestBank" }, "location" : { "ip" : "6.6.6.6" },
"merchant_order_id" : "5678", "operations" : [ { "amount" : "9.99", "auth_code" : "AUTH12", "cashflow" : { "amount" :
"0.00", "currency" : "USD", "fee" : "0.00", "incoming" : "0.00", "receivable" : "0.00", "reserve" : "0.00" },
"created" : "2016-08-22 15:39:49", "currency" : "USD", "iso_message" : "Approved", "iso_response_code" : "00",
"status" : "success", "type" : "authorize" } ], "pan" : "411111****1111", "secure3d" : {}, "segment" : "987654321",
"status" : "authorized", "updated" : "2016-08-22 15:39:49" } ] }"""

_AUTH_OP = """{ "amount" : "9.99", "auth_code" : "AUTH12", "cashflow" : { "amount" : "0.00", "currency" : "USD",
"fee" : "0.00", "incoming" : "0.00", "receivable" : "0.00", "reserve" : "0.00" }, "created" : "2016-08-22 15:39:48",
"currency" : "USD", "iso_message" : "Approved", "iso_response_code" : "00", "status" : "success",
"type" : "authorize" }"""


def _order(amounts: tuple[str, str], status: str, ops: str) -> str:
    """The seed's examples of charge, refund, reverse and cancel share everything but these."""
    charged, refunded = amounts
    return f"""{{ "orders" : [ {{ "amount" : "9.99", "amount_charged" : "{charged}", "amount_refunded" : "{refunded}",
"auth_code" : "AUTH12", "card" : {{ "holder" : "John Smith", "subtype" : "classic", "type" : "visa" }},
"client" : {{}}, "created" : "2016-08-22 15:39:48", "currency" : "USD", "custom_fields" : {{}}, "description" : null,
"descriptor" : "TESTMERCH/TERM", "id" : "23014806643308174",
"issuer" : {{ "bin" : "411111", "country" : "UKR", "title" : "TestBank" }},
"location" : {{ "ip" : "6.6.6.6" }}, "merchant_order_id" : null, "operations" : [ {_AUTH_OP}, {ops} ],
"pan" : "411111****1111", "secure3d" : {{}}, "status" : "{status}", "updated" : "2016-08-22 15:39:53" }} ] }}"""


def _op(kind: str, amount: str, flow: tuple[str, str, str, str]) -> str:
    cf_amount, fee, incoming, receivable = flow
    return f"""{{ "amount" : "{amount}", "auth_code" : "AUTH12", "cashflow" : {{ "amount" : "{cf_amount}", "currency"
: "USD", "fee" : "{fee}", "incoming" : "{incoming}", "receivable" : "{receivable}", "reserve" : "0.00" }}, "created" :
"2016-08-22 15:39:53", "currency" : "USD", "iso_message" : "Approved", "iso_response_code" : "00", "status" :
"success", "type" : "{kind}" }}"""


CHARGE_FULL = _op("charge", "9.99", ("9.99", "0.30", "9.69", "9.69"))
CHARGE_PART = _op("charge", "1.99", ("1.99", "0.06", "1.93", "1.93"))
REFUND_FULL = _op("refund", "9.99", ("-9.99", "0.00", "-9.99", "-9.99"))
REFUND_PART = _op("refund", "1.99", ("-1.99", "0.00", "-1.99", "-1.99"))
REVERSE = _op("reverse", "9.99", ("0.00", "0.00", "0.00", "0.00"))


# -- tests -------------------------------------------------------------------------


async def test_ping_answers_as_the_seed_shows(front: Front) -> None:
    status, doc = await front.call("GET", "/ping")
    assert status == 200 and doc == {"date": TIME, "message": "PONG!"}


async def test_authorize_with_the_seeds_requests_answers_the_seeds_orders(front: Front) -> None:
    status, doc = await front.call("POST", "/orders/authorize", REQUIRED)
    assert status == 200
    assert doc == {"orders": [ours(seed(AUTHORIZED)["orders"][0])]}
    status, doc = await front.call("POST", "/orders/authorize", ALL_FIELDS)
    assert status == 200
    assert doc == {"orders": [ours(seed(AUTHORIZED_ALL)["orders"][0])]}
    # What went on the wire: two 0100s, the seed's amount, the project's terminal, the CVV.
    first, second = front.iso("0100")
    assert (first["2"], first["4"], first["49"], first["41"], first["120"]) == (
        PAN,
        "000000000999",
        "840",
        "TERM0001",
        "333",
    )
    assert second["37"] == doc["orders"][0]["rrn"]


async def test_charge_refund_reverse_and_cancel_answer_the_seeds_orders(front: Front) -> None:
    # Full charge, then full refund (seed: Charge "full", Refund "full").
    oid = (await front.order())["id"]
    status, doc = await front.call("PUT", f"/orders/{oid}/charge")  # no body, as in the seed
    assert status == 200
    assert doc == {"orders": [ours(seed(_order(("9.99", "0.00"), "charged", CHARGE_FULL))["orders"][0])]}
    status, doc = await front.call("PUT", f"/orders/{oid}/refund")
    assert status == 200
    assert doc == {
        "orders": [ours(seed(_order(("9.99", "9.99"), "refunded", f"{CHARGE_FULL}, {REFUND_FULL}"))["orders"][0])]
    }
    # Partial charge of 1.99, then partial refund of 1.99 (seed: Charge "partial", Refund "partial").
    oid = (await front.order())["id"]
    status, doc = await front.call("PUT", f"/orders/{oid}/charge", {"amount": Decimal("1.99")})
    assert status == 200
    assert doc == {"orders": [ours(seed(_order(("1.99", "0.00"), "charged", CHARGE_PART))["orders"][0])]}
    status, doc = await front.call("PUT", f"/orders/{oid}/refund", {"amount": Decimal("1.99")})
    assert status == 200
    assert doc == {
        "orders": [ours(seed(_order(("1.99", "1.99"), "refunded", f"{CHARGE_PART}, {REFUND_PART}"))["orders"][0])]
    }
    # Reverse (seed: Reverse).
    oid = (await front.order())["id"]
    status, doc = await front.call("PUT", f"/orders/{oid}/reverse")
    assert status == 200
    assert doc == {"orders": [ours(seed(_order(("0.00", "0.00"), "reversed", REVERSE))["orders"][0])]}
    # Cancel of a charged order is a refund (seed: Cancel).
    oid = (await front.order())["id"]
    await front.call("PUT", f"/orders/{oid}/charge")
    status, doc = await front.call("PUT", f"/orders/{oid}/cancel")
    assert status == 200
    assert doc == {
        "orders": [ours(seed(_order(("9.99", "9.99"), "refunded", f"{CHARGE_FULL}, {REFUND_FULL}"))["orders"][0])]
    }
    flows = [["0100", "0220", "0200"], ["0100", "0220", "0200"], ["0100", "0400"], ["0100", "0220", "0200"]]
    assert [m["t"] for m in front.sent] == [mti for flow in flows for mti in flow]


REBILLED = """{ "orders" : [ { "amount" : "9.99", "amount_charged" : "0.00", "amount_refunded" : "0.00", "auth_code" :
"AUTH12", "card" : { "holder" : "John Smith", "subtype" : "classic", "type" : "visa" }, "client" : {}, "created" :
"2016-08-22 15:39:58", "currency" : "USD", "custom_fields" : {}, "description" : null, "descriptor" :
"TESTMERCH/TERM", "id" : "23014809139351770", "issuer" : { "bin" : "411111", "country" : "UKR", "title" : "TestBank" },
"location" : {}, "merchant_order_id" : null, "operations" : [ { "amount" : "9.99", "auth_code" : "AUTH12", "cashflow" :
{ "amount" : "0.00", "currency" : "USD", "fee" : "0.00", "incoming" : "0.00", "receivable" : "0.00", "reserve" : "0.00"
}, "created" : "2016-08-22 15:39:58", "currency" : "USD", "iso_message" : "Approved", "iso_response_code" : "00",
"status" : "success", "type" : "authorize" } ], "pan" : "411111****1111", "secure3d" : {}, "status" : "authorized",
"updated" : "2016-08-22 15:39:58" } ] }"""

CREDITED = """{ "orders" : [ { "amount" : "9.99", "amount_charged" : "0.00", "amount_refunded" : "0.00", "auth_code" :
"AUTH12", "card" : { "holder" : "John Smith", "subtype" : "classic", "type" : "visa" }, "client" : {}, "created" :
"2016-08-22 15:39:58", "currency" : "USD", "custom_fields" : {}, "description" : null, "descriptor" : "TESTMERCH/TERM",
"id" : "23014809139351770", "issuer" : { "bin" : "411111", "country" : "UKR", "title" : "TestBank" }, "location" : {},
"merchant_order_id" : null, "operations" : [ { "amount" : "9.99", "auth_code" : "AUTH12", "cashflow" : { "amount" :
"0.00", "currency" : "USD", "fee" : "0.00", "incoming" : "0.00", "receivable" : "0.00", "reserve" : "0.00" },
"created" : "2016-08-22 15:39:58", "currency" : "USD", "iso_message" : "Approved", "iso_response_code" : "00",
"status" : "success", "type" : "credit" } ], "pan" : "411111****1111", "secure3d" : {}, "status" : "credited",
"updated" : "2016-08-22 15:39:58" } ] }"""

# POST /orders/credit: the seed's answer comes from another deployment (a mastercard for a
# 4111 card, another descriptor, a reserve): compared by field names, values by our rules.
CREDITED_NEW = """{ "orders": [ { "descriptor": " merchant123", "amount": "99.99", "status": "credited", "client": {},
"amount_refunded": "0.00", "description": null, "operations": [ { "auth_code": "301541", "cashflow": { "currency":
"USD", "fee": "0.00", "incoming": "-99.99", "reserve": "3.00", "receivable": "-102.99", "amount": "-99.99" },
"status": "success", "amount": "99.99", "iso_response_code": "00", "currency": "USD", "created": "2021-05-18 13:37:12",
"type": "credit", "iso_message": "Approved" } ], "pan": "411111****1111", "secure3d": {}, "created":
"2021-05-18 13:37:11", "custom_fields": {}, "currency": "USD", "card": { "type": "mastercard", "subtype": "standard",
"expiration": "0/0" }, "id": "61277755379729234", "issuer": { "bin": "527644" }, "amount_charged": "0.00",
"location": {}, "auth_code": "301541", "merchant_order_id": null, "updated": "2021-05-18 13:37:12" } ] }"""


async def test_rebill_and_credits_answer_the_seeds_orders(front: Front) -> None:
    parent = (await front.order())["id"]
    await front.call("PUT", f"/orders/{parent}/charge")
    await front.call("PUT", f"/orders/{parent}/cancel")
    status, doc = await front.call("POST", f"/orders/{parent}/rebill", {"amount": Decimal("9.99"), "cvv": "123"})
    assert status == 200
    assert doc == {"orders": [ours(seed(REBILLED)["orders"][0])]}
    assert doc["orders"][0]["id"] != parent
    (_, rebill) = front.iso("0100")
    assert rebill["22"] == "100" and "120" not in rebill and rebill["124"].startswith("M")  # on file, no CVV

    # The seed's credit request lacks a comma; this is it, well-formed.
    body = {"amount": Decimal("9.99"), "currency": "USD", "location": {"ip": "8.8.8.8"}}
    status, doc = await front.call("POST", f"/orders/{parent}/credit", body)
    assert status == 200
    want = ours(seed(CREDITED)["orders"][0])
    # Two deliberate differences from this example: the location sent is kept (the example
    # drops it), and an OCT's cash flow is money out, as the seed's other credit example shows.
    want["location"] = {"ip": "8.8.8.8"}
    want["operations"][0]["cashflow"].update(amount="-9.99", incoming="-9.99", receivable="-9.99")
    assert doc == {"orders": [want]}

    status, doc = await front.call("POST", "/orders/credit", {"amount": "99.99", "pan": PAN})
    assert status == 200
    (order,) = doc["orders"]
    want_shape = shape(seed(CREDITED_NEW)["orders"][0])
    want_shape["card"].pop("holder", None)
    want_shape["issuer"].update(country="str", title="str")  # the BIN table knows 411111
    assert shape(order) == {**want_shape, "rrn": "str"}
    assert (order["amount"], order["status"], order["card"]["expiration"]) == ("99.99", "credited", "0/0")
    assert order["operations"][0]["cashflow"]["amount"] == "-99.99"
    assert [m["3"] for m in front.iso("0200")][-2:] == ["260000", "260000"]


ORDER_INFO = """{ "orders" : [ { "amount" : "9.99", "amount_charged" : "0.00", "amount_refunded" : "0.00", "auth_code" :
"AUTH12", "card" : { "holder" : "John Smith", "subtype" : "classic", "type" : "visa" }, "client" : { "address" :
"Main ave. 1", "city" : "San Francisco", "country" : "USA", "email" : "foo@bar.com", "name" : "John Smith", "phone" :
"+1 456 890", "state" : "CA", "zip" : "123456" }, "created" : "2021-11-12 12:16:13", "currency" : "USD",
"custom_fields" : {}, "description" : "Book sale #453", "descriptor" : "TESTMERCH/TERM", "id" : "65213580296542862",
"issuer" : { "bin" : "411111", "country" : "UKR", "title" : "TestBank" }, "location" : { "ip" : "6.6.6.6" },
"merchant_order_id" : "5678", "operations" : [ { "type": "authorize", "iso_message": "Approved", "created":
"2021-11-12 12:16:13", "amount": "1213.00", "auth_code": "212636", "iso_response_code": "00", "cashflow": {
"incoming": "0.00", "fee": "0.00", "receivable": "-36.39", "amount": "0.00", "currency": "USD", "reserve": "36.39" },
"currency": "USD", "status": "success" }, { "currency": "USD", "status": "success", "cashflow": { "receivable":
"1164.48", "amount": "1213.00", "reserve": "36.39", "currency": "USD", "incoming": "1200.87", "fee": "12.13" },
"arn": "73922059535879175995901", "iso_response_code": "00", "iso_message": "Approved", "created":
"2021-11-12 12:21:13", "amount": "1213.00", "type": "charge" } ], "pan" : "411111****1111", "secure3d" : {},
"segment" : "987654321", "status" : "authorized", "updated" : "2016-08-22 15:39:49" } ] }"""

LISTED = """{ "orders" : [ { "amount" : "9.99", "amount_charged" : "0.00", "amount_refunded" : "0.00", "auth_code" :
"AUTH12", "created" : "2016-08-22 15:39:49", "currency" : "USD", "description" : "Book sale #453", "descriptor" :
"TESTMERCH/TERM", "id" : "23014806815093624", "merchant_order_id" : "5678", "pan" : "411111****1111", "segment" :
"987654321", "status" : "authorized", "updated" : "2016-08-22 15:39:49" }, { "amount" : "9.99", "amount_charged" :
"0.00", "amount_refunded" : "0.00", "auth_code" : "AUTH12", "created" : "2016-08-22 15:39:48", "currency" : "USD",
"description" : null, "descriptor" : "TESTMERCH/TERM", "id" : "23014806643308174", "merchant_order_id" : null, "pan" :
"411111****1111", "status" : "authorized", "updated" : "2016-08-22 15:39:48" } ] }"""

OPERATIONS = """{ "operations" : [ { "amount" : "11991.00", "auth_code" : "AUTH12", "created" : "2016-08-24 12:07:00",
"currency" : "EUR", "iso_message" : "Approved", "iso_response_code" : "00", "order_id" : "23011537206894183", "arn":
"28281615742473953725862", "status" : "success", "type" : "charge" }, { "amount" : "8997.00", "auth_code" : "AUTH12",
"created" : "2016-08-23 12:06:55", "currency" : "USD", "iso_message" : "Approved", "iso_response_code" : "00",
"order_id" : "23011536237676397", "status" : "success", "type" : "authorize" } ] }"""


async def test_reads_answer_in_the_seeds_shapes(front: Front) -> None:
    plain = (await front.order())["id"]
    full = (await front.order(ALL_FIELDS))["id"]
    # GET /orders/ (seed: List of orders): newest first, no expansions.
    status, doc = await front.call("GET", "/orders/")
    assert status == 200
    want = seed(LISTED)
    for o in want["orders"]:
        o["rrn"] = RRN
    assert doc == want
    assert [o["id"] for o in doc["orders"]] == [full, plain]
    # GET /orders/:id with every expansion (seed: Order information; its operation amounts
    # belong to another order, so the charge is compared by field names).
    await front.call("PUT", f"/orders/{full}/charge")
    status, doc = await front.call(
        "GET", f"/orders/{full}?expand=card,client,location,custom_fields,issuer,secure3d,operations.cashflow"
    )
    assert status == 200
    want = ours(seed(ORDER_INFO)["orders"][0])
    assert shape(doc["orders"][0]) == shape({**want, "status": "charged"})
    (order,) = doc["orders"]
    assert (order["status"], order["amount_charged"], order["client"]) == ("charged", "9.99", ALL_FIELDS["client"])
    assert [op["cashflow"]["fee"] for op in order["operations"]] == ["0.00", "0.30"]
    # GET /operations/ (seed: List of operations): newest first, each with its order id.
    status, doc = await front.call("GET", "/operations/")
    assert status == 200
    want = seed(OPERATIONS)["operations"]
    assert [shape(op) for op in doc["operations"][:2]] == [shape(want[0]), shape(want[1])]
    assert [(op["type"], op["order_id"]) for op in doc["operations"]] == [
        ("charge", full),
        ("authorize", full),
        ("authorize", plain),
    ]
    status, doc = await front.call("GET", "/operations/?expand=cashflow&type=charge")
    assert [op["cashflow"]["incoming"] for op in doc["operations"]] == ["9.69"]


async def test_lists_are_paged_with_links_to_the_neighbour_pages(front: Front) -> None:
    ids = [(await front.order())["id"] for _ in range(5)]
    resp = await front.http.get("/orders/?status=authorized&page_size=2&page=2", headers=front.auth)
    doc = await resp.json()
    assert [o["id"] for o in doc["orders"]] == [ids[2], ids[1]]
    base = str(front.http.make_url("/orders/"))
    want = (
        f'<{base}?status=authorized&page_size=2&page=1>; rel="prev", '
        f'<{base}?status=authorized&page_size=2&page=3>; rel="next"'
    )
    assert resp.headers["Link"] == want == resp.headers["Pagination"]
    last = await front.http.get("/orders/?status=authorized&page_size=2&page=3", headers=front.auth)
    assert last.headers["Link"] == f'<{base}?status=authorized&page_size=2&page=2>; rel="prev"'
    for query, message in (("page=0", "Invalid page"), ("page_size=5000", "Invalid page size")):
        status, doc = await front.call("GET", f"/orders/?{query}")
        assert status == 422 and doc["failure_message"] == message and doc["errors"][0]["message"] == message


async def test_declines_errors_and_validation_answer_in_the_seeds_failure_shape(front: Front) -> None:
    status, doc = await front.call("POST", "/orders/authorize", {**REQUIRED, "pan": "4276990011343663"})
    assert status == 402 and doc == {
        "failure_message": "Do not honor",
        "failure_type": "declined",
        "order_id": ORDER_ID,
    }
    status, doc = await front.call("POST", "/orders/authorize", {**REQUIRED, "pan": "5555555555555599"})
    assert status == 500 and doc == {
        "failure_message": "System malfunction",
        "failure_type": "error",
        "order_id": ORDER_ID,
    }
    status, got = await front.call("GET", f"/orders/{doc['order_id']}?expand=operations")
    assert got["orders"][0]["status"] == "error" and got["orders"][0]["operations"][0]["iso_response_code"] == "96"

    # The seed's validation example, byte for byte (POST /orders/:id/credit requires only amount, like its /create).
    oid = (await front.order())["id"]
    sent = len(front.sent)
    json_headers = {**front.auth, "Content-Type": "application/json"}
    resp = await front.http.post(f"/orders/{oid}/credit", data=b'{\n   "foo" : "bar"\n}', headers=json_headers)
    assert resp.status == 422
    assert await resp.read() == (
        b'{"errors":[{"attribute":"required","details":["(true)"],"message":"Required","uri":"#/amount"},'
        b'{"message":"Unknown property","uri":"#/foo"}],'
        b'"failure_message":"Validation failed","failure_type":"validation","order_id":null}'
    )
    # A dynamic descriptor over the seed's limits is refused before anything is sent.
    dd = {"merchant": "BOOKSTORE LTD", "city": "C" * 25, "country": "RU"}
    status, doc = await front.call(
        "POST", "/orders/authorize", {**REQUIRED, "extra_fields": {"dynamic_descriptor": dd}}
    )
    assert status == 422 and doc["errors"][0]["uri"] == "#/extra_fields/dynamic_descriptor"
    assert len(front.sent) == sent
    # Within the limits it becomes DE 43 and the order's descriptor.
    dd["city"] = "Moscow"
    order = await front.order(extra_fields={"dynamic_descriptor": dd})
    assert order["descriptor"] == "BOOKSTORE LTD>Moscow"
    assert front.iso("0100")[-1]["43"] == "BOOKSTORE LTD            Moscow       RU"
    # The status table: a charged order cannot be reversed.
    await front.call("PUT", f"/orders/{oid}/charge")
    status, doc = await front.call("PUT", f"/orders/{oid}/reverse")
    assert status == 402 and doc["failure_type"] == "rejected" and doc["order_id"] == oid


async def test_a_project_never_sees_another_projects_orders(front: Front) -> None:
    oid = (await front.order())["id"]
    not_found = {"failure_message": "Order not found", "failure_type": "rejected", "order_id": None}
    for method, path, body in (
        ("GET", "", None),
        ("PUT", "/charge", None),
        ("PUT", "/reverse", None),
        ("PUT", "/refund", None),
        ("PUT", "/cancel", None),
        ("POST", "/rebill", {"amount": "1.00", "cvv": "123"}),
        ("POST", "/credit", {"amount": "1.00"}),
    ):
        status, doc = await front.call(method, f"/orders/{oid}{path}", body, headers=front.other)
        assert (status, doc) == (404, not_found), (method, path)
    assert (await front.call("GET", "/orders/", headers=front.other))[1] == {"orders": []}
    assert (await front.call("GET", "/operations/", headers=front.other))[1] == {"operations": []}
    assert (await front.call("GET", f"/orders/{oid}"))[0] == 200
    assert [m["t"] for m in front.sent] == ["0100"]


async def answer_stored(front: Front, *keys: str) -> bool:
    """Whether the answers under these idempotency keys are stored (the replays will find them)."""
    sql = "SELECT count(*) FROM idempotency_keys WHERE key = ANY($1) AND status_code IS NOT NULL"
    return bool(await front.runtime.db.pool.fetchval(sql, list(keys)) == len(keys))


async def test_an_idempotency_key_runs_the_payment_once_even_when_repeated_concurrently(front: Front) -> None:
    headers = {**front.auth, "Idempotency-Key": "checkout-5678", "Content-Type": "application/json"}
    calls = [front.call("POST", "/orders/authorize", REQUIRED, headers=headers) for _ in range(8)]
    answers = await asyncio.gather(*calls)
    statuses = sorted(status for status, _ in answers)
    assert set(statuses) <= {200, 409} and 200 in statuses
    bodies = {orjson.dumps(doc) for status, doc in answers if status == 200}
    assert len(bodies) == 1
    for status, doc in answers:
        if status == 409:
            assert doc["failure_type"] == "validation" and doc["order_id"] is None
    assert len(front.iso("0100")) == 1
    # Once finished, a repeat is the stored first answer, byte for byte, and sends nothing.
    await wait_for(lambda: answer_stored(front, "checkout-5678"))  # stored through the group writer
    resp = await front.http.post("/orders/authorize", data=orjson.dumps(REQUIRED, default=str), headers=headers)
    assert resp.status == 200 and resp.headers["Idempotent-Replayed"] == "true"
    assert {orjson.dumps(orjson.loads(await resp.read()))} == bodies
    assert len(front.iso("0100")) == 1
    # The same key with another body is a 422; under another project it is another key.
    status, doc = await front.call("POST", "/orders/authorize", {**REQUIRED, "amount": "1.00"}, headers=headers)
    assert status == 422 and doc["failure_type"] == "validation"
    status, _ = await front.call(
        "POST", "/orders/authorize", REQUIRED, headers={**front.other, "Idempotency-Key": "checkout-5678"}
    )
    assert status == 200 and len(front.iso("0100")) == 2
    # A decline is an answer too: replayed, not retried.
    declined = {**front.auth, "Idempotency-Key": "declined-1"}
    first = await front.call("POST", "/orders/authorize", {**REQUIRED, "pan": "4276990011343663"}, headers=declined)
    await wait_for(lambda: answer_stored(front, "declined-1"))
    again = await front.call("POST", "/orders/authorize", {**REQUIRED, "pan": "4276990011343663"}, headers=declined)
    assert first == again and first[0] == 402 and len(front.iso("0100")) == 3


async def test_exchange_rates_answer_the_seeds_example(front: Front) -> None:
    status, doc = await front.call("GET", "/exchange_rates/?date=2014-06-30")
    assert status == 200
    assert doc == json.loads(
        '{ "exchange_rates" : [ { "from" : "EUR", "rate" : "75.132109", "to" : "RUB" }, { "to" : "UAH", "from" : '
        '"EUR", "rate" : "31.562887" }, { "from" : "EUR", "rate" : "334.000000", "to" : "UBT" }, { "to" : "USD", '
        '"from" : "EUR", "rate" : "1.145036" } ] }'
    )
    status, doc = await front.call("GET", "/exchange_rates/?date=2014-06-30&date_from=2014-06-01")
    assert status == 422 and doc["failure_type"] == "validation"


async def test_no_card_number_appears_in_clear_in_the_logs_or_the_database(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for i, pan in enumerate(CARDS):
        key = {**front.auth, "Idempotency-Key": f"key-{i}"}
        await front.call("POST", "/orders/authorize", {**REQUIRED, "pan": pan}, headers=key)
    oid = (await front.order())["id"]
    await front.call("PUT", f"/orders/{oid}/charge")
    await front.call("POST", "/orders/credit", {"amount": "1.00", "pan": "2222400060000007"})
    await front.call("POST", "/orders/authorize", {**REQUIRED, "pan": "4111111111111112"})  # 14: not Luhn
    await front.call("POST", "/orders/authorize", {**REQUIRED, "pan": "41111111111"})  # 422
    # Everything written: the idempotent answers go through the group writer after the reply.
    await wait_for(lambda: answer_stored(front, *(f"key-{i}" for i in range(len(CARDS)))))
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    dump = []
    tables = await front.runtime.db.pool.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    for (table,) in tables:
        dump += [r[0] for r in await front.runtime.db.pool.fetch(f'SELECT t::text FROM "{table}" t')]
    stored = "\n".join(dump)
    assert "411111****1111" in stored  # the scan does see the orders
    for pan in (*CARDS, "4111111111111112"):
        for where, haystack in (("logs", text), ("database", stored)):
            assert pan not in haystack, where
            assert pan.encode().hex() not in haystack, where  # bytea columns print as hex
