"""``GET /exchange_rates/``: rates by date or period, from ``schemas/exchange_rates.json``.

- ``date=D``: the rates in force on D, i.e. of the latest published date
  on or before D (none are published on weekends); ``[]`` before the first;
- ``date_from``/``date_to``: every published date in the period, each row
  with its ``date`` (either end may be left out);
- neither: the rates in force today;
- ``date`` with either of the others: 422, as the seed says.

>>> r = ExchangeRates({"2021-06-29": [{"from": "EUR", "to": "USD", "rate": "1.189400"}]})
>>> r.on(date(2021, 7, 3))
[{'from': 'EUR', 'rate': '1.189400', 'to': 'USD'}]
>>> r.on(date(2021, 6, 28))
[]
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from http_front.failures import FieldError, ValidationFailed

__all__ = ["ExchangeRates", "parse_rates_query"]

_RATE_RE = re.compile(r"[0-9]+\.[0-9]{6}")
_CODE_RE = re.compile(r"[A-Z]{3}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PARAMS = frozenset({"date", "date_from", "date_to"})


class ExchangeRates:
    """Rates per date; rows sorted by (from, to); checked when loaded."""

    def __init__(self, table: Mapping[str, Sequence[Mapping[str, str]]]) -> None:
        days: dict[date, list[dict[str, str]]] = {}
        for day, rows in table.items():
            d = date.fromisoformat(day)
            out: list[dict[str, str]] = []
            for row in rows:
                src, dst, rate = row["from"], row["to"], row["rate"]
                if not (_CODE_RE.fullmatch(src) and _CODE_RE.fullmatch(dst) and _RATE_RE.fullmatch(rate)):
                    raise ValueError(f"exchange rates of {day}: bad row {row!r}")
                out.append({"from": src, "rate": rate, "to": dst})
            days[d] = sorted(out, key=lambda r: (r["from"], r["to"]))
        self._dates = sorted(days)
        self._rows = days

    @classmethod
    def load(cls, path: Path) -> ExchangeRates:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        return cls(doc["rates"])

    def on(self, day: date) -> list[dict[str, str]]:
        i = bisect.bisect_right(self._dates, day)
        return [dict(r) for r in self._rows[self._dates[i - 1]]] if i else []

    def between(self, first: date | None, last: date | None) -> list[dict[str, str]]:
        lo = 0 if first is None else bisect.bisect_left(self._dates, first)
        hi = len(self._dates) if last is None else bisect.bisect_right(self._dates, last)
        out: list[dict[str, str]] = []
        for d in self._dates[lo:hi]:
            out.extend({"date": d.isoformat(), **r} for r in self._rows[d])
        return out


def _date(query: Mapping[str, str], name: str, errors: list[FieldError]) -> date | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        if _DATE_RE.fullmatch(raw) is None:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        errors.append(FieldError(f"#/{name}", "Invalid date", "format", ("(date)",)))
        return None


def parse_rates_query(query: Mapping[str, str], rates: ExchangeRates, *, max_days: int) -> dict[str, Any]:
    """The response body for ``query``, or ``ValidationFailed`` listing every problem.

    An open end of a period is today (``date_to``) or ``max_days`` before
    the other end (``date_from``).
    """
    errors = [FieldError(f"#/{k}", "Unknown property") for k in query if k not in _PARAMS]
    day = _date(query, "date", errors)
    first = _date(query, "date_from", errors)
    last = _date(query, "date_to", errors)
    ranged = "date_from" in query or "date_to" in query
    if "date" in query and ranged:
        errors.append(FieldError("#/date", "Filters by date and date period cannot be used at the same time"))
    if errors:
        raise ValidationFailed(errors)
    today = datetime.now(UTC).date()
    if not ranged:
        return {"exchange_rates": rates.on(day or today)}
    last = last or today
    first = first or last - timedelta(days=max_days - 1)
    if first > last:
        raise ValidationFailed([FieldError("#/date_from", "date_from is after date_to")])
    if (last - first).days >= max_days:
        raise ValidationFailed([FieldError("#/date_to", f"Period is longer than {max_days} days")])
    return {"exchange_rates": rates.between(first, last)}
