"""Money: ISO 4217 currencies and exact decimal <-> minor-unit conversion.

Amounts travel as decimal strings on the REST API and as integer minor units
everywhere else (DE 4 is 12 digits of minor units of DE 49's currency). The
conversion is exact: an amount with more precision than the currency allows
is refused, never rounded. Decimal only, never float.

>>> usd, jpy, kwd = currency("USD"), currency("392"), currency("kwd")
>>> to_minor("9.99", usd), to_minor("1000", jpy), to_minor("1.234", kwd)
(999, 1000, 1234)
>>> from_minor(999, usd), from_minor(1000, jpy), from_minor(1234, kwd)
('9.99', '1000', '1.234')
>>> to_minor("9.999", usd)
Traceback (most recent call last):
...
switch.money.InvalidAmount: amount '9.999' has more decimals than USD allows (2)
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from schemas import SCHEMAS_DIR
from switch.errors import TranslationError

__all__ = [
    "Currency",
    "InvalidAmount",
    "MAX_MINOR",
    "decimal_of",
    "UnknownCurrency",
    "currencies",
    "currency",
    "from_minor",
    "to_minor",
]

# DE 4 is n12: the largest amount a message can carry, in minor units.
MAX_MINOR = 999_999_999_999

# Strict: ASCII digits, optional fraction. No sign, exponent, blanks or "_"
# (Decimal() would take all of those).
_AMOUNT_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


class UnknownCurrency(TranslationError, LookupError):
    """The code is not an active ISO 4217 currency of ``schemas/currencies.json``."""


class InvalidAmount(TranslationError):
    """An amount that is not an exact, non-negative value DE 4 can carry."""


@dataclass(frozen=True, slots=True)
class Currency:
    """One ISO 4217 currency: ``alpha`` ("USD"), ``numeric`` ("840", DE 49), ``exponent`` (minor digits)."""

    alpha: str
    numeric: str
    exponent: int


@functools.cache
def currencies() -> Mapping[str, Currency]:
    """Every known currency, keyed by alpha code and by numeric code (loaded once)."""
    with open(SCHEMAS_DIR / "currencies.json", encoding="utf-8") as f:
        doc = json.load(f)
    table: dict[str, Currency] = {}
    for alpha, row in doc["currencies"].items():
        cur = Currency(alpha=alpha, numeric=row["numeric"], exponent=int(row["exponent"]))
        table[alpha] = cur
        table[cur.numeric] = cur
    return table


def currency(code: str | Currency) -> Currency:
    """The currency named by an alpha ("USD", any case) or numeric ("840") code.

    >>> currency("978")
    Currency(alpha='EUR', numeric='978', exponent=2)
    """
    if isinstance(code, Currency):
        return code
    if isinstance(code, str):
        found = currencies().get(code.upper())
        if found is not None:
            return found
    raise UnknownCurrency(f"unknown currency {str(code)[:8]!r}")


# to_minor/from_minor name their parameter ``currency`` (callers may pass it by keyword),
# which shadows the function inside them.
_lookup = currency


def decimal_of(amount: str | Decimal | int) -> Decimal:
    """``amount`` as a finite Decimal: the checks of :func:`to_minor` that need no currency.

    >>> decimal_of("9.99"), decimal_of(7)
    (Decimal('9.99'), Decimal('7'))
    """
    if isinstance(amount, str):
        if _AMOUNT_RE.fullmatch(amount) is None:
            raise InvalidAmount(f"amount {amount[:32]!r} is not a plain decimal number")
        value = Decimal(amount)
    elif isinstance(amount, Decimal):
        value = amount
    elif isinstance(amount, int) and not isinstance(amount, bool):
        value = Decimal(amount)
    else:
        # Floats cannot hold 9.99 exactly; making the caller choose avoids a silent cent off.
        raise InvalidAmount(f"amount must be a decimal string, Decimal or int, not {type(amount).__name__}")
    if not value.is_finite():
        raise InvalidAmount("amount must be a finite number")
    return value


def to_minor(amount: str | Decimal | int, currency: Currency | str) -> int:
    """Exact minor units of ``amount`` (a decimal string like "9.99", a Decimal or an int).

    Trailing zeros beyond the exponent are fine ("9.990" USD is 999); a
    non-zero digit beyond it is refused, as are negatives, non-numbers,
    floats and amounts over DE 4's 12 digits.

    >>> to_minor(Decimal("12.5"), "KWD"), to_minor(7, "EUR")
    (12500, 700)
    """
    c = _lookup(currency)
    value = decimal_of(amount)
    sign, digits, exp = value.as_tuple()
    if not isinstance(exp, int):  # pragma: no cover - is_finite() above
        raise InvalidAmount("amount must be a finite number")
    if sign and any(digits):
        raise InvalidAmount("amount must not be negative")
    # Integer arithmetic on the coefficient: no context precision, no rounding.
    n = len(digits)
    while n > 1 and digits[n - 1] == 0:
        n -= 1
    scale = exp + (len(digits) - n) + c.exponent
    if n == 1 and digits[0] == 0:
        return 0
    if scale < 0:
        raise InvalidAmount(f"amount {_show(amount)} has more decimals than {c.alpha} allows ({c.exponent})")
    if n + scale > 12:
        raise InvalidAmount(f"amount {_show(amount)} {c.alpha} is over the 12-digit maximum of DE 4")
    coefficient = 0
    for d in digits[:n]:
        coefficient = coefficient * 10 + d
    return coefficient * 10**scale


def from_minor(units: int, currency: Currency | str) -> str:
    """The decimal string of ``units`` minor units, with exactly ``exponent`` decimals.

    Negative values keep their sign (ledger cash flows show refunds as "-9.99").

    >>> from_minor(5, "USD"), from_minor(-999, "USD"), from_minor(0, "JPY"), from_minor(1, "CLF")
    ('0.05', '-9.99', '0', '0.0001')
    """
    if not isinstance(units, int) or isinstance(units, bool):
        raise TypeError(f"minor units must be an int, not {type(units).__name__}")
    c = _lookup(currency)
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**c.exponent)
    if c.exponent == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{c.exponent}d}"


def _show(amount: object) -> str:
    return repr(str(amount)[:32])
