"""Write-ahead intents, unknown outcomes, failing links, cancelled callers, and card data at rest."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pg
import pytest
import test_orders_fixtures
from json_orders import JsonOrders, http_status
from test_orders_fixtures import PAN, Rig, body

from switch.orders import OperationStatus, OrderError, OrdersService, OrderStatus
from switch.orders.engine import Engine
from switch.translate import Reversal, build
from switch.wire.codec import Message

# The PostgreSQL fixtures (tests/pg.py) and the orders rig, made visible to this module's tests.
database, fresh_dsn, pg_dsn = pg.database, pg.fresh_dsn, pg.pg_dsn
rig = test_orders_fixtures.rig

pytestmark = pytest.mark.timeout(30)

INTENT = """
SELECT o.status AS order_status, p.id, p.type, p.status, p.amount, p.currency, p.mti, p.rrn, p.stan,
       p.transmission_time, p.terminal_id
FROM orders o JOIN operations p ON p.order_id = o.id
ORDER BY p.order_id, p.id
"""


class LookingRouter:
    """Forwards to the real router, but first reads (on another connection) what is committed."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.seen: list[list[dict[str, Any]]] = []

    async def request(self, msg: Message, *, timeout: float | None = None) -> Message:
        self.seen.append(await self.rig.rows(INTENT))
        return await self.rig.router.request(msg, timeout=timeout)


class CapturingRouter:
    """Keeps each request as it went out (with the link's DE 11), answered or not."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.sent: list[Message] = []

    async def request(self, msg: Message, *, timeout: float | None = None) -> Message:
        try:
            return await self.rig.router.request(msg, timeout=timeout)
        finally:
            self.sent.append(dict(msg))


def service(rig: Rig, router: Any = None, timeout: float = 2.0) -> JsonOrders:
    return JsonOrders(
        OrdersService(Engine(router or rig.router, rig.db, rig.writer, rig.ids, rig.vault, request_timeout=timeout))
    )


async def wait_for_rows(rig: Rig, sql: str, want: Any, *, seconds: float = 3.0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for _ in range(int(seconds / 0.01)):
        rows = await rig.rows(sql)
        if want(rows):
            return rows
        await asyncio.sleep(0.01)
    raise AssertionError(f"database never got there: {rows}")


# -- write-ahead ----------------------------------------------------------------


async def test_the_pending_intent_is_committed_before_the_message_goes_to_the_router(rig: Rig) -> None:
    looking = LookingRouter(rig)
    orders = service(rig, looking)
    order = await orders.authorize(rig.project, body(options={"auto_charge": 1}))
    first, second = looking.seen
    assert first == [
        {
            "order_status": "new",
            "id": 1,
            "type": "authorize",
            "status": "pending",
            "amount": 999,
            "currency": "USD",
            "mti": "0100",
            "rrn": order.rrn,
            "stan": None,  # the link stamps DE 11 as it sends
            "transmission_time": rig.sent[0]["7"],
            "terminal_id": "TERM0001",
        }
    ]
    assert [(r["type"], r["status"]) for r in second] == [("authorize", "success"), ("charge", "pending")]
    assert second[0]["stan"] == rig.sent[0]["11"]  # the result, with the STAN, was durable before the charge


async def test_while_the_host_is_slow_the_intent_is_in_the_database(rig: Rig) -> None:
    rig.sim.set_faults([{"action": "delay", "delay_ms": 300, "pan": PAN}])
    task = asyncio.create_task(rig.orders.authorize(rig.project, body()))
    rows = await wait_for_rows(rig, INTENT, lambda rows: bool(rows))
    assert not task.done()
    assert (rows[0]["order_status"], rows[0]["status"], rows[0]["mti"]) == ("new", "pending", "0100")
    order = await task
    rows = await rig.rows(INTENT)
    assert (rows[0]["order_status"], rows[0]["status"], rows[0]["stan"]) == ("authorized", "success", rig.sent[0]["11"])
    assert order.status is OrderStatus.AUTHORIZED


async def test_a_cancelled_caller_does_not_leave_the_operation_pending(rig: Rig) -> None:
    rig.sim.set_faults([{"action": "delay", "delay_ms": 300, "pan": PAN}])
    task = asyncio.create_task(rig.orders.authorize(rig.project, body()))
    await wait_for_rows(rig, INTENT, lambda rows: bool(rows))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rows = await wait_for_rows(rig, INTENT, lambda rows: rows[0]["status"] != "pending")
    assert (rows[0]["order_status"], rows[0]["status"]) == ("authorized", "success")


# -- unknown outcomes ----------------------------------------------------------------


async def test_a_timeout_makes_operation_and_order_error_with_what_a_reversal_needs(rig: Rig) -> None:
    rig.sim.set_faults([{"action": "no_reply", "mti": "0100"}])
    capturing = CapturingRouter(rig)
    err = await asyncio.wait_for(_failing(service(rig, capturing, timeout=0.3).authorize(rig.project, body())), 5)
    assert (err.failure_type, err.message, http_status(err)) == ("error", "Request timed out", 500)
    assert err.order_id is not None
    order = await rig.orders.get_order(rig.project, err.order_id)
    assert order.status is OrderStatus.ERROR
    (op,) = order.operations
    (sent,) = capturing.sent
    assert rig.sent == []  # the host processed nothing
    assert (op.status, op.iso_response_code, op.iso_message) == (OperationStatus.ERROR, None, "Request timed out")
    assert (op.mti, op.stan, op.transmission_time, op.rrn, op.amount) == (
        "0100",
        sent["11"],
        sent["7"],
        sent["37"],
        999,
    )
    # Enough to build the reversal the next issue's store-and-forward will send.
    ref = op.original_ref()
    assert ref.field90()[:20] == "0100" + sent["11"] + sent["7"]
    reversal = build(Reversal(merchant=rig.project.settings.merchant(), card=_card(), original=ref), op.created)
    assert (reversal["37"], reversal["4"], reversal["41"]) == (sent["37"], sent["4"], sent["41"])


async def test_a_lost_connection_is_an_error_too(rig: Rig) -> None:
    rig.sim.set_faults([{"action": "close", "mti": "0100", "times": 1}])
    err = await _failing(rig.orders.authorize(rig.project, body()))
    assert (err.failure_type, err.message) == ("error", "Connection to the issuer lost")
    assert err.order_id is not None
    assert (await rig.orders.get_order(rig.project, err.order_id)).status is OrderStatus.ERROR


async def test_a_refund_with_an_unknown_outcome_freezes_the_order(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, body(options={"auto_charge": 1}))
    rig.sim.set_faults([{"action": "no_reply", "mti": "0200"}])
    err = await _failing(service(rig, timeout=0.3).refund(rig.project, order.id, {"amount": "1.00"}))
    assert err.failure_type == "error" and err.order_id == order.id
    stored = await rig.orders.get_order(rig.project, order.id)
    assert (stored.status, stored.amount_refunded) == (OrderStatus.ERROR, 0)
    assert [(op.type.value, op.status.value) for op in stored.operations][-1] == ("refund", "error")
    rig.sim.set_faults([])
    err = await _failing(rig.orders.refund(rig.project, order.id, {"amount": "1.00"}))
    assert err.failure_type == "rejected"  # only rebill is allowed in error


async def test_with_no_link_nothing_is_sent_and_the_order_is_error(rig: Rig) -> None:
    authorized = await rig.orders.authorize(rig.project, body())
    await rig.router.close(timeout=1.0)
    before = len(rig.sent)
    err = await _failing(rig.orders.authorize(rig.project, body()))
    assert (err.failure_type, err.message, http_status(err)) == ("error", "Issuer unavailable", 500)
    assert err.order_id is not None
    order = await rig.orders.get_order(rig.project, err.order_id)
    assert (order.status, order.operations[0].status) == (OrderStatus.ERROR, OperationStatus.ERROR)
    assert order.operations[0].stan is None
    # A follow-up that never left keeps the order as it was, so it can be retried.
    err = await _failing(rig.orders.charge(rig.project, authorized.id, {}))
    assert err.failure_type == "error"
    again = await rig.orders.get_order(rig.project, authorized.id)
    assert again.status is OrderStatus.AUTHORIZED and again.operations[-1].status is OperationStatus.ERROR
    assert len(rig.sent) == before


# -- card data at rest and in logs ---------------------------------------------------------

CARDS = ["4111111111111111", "2222400060000007", "4276990011343663", "5105105105105100"]


async def test_no_clear_pan_in_any_column_of_any_table_nor_in_the_logs(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    a = await rig.orders.authorize(rig.project, body(client={"name": "John"}, options={"auto_charge": 1}))
    await rig.orders.refund(rig.project, a.id, {"amount": "1.00"})
    await rig.orders.rebill(rig.project, a.id, {"amount": "2.00", "cvv": "123"})
    await rig.orders.credit(rig.project, a.id, {"amount": "3.00"})
    await rig.orders.credit(rig.project, None, {"amount": "3.00", "pan": CARDS[1]})
    await _failing(rig.orders.authorize(rig.project, body(pan=CARDS[2])))
    await rig.orders.authorize(rig.project, body(pan=CARDS[3], amount="1.00"))
    assert (await rig.rows("SELECT count(*) AS n FROM orders"))[0]["n"] == 6

    columns = await rig.rows(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'character', 'jsonb', 'bytea')"
    )
    assert {"orders", "operations", "projects"} <= {c["table_name"] for c in columns}
    scanned = 0
    for col in columns:
        values = await rig.db.pool.fetch(f'SELECT "{col["column_name"]}" AS v FROM "{col["table_name"]}"')
        for row in values:
            v = row["v"]
            if v is None:
                continue
            raw = bytes(v) if col["data_type"] == "bytea" else repr(v).encode()
            scanned += 1
            for pan in CARDS:
                assert pan.encode() not in raw, (col, "clear PAN")
                assert pan.encode().hex().encode() not in raw.lower(), (col, "hex PAN")
            if col["data_type"] == "jsonb":
                # The project setting that makes it optional (cvv_required) names it; nothing else may.
                assert "cvv" not in repr(v).lower().replace("'cvv_required'", ""), col
    assert scanned > 100
    masks = {r["pan_mask"] for r in await rig.rows("SELECT pan_mask FROM orders")}
    assert masks == {"411111****1111", "222240****0007", "427699****3663", "510510****5100"}

    logged = caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
    assert caplog.records  # the orders logger did speak
    for pan in CARDS:
        assert pan not in logged


async def _failing(coro: Any) -> OrderError:
    with pytest.raises(OrderError) as e:
        await coro
    return e.value


def _card() -> Any:
    from switch.translate import Card

    return Card(PAN)
