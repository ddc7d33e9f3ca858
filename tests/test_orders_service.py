"""OrdersService end to end: real PostgreSQL, the real simulator over TCP, the real Router.

Each flow is checked three ways: the Order returned, the rows stored, and
what the simulator received on the wire (or its cardholder ledger).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pg
import pytest
import test_orders_fixtures
from json_orders import JsonOrders, body_of, http_status
from test_orders_fixtures import NEXT_YEAR, PAN, Rig, body

from http_front.orders.views import FULL_EXPAND, order_view
from switch.orders import (
    OperationStatus,
    OperationType,
    Order,
    OrderError,
    OrderNotFound,
    OrdersService,
    OrderStatus,
)
from switch.orders.engine import Engine
from switch.orders.status import ACTIONS
from switch.wire.cards import luhn_ok

# The PostgreSQL fixtures (tests/pg.py) and the orders rig, made visible to this module's tests.
database, fresh_dsn, pg_dsn = pg.database, pg.fresh_dsn, pg.pg_dsn
rig = test_orders_fixtures.rig

pytestmark = pytest.mark.timeout(30)


async def failing(coro: Any) -> OrderError:
    with pytest.raises(OrderError) as e:
        await coro
    return e.value


def types(order: Order) -> list[tuple[str, str]]:
    return [(op.type.value, op.status.value) for op in order.operations]


# -- authorize ------------------------------------------------------------------


async def test_an_approved_authorization_carries_the_issuers_answer(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, body(merchant_order_id="5678", segment=987654321))
    (sent,) = rig.sent
    (hold,) = rig.sim.ledger.account(PAN).snapshot()["holds"]
    assert order.status is OrderStatus.AUTHORIZED
    assert order.rrn == sent["37"] and order.auth_code == hold["auth_code"]
    (op,) = order.operations
    assert (op.type, op.status, op.iso_response_code, op.iso_message) == (
        OperationType.AUTHORIZE,
        OperationStatus.SUCCESS,
        "00",
        "Approved",
    )
    assert (op.auth_code, op.rrn, op.stan, op.transmission_time) == (
        hold["auth_code"],
        sent["37"],
        sent["11"],
        sent["7"],
    )
    assert (sent["4"], sent["49"], sent["41"], sent["120"]) == ("000000000999", "840", "TERM0001", "123")
    stored = await rig.orders.get_order(rig.project, order.id)
    assert order_view(stored, FULL_EXPAND) == order_view(order, FULL_EXPAND)
    assert (stored.merchant_order_id, stored.segment) == ("5678", "987654321")


@pytest.mark.parametrize(
    ("pan", "failure_type", "message", "code", "order_status", "op_status", "http"),
    [
        ("4276990011343663", "declined", "Do not honor", "05", "declined", "failure", 402),
        ("4000000000000002", "fraud", "Suspected fraud", "59", "fraud", "failure", 402),
        ("5555555555555599", "error", "System malfunction", "96", "error", "error", 500),
        ("4000000000003220", "declined", "Soft-Decline", "A1", "declined", "failure", 402),
    ],
)
async def test_test_cards_decline_as_the_seed_documents(
    rig: Rig, pan: str, failure_type: str, message: str, code: str, order_status: str, op_status: str, http: int
) -> None:
    err = await failing(rig.orders.authorize(rig.project, body(pan=pan)))
    assert (err.failure_type, err.message, http_status(err)) == (failure_type, message, http)
    assert err.order_id is not None
    order = await rig.orders.get_order(rig.project, err.order_id)
    assert order.status.value == order_status and order.auth_code is None
    (op,) = order.operations
    assert (op.status.value, op.iso_response_code, op.iso_message, op.auth_code) == (op_status, code, message, None)
    assert op.cashflow is not None and op.cashflow.reserve == 0


async def test_a_soft_decline_passes_with_3ds_data_which_goes_on_the_wire(rig: Rig) -> None:
    secure3d = {"eci": "05", "cavv": "AAABCBVRA2EYZXQBV1EDAAAAAA=", "xid": "8Rg2xYbxLUGsfZlkoh1JxAQFBM="}
    order = await rig.orders.authorize(rig.project, body(pan="4000000000003220", secure3d=secure3d))
    assert order.status is OrderStatus.AUTHORIZED
    (sent,) = rig.sent
    assert (sent["121"], sent["122"], sent["123"]) == ("05", secure3d["cavv"], secure3d["xid"])
    assert order_view(order, {"secure3d"})["secure3d"] == {"eci": "5", "scenario": "external", "xid": secure3d["xid"]}


async def test_auto_charge_authorizes_then_charges_with_an_arn(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, body(options={"auto_charge": 1}))
    assert order.status is OrderStatus.CHARGED and order.amount_charged == 999
    assert types(order) == [("authorize", "success"), ("charge", "success")]
    charge = order.operations[1]
    assert charge.arn is not None and len(charge.arn) == 23 and luhn_ok(charge.arn)
    assert [m["t"] for m in rig.sent] == ["0100", "0220"]
    capture = rig.sent[1]
    assert (capture["37"], capture["38"]) == (order.rrn, order.auth_code)
    assert capture["90"][:20] == "0100" + rig.sent[0]["11"] + rig.sent[0]["7"]
    assert rig.sim.ledger.account(PAN).snapshot()["holds"][0]["status"] == "captured"
    assert order_view(order, FULL_EXPAND)["operations"][1]["cashflow"]["fee"] == "0.30"


async def test_the_projects_auto_charge_default_applies_unless_the_request_says(rig: Rig) -> None:
    one_stage = await rig.project_with("onestage", auto_charge=True)
    assert (await rig.orders.authorize(one_stage, body())).status is OrderStatus.CHARGED
    two = await rig.orders.authorize(one_stage, body(options={"auto_charge": 0}))
    assert two.status is OrderStatus.AUTHORIZED


async def test_invalid_input_is_a_422_and_leaves_no_order_and_sends_nothing(rig: Rig) -> None:
    bad = [
        body(pan="4111111111111112x"),
        body(amount="9.999"),
        body(currency="XXX"),
        {k: v for k, v in body().items() if k != "amount"},
        body(card={"cvv": "12345", "expiration_month": 12, "expiration_year": NEXT_YEAR}),
        body(extra_fields={"dynamic_descriptor": {"merchant": "M" * 23, "city": "X", "country": "RU"}}),
    ]
    for b in bad:
        err = await failing(rig.orders.authorize(rig.project, b))
        assert (err.failure_type, http_status(err), err.order_id) == ("validation", 422, None)
        errors = body_of(err).get("errors")
        assert errors and errors[0]["uri"].startswith("#/")
    assert rig.sent == []
    assert await rig.rows("SELECT id FROM orders") == []


async def test_a_dynamic_descriptor_goes_to_de43_and_invoice_id_is_kept(rig: Rig) -> None:
    extra = {
        "dynamic_descriptor": {"merchant": "BOOKSTORE LTD", "city": "Moscow", "country": "RU"},
        "attributes": {"invoice_id": "741852963"},
    }
    order = await rig.orders.authorize(rig.project, body(extra_fields=extra))
    assert rig.sent[0]["43"] == "BOOKSTORE LTD            Moscow       RU"
    assert order.descriptor == "BOOKSTORE LTD>Moscow" and order.invoice_id == "741852963"


# -- charge -------------------------------------------------------------------------


async def test_a_partial_charge_captures_that_amount_only(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, body())
    order = await rig.orders.charge(rig.project, order.id, {"amount": "1.99"})
    assert (order.status, order.amount, order.amount_charged) == (OrderStatus.CHARGED, 999, 199)
    assert rig.sent[-1]["t"] == "0220" and rig.sent[-1]["4"] == "000000000199"
    acct = rig.sim.ledger.account(PAN)
    assert (acct.captured, acct.held) == (199, 0)  # the rest of the hold is released
    cf = order_view(order, FULL_EXPAND)["operations"][1]["cashflow"]
    assert (cf["amount"], cf["fee"], cf["incoming"]) == ("1.99", "0.06", "1.93")


async def test_charging_more_than_authorized_or_twice_is_rejected_without_a_message(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, body())
    err = await failing(rig.orders.charge(rig.project, order.id, {"amount": "10.00"}))
    assert (err.failure_type, http_status(err), err.order_id) == ("rejected", 402, order.id)
    await rig.orders.charge(rig.project, order.id, {})
    err = await failing(rig.orders.charge(rig.project, order.id, {}))
    assert err.failure_type == "rejected" and "charged" in err.message
    assert [m["t"] for m in rig.sent] == ["0100", "0220"]


# -- refund -------------------------------------------------------------------------


async def test_partial_and_repeated_refunds_add_up_to_the_charge_and_no_further(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, body(options={"auto_charge": True}))
    order = await rig.orders.refund(rig.project, order.id, {"amount": "1.99"})
    assert (order.status, order.amount_charged, order.amount_refunded) == (OrderStatus.REFUNDED, 999, 199)
    order = await rig.orders.refund(rig.project, order.id, {"amount": 3})
    assert order.amount_refunded == 499
    err = await failing(rig.orders.refund(rig.project, order.id, {"amount": "5.01"}))
    assert err.failure_type == "rejected" and err.order_id == order.id
    order = await rig.orders.refund(rig.project, order.id, {})  # the rest
    assert order.amount_refunded == 999
    err = await failing(rig.orders.refund(rig.project, order.id, {"amount": "0.01"}))
    assert err.failure_type == "rejected"
    refunds = rig.sent_of("0200")
    assert [(m["3"], m["4"]) for m in refunds] == [
        ("200000", "000000000199"),
        ("200000", "000000000300"),
        ("200000", "000000000500"),
    ]
    capture = rig.sent_of("0220")[0]
    assert {m["90"][:20] for m in refunds} == {"0220" + capture["11"] + capture["7"]}
    assert len({m["37"] for m in refunds} | {order.rrn}) == 4  # each refund has its own RRN
    ops = [op for op in order.operations if op.type is OperationType.REFUND]
    assert all(op.arn and luhn_ok(op.arn) for op in ops)
    assert rig.sim.ledger.account(PAN).refunded == 999
    stored = await rig.orders.get_order(rig.project, order.id)
    assert (stored.amount_refunded, stored.status) == (999, OrderStatus.REFUNDED)


# -- reverse and cancel ---------------------------------------------------------------


async def test_a_reverse_releases_the_hold(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, body())
    order = await rig.orders.reverse(rig.project, order.id, {})
    assert order.status is OrderStatus.REVERSED
    assert types(order) == [("authorize", "success"), ("reverse", "success")]
    rev = rig.sent[-1]
    assert (rev["t"], rev["37"], rev["4"]) == ("0400", order.rrn, "000000000999")
    assert rig.sim.ledger.account(PAN).held == 0
    err = await failing(rig.orders.reverse(rig.project, order.id, {}))
    assert err.failure_type == "rejected"


async def test_cancel_reverses_an_authorized_order(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, body())
    order = await rig.orders.cancel(rig.project, order.id, {})
    assert order.status is OrderStatus.REVERSED and rig.sent[-1]["t"] == "0400"


async def test_cancel_refunds_a_charged_order_in_full_or_by_amount(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, body(options={"auto_charge": 1}))
    order = await rig.orders.cancel(rig.project, order.id, {"amount": "2.00"})
    assert (order.status, order.amount_refunded) == (OrderStatus.REFUNDED, 200)
    order = await rig.orders.cancel(rig.project, order.id, {})
    assert order.amount_refunded == 999
    assert [m["3"] for m in rig.sent_of("0200")] == ["200000", "200000"]


async def test_cancel_of_a_declined_order_is_rejected(rig: Rig) -> None:
    err = await failing(rig.orders.authorize(rig.project, body(pan="4276990011343663")))
    assert err.order_id is not None
    err = await failing(rig.orders.cancel(rig.project, err.order_id, {}))
    assert err.failure_type == "rejected" and http_status(err) == 402


# -- rebill -------------------------------------------------------------------------------


async def test_a_rebill_is_a_new_merchant_initiated_order_on_the_stored_card(rig: Rig) -> None:
    parent = await rig.orders.authorize(rig.project, body(options={"auto_charge": 1}))
    child = await rig.orders.rebill(
        rig.project, parent.id, {"amount": "5.00", "cvv": "123", "location": {"ip": "8.8.8.8"}}
    )
    assert child.id != parent.id and child.parent_order_id == parent.id
    assert (child.status, child.amount, child.pan_mask) == (OrderStatus.AUTHORIZED, 500, "411111****1111")
    assert types(child) == [("authorize", "success")]
    wire = rig.sent[-1]
    assert (wire["t"], wire["2"], wire["22"], wire["124"]) == ("0100", PAN, "100", "MU" + parent.rrn)  # type: ignore[operator]
    assert "120" not in wire  # a merchant-initiated transaction carries no CVV
    assert child.location == {"ip": "8.8.8.8"}
    assert order_view(child, {"card"})["card"]["holder"] == "John Smith"
    # the parent is untouched
    assert (await rig.orders.get_order(rig.project, parent.id)).status is OrderStatus.CHARGED


async def test_a_recurring_series_rebills_with_the_first_rrn_and_reason_r(rig: Rig) -> None:
    first = await rig.orders.authorize(rig.project, body(options={"recurring": 1}))
    assert rig.sent[0]["124"] == "CF"
    second = await rig.orders.rebill(rig.project, first.id, {"amount": "1.00", "options": {"auto_charge": 1}})
    third = await rig.orders.rebill(rig.project, second.id, {"amount": "1.00"})
    assert [m["124"] for m in rig.sent_of("0100")] == ["CF", "MR" + str(first.rrn), "MR" + str(first.rrn)]
    assert second.status is OrderStatus.CHARGED and third.status is OrderStatus.AUTHORIZED


async def test_rebill_is_allowed_from_a_declined_order(rig: Rig) -> None:
    # 5105105105105100 holds 100.00: 200.00 is declined (51), a 10.00 rebill of that order approves.
    err = await failing(rig.orders.authorize(rig.project, body(pan="5105105105105100", amount="200.00")))
    assert (err.failure_type, err.message) == ("declined", "Not sufficient funds") and err.order_id
    child = await rig.orders.rebill(rig.project, err.order_id, {"amount": "10.00"})
    assert child.status is OrderStatus.AUTHORIZED and child.parent_order_id == err.order_id


async def test_a_rebill_declined_by_the_issuer_makes_a_declined_order(rig: Rig) -> None:
    parent = await rig.orders.authorize(rig.project, body(pan="4000000000003220", secure3d={"eci": "05"}))
    err = await failing(rig.orders.rebill(rig.project, parent.id, {"amount": "1.00"}))
    assert (err.failure_type, err.message) == ("declined", "Soft-Decline")  # no 3-DS on a rebill
    assert err.order_id not in (None, parent.id)


# -- credit ---------------------------------------------------------------------------------


async def test_credit_to_an_orders_card_is_an_oct_naming_its_capture(rig: Rig) -> None:
    parent = await rig.orders.authorize(rig.project, body(options={"auto_charge": 1}))
    credit = await rig.orders.credit(rig.project, parent.id, {"amount": "1.00", "location": {"ip": "8.8.8.8"}})
    assert credit.id != parent.id and credit.parent_order_id == parent.id
    assert (credit.status, credit.amount, credit.amount_charged) == (OrderStatus.CREDITED, 100, 0)
    assert types(credit) == [("credit", "success")]
    capture, wire = rig.sent_of("0220")[0], rig.sent[-1]
    assert (wire["t"], wire["2"], wire["3"], wire["4"]) == ("0200", PAN, "260000", "000000000100")
    assert wire["90"][:20] == "0220" + capture["11"] + capture["7"]
    assert (await rig.orders.get_order(rig.project, parent.id)).status is OrderStatus.CHARGED
    authorized = await rig.orders.authorize(rig.project, body())
    err = await failing(rig.orders.credit(rig.project, authorized.id, {"amount": "1.00"}))
    assert err.failure_type == "rejected"


async def test_credit_by_pan_makes_a_credited_order(rig: Rig) -> None:
    order = await rig.orders.credit(rig.project, None, {"amount": "99.99", "pan": "2222400060000007"})
    assert (order.status, order.amount, order.amount_charged, order.auth_code) == (
        OrderStatus.CREDITED,
        9999,
        0,
        order.operations[0].auth_code,
    )
    wire = rig.sent[-1]
    assert (wire["t"], wire["3"], wire["4"]) == ("0200", "260000", "000000009999")
    assert "14" not in wire and "90" not in wire
    view = order_view(order, FULL_EXPAND)
    assert view["card"] == {"expiration": "0/0", "subtype": "standard", "type": "mastercard"}
    assert view["operations"][0]["cashflow"]["amount"] == "-99.99"
    assert rig.sim.ledger.account("2222400060000007").credited == 9999


# -- access -----------------------------------------------------------------------------------


async def test_a_project_never_sees_another_projects_orders(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, body())
    other = await rig.project_with("other")
    for call in (
        rig.orders.get_order(other, order.id),
        rig.orders.charge(other, order.id, {}),
        rig.orders.reverse(other, order.id, {}),
        rig.orders.refund(other, order.id, {}),
        rig.orders.cancel(other, order.id, {}),
        rig.orders.rebill(other, order.id, {"amount": "1.00"}),
        rig.orders.credit(other, order.id, {"amount": "1.00"}),
        rig.orders.get_order(rig.project, "99999999999999999"),
        rig.orders.get_order(rig.project, "not-an-id"),
    ):
        err = await failing(call)
        assert isinstance(err, OrderNotFound) and http_status(err) == 404
    assert (await rig.orders.list_orders(other, {})).total == 0
    assert (await rig.orders.list_operations(other, {})).total == 0
    assert [m["t"] for m in rig.sent] == ["0100"]


# -- the status table, through the service ---------------------------------------------------


async def order_in(rig: Rig, status: OrderStatus) -> Order:
    """A charged order (so every operation has what it needs) relabelled ``status`` in the database."""
    order = await rig.orders.authorize(rig.project, body(options={"auto_charge": 1}))
    await rig.db.pool.execute("UPDATE orders SET status = $2 WHERE id = $1", order.id, status.value)
    return order


async def attempt(orders: OrdersService, rig: Rig, order_id: str, action: str) -> OrderError | None:
    calls = {
        "charge": lambda: orders.charge(rig.project, order_id, {"amount": "0.01"}),
        "reverse": lambda: orders.reverse(rig.project, order_id, {}),
        "refund": lambda: orders.refund(rig.project, order_id, {"amount": "0.01"}),
        "credit": lambda: orders.credit(rig.project, order_id, {"amount": "0.01"}),
        "rebill": lambda: orders.rebill(rig.project, order_id, {"amount": "0.01"}),
    }
    try:
        await calls[action]()
    except OrderError as e:
        return e
    return None


@pytest.mark.parametrize("status", list(OrderStatus))
async def test_each_status_refuses_exactly_the_operations_the_table_does_not_list(
    rig: Rig, status: OrderStatus
) -> None:
    from test_orders_units import SEED_TABLE

    for action in ACTIONS:
        order = await order_in(rig, status)
        before = len(rig.sent)
        err = await attempt(rig.orders, rig, order.id, action)
        refused = err is not None and err.failure_type == "rejected" and err.message.startswith(f"Operation {action}")
        assert refused is (action not in SEED_TABLE[status.value]), (status, action, err)
        if refused:
            assert err is not None and (http_status(err), err.order_id) == (402, order.id)
            assert len(rig.sent) == before  # nothing went to the host


# -- concurrency ----------------------------------------------------------------------------


async def test_two_concurrent_charges_of_one_order_do_not_both_pass(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, body())
    results = await asyncio.gather(
        rig.orders.charge(rig.project, order.id, {"amount": "9.00"}),
        rig.orders.charge(rig.project, order.id, {"amount": "9.00"}),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Order", "Rejected"]
    assert len(rig.sent_of("0220")) == 1
    (row,) = await rig.rows("SELECT amount_charged FROM orders WHERE id = $1", order.id)
    assert row["amount_charged"] == 900


async def test_two_processes_refunding_one_order_at_once_cannot_exceed_the_charge(rig: Rig) -> None:
    # A second service on the same database has its own in-process locks, as another worker process would.
    other = JsonOrders(OrdersService(Engine(rig.router, rig.db, rig.writer, rig.ids, rig.vault, request_timeout=2.0)))
    order = await rig.orders.authorize(rig.project, body(options={"auto_charge": 1}))
    rig.sim.set_faults([{"action": "delay", "delay_ms": 200, "mti": "0200"}])
    results = await asyncio.gather(
        rig.orders.refund(rig.project, order.id, {"amount": "6.00"}),
        other.refund(rig.project, order.id, {"amount": "6.00"}),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, OrderError)]
    assert len(errors) == 1 and errors[0].failure_type == "rejected", results
    # Refused by what the database holds (the loser's intent insert, or the winner's pending row), not a lock.
    assert errors[0].message in (
        "Order was changed by another request, try again",
        "Another operation on this order is in progress",
    )
    assert len(rig.sent_of("0200")) == 1
    (row,) = await rig.rows("SELECT amount_refunded, status FROM orders WHERE id = $1", order.id)
    assert row == {"amount_refunded": 600, "status": "refunded"}


async def test_the_database_check_refuses_an_over_refund(rig: Rig) -> None:
    import asyncpg

    order = await rig.orders.authorize(rig.project, body(options={"auto_charge": 1}))
    with pytest.raises(asyncpg.CheckViolationError):
        await rig.db.pool.execute("UPDATE orders SET amount_refunded = 1000 WHERE id = $1", order.id)
    # A capture may exceed the authorization (over-capture, at most 100 %: 036_portal_payments.sql), never twice it.
    with pytest.raises(asyncpg.CheckViolationError):
        await rig.db.pool.execute("UPDATE orders SET amount_charged = 2 * amount + 1 WHERE id = $1", order.id)


async def test_money_is_exact_for_three_decimal_and_zero_decimal_currencies(rig: Rig) -> None:
    kwd = await rig.orders.authorize(rig.project, body(amount="1.234", currency="KWD", options={"auto_charge": 1}))
    assert (kwd.amount, rig.sent[0]["4"], rig.sent[0]["49"]) == (1234, "000000001234", "414")
    jpy = await rig.orders.authorize(rig.project, body(amount="1000", currency="JPY"))
    assert order_view(jpy)["amount"] == "1000"
    assert order_view(kwd, FULL_EXPAND)["operations"][1]["cashflow"]["fee"] == "0.037"
    assert Decimal(order_view(kwd)["amount_charged"]) == Decimal("1.234")


async def test_a_rebill_checks_the_cvv_form_and_needs_an_amount(rig: Rig) -> None:
    parent = await rig.orders.authorize(rig.project, body())
    for bad in ({"amount": "1.00", "cvv": "12"}, {"cvv": "123"}):
        err = await failing(rig.orders.rebill(rig.project, parent.id, bad))
        assert err.failure_type == "validation" and http_status(err) == 422
    assert len(rig.sent) == 1
