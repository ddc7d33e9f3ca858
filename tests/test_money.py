"""Currencies and exact minor-unit conversion (switch.money)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import SCHEMAS_DIR
from switch.errors import TranslationError
from switch.money import (
    MAX_MINOR,
    Currency,
    InvalidAmount,
    UnknownCurrency,
    currencies,
    currency,
    from_minor,
    to_minor,
)

ALL = sorted(set(currencies().values()), key=lambda c: c.alpha)
USD, JPY, KWD = currency("USD"), currency("JPY"), currency("KWD")


# -- the table ----------------------------------------------------------------


def test_table_lists_the_active_currencies_once_each() -> None:
    with open(SCHEMAS_DIR / "currencies.json", encoding="utf-8") as f:
        rows = json.load(f)["currencies"]
    assert len(rows) >= 150
    numerics = [r["numeric"] for r in rows.values()]
    assert len(numerics) == len(set(numerics))
    for alpha, row in rows.items():
        assert len(alpha) == 3 and alpha.isascii() and alpha.isupper()
        assert len(row["numeric"]) == 3 and row["numeric"].isdigit()
        assert row["exponent"] in (0, 2, 3, 4)


@pytest.mark.parametrize(
    ("alpha", "numeric", "exponent"),
    [
        ("USD", "840", 2),
        ("EUR", "978", 2),
        ("GBP", "826", 2),
        ("RUB", "643", 2),
        ("CHF", "756", 2),
        ("CNY", "156", 2),
        ("ALL", "008", 2),
        ("AUD", "036", 2),
        ("JPY", "392", 0),
        ("KRW", "410", 0),
        ("ISK", "352", 0),
        ("VND", "704", 0),
        ("CLP", "152", 0),
        ("XOF", "952", 0),
        ("KWD", "414", 3),
        ("BHD", "048", 3),
        ("JOD", "400", 3),
        ("OMR", "512", 3),
        ("TND", "788", 3),
        ("IQD", "368", 3),
        ("LYD", "434", 3),
        ("CLF", "990", 4),
    ],
)
def test_currency_is_found_by_alpha_and_by_numeric_code(alpha: str, numeric: str, exponent: int) -> None:
    expected = Currency(alpha, numeric, exponent)
    assert currency(alpha) == expected
    assert currency(numeric) == expected
    assert currency(alpha.lower()) == expected


def test_currency_passes_a_currency_through() -> None:
    assert currency(USD) is USD


@pytest.mark.parametrize("code", ["XXX", "US", "USDX", "", "000", "84", "HRK", "XAU", " USD"])
def test_unknown_currency_is_a_typed_translation_error(code: str) -> None:
    with pytest.raises(UnknownCurrency) as exc:
        currency(code)
    assert isinstance(exc.value, TranslationError)
    assert isinstance(exc.value, LookupError)


# -- to_minor -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "cur", "units"),
    [
        ("9.99", USD, 999),
        ("0", USD, 0),
        ("0.00", USD, 0),
        ("0.01", USD, 1),
        ("9.9", USD, 990),
        ("9.990", USD, 999),
        ("1213.00", USD, 121300),
        ("9999999999.99", USD, MAX_MINOR),
        ("1000", JPY, 1000),
        ("1000.0", JPY, 1000),
        ("999999999999", JPY, MAX_MINOR),
        ("1.234", KWD, 1234),
        ("1", KWD, 1000),
        ("0.5", KWD, 500),
        ("0.001", KWD, 1),
        (Decimal("12.50"), USD, 1250),
        (Decimal("1E+2"), USD, 10000),
        (Decimal("-0"), USD, 0),
        (7, "EUR", 700),
        (7, JPY, 7),
        ("00012.30", "840", 1230),
    ],
)
def test_to_minor_is_exact(amount: str | Decimal | int, cur: Currency | str, units: int) -> None:
    assert to_minor(amount, cur) == units


@pytest.mark.parametrize(
    ("amount", "cur"),
    [
        ("9.999", USD),
        ("1.5", JPY),
        ("0.1", JPY),
        ("1.2345", KWD),
        ("-1", USD),
        ("-0.01", USD),
        (Decimal("-1"), USD),
        (-5, USD),
        ("abc", USD),
        ("", USD),
        (" 1", USD),
        ("1 ", USD),
        ("1e2", USD),
        ("1.", USD),
        (".5", USD),
        ("+1", USD),
        ("1_000", USD),
        ("1,00", USD),
        ("NaN", USD),
        ("Infinity", USD),
        ("\u0661\u0662", USD),  # Arabic-Indic digits pass str.isdigit, not us
        (Decimal("NaN"), USD),
        (Decimal("sNaN"), USD),
        (Decimal("Infinity"), USD),
        ("10000000000.00", USD),
        ("1000000000000", JPY),
        (Decimal("1E+12"), JPY),
        ("1000000000", KWD),
        ("1" + "0" * 5000, USD),
        ("0." + "0" * 5000 + "1", USD),
    ],
)
def test_to_minor_refuses_what_de4_cannot_carry_exactly(amount: str | Decimal | int, cur: Currency) -> None:
    with pytest.raises(InvalidAmount):
        to_minor(amount, cur)


@pytest.mark.parametrize("amount", [9.99, 1.0, True, None, b"1"])
def test_to_minor_refuses_floats_and_other_types(amount: object) -> None:
    with pytest.raises(InvalidAmount):
        to_minor(amount, USD)  # type: ignore[arg-type]


def test_to_minor_names_the_currency_and_its_exponent() -> None:
    with pytest.raises(InvalidAmount, match=r"more decimals than JPY allows \(0\)"):
        to_minor("1.5", JPY)


def test_to_minor_with_unknown_currency_raises_unknown_currency() -> None:
    with pytest.raises(UnknownCurrency):
        to_minor("1.00", "ZZZ")


def test_to_minor_takes_currency_by_keyword() -> None:
    assert to_minor("1.00", currency=USD) == 100


# -- from_minor ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("units", "cur", "text"),
    [
        (999, USD, "9.99"),
        (5, USD, "0.05"),
        (0, USD, "0.00"),
        (100, USD, "1.00"),
        (MAX_MINOR, USD, "9999999999.99"),
        (-999, USD, "-9.99"),
        (1000, JPY, "1000"),
        (0, JPY, "0"),
        (1234, KWD, "1.234"),
        (1, KWD, "0.001"),
        (1, "CLF", "0.0001"),
    ],
)
def test_from_minor_formats_with_the_currency_exponent(units: int, cur: Currency | str, text: str) -> None:
    assert from_minor(units, cur) == text


@pytest.mark.parametrize("units", [9.99, True, "999", Decimal(1)])
def test_from_minor_wants_an_int(units: object) -> None:
    with pytest.raises(TypeError):
        from_minor(units, USD)  # type: ignore[arg-type]


# -- properties ---------------------------------------------------------------


@given(cur=st.sampled_from(ALL), units=st.integers(min_value=0, max_value=MAX_MINOR))
def test_minor_units_survive_a_trip_through_the_decimal_string(cur: Currency, units: int) -> None:
    assert to_minor(from_minor(units, cur), cur) == units


@given(data=st.data(), cur=st.sampled_from(ALL))
def test_decimals_within_the_exponent_survive_a_trip_through_minor_units(data: st.DataObject, cur: Currency) -> None:
    top = Decimal(MAX_MINOR).scaleb(-cur.exponent)
    d = data.draw(st.decimals(min_value=0, max_value=top, places=cur.exponent, allow_nan=False, allow_infinity=False))
    units = to_minor(d, cur)
    assert Decimal(from_minor(units, cur)) == d
    assert to_minor(str(d), cur) == units or "E" in str(d)


@given(text=st.text(max_size=40))
def test_to_minor_on_any_text_returns_units_or_raises_invalid_amount(text: str) -> None:
    try:
        units = to_minor(text, USD)
    except InvalidAmount:
        return
    assert 0 <= units <= MAX_MINOR
