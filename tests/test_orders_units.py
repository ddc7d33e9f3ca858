"""The orders domain without I/O: status table, cash flow, views, request parsing, list queries."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from json_orders import http_status

from http_front.orders.parse import amount_of, card_of, descriptor_of, secure3d_of
from http_front.orders.query import operations_query, orders_query, page_of
from http_front.orders.status import error_body
from http_front.orders.views import cashflow_view, operation_view, order_view, parse_expand
from switch.money import currency
from switch.orders import Declined, Fraud, InvalidInput, IssuerError, OrderError, OrderNotFound, Problem, Rejected
from switch.orders.cashflow import Rates, for_operation, percent_of
from switch.orders.model import Cashflow, Operation, OperationStatus, OperationType, Order, OrderStatus
from switch.orders.repo import operations_filter, orders_filter
from switch.orders.service import _minor
from switch.orders.status import ACTIONS, allowed, cancel_action, status_table

# -- the status table ---------------------------------------------------------

# seeds/003, "Order status": Status -> Possible operations, copied by hand.
SEED_TABLE = {
    "new": set(),
    "prepared": set(),
    "authorized": {"reverse", "charge", "rebill"},
    "charged": {"refund", "credit", "rebill"},
    "reversed": {"rebill"},
    "refunded": {"refund", "credit", "rebill"},
    "rejected": {"rebill"},
    "fraud": {"rebill"},
    "declined": {"rebill"},
    "chargedback": {"rebill"},
    "credited": {"rebill"},
    "error": {"rebill"},
}

CASES = [(status, action) for status in SEED_TABLE for action in ACTIONS]


@pytest.mark.parametrize(("status", "action"), CASES)
def test_every_status_allows_exactly_the_operations_of_the_seed_table(status: str, action: str) -> None:
    assert allowed(OrderStatus(status), action) is (action in SEED_TABLE[status])


def test_the_table_covers_every_order_status() -> None:
    assert set(status_table().allowed) == set(OrderStatus)
    assert {s.value for s in OrderStatus} == set(SEED_TABLE)


@pytest.mark.parametrize("status", list(SEED_TABLE))
def test_cancel_reverses_an_authorized_order_and_refunds_a_charged_one(status: str) -> None:
    expected = {"authorized": "reverse", "charged": "refund", "refunded": "refund"}.get(status)
    assert cancel_action(OrderStatus(status)) == expected


# -- cash flow ------------------------------------------------------------------


def flow(kind: OperationType, amount: int, rates: Rates, **kw: Any) -> dict[str, str]:
    return cashflow_view(for_operation(kind, amount, "USD", rates, **kw))


def test_an_authorize_takes_the_reserve_as_in_the_seed_example() -> None:
    rates = Rates(fee_rate=Decimal("1"), reserve_rate=Decimal("3"))
    assert flow(OperationType.AUTHORIZE, 121300, rates) == {
        "amount": "0.00",
        "fee": "0.00",
        "incoming": "0.00",
        "reserve": "36.39",
        "receivable": "-36.39",
        "currency": "USD",
    }


def test_a_charge_has_fee_incoming_reserve_and_receivable_as_in_the_seed_example() -> None:
    rates = Rates(fee_rate=Decimal("1"), reserve_rate=Decimal("3"))
    assert flow(OperationType.CHARGE, 121300, rates) == {
        "receivable": "1164.48",
        "amount": "1213.00",
        "reserve": "36.39",
        "currency": "USD",
        "incoming": "1200.87",
        "fee": "12.13",
    }


@pytest.mark.parametrize(
    ("amount", "fee", "incoming"),
    [(999, "0.30", "9.69"), (199, "0.06", "1.93")],  # the and the doc's partial-charge example
)
def test_a_three_percent_fee_rounds_half_up_to_the_cent(amount: int, fee: str, incoming: str) -> None:
    out = flow(OperationType.CHARGE, amount, Rates(fee_rate=Decimal("3")))
    assert (out["fee"], out["incoming"], out["receivable"], out["reserve"]) == (fee, incoming, incoming, "0.00")


def test_a_refund_gives_the_money_back_without_fee_as_in_the_seed_example() -> None:
    out = flow(OperationType.REFUND, 999, Rates(fee_rate=Decimal("3"), reserve_rate=Decimal("3")))
    assert out == {
        "amount": "-9.99",
        "currency": "USD",
        "fee": "0.00",
        "incoming": "-9.99",
        "receivable": "-9.99",
        "reserve": "0.00",
    }


def test_a_credit_reserves_like_the_seed_example() -> None:
    out = flow(OperationType.CREDIT, 9999, Rates(reserve_rate=Decimal("3")))
    assert out == {
        "currency": "USD",
        "fee": "0.00",
        "incoming": "-99.99",
        "reserve": "3.00",
        "receivable": "-102.99",
        "amount": "-99.99",
    }


def test_a_reverse_releases_the_reserve_of_its_authorization() -> None:
    rates = Rates(reserve_rate=Decimal("3"))
    auth = for_operation(OperationType.AUTHORIZE, 121300, "USD", rates)
    rev = for_operation(OperationType.REVERSE, 121300, "USD", rates, released_reserve=auth.reserve)
    assert cashflow_view(rev) == {
        "amount": "0.00",
        "currency": "USD",
        "fee": "0.00",
        "incoming": "0.00",
        "receivable": "36.39",
        "reserve": "-36.39",
    }
    assert auth.reserve + rev.reserve == 0 and auth.receivable + rev.receivable == 0


@pytest.mark.parametrize("status", [OperationStatus.FAILURE, OperationStatus.ERROR])
def test_an_operation_that_failed_moved_no_money(status: OperationStatus) -> None:
    rates = Rates(fee_rate=Decimal("3"), fee_fixed=30, reserve_rate=Decimal("3"))
    for kind in OperationType:
        assert for_operation(kind, 999, "USD", rates, status=status) == Cashflow(0, 0, 0, 0, 0, "USD")


def test_the_fixed_fee_adds_to_the_rate_and_rounding_follows_the_currency_exponent() -> None:
    assert flow(OperationType.CHARGE, 1000, Rates(fee_rate=Decimal("2.5"), fee_fixed=30))["fee"] == "0.55"
    jpy = cashflow_view(for_operation(OperationType.CHARGE, 1001, "JPY", Rates(fee_rate=Decimal("3"))))
    assert (jpy["amount"], jpy["fee"], jpy["incoming"]) == ("1001", "30", "971")
    kwd = cashflow_view(for_operation(OperationType.CHARGE, 1001, "KWD", Rates(fee_rate=Decimal("3"))))
    assert (kwd["amount"], kwd["fee"]) == ("1.001", "0.030")


@given(
    kind=st.sampled_from(list(OperationType)),
    amount=st.integers(0, 10**11),
    fee=st.decimals(0, 100, places=3),
    fixed=st.integers(0, 10**4),
    reserve=st.decimals(0, 100, places=3),
)
def test_incoming_is_amount_less_fee_and_receivable_is_incoming_less_reserve(
    kind: OperationType, amount: int, fee: Decimal, fixed: int, reserve: Decimal
) -> None:
    cf = for_operation(kind, amount, "USD", Rates(fee, fixed, reserve), released_reserve=percent_of(amount, reserve))
    assert cf.incoming == cf.amount - cf.fee
    assert cf.receivable == cf.incoming - cf.reserve


# -- views ---------------------------------------------------------------------

T0 = datetime(2021, 11, 12, 12, 16, 13, 123456, tzinfo=UTC)
T1 = datetime(2021, 11, 12, 12, 21, 13, tzinfo=UTC)


def seed_order() -> Order:
    """The order of the doc's GET /orders/:id example (expand=everything)."""
    order = Order(
        id="65213580296542862",
        project_id=1,
        status=OrderStatus.AUTHORIZED,
        amount=999,
        currency="USD",
        created=T0,
        updated=datetime(2016, 8, 22, 15, 39, 49, tzinfo=UTC),
        auth_code="AUTH12",
        pan_mask="411111****1111",
        card_holder="John Smith",
        card_type="visa",
        card_subtype="classic",
        client={
            "zip": "123456",
            "name": "John Smith",
            "city": "San Francisco",
            "email": "foo@bar.com",
            "phone": "+1 456 890",
            "state": "CA",
            "address": "Main ave. 1",
            "country": "USA",
        },
        location={"ip": "6.6.6.6"},
        description="Book sale #453",
        merchant_order_id="5678",
        segment="987654321",
        descriptor="TESTMERCH/TERM",
        issuer={"bin": "411111", "country": "UKR", "title": "TestBank"},
    )
    order.operations = [
        Operation(
            order_id=order.id,
            id=1,
            type=OperationType.AUTHORIZE,
            status=OperationStatus.SUCCESS,
            amount=121300,
            currency="USD",
            created=T0,
            updated=T0,
            iso_response_code="00",
            iso_message="Approved",
            auth_code="212636",
            cashflow=Cashflow(0, 0, 0, 3639, -3639, "USD"),
        ),
        Operation(
            order_id=order.id,
            id=2,
            type=OperationType.CHARGE,
            status=OperationStatus.SUCCESS,
            amount=121300,
            currency="USD",
            created=T1,
            updated=T1,
            iso_response_code="00",
            iso_message="Approved",
            arn="73922059535879175995901",
            cashflow=Cashflow(121300, 1213, 120087, 3639, 116448, "USD"),
        ),
        Operation(
            order_id=order.id,
            id=3,
            type=OperationType.REFUND,
            status=OperationStatus.PENDING,
            amount=100,
            currency="USD",
            created=T1,
            updated=T1,
        ),
    ]
    return order


# seeds/003, GET /orders/:id example with every expand (the order's card has no
# expiry here, which the doc's newer examples show as "0/0").
SEED_ORDER_VIEW = {
    "amount": "9.99",
    "amount_charged": "0.00",
    "amount_refunded": "0.00",
    "auth_code": "AUTH12",
    "card": {"expiration": "0/0", "holder": "John Smith", "subtype": "classic", "type": "visa"},
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
    "created": "2021-11-12 12:16:13",
    "currency": "USD",
    "custom_fields": {},
    "description": "Book sale #453",
    "descriptor": "TESTMERCH/TERM",
    "id": "65213580296542862",
    "issuer": {"bin": "411111", "country": "UKR", "title": "TestBank"},
    "location": {"ip": "6.6.6.6"},
    "merchant_order_id": "5678",
    "operations": [
        {
            "type": "authorize",
            "iso_message": "Approved",
            "created": "2021-11-12 12:16:13",
            "amount": "1213.00",
            "auth_code": "212636",
            "iso_response_code": "00",
            "cashflow": {
                "incoming": "0.00",
                "fee": "0.00",
                "receivable": "-36.39",
                "amount": "0.00",
                "currency": "USD",
                "reserve": "36.39",
            },
            "currency": "USD",
            "status": "success",
        },
        {
            "currency": "USD",
            "status": "success",
            "cashflow": {
                "receivable": "1164.48",
                "amount": "1213.00",
                "reserve": "36.39",
                "currency": "USD",
                "incoming": "1200.87",
                "fee": "12.13",
            },
            "arn": "73922059535879175995901",
            "iso_response_code": "00",
            "iso_message": "Approved",
            "created": "2021-11-12 12:21:13",
            "amount": "1213.00",
            "type": "charge",
        },
    ],
    "pan": "411111****1111",
    "secure3d": {},
    "segment": "987654321",
    "status": "authorized",
    "updated": "2016-08-22 15:39:49",
}


def test_the_fully_expanded_view_matches_the_seed_example_field_by_field() -> None:
    view = order_view(
        seed_order(), parse_expand("card,client,location,custom_fields,issuer,secure3d,operations.cashflow")
    )
    assert view == SEED_ORDER_VIEW
    assert list(view) == sorted(view)  # alphabetical, like the doc
    assert list(view["client"]) == sorted(view["client"])


def test_without_expand_an_order_has_the_fields_of_the_seed_list_example() -> None:
    view = order_view(seed_order(), ())
    assert set(view) == {
        "amount",
        "amount_charged",
        "amount_refunded",
        "auth_code",
        "created",
        "currency",
        "description",
        "descriptor",
        "id",
        "merchant_order_id",
        "pan",
        "segment",
        "status",
        "updated",
    }


def test_unset_optional_fields_are_left_out_but_description_and_merchant_order_id_are_null() -> None:
    order = seed_order()
    order.auth_code = order.segment = order.merchant_order_id = order.description = None
    order.rrn = "632600000001"
    view = order_view(order, ())
    assert "auth_code" not in view and "segment" not in view
    assert view["description"] is None and view["merchant_order_id"] is None
    assert view["rrn"] == "632600000001"


def test_operations_without_cashflow_and_never_the_pending_intent() -> None:
    view = order_view(seed_order(), {"operations"})
    assert [op["type"] for op in view["operations"]] == ["authorize", "charge"]
    assert all("cashflow" not in op for op in view["operations"])


def test_an_operation_of_the_operations_list_names_its_order() -> None:
    order = seed_order()
    out = operation_view(None, order.operations[1], False, with_order_id=True)
    assert out["order_id"] == order.id
    assert "cashflow" not in out and out["arn"] == "73922059535879175995901"


def test_amounts_use_the_currency_exponent() -> None:
    order = seed_order()
    order.currency, order.amount = "JPY", 1000
    assert order_view(order)["amount"] == "1000"
    order.currency, order.amount = "KWD", 1234
    assert order_view(order)["amount"] == "1.234"


def test_an_unknown_expand_is_a_validation_error() -> None:
    with pytest.raises(OrderError) as e:
        parse_expand("card,bogus")
    assert e.value.failure_type == "validation" and http_status(e.value) == 422
    assert error_body(e.value)["errors"] == [{"message": "Unknown expand: bogus", "uri": "#/expand"}]


# -- errors ------------------------------------------------------------------------


def test_failure_bodies_have_the_seed_shape() -> None:
    assert error_body(IssuerError("This is an error")) == {
        "failure_type": "error",
        "failure_message": "This is an error",
        "order_id": None,
    }
    err = InvalidInput(problems=[Problem("Unknown property", "foo")])
    assert list(error_body(err)) == ["errors", "failure_type", "failure_message", "order_id"]
    assert error_body(err)["errors"] == [{"message": "Unknown property", "uri": "#/foo"}]
    assert (http_status(Fraud("x")), http_status(Rejected("x")), http_status(Declined("x"))) == (402, 402, 402)
    assert (http_status(IssuerError("x")), http_status(err), http_status(OrderNotFound("1"))) == (500, 422, 404)
    assert error_body(OrderNotFound("12345678901234567"))["order_id"] is None


# -- request parsing -------------------------------------------------------------------


def test_amounts_come_as_decimal_strings_or_json_numbers_never_rounded() -> None:
    usd = currency("USD")

    def minor(body: dict[str, Any]) -> int:
        amount = amount_of(body)
        assert amount is not None
        return _minor(amount, usd)

    assert minor({"amount": "9.99"}) == 999
    assert minor({"amount": 9.99}) == 999
    assert minor({"amount": 10}) == 1000
    for bad in ("9.999", "-1", "abc", True, [1], "0"):
        with pytest.raises(OrderError) as e:
            minor({"amount": bad})
        assert e.value.failure_type == "validation"
        assert error_body(e.value)["errors"][0]["uri"] == "#/amount"
    with pytest.raises(OrderError) as e:
        amount_of({})
    assert error_body(e.value)["errors"] == [
        {"attribute": "required", "details": ["(true)"], "message": "Required", "uri": "#/amount"}
    ]


def test_a_bad_card_is_a_validation_error_that_never_shows_the_card() -> None:
    with pytest.raises(OrderError) as e:
        card_of({"pan": "41111111111111", "card": {"expiration_month": 13, "expiration_year": 2030}})
    assert error_body(e.value)["errors"][0]["uri"] == "#/card/expiration_month"
    assert "41111111111111" not in repr(error_body(e.value))
    with pytest.raises(OrderError) as e:
        card_of({"pan": "4111x", "card": {"expiration_month": 1, "expiration_year": 2030}})
    assert error_body(e.value)["errors"][0]["uri"] == "#/pan"
    with pytest.raises(OrderError) as e:
        card_of({"pan": "4111111111111111", "card": {"cvv": "12", "expiration_month": 1, "expiration_year": 2030}})
    assert error_body(e.value)["errors"][0]["uri"] == "#/card/cvv"


@pytest.mark.parametrize(
    ("merchant", "city", "ok"),
    [
        ("BOOKSTORE LTD", "Moscow", True),
        ("M" * 22, "C" * 15, True),
        ("M" * 23, "", False),  # merchant alone over 22
        ("M" * 22, "C" * 16, False),  # together over 37
    ],
)
def test_the_dynamic_descriptor_follows_the_seed_length_rules(merchant: str, city: str, ok: bool) -> None:
    body = {"extra_fields": {"dynamic_descriptor": {"merchant": merchant, "city": city, "country": "RU"}}}
    if ok:
        dd = descriptor_of(body)
        assert dd is not None and dd.descriptor.field43().startswith(merchant)
        assert dd.descriptor.field43().endswith("RU") and len(dd.descriptor.field43()) == 40
    else:
        with pytest.raises(OrderError) as e:
            descriptor_of(body)
        assert e.value.failure_type == "validation"


def test_three_ds_data_goes_to_the_wire_padded_and_the_cavv_is_not_kept() -> None:
    s = secure3d_of(
        {"secure3d": {"eci": "5", "cavv": "AAABCBVRA2EYZXQBV1EDAAAAAA=", "xid": "8Rg2xYbxLUGsfZlkoh1JxAQFBM="}}
    )
    assert s is not None and s.three_ds.eci == "05" and s.three_ds.cavv == "AAABCBVRA2EYZXQBV1EDAAAAAA="
    assert "cavv" not in s.shown and s.shown["eci"] == "5"


# -- list queries -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"page": "0"}, "Invalid page"),
        ({"page": "x"}, "Invalid page"),
        ({"page": "-1"}, "Invalid page"),
        ({"page_size": "0"}, "Invalid page size"),
        ({"page_size": "2001"}, "Invalid page size"),
        ({"page_size": "1.5"}, "Invalid page size"),
    ],
)
def test_bad_paging_is_the_seed_validation_message(query: dict[str, str], message: str) -> None:
    with pytest.raises(OrderError) as e:
        page_of(query)
    assert (e.value.failure_type, e.value.message, http_status(e.value)) == ("validation", message, 422)


def test_paging_defaults_to_the_first_page() -> None:
    assert page_of({}) == (1, 100)
    assert page_of({"page": "3", "page_size": "2000"}) == (3, 2000)


def test_every_order_filter_of_the_seed_becomes_a_condition() -> None:
    query = {
        "status": "charged,refunded",
        "created_from": "2016-01-01 00:00:00",
        "created_to": "2016-01-31",
        "merchant_order_id": "12345,123456",
        "card.type": "visa,mastercard",
        "card.subtype": "electron,maestro",
        "location.ip": "8.8.8.8,8.8.8.9",
        "client.name": "Smith",
        "client.email": "@yahoo.com",
        "issuer.country": "usa",
        "issuer.bin": "555555,411111",
        "issuer.title": "Credit_Union",
        "invoice_id": "741852963",
        "expand": "card",
    }
    q = orders_query(query)
    assert q.created_before == datetime(2016, 2, 1, tzinfo=UTC)  # a date alone as created_to: the whole day
    f = orders_filter(1, q)
    assert len(f.where) == 1 + 13
    assert "USA" in [a for arg in f.args if isinstance(arg, list) for a in arg]
    assert "%Credit\\_Union%" in f.args


def test_unknown_statuses_types_and_dates_are_validation_errors() -> None:
    for query in ({"status": "paid"}, {"created_from": "yesterday"}):
        with pytest.raises(OrderError) as e:
            orders_query(query)
        assert e.value.failure_type == "validation" and error_body(e.value)["errors"]
    for query in ({"type": "rebill"}, {"status": "pending"}):
        with pytest.raises(OrderError):
            operations_query(query)
    f = operations_filter(1, operations_query({"status": "error", "type": "charge,refund"}))
    assert f.args == [1, ["error"], ["charge", "refund"]]
