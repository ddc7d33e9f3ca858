"""GET /orders/ and GET /operations/: every filter of seeds/003, paging, and per-project isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pg
import pytest
import test_orders_fixtures
from json_orders import JsonOrders
from test_orders_fixtures import Rig, body

from switch.orders import Order, OrderError, OrdersService
from switch.orders.engine import Engine

# The PostgreSQL fixtures (tests/pg.py) and the orders rig, made visible to this module's tests.
database, fresh_dsn, pg_dsn = pg.database, pg.fresh_dsn, pg.pg_dsn
rig = test_orders_fixtures.rig

pytestmark = pytest.mark.timeout(30)


class Clock:
    """A settable clock, so orders get distinct, known creation times."""

    def __init__(self) -> None:
        self.now = datetime(2016, 1, 10, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


async def populate(rig: Rig) -> tuple[OrdersService, dict[str, Order]]:
    orders = JsonOrders(
        OrdersService(Engine(rig.router, rig.db, rig.writer, rig.ids, rig.vault, clock=Clock(), request_timeout=2.0))
    )
    made: dict[str, Order] = {}
    made["charged"] = await orders.authorize(
        rig.project,
        body(
            merchant_order_id="12345",
            client={"name": "John Smith", "email": "john@yahoo.com"},
            location={"ip": "8.8.8.8"},
            options={"auto_charge": 1},
            extra_fields={"attributes": {"invoice_id": "741852963"}},
        ),
    )
    made["refunded"] = await orders.authorize(
        rig.project,
        body(
            pan="2222400060000007",
            merchant_order_id="123456",
            client={"name": "Jane Doe", "email": "jane@example.com"},
            location={"ip": "8.8.8.9"},
            options={"auto_charge": 1},
        ),
    )
    made["refunded"] = await orders.refund(rig.project, made["refunded"].id, {"amount": "1.00"})
    made["authorized"] = await orders.authorize(rig.project, body(location={"ip": "1.1.1.1"}))
    try:
        await orders.authorize(rig.project, body(pan="4276990011343663", client={"name": "Bob Smithers"}))
    except OrderError as e:
        assert e.order_id is not None
        made["declined"] = await orders.get_order(rig.project, e.order_id)
    other = await rig.project_with("other")
    await orders.authorize(other, body(merchant_order_id="12345", location={"ip": "8.8.8.8"}))
    return orders, made


async def ids(orders: OrdersService, rig: Rig, **query: str) -> list[str]:
    return [o.id for o in (await orders.list_orders(rig.project, query)).items]


async def test_every_order_filter_of_the_seed(rig: Rig) -> None:
    orders, made = await populate(rig)
    m = {k: v.id for k, v in made.items()}
    newest_first = [m["declined"], m["authorized"], m["refunded"], m["charged"]]
    assert await ids(orders, rig) == newest_first
    assert await ids(orders, rig, status="charged,refunded") == [m["refunded"], m["charged"]]
    assert await ids(orders, rig, merchant_order_id="12345,123456") == [m["refunded"], m["charged"]]
    assert await ids(orders, rig, merchant_order_id="12345") == [m["charged"]]
    assert await ids(orders, rig, **{"card.type": "mastercard"}) == [m["refunded"]]
    assert await ids(orders, rig, **{"card.type": "visa,mastercard"}) == newest_first
    assert await ids(orders, rig, **{"card.subtype": "standard"}) == [m["refunded"]]
    assert await ids(orders, rig, **{"location.ip": "8.8.8.8,8.8.8.9"}) == [m["refunded"], m["charged"]]
    assert await ids(orders, rig, **{"client.name": "smith"}) == [m["declined"], m["charged"]]
    assert await ids(orders, rig, **{"client.email": "@yahoo.com"}) == [m["charged"]]
    assert await ids(orders, rig, **{"issuer.country": "UKR"}) == [m["authorized"], m["charged"]]
    assert await ids(orders, rig, **{"issuer.bin": "222240,427699"}) == [m["declined"], m["refunded"]]
    assert await ids(orders, rig, **{"issuer.title": "testbank"}) == newest_first
    assert await ids(orders, rig, **{"issuer.title": "Credit Union"}) == []
    assert await ids(orders, rig, invoice_id="741852963") == [m["charged"]]
    created = made["refunded"].created.strftime("%Y-%m-%d %H:%M:%S")
    assert await ids(orders, rig, created_from=created) == [m["declined"], m["authorized"], m["refunded"]]
    assert await ids(orders, rig, created_to=created) == [m["refunded"], m["charged"]]
    assert await ids(orders, rig, created_from="2016-01-10", created_to="2016-01-10") == newest_first
    assert await ids(orders, rig, created_to="2016-01-09") == []
    assert await ids(orders, rig, status="charged", **{"location.ip": "8.8.8.9"}) == []


async def test_paging_counts_from_one_and_reports_the_total(rig: Rig) -> None:
    orders, _ = await populate(rig)
    everything = await ids(orders, rig)
    first = await orders.list_orders(rig.project, {"page_size": "3"})
    second = await orders.list_orders(rig.project, {"page_size": "3", "page": "2"})
    beyond = await orders.list_orders(rig.project, {"page_size": "3", "page": "3"})
    assert [o.id for o in first.items + second.items] == everything
    assert (first.page, first.page_size, first.total, first.has_next, first.has_prev) == (1, 3, 4, True, False)
    assert (second.page, len(second.items), second.has_next, second.has_prev) == (2, 1, False, True)
    assert beyond.items == [] and beyond.total == 4
    for query, message in (({"page": "0"}, "Invalid page"), ({"page_size": "abc"}, "Invalid page size")):
        with pytest.raises(OrderError) as e:
            await orders.list_orders(rig.project, query)
        assert (e.value.failure_type, e.value.message) == ("validation", message)


async def test_listed_orders_carry_their_operations(rig: Rig) -> None:
    orders, _ = await populate(rig)
    page = await orders.list_orders(rig.project, {"status": "refunded"})
    (order,) = page.items
    assert [op.type.value for op in order.operations] == ["authorize", "charge", "refund"]


async def test_every_operation_filter_of_the_seed(rig: Rig) -> None:
    orders, made = await populate(rig)
    page = await orders.list_operations(rig.project, {})
    assert page.total == 7  # 2+3 (two 1-stage, one refunded) + 1 authorized + 1 declined
    kinds = [(op.type.value, op.status.value) for op in page.items]
    assert kinds[0] == ("authorize", "failure") and kinds[-1] == ("authorize", "success")  # newest first
    assert {op.order_id for op in page.items} == {o.id for o in made.values()}
    charges = await orders.list_operations(rig.project, {"type": "charge,refund"})
    assert sorted(op.type.value for op in charges.items) == ["charge", "charge", "refund"]
    failures = await orders.list_operations(rig.project, {"status": "failure"})
    assert [op.order_id for op in failures.items] == [made["declined"].id]
    assert (await orders.list_operations(rig.project, {"status": "error"})).total == 0
    since = made["authorized"].created.strftime("%Y-%m-%d %H:%M:%S")
    recent = await orders.list_operations(rig.project, {"created_from": since})
    assert {op.order_id for op in recent.items} == {made["authorized"].id, made["declined"].id}
    paged = await orders.list_operations(rig.project, {"page": "2", "page_size": "5"})
    assert len(paged.items) == 2 and paged.total == 7
    with pytest.raises(OrderError) as e:
        await orders.list_operations(rig.project, {"page_size": "0"})
    assert e.value.message == "Invalid page size"


async def test_pending_intents_never_show_in_the_operations_list(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, body())
    await rig.db.pool.execute(
        "INSERT INTO operations (order_id, id, project_id, type, status, amount, currency, created, updated)"
        " VALUES ($1, 2, $2, 'charge', 'pending', 999, 'USD', now(), now())",
        order.id,
        rig.project.id,
    )
    page = await rig.orders.list_operations(rig.project, {})
    assert [op.type.value for op in page.items] == ["authorize"] and page.total == 1
