"""Cash flow of one operation: what it does to the merchant's money.

Every figure is in minor units of the operation's currency and obeys
``incoming = amount - fee`` and ``receivable = incoming - reserve``. Rates
are percentages (``Decimal``); each product is rounded half-up to the
currency's minor unit (its exponent), the fixed fee added after rounding.

By type (a ``failure``/``error`` operation moved no money: all zero):

- **authorize**: no money moves yet, but the reserve is taken on the
  authorized amount: ``amount 0, fee 0, incoming 0, reserve R,
  receivable -R`` (seeds/003: 1213.00 at 3 % -> reserve 36.39, receivable -36.39).
- **charge** of A: ``amount A, fee A*fee% + fixed, incoming A - fee,
  reserve A*reserve%, receivable incoming - reserve`` (seeds/003: 1213.00
  at 1 % and 3 % -> fee 12.13, incoming 1200.87, reserve 36.39,
  receivable 1164.48; 9.99 at 3 % -> fee 0.30, incoming 9.69).
- **refund** of A: the money goes back, without a fee and without a
  reserve of its own: ``amount -A, fee 0, incoming -A, reserve 0,
  receivable -A`` (seeds/003 refund examples).
- **reverse**: no money moved, so none moves back; the reserve the
  authorization took is released: ``amount 0, fee 0, incoming 0,
  reserve -R, receivable +R``, so authorize + reverse sum to zero.
- **credit** (OCT) of A: a payout, reserved like a sale, no fee:
  ``amount -A, fee 0, incoming -A, reserve A*reserve%, receivable -A - reserve``
  (seeds/003: 99.99 at 3 % -> reserve 3.00, receivable -102.99).

>>> usd = Rates(fee_rate=Decimal("1"), reserve_rate=Decimal("3"))
>>> for_operation(OperationType.CHARGE, 121300, "USD", usd).to_json()
{'amount': 121300, 'fee': 1213, 'incoming': 120087, 'reserve': 3639, 'receivable': 116448, 'currency': 'USD'}
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from switch.orders.model import Cashflow, OperationStatus, OperationType

__all__ = ["Rates", "for_operation", "percent_of", "zero"]

_ONE = Decimal(1)
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Rates:
    """A project's tariff: ``fee_rate`` and ``reserve_rate`` in percent, ``fee_fixed`` in minor units."""

    fee_rate: Decimal = Decimal(0)
    fee_fixed: int = 0
    reserve_rate: Decimal = Decimal(0)


def percent_of(amount: int, rate: Decimal) -> int:
    """``amount * rate / 100`` in minor units, rounded half-up.

    >>> percent_of(999, Decimal("3")), percent_of(199, Decimal("3")), percent_of(9999, Decimal("3"))
    (30, 6, 300)
    """
    if not rate:
        return 0
    return int((Decimal(amount) * rate / _HUNDRED).quantize(_ONE, rounding=ROUND_HALF_UP))


def zero(currency: str) -> Cashflow:
    return Cashflow(0, 0, 0, 0, 0, currency)


def _flow(amount: int, fee: int, reserve: int, currency: str) -> Cashflow:
    incoming = amount - fee
    return Cashflow(amount, fee, incoming, reserve, incoming - reserve, currency)


def for_operation(
    kind: OperationType,
    amount: int,
    currency: str,
    rates: Rates,
    *,
    status: OperationStatus = OperationStatus.SUCCESS,
    released_reserve: int = 0,
) -> Cashflow:
    """The cash flow of an operation of ``kind`` over ``amount`` minor units.

    ``released_reserve`` is, for a reverse, the reserve its authorization took.
    """
    if status is not OperationStatus.SUCCESS:
        return zero(currency)
    if kind is OperationType.AUTHORIZE:
        return _flow(0, 0, percent_of(amount, rates.reserve_rate), currency)
    if kind is OperationType.CHARGE:
        fee = percent_of(amount, rates.fee_rate) + rates.fee_fixed
        return _flow(amount, fee, percent_of(amount, rates.reserve_rate), currency)
    if kind is OperationType.REFUND:
        return _flow(-amount, 0, 0, currency)
    if kind is OperationType.REVERSE:
        return _flow(0, 0, -released_reserve, currency)
    if kind is OperationType.CREDIT:
        return _flow(-amount, 0, percent_of(amount, rates.reserve_rate), currency)
    raise ValueError(f"no cash flow rule for {kind}")
