"""Request-body validation of the REST front: every error of a body in one 422, in the seed's shape."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from http_front.body import parse_json
from http_front.config import FrontConfig
from http_front.failures import FieldError, ValidationFailed, failure_body
from http_front.validation import RequestSchemas

pytestmark = pytest.mark.timeout(30)

SCHEMAS = RequestSchemas.load(FrontConfig().schemas_dir)

# seeds/003, "Validation": the 422 answer to {"foo": "bar"} where only amount is required.
SEED_422 = (
    '{ "errors" : [ { "attribute" : "required", "details" : [ "(true)" ], "message" : "Required", "uri" : "#/amount" },'
    ' { "message" : "Unknown property", "uri" : "#/foo" } ],'
    ' "failure_message" : "Validation failed", "failure_type" : "validation", "order_id" : null }'
)

AUTHORIZE = {
    "amount": Decimal("9.99"),
    "card": {"cvv": "333", "expiration_month": 12, "expiration_year": 2030, "holder": "John Smith"},
    "location": {"ip": "6.6.6.6"},
    "pan": "4111111111111111",
}


def errors_of(name: str, body: Any, **kw: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationFailed) as info:
        SCHEMAS.check(name, body, **kw)
    assert info.value.status == 422 and info.value.failure_type == "validation"
    return [e.as_dict() for e in info.value.errors or ()]


def uris(name: str, body: Any, **kw: Any) -> list[str]:
    return [e["uri"] for e in errors_of(name, body, **kw)]


def authorize(**changes: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(AUTHORIZE, default=str), parse_float=Decimal)
    body["amount"] = AUTHORIZE["amount"]
    body.update(changes)
    return body


def test_every_request_body_has_a_schema() -> None:
    assert SCHEMAS.names == {
        "authorize",
        "charge",
        "reverse",
        "refund",
        "cancel",
        "rebill",
        "credit",
        "credit_order",
        "complete",
        "complete3d20",
        "resume",
        "create",
        "token_pay",
    }


def test_the_seeds_unknown_property_example_is_reproduced_byte_for_byte_in_content() -> None:
    # POST /orders/:id/credit requires only amount, like the seed's /orders/create.
    errs = errors_of("credit_order", {"foo": "bar"})
    body = failure_body("validation", "Validation failed", errors=[FieldError(**_args(e)) for e in errs])
    assert orjson.loads(body) == json.loads(SEED_422)
    assert body == orjson.dumps(json.loads(SEED_422), option=orjson.OPT_SORT_KEYS)


def _args(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "uri": e["uri"],
        "message": e["message"],
        "attribute": e.get("attribute"),
        "details": tuple(e["details"]) if "details" in e else None,
    }


def test_missing_required_and_unknown_properties_are_all_reported_at_every_level() -> None:
    errs = errors_of("authorize", {"foo": 1, "card": {"cvv": "123", "bar": 2}, "location": {}})
    assert [(e["uri"], e["message"]) for e in errs] == [
        ("#/amount", "Required"),
        ("#/pan", "Required"),
        ("#/foo", "Unknown property"),
        ("#/card/holder", "Required"),
        ("#/card/expiration_month", "Required"),
        ("#/card/expiration_year", "Required"),
        ("#/card/bar", "Unknown property"),
        ("#/location/ip", "Required"),
    ]
    assert all(e.get("details") == ["(true)"] for e in errs if e["message"] == "Required")
    assert all(set(e) == {"message", "uri"} for e in errs if e["message"] == "Unknown property")


def test_type_length_pattern_and_range_errors_name_the_keyword_and_its_value() -> None:
    errs = errors_of(
        "authorize",
        authorize(
            pan="41111",
            card={"cvv": 123, "holder": "J", "expiration_month": 13, "expiration_year": "20x"},
            description=["x"],
        ),
    )
    by_uri = {e["uri"]: e for e in errs}
    assert by_uri["#/pan"]["attribute"] == "pattern"
    assert by_uri["#/card/cvv"] == {
        "attribute": "type",
        "details": ["(string)"],
        "message": "Expected string - got number",
        "uri": "#/card/cvv",
    }
    assert by_uri["#/card/holder"]["attribute"] == "minLength"
    assert by_uri["#/card/holder"]["details"] == ["(2)"]
    assert by_uri["#/card/expiration_month"]["attribute"] == "maximum"
    assert by_uri["#/card/expiration_year"]["attribute"] == "pattern"
    assert by_uri["#/description"]["attribute"] == "type"


def test_error_messages_never_repeat_the_card_number() -> None:
    for pan in ("4111111111111111x", "41111111111111111111111", 4111111111111111):
        text = orjson.dumps(errors_of("authorize", authorize(pan=pan)))
        assert b"4111111111111111" not in text


@pytest.mark.parametrize(
    ("amount", "currency", "ok"),
    [
        ("9.99", "USD", "9.99"),
        (Decimal("9.99"), "USD", "9.99"),
        (Decimal("1E+2"), "USD", "100"),
        (7, "USD", "7"),
        ("1000", "JPY", "1000"),
        ("1.234", "KWD", "1.234"),
        ("0", "USD", "0"),  # a zero-amount authorization verifies the card
    ],
)
def test_amounts_become_canonical_decimal_strings(amount: Any, currency: str, ok: str) -> None:
    body = SCHEMAS.check("authorize", authorize(amount=amount, currency=currency))
    assert body["amount"] == ok
    assert body["currency"] == currency


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("9.999", "Too many decimal places for USD (at most 2)"),
        (Decimal("9.999"), "Too many decimal places for USD (at most 2)"),
        ("-1", "Invalid amount"),
        (Decimal("-1"), "Invalid amount"),
        ("1e3", "Invalid amount"),
        (" 1", "Invalid amount"),
        ("", "Invalid amount"),
        ("1000000000000", "Amount is too large"),
    ],
)
def test_bad_amounts_are_refused_with_a_reason(amount: Any, message: str) -> None:
    errs = errors_of("authorize", authorize(amount=amount, currency="USD"))
    assert errs == [{"attribute": "format", "details": ["(amount)"], "message": message, "uri": "#/amount"}]


def test_amount_precision_follows_the_projects_default_currency_when_the_body_names_none() -> None:
    assert SCHEMAS.check("authorize", authorize(amount="10"), default_currency="JPY")["amount"] == "10"
    assert uris("authorize", authorize(amount="10.5"), default_currency="JPY") == ["#/amount"]


def test_charge_refund_and_cancel_take_no_amount_or_a_positive_one() -> None:
    for name in ("charge", "refund", "cancel"):
        assert SCHEMAS.check(name, {}) == {}
        assert SCHEMAS.check(name, {"amount": Decimal("1.99")}) == {"amount": "1.99"}
        assert errors_of(name, {"amount": "0"})[0]["message"] == "Amount must be greater than zero"
        assert errors_of(name, {"amount": True})[0]["attribute"] == "type"
    assert SCHEMAS.check("reverse", {}) == {}
    assert errors_of("reverse", {"amount": 1}) == [{"message": "Unknown property", "uri": "#/amount"}]


def test_unknown_and_malformed_currencies_are_refused() -> None:
    assert errors_of("authorize", authorize(currency="XXY"))[0]["message"] == "Unknown currency"
    assert errors_of("authorize", authorize(currency="840"))[0]["message"] == "Invalid currency"
    assert SCHEMAS.check("authorize", authorize(currency="eur"))["currency"] == "EUR"


DD = "#/extra_fields/dynamic_descriptor"


@pytest.mark.parametrize(
    ("descriptor", "uri", "attribute"),
    [
        ({"merchant": "M" * 23, "city": "X", "country": "RU"}, f"{DD}/merchant", "maxLength"),
        ({"merchant": "M" * 22, "city": "C" * 16, "country": "RU"}, DD, "maxLength"),
        ({"merchant": "КНИГИ", "city": "Moscow", "country": "RU"}, f"{DD}/merchant", "pattern"),
        ({"merchant": "   ", "city": "Moscow", "country": "RU"}, f"{DD}/merchant", "pattern"),
        ({"merchant": "SHOP", "city": "Москва", "country": "RU"}, f"{DD}/city", "pattern"),
        ({"merchant": "SHOP", "city": "Moscow", "country": "RUS"}, f"{DD}/country", "pattern"),
        ({"merchant": "SHOP", "country": "RU"}, f"{DD}/city", "required"),
    ],
)
def test_dynamic_descriptor_length_and_character_rules_are_enforced(
    descriptor: dict[str, str], uri: str, attribute: str
) -> None:
    errs = errors_of("authorize", authorize(extra_fields={"dynamic_descriptor": descriptor}))
    assert [(e["uri"], e.get("attribute")) for e in errs] == [(uri, attribute)]


def test_dynamic_descriptor_at_the_limits_passes() -> None:
    dd = {"merchant": "BOOKSTORE LTD, INC.-22", "city": "C" * 15, "country": "RU"}
    assert len(dd["merchant"]) == 22
    body = SCHEMAS.check("authorize", authorize(extra_fields={"dynamic_descriptor": dd}))
    assert body["extra_fields"]["dynamic_descriptor"] == dd
    too_long = {"dynamic_descriptor": {**dd, "city": "C" * 16}}
    errs = errors_of("rebill", {"amount": "1", "cvv": "123", "extra_fields": too_long})
    assert errs[0]["message"] == "Combined length of merchant and city is too long: 38/37"


def test_custom_fields_take_at_most_ten_scalar_values() -> None:
    assert SCHEMAS.check("authorize", authorize(custom_fields={str(i): i for i in range(10)}))
    assert uris("authorize", authorize(custom_fields={str(i): i for i in range(11)})) == ["#/custom_fields"]
    assert uris("authorize", authorize(custom_fields={"a": {"nested": 1}})) == ["#/custom_fields/a"]


def test_the_seeds_example_bodies_pass() -> None:
    full = authorize(
        client={
            "address": "Main ave. 1",
            "city": "San Francisco",
            "country": "USA",
            "email": "foo@bar.com",
            "name": "John Smith",
            "phone": "+1 456 890",
            "state": "CA",
            "zip": "123456",
        },
        description="Book sale #453",
        merchant_order_id="5678",
        options={"force3d": 0, "return_url": "http://shop.com", "terminal": ""},
        segment="987654321",
    )
    assert SCHEMAS.check("authorize", full)["client"]["zip"] == "123456"
    assert SCHEMAS.check("authorize", authorize(options={"force3d": 1}))
    assert SCHEMAS.check("charge", {"amount": Decimal("1.99")}) == {"amount": "1.99"}
    assert SCHEMAS.check("rebill", {"amount": Decimal("9.99"), "cvv": "123"}) == {"amount": "9.99", "cvv": "123"}
    loc = {"ip": "8.8.8.8"}
    assert SCHEMAS.check("credit_order", {"amount": Decimal("9.99"), "currency": "USD", "location": loc})
    assert SCHEMAS.check("credit", {"amount": "99.99", "pan": "4111111111111111"})


def test_a_waived_requirement_is_not_reported() -> None:
    body = authorize(card={"expiration_month": 12, "expiration_year": 2030})
    assert uris("authorize", body) == ["#/card/cvv", "#/card/holder"]
    assert SCHEMAS.check("authorize", body, optional={"#/card/cvv", "#/card/holder"})


def test_a_body_that_is_not_an_object_is_one_type_error_at_the_root() -> None:
    for body, got in (([1], "array"), ("x", "string"), (3, "number"), (None, "null")):
        assert errors_of("charge", body) == [
            {"attribute": "type", "details": ["(object)"], "message": f"Expected object - got {got}", "uri": "#"}
        ]


def test_json_pointer_tokens_are_escaped() -> None:
    assert uris("charge", {"a/b~c": 1}) == ["#/a~1b~0c"]


def test_parse_json_keeps_the_digits_of_fractional_numbers() -> None:
    assert parse_json(b'{"amount": 9.999999999999999999}') == {"amount": Decimal("9.999999999999999999")}
    assert parse_json(b"") == {} and parse_json(b" \r\n") == {}


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe", b"[" * 100_000, b'{"a": 1' + b"1" * 5000 + b"}"],
)
def test_parse_json_refuses_what_is_not_json_with_a_422(raw: bytes) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_json(raw)
    assert info.value.status == 422
    assert (info.value.errors or [])[0].uri == "#"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.decimals(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(SCHEMAS.names)), body=_json)
def test_any_json_value_is_either_accepted_or_a_validation_failure(name: str, body: Any) -> None:
    try:
        out = SCHEMAS.check(name, body)
    except ValidationFailed as e:
        assert e.errors and all(err.uri.startswith("#") for err in e.errors)
    else:
        assert isinstance(out, dict)
        orjson.dumps(out)  # nothing left that the service's JSON columns could not hold


@settings(max_examples=100, deadline=None)
@given(
    amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999999999.99"), places=2),
    as_text=st.booleans(),
)
def test_any_two_decimal_amount_in_usd_survives_validation_exactly(amount: Decimal, as_text: bool) -> None:
    out = SCHEMAS.check("charge", {"amount": str(amount) if as_text else amount})
    assert Decimal(out["amount"]) == amount


def test_an_integer_beyond_64_bits_is_refused_as_malformed_json() -> None:
    from http_front.body import parse_json
    from http_front.failures import ValidationFailed

    assert parse_json(b'{"a": 18446744073709551615, "b": -9223372036854775808}')["a"] == 2**64 - 1
    with pytest.raises(ValidationFailed):
        parse_json(b'{"custom_fields": {"x": 18446744073709551616}}')
