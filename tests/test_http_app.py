"""The REST front over a fake runtime: routes, auth, error shapes, paging, rates, idempotency.

The fakes stand in for the orders service, projects and idempotency store
(the real ones are exercised end to end in test_http_e2e.py); orders are the
real model objects, rendered by the real views.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from http_front import FrontConfig, create_app
from switch.money import currency, to_minor
from switch.orders.errors import OrderError, OrderNotFound
from switch.orders.model import Cashflow, Operation, OperationStatus, OperationType, Order, OrderStatus
from switch.orders.service import Page
from switch.store.idempotency import Begin, BeginState
from switch.store.projects import Project, ProjectSettings
from switch.wire.cards import mask_pan

pytestmark = pytest.mark.timeout(20)

T0 = datetime(2016, 8, 22, 15, 39, 49, tzinfo=UTC)
DECLINED_PAN = "4276990011343663"
BUG_PAN = "5555555555555599"


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


AUTH = basic("project", "password")
OTHER = basic("other", "secret")


class FakeProjects:
    def __init__(self) -> None:
        self.by_creds = {
            ("project", "password"): Project(1, "project", "project", ProjectSettings.defaults(1, "project")),
            ("other", "secret"): Project(2, "other", "other", ProjectSettings.defaults(2, "other")),
        }

    async def authenticate(self, login: str, password: str) -> Project | None:
        return self.by_creds.get((login, password))


@dataclass
class FakeIdempotency:
    """The decisions of switch.store.idempotency.Idempotency, in a dict."""

    rows: dict[tuple[int, str], tuple[bytes, int | None, bytes | None]] = field(default_factory=dict)

    async def begin(self, project_id: int, key: str, fp: bytes) -> Begin:
        row = self.rows.get((project_id, key))
        if row is None:
            self.rows[(project_id, key)] = (fp, None, None)
            return Begin(BeginState.NEW)
        if row[0] != fp:
            return Begin(BeginState.MISMATCH)
        if row[1] is None:
            return Begin(BeginState.IN_FLIGHT)
        return Begin(BeginState.REPLAY, row[1], row[2])

    async def finish(self, project_id: int, key: str, status: int, body: bytes) -> None:
        self.rows[(project_id, key)] = (self.rows[(project_id, key)][0], status, body)

    async def abandon(self, project_id: int, key: str) -> None:
        self.rows.pop((project_id, key), None)


class FakeOrders:
    """Just enough of OrdersService: new orders are authorized, the test cards decline or break."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.calls: list[tuple[str, Any]] = []
        self._ids = itertools.count(23014806643308174)

    def _new(self, project: Project, body: Mapping[str, Any], status: OrderStatus) -> Order:
        cur = body.get("currency", project.settings.currency)
        amount = to_minor(body["amount"], currency(cur))
        oid = str(next(self._ids))
        op = Operation(
            order_id=oid,
            id=1,
            type=OperationType.AUTHORIZE,
            status=OperationStatus.SUCCESS,
            amount=amount,
            currency=cur,
            created=T0,
            updated=T0,
            iso_response_code="00",
            iso_message="Approved",
            auth_code="AUTH12",
            cashflow=Cashflow(0, 0, 0, 0, 0, cur),
        )
        order = Order(
            id=oid,
            project_id=project.id,
            status=status,
            amount=amount,
            currency=cur,
            created=T0,
            updated=T0,
            auth_code="AUTH12",
            pan_mask=mask_pan(body.get("pan", "4111111111111111")),
            card_holder=body.get("card", {}).get("holder"),
            card_type="visa",
            card_subtype="classic",
            location=dict(body.get("location", {})),
            client=dict(body.get("client", {})),
            description=body.get("description"),
            operations=[op],
        )
        self.orders[oid] = order
        return order

    async def authorize(self, project: Project, body: Mapping[str, Any]) -> Order:
        self.calls.append(("authorize", body))
        if body["pan"] == DECLINED_PAN:
            order = self._new(project, body, OrderStatus.DECLINED)
            raise OrderError("declined", "Do not honor", order_id=order.id)
        if body["pan"] == BUG_PAN:
            raise RuntimeError(f"bug while handling card {body['pan']}")
        # No 3-D Secure here: the real service never leaves an order `prepared` (that comes with issue 11).
        return self._new(project, body, OrderStatus.AUTHORIZED)

    async def get_order(self, project: Project, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None or order.project_id != project.id:
            raise OrderNotFound(order_id)
        return order

    async def charge(self, project: Project, order_id: str, body: Mapping[str, Any]) -> Order:
        self.calls.append(("charge", body))
        order = await self.get_order(project, order_id)
        order.amount_charged = to_minor(body["amount"], order.currency) if "amount" in body else order.amount
        order.status = OrderStatus.CHARGED
        return order

    async def reverse(self, project: Project, order_id: str, body: Mapping[str, Any]) -> Order:
        order = await self.get_order(project, order_id)
        if order.status is not OrderStatus.AUTHORIZED:
            raise OrderError(
                "rejected", f"Operation reverse is not allowed in status {order.status}", order_id=order_id
            )
        order.status = OrderStatus.REVERSED
        return order

    async def refund(self, project: Project, order_id: str, body: Mapping[str, Any]) -> Order:
        return await self.get_order(project, order_id)

    async def cancel(self, project: Project, order_id: str, body: Mapping[str, Any]) -> Order:
        return await self.get_order(project, order_id)

    async def rebill(self, project: Project, order_id: str, body: Mapping[str, Any]) -> Order:
        await self.get_order(project, order_id)
        return self._new(project, body, OrderStatus.AUTHORIZED)

    async def credit(self, project: Project, order_id: str | None, body: Mapping[str, Any]) -> Order:
        self.calls.append(("credit", (order_id, body)))
        if order_id is not None:
            await self.get_order(project, order_id)
        return self._new(project, body, OrderStatus.CREDITED)

    def _mine(self, project: Project) -> list[Order]:
        return [o for o in reversed(self.orders.values()) if o.project_id == project.id]

    async def list_orders(self, project: Project, query: Mapping[str, str]) -> Page[Order]:
        self.calls.append(("list_orders", dict(query)))
        page, size = int(query.get("page", "1")), int(query.get("page_size", "100"))
        mine = self._mine(project)
        return Page(mine[(page - 1) * size : page * size], page, size, len(mine))

    async def list_operations(self, project: Project, query: Mapping[str, str]) -> Page[Operation]:
        ops = [op for o in self._mine(project) for op in o.operations]
        return Page(ops, 1, 100, len(ops))


@dataclass
class FakeRuntime:
    orders: FakeOrders = field(default_factory=FakeOrders)
    projects: FakeProjects = field(default_factory=FakeProjects)
    idempotency: FakeIdempotency = field(default_factory=FakeIdempotency)


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
async def http(runtime: FakeRuntime) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = create_app(runtime, FrontConfig(client_max_size=4096))  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        yield client


Http = TestClient[web.Request, web.Application]

AUTHORIZE = {
    "amount": 9.99,
    "card": {"cvv": "333", "expiration_month": 12, "expiration_year": 2030, "holder": "John Smith"},
    "location": {"ip": "6.6.6.6"},
    "pan": "4111111111111111",
}


def failure(body: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(body)
    assert set(doc) - {"errors"} == {"failure_type", "failure_message", "order_id"}
    return doc


async def authorize(http: Http, body: Mapping[str, Any] = AUTHORIZE, **headers: str) -> tuple[int, Any]:
    resp = await http.post("/orders/authorize", json=body, headers={**AUTH, **headers})
    return resp.status, orjson.loads(await resp.read())


# -- basics ----------------------------------------------------------------------


async def test_ping_answers_pong_with_the_server_time(http: Http) -> None:
    resp = await http.get("/ping", headers=AUTH)
    assert resp.status == 200 and resp.content_type == "application/json"
    doc = await resp.json()
    assert set(doc) == {"date", "message"} and doc["message"] == "PONG!"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", doc["date"])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("project", "wrong"),
        basic("nobody", "password"),
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    ],
)
async def test_requests_without_valid_credentials_get_a_401_challenge(http: Http, headers: dict[str, str]) -> None:
    resp = await http.get("/orders/", headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="isoswitch"'
    assert failure(await resp.read()) == {
        "failure_type": "validation",
        "failure_message": "Authentication required",
        "order_id": None,
    }


async def test_credentials_never_reach_the_logs(http: Http, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await http.get("/orders/", headers=basic("project", "hunter2-secret"))
    await http.get("/orders/", headers=AUTH)
    assert "hunter2-secret" not in caplog.text and "password" not in caplog.text
    assert AUTH["Authorization"].split()[1] not in caplog.text


async def test_unknown_paths_and_methods_answer_in_the_failure_shape(http: Http) -> None:
    resp = await http.get("/nothing-here")
    assert resp.status == 404
    assert failure(await resp.read())["failure_message"] == "Not found"
    resp = await http.get("/orders/authorize", headers=AUTH)
    assert resp.status == 405 and "POST" in resp.headers["Allow"]
    assert failure(await resp.read())["failure_message"] == "Method not allowed"
    resp = await http.get("/orders/not-digits", headers=AUTH)
    assert resp.status == 404


async def test_a_body_over_the_limit_is_a_413_in_the_failure_shape(http: Http) -> None:
    big = {**AUTHORIZE, "description": "x" * 8000}
    resp = await http.post("/orders/authorize", json=big, headers=AUTH)
    assert resp.status == 413
    assert failure(await resp.read())["failure_type"] == "validation"


@pytest.mark.parametrize(
    ("data", "ctype", "message"),
    [
        (b'{"amount": ', "application/json", "Malformed JSON"),
        (b"amount=9.99", "application/json", "Malformed JSON"),
        (b'{"amount": "9.99"}', "text/plain", "Content-Type must be application/json"),
        (b'{"amount": "9.99"}', "application/json; charset=latin-1", "Body must be UTF-8"),
    ],
)
async def test_bad_json_or_content_type_is_a_422_not_a_500(http: Http, data: bytes, ctype: str, message: str) -> None:
    resp = await http.post("/orders/authorize", data=data, headers={**AUTH, "Content-Type": ctype})
    assert resp.status == 422
    doc = failure(await resp.read())
    assert doc["failure_type"] == "validation" and doc["errors"][0]["message"] == message


async def test_curls_default_form_content_type_with_a_json_body_is_accepted(http: Http) -> None:
    # The seed's own POST /orders/credit example: curl --data without -H Content-Type.
    data = b'{"amount": "99.99", "pan": "4111111111111111"}'
    resp = await http.post(
        "/orders/credit", data=data, headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert resp.status == 200


async def test_the_seeds_validation_example_comes_back_byte_for_byte(http: Http, runtime: FakeRuntime) -> None:
    order = await runtime.orders.authorize(runtime.projects.by_creds[("project", "password")], _plain(AUTHORIZE))
    resp = await http.post(f"/orders/{order.id}/credit", json={"foo": "bar"}, headers=AUTH)
    assert resp.status == 422
    seed = {
        "errors": [
            {"attribute": "required", "details": ["(true)"], "message": "Required", "uri": "#/amount"},
            {"message": "Unknown property", "uri": "#/foo"},
        ],
        "failure_message": "Validation failed",
        "failure_type": "validation",
        "order_id": None,
    }
    assert await resp.read() == orjson.dumps(seed, option=orjson.OPT_SORT_KEYS)


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(body))
    doc["amount"] = str(doc["amount"])
    return doc


# -- operations ------------------------------------------------------------------


async def test_authorize_answers_the_order_with_everything_expanded(http: Http, runtime: FakeRuntime) -> None:
    status, doc = await authorize(http)
    assert status == 200
    (order,) = doc["orders"]
    assert order["status"] == "authorized" and order["amount"] == "9.99" and order["pan"] == "411111****1111"
    for key in ("card", "client", "custom_fields", "issuer", "location", "secure3d", "operations"):
        assert key in order
    assert "cashflow" in order["operations"][0]
    # The service got the validated body: amounts as decimal strings, nothing else changed.
    (name, body), *_ = runtime.orders.calls
    assert name == "authorize" and body["amount"] == "9.99" and body["card"]["cvv"] == "333"


async def test_a_decline_is_a_402_with_the_order_id(http: Http) -> None:
    status, doc = await authorize(http, {**AUTHORIZE, "pan": DECLINED_PAN})
    assert status == 402
    assert doc == {"failure_type": "declined", "failure_message": "Do not honor", "order_id": doc["order_id"]}
    assert doc["order_id"] is not None


async def test_a_bug_is_a_bare_500_and_a_scrubbed_log_line(http: Http, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="isoswitch.http")
    resp = await http.post("/orders/authorize", json={**AUTHORIZE, "pan": BUG_PAN}, headers=AUTH)
    raw = await resp.read()
    assert resp.status == 500
    assert raw == b'{"failure_message":"Internal error","failure_type":"error","order_id":null}'
    records = [r for r in caplog.records if r.name == "isoswitch.http"]
    assert len(records) == 1 and "POST /orders/authorize" in records[0].getMessage()
    assert "Traceback" in records[0].getMessage() and "RuntimeError" in records[0].getMessage()
    assert BUG_PAN not in caplog.text and "555555****5599" in caplog.text


async def test_the_same_idempotency_key_replays_the_first_answer(http: Http, runtime: FakeRuntime) -> None:
    headers = {**AUTH, "Idempotency-Key": "order-5678"}
    first = await http.post("/orders/authorize", json=AUTHORIZE, headers=headers)
    again = await http.post("/orders/authorize", json=AUTHORIZE, headers=headers)
    assert first.status == again.status == 200
    assert await first.read() == await again.read()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len([c for c in runtime.orders.calls if c[0] == "authorize"]) == 1
    other = await http.post("/orders/authorize", json={**AUTHORIZE, "amount": "1.00"}, headers=headers)
    assert other.status == 422 and "different request" in failure(await other.read())["failure_message"]


async def test_operations_on_an_order_pass_its_id_and_the_body(http: Http, runtime: FakeRuntime) -> None:
    _, doc = await authorize(http)
    oid = doc["orders"][0]["id"]
    resp = await http.put(f"/orders/{oid}/charge", headers=AUTH)  # no body at all, as in the seed
    assert resp.status == 200 and (await resp.json())["orders"][0]["amount_charged"] == "9.99"
    assert runtime.orders.calls[-1] == ("charge", {})
    resp = await http.put(f"/orders/{oid}/reverse", json={}, headers=AUTH)
    assert resp.status == 402 and failure(await resp.read())["failure_type"] == "rejected"
    resp = await http.post(f"/orders/{oid}/rebill", json={"amount": 9.99, "cvv": "123"}, headers=AUTH)
    assert resp.status == 200
    resp = await http.post(f"/orders/{oid}/credit", json={"amount": 9.99, "currency": "USD"}, headers=AUTH)
    assert resp.status == 200 and runtime.orders.calls[-1][1][0] == oid


async def test_another_projects_order_is_not_found(http: Http) -> None:
    _, doc = await authorize(http)
    oid = doc["orders"][0]["id"]
    not_found = {"failure_type": "rejected", "failure_message": "Order not found", "order_id": None}
    rebill = {"amount": "1", "cvv": "123"}
    for method, path in (("GET", ""), ("PUT", "/charge"), ("PUT", "/refund"), ("POST", "/rebill")):
        body = rebill if method == "POST" else None
        resp = await http.request(method, f"/orders/{oid}{path}", json=body, headers=OTHER)
        assert resp.status == 404, (method, path)
        assert failure(await resp.read()) == not_found


# -- reads -----------------------------------------------------------------------


async def test_get_order_expands_what_is_asked(http: Http) -> None:
    _, doc = await authorize(http)
    oid = doc["orders"][0]["id"]
    plain = (await (await http.get(f"/orders/{oid}", headers=AUTH)).json())["orders"][0]
    assert "card" not in plain and "operations" not in plain
    resp = await http.get(f"/orders/{oid}?expand=card,location", headers=AUTH)
    order = (await resp.json())["orders"][0]
    assert order["card"]["holder"] == "John Smith" and order["location"] == {"ip": "6.6.6.6"}
    bad = await http.get(f"/orders/{oid}?expand=card,wallet", headers=AUTH)
    assert bad.status == 422 and failure(await bad.read())["errors"][0]["uri"] == "#/expand"


async def test_order_lists_link_the_neighbour_pages_and_keep_the_filters(http: Http) -> None:
    for _ in range(5):
        await authorize(http)
    resp = await http.get("/orders/?status=authorized&page_size=2&page=2", headers=AUTH)
    assert resp.status == 200 and len((await resp.json())["orders"]) == 2
    base = str(http.make_url("/orders/"))
    want = (
        f'<{base}?status=authorized&page_size=2&page=1>; rel="prev", '
        f'<{base}?status=authorized&page_size=2&page=3>; rel="next"'
    )
    assert resp.headers["Link"] == want and resp.headers["Pagination"] == want
    first = await http.get("/orders/?page_size=2", headers=AUTH)
    assert first.headers["Link"] == f'<{base}?page_size=2&page=2>; rel="next"'
    last = await http.get("/orders/?page_size=2&page=3", headers=AUTH)
    assert last.headers["Link"] == f'<{base}?page_size=2&page=2>; rel="prev"'
    single = await http.get("/orders", headers=AUTH)
    assert "Link" not in single.headers and len((await single.json())["orders"]) == 5


@pytest.mark.parametrize(
    ("query", "messages"),
    [
        ("page=0", ["Invalid page"]),
        ("page=-1", ["Invalid page"]),
        ("page=x", ["Invalid page"]),
        ("page_size=0", ["Invalid page size"]),
        ("page_size=2001", ["Invalid page size"]),
        ("page=a&page_size=b", ["Invalid page", "Invalid page size"]),
    ],
)
async def test_bad_paging_values_are_the_seeds_422(http: Http, query: str, messages: list[str]) -> None:
    for path in ("/orders/", "/operations/"):
        resp = await http.get(f"{path}?{query}", headers=AUTH)
        assert resp.status == 422
        doc = failure(await resp.read())
        assert doc["failure_message"] == messages[0]
        assert [e["message"] for e in doc["errors"]] == messages


async def test_operations_list_carries_order_ids_and_optional_cashflow(http: Http) -> None:
    _, doc = await authorize(http)
    resp = await http.get("/operations/", headers=AUTH)
    (op,) = (await resp.json())["operations"]
    assert op["order_id"] == doc["orders"][0]["id"] and op["type"] == "authorize" and "cashflow" not in op
    resp = await http.get("/operations?expand=cashflow", headers=AUTH)
    assert "cashflow" in (await resp.json())["operations"][0]


# -- exchange rates --------------------------------------------------------------


async def test_exchange_rates_of_the_seeds_example_date(http: Http) -> None:
    resp = await http.get("/exchange_rates/?date=2014-06-30", headers=AUTH)
    assert resp.status == 200
    seed = (
        '{ "exchange_rates" : [ { "from" : "EUR", "rate" : "75.132109", "to" : "RUB" },'
        ' { "to" : "UAH", "from" : "EUR", "rate" : "31.562887" },'
        ' { "from" : "EUR", "rate" : "334.000000", "to" : "UBT" },'
        ' { "to" : "USD", "from" : "EUR", "rate" : "1.145036" } ] }'
    )
    assert await resp.json() == json.loads(seed)


async def test_exchange_rates_of_a_day_without_rates_are_the_last_published(http: Http) -> None:
    saturday = await (await http.get("/exchange_rates/?date=2021-07-03", headers=AUTH)).json()
    friday = await (await http.get("/exchange_rates/?date=2021-07-02", headers=AUTH)).json()
    assert saturday == friday and len(friday["exchange_rates"]) == 8
    before = await (await http.get("/exchange_rates/?date=2000-01-01", headers=AUTH)).json()
    assert before == {"exchange_rates": []}
    today = await (await http.get("/exchange_rates/", headers=AUTH)).json()
    assert today["exchange_rates"] and all(set(r) == {"from", "rate", "to"} for r in today["exchange_rates"])


async def test_exchange_rates_of_a_period_carry_their_dates(http: Http) -> None:
    resp = await http.get("/exchange_rates/?date_from=2021-06-29&date_to=2021-06-30", headers=AUTH)
    rows = (await resp.json())["exchange_rates"]
    assert {r["date"] for r in rows} == {"2021-06-29", "2021-06-30"} and len(rows) == 16
    assert {"date": "2021-06-30", "from": "EUR", "rate": "1.188400", "to": "USD"} in rows


@pytest.mark.parametrize(
    ("query", "uri"),
    [
        ("date=2021-06-30&date_from=2021-06-29", "#/date"),
        ("date=2021-06-30&date_to=2021-06-30", "#/date"),
        ("date=30.06.2021", "#/date"),
        ("date=2021-02-30", "#/date"),
        ("date_from=2021-07-01&date_to=2021-06-01", "#/date_from"),
        ("date_from=2010-01-01&date_to=2021-06-01", "#/date_to"),
        ("day=2021-06-30", "#/day"),
    ],
)
async def test_bad_exchange_rate_queries_are_422(http: Http, query: str, uri: str) -> None:
    resp = await http.get(f"/exchange_rates/?{query}", headers=AUTH)
    assert resp.status == 422
    assert uri in [e["uri"] for e in failure(await resp.read())["errors"]]


async def test_no_answer_ever_carries_a_stack_trace(http: Http) -> None:
    answers = [
        await http.post("/orders/authorize", json={**AUTHORIZE, "pan": BUG_PAN}, headers=AUTH),
        await http.post("/orders/authorize", data=b"{", headers={**AUTH, "Content-Type": "application/json"}),
        await http.get("/orders/12345678901234567", headers=AUTH),
        await http.get("/nothing"),
    ]
    for resp in answers:
        text = await resp.text()
        assert "Traceback" not in text and 'File "' not in text
        failure(text.encode())
