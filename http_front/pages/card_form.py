"""The card form of the payment page, checked on the server (the page's script checks the same as you type).

Fields: ``number`` (cc-number), ``exp_month`` (cc-exp-month), ``exp_year``
(cc-exp-year, YY or YYYY), ``cvc`` (cc-csc), ``holder`` (cc-name). Errors are
message keys of :mod:`http_front.pages.i18n`, per field. Nothing here logs or
echoes the card number or the code.

>>> form, errors = read_card({"number": "4111 1111 1111 1111", "exp_month": "12", "exp_year": "30",
...                           "cvc": "123", "holder": "JOHN SMITH"}, today=(2026, 1))
>>> errors, form.card.expiry if form else None
({}, '3012')
>>> read_card({"number": "4111111111111112", "exp_month": "1", "exp_year": "2025", "cvc": "1", "holder": ""},
...           today=(2026, 1))[1]
{'number': 'number_invalid', 'exp': 'exp_past', 'cvc': 'cvc_invalid', 'holder': 'holder_invalid'}

A project that lets the cardholder leave the code or the name out (``cvv_required``, ``holder_required``
off): an empty one is no error and the card has none (no DE 120 goes out, as for the REST API); one given
is checked all the same.

>>> form, errors = read_card({"number": "4111111111111111", "exp_month": "12", "exp_year": "30", "cvc": " ",
...                           "holder": ""}, today=(2026, 1), cvv_required=False, holder_required=False)
>>> errors, form.card.cvv, form.card.holder if form else None
({}, None, None)
>>> read_card({"number": "4111111111111111", "exp_month": "12", "exp_year": "30", "cvc": "12", "holder": "J"},
...           today=(2026, 1), cvv_required=False, holder_required=False)[1]
{'cvc': 'cvc_invalid', 'holder': 'holder_invalid'}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from switch.translate import Card
from switch.wire.cards import luhn_ok

__all__ = ["FIELDS", "CardForm", "read_card"]

FIELDS = ("number", "exp", "cvc", "holder")  # where an error is shown (month and year share "exp")

_SEPARATORS = re.compile(r"[ -]")
_HOLDER = re.compile(r"[ -~]{2,40}")


@dataclass(frozen=True, slots=True, repr=False)
class CardForm:
    """A card the form gave, checked; ``repr`` never shows it."""

    card: Card

    def __repr__(self) -> str:
        return f"CardForm({self.card!r})"


def _digits(value: str, lo: int, hi: int) -> bool:
    return value.isascii() and value.isdigit() and lo <= len(value) <= hi


def read_card(
    form: Mapping[str, str],
    *,
    today: tuple[int, int] | None = None,
    cvv_required: bool = True,
    holder_required: bool = True,
) -> tuple[CardForm | None, dict[str, str]]:
    """The card of a submitted form, or the error key of each field that is wrong (``cvv_required``,
    ``holder_required`` off: that field may be empty)."""
    errors: dict[str, str] = {}
    number = _SEPARATORS.sub("", form.get("number", "").strip())
    if not number:
        errors["number"] = "number_required"
    elif not (_digits(number, 12, 19) and luhn_ok(number)):
        errors["number"] = "number_invalid"
    month_s, year_s = form.get("exp_month", "").strip(), form.get("exp_year", "").strip()
    month = int(month_s) if _digits(month_s, 1, 2) else 0
    year = int(year_s) if _digits(year_s, 2, 4) and len(year_s) != 3 else -1
    if year >= 0 and year < 100:
        year += 2000
    if not (1 <= month <= 12 and 2000 <= year <= 2099):
        errors["exp"] = "exp_invalid"
    else:
        now = today or (lambda t: (t.year, t.month))(datetime.now(UTC))
        if (year, month) < now:  # a card is good through the last day of its month
            errors["exp"] = "exp_past"
    cvc = form.get("cvc", "").strip()
    if (cvc or cvv_required) and not _digits(cvc, 3, 4):
        errors["cvc"] = "cvc_invalid"
    holder = " ".join(form.get("holder", "").split())
    if (holder or holder_required) and not _HOLDER.fullmatch(holder):
        errors["holder"] = "holder_invalid"
    if errors:
        return None, errors
    card = Card(number, expiry_month=month, expiry_year=year, cvv=cvc or None, holder=holder or None)
    return CardForm(card), {}
