"""An invoice's cart (seeds/000 "Adding a shopping cart to invoice"): line items checked in minor units.

A line has a name, a quantity (up to 3 decimals: 1.5 L), a unit price and a total; the total must be
exactly price times quantity in the currency's minor units (an amount that would need a fraction of a cent is
refused, not rounded), and the lines' totals must add up to the invoice's amount. The same check serves
the API's ``cart`` and the CSV import (:func:`parse_csv`: bad rows named by their line, nothing kept
from a file with one).

>>> line, errors = cart_line({"name": "Tea", "quantity": 3, "price": "2.50"}, "USD")
>>> (line.price, line.amount, errors)
(250, 750, {})
>>> cart_line({"name": "Tea", "quantity": "0.5", "price": "0.05", "amount": "0.03"}, "USD")[1]
{'amount': 'This value should be price times quantity, which is not a whole number of minor units (0.025).'}
>>> rows, bad = parse_csv("name,quantity,price\\nTea,2,1.50\\nCake,x,3\\n", "USD")
>>> bad
{'line 3.quantity': 'This value should be a number greater than 0, with at most 3 decimals.'}
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from switch.errors import TranslationError
from switch.money import from_minor, to_minor

__all__ = ["MAX_LINES", "CartLine", "cart_line", "check_cart", "parse_csv"]

MAX_LINES = 200  # lines of one cart (a mail shows them all)
_TEXT = {"name": 255, "article": 64, "measure": 16}
_MAX_QUANTITY = Decimal(1_000_000)
_CSV_COLUMNS = ("name", "quantity", "price", "amount", "article", "measure")


@dataclass(frozen=True, slots=True)
class CartLine:
    name: str
    quantity: Decimal
    price: int  # minor units per unit
    amount: int  # minor units: price times quantity, exactly
    article: str | None = None  # the vendor code
    measure: str | None = None  # "pcs", "L", ...

    def stored(self) -> dict[str, Any]:
        """As kept in payment_invoices.cart (027): minor units, the quantity as a decimal string."""
        out: dict[str, Any] = {"name": self.name, "quantity": str(self.quantity), "price": self.price}
        out["amount"] = self.amount
        out.update({k: v for k, v in (("article", self.article), ("measure", self.measure)) if v is not None})
        return out

    @classmethod
    def from_stored(cls, d: Mapping[str, Any]) -> CartLine:
        return cls(d["name"], Decimal(d["quantity"]), d["price"], d["amount"], d.get("article"), d.get("measure"))

    def shown(self, currency: str) -> dict[str, Any]:
        """Decimal strings in the currency (the API and the mail render them)."""
        return {**self.stored(), "price": from_minor(self.price, currency), "amount": from_minor(self.amount, currency)}


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        return None  # floats never reach here (the JSON reader gives Decimals); a bool is not a number
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _money(value: Any, currency: str) -> int | None:
    d = _decimal(value)
    if d is None or d < 0:
        return None
    try:
        return to_minor(d, currency)
    except (TranslationError, ValueError):
        return None


def cart_line(raw: Mapping[str, Any], currency: str) -> tuple[CartLine | None, dict[str, str]]:
    """One line, or the problems with it by field (``name``, ``quantity``, ``price``, ``amount``, ...)."""
    errors: dict[str, str] = {}
    texts: dict[str, str | None] = {}
    for key, limit in _TEXT.items():
        value = raw.get(key)
        if value in (None, "") and key != "name":
            texts[key] = None
        elif not isinstance(value, str) or not value.strip() or len(value) > limit or "\n" in value:
            errors[key] = f"This value should be a line of text of 1 to {limit} characters."
        else:
            texts[key] = value.strip()
    quantity = _decimal(raw.get("quantity"))
    if quantity is None or not 0 < quantity <= _MAX_QUANTITY or quantity.as_tuple().exponent < -3:  # type: ignore[operator]
        errors["quantity"] = "This value should be a number greater than 0, with at most 3 decimals."
        quantity = None
    price = _money(raw.get("price"), currency)
    if price is None:
        errors["price"] = f"This value should be an amount of {currency} of at least 0."
    amount = None
    if quantity is not None and price is not None:
        exact = price * quantity
        given = raw.get("amount")
        if exact != exact.to_integral_value():
            shown = (exact / 10 ** Decimal(len(from_minor(1, currency).partition(".")[2]))).normalize()
            errors["amount"] = (
                f"This value should be price times quantity, which is not a whole number of minor units ({shown:f})."
            )
        elif given not in (None, "") and _money(given, currency) != int(exact):
            errors["amount"] = f"This value should be price times quantity = {from_minor(int(exact), currency)}."
        else:
            amount = int(exact)
    if errors or quantity is None or price is None or amount is None:
        return None, errors
    name = texts["name"]
    assert name is not None
    return CartLine(name, quantity.normalize(), price, amount, texts.get("article"), texts.get("measure")), {}


def check_cart(raw: Any, currency: str, amount: int | None) -> tuple[list[CartLine], dict[str, str]]:
    """The API's ``cart`` (a list of line objects): its lines, or the problems keyed ``cart[i].field`` (from 0),
    and ``cart`` when the totals do not add up to ``amount`` (None: the amount is the cart's total)."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_LINES:
        return [], {"cart": f"This value should be a list of 1 to {MAX_LINES} line items."}
    lines: list[CartLine] = []
    errors: dict[str, str] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            errors[f"cart[{i}]"] = "This value should be an object."
            continue
        line, problems = cart_line(item, currency)
        errors.update({f"cart[{i}].{k}": v for k, v in problems.items()})
        if line is not None:
            lines.append(line)
    if not errors and amount is not None:
        total = sum(line.amount for line in lines)
        if total != amount:
            errors["cart"] = (
                f"The lines add up to {from_minor(total, currency)}, not the amount {from_minor(amount, currency)}."
            )
    return lines, errors


def parse_csv(text: str, currency: str) -> tuple[list[CartLine], dict[str, str]]:
    """A CSV of cart lines (a header row naming the columns ``name``, ``quantity``, ``price`` and optionally
    ``amount``, ``article``, ``measure``; comma or semicolon separated): all its lines, or every problem keyed
    ``line N.field`` by the line of the file it is on (the header is line 1). Empty lines are skipped."""
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    errors: dict[str, str] = {}
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as e:
        return [], {"line 1": f"This line is not CSV: {e}."}
    missing = [c for c in ("name", "quantity", "price") if c not in header]
    unknown = [c for c in header if c not in _CSV_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        want = ", ".join(_CSV_COLUMNS)
        return [], {
            "line 1": f"The header should name the columns name, quantity, price (and maybe amount, article, "
            f"measure), each once: {want}."
        }
    lines: list[CartLine] = []
    start = reader.line_num
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            errors[f"line {start}"] = f"This line is not CSV: {e}."
            break  # the reader cannot say where the next row begins
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            errors[f"line {start}"] = f"This line has {len(row)} fields, the header {len(header)}."
            continue
        line, problems = cart_line(dict(zip(header, row, strict=True)), currency)
        errors.update({f"line {start}.{k}": v for k, v in problems.items()})
        if line is not None:
            lines.append(line)
    if not errors and not 1 <= len(lines) <= MAX_LINES:
        errors["file"] = f"The file should hold 1 to {MAX_LINES} lines."
    return ([] if errors else lines), errors
