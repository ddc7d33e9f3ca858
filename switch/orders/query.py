"""The query strings of ``GET /orders/`` and ``GET /operations/`` as SQL filters and a page.

Every filter of seeds/003: lists are comma-separated and match exactly
(``status=charged,refunded``); ``client.name``, ``client.email`` and
``issuer.title`` find a part, case-insensitively; ``created_from`` and
``created_to`` take ``YYYY-MM-DD HH:MM:SS`` (UTC) or ``YYYY-MM-DD``, both
bounds inclusive (a date alone as ``created_to`` means the whole day).
``invoice_id`` (``extra_fields.attributes.invoice_id``) filters too.
``page`` counts from 1 (default 1); ``page_size`` is 1..2000 (default
100). Names the doc does not list (``expand`` among them) are left to the
caller.

>>> p, f = orders_query(7, {"status": "charged,refunded", "client.email": "@yahoo.com", "page": "2"})
>>> p, f.args
((2, 100), [7, ['charged', 'refunded'], '%@yahoo.com%'])
>>> f.sql
"project_id = $1 AND status = ANY($2::text[]) AND client ->> 'email' ILIKE $3"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from switch.orders.errors import OrderError
from switch.orders.model import OperationStatus, OperationType, OrderStatus
from switch.orders.repo import SqlFilter

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "operations_query", "orders_query", "page_of"]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 2000  # seeds/003, Fetching data: "limited to 2000 per page"

_ORDER_STATUSES = frozenset(s.value for s in OrderStatus)
_OPERATION_STATUSES = frozenset(s.value for s in OperationStatus if s.visible)
_OPERATION_TYPES = frozenset(t.value for t in OperationType)


def page_of(query: Mapping[str, str]) -> tuple[int, int]:
    """``(page, page_size)``; a bad value is the doc's validation error ``Invalid page`` / ``Invalid page size``."""
    page = _positive(query.get("page"), 1, None)
    if page is None:
        raise OrderError("validation", "Invalid page")
    size = _positive(query.get("page_size"), DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if size is None:
        raise OrderError("validation", "Invalid page size")
    return page, size


def _positive(raw: str | None, default: int, highest: int | None) -> int | None:
    if raw is None or raw == "":
        return default
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        return None
    n = int(raw)
    if n < 1 or (highest is not None and n > highest):
        return None
    return n


def _items(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _like(raw: str) -> str:
    """``%raw%`` with LIKE's wildcards in ``raw`` taken literally."""
    escaped = raw.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _time(raw: str, *, upper: bool) -> datetime | None:
    """The bound as an exclusive upper (``upper``) or inclusive lower limit."""
    raw = raw.strip()
    for fmt, step in (("%Y-%m-%d %H:%M:%S", timedelta(seconds=1)), ("%Y-%m-%d", timedelta(days=1))):
        try:
            t = datetime.strptime(raw, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
        return t + step if upper else t
    return None


class _Builder:
    def __init__(self, project_id: int, query: Mapping[str, str]) -> None:
        self.flt = SqlFilter(project_id)
        self.query = query
        self.errors: list[dict[str, Any]] = []

    def _raw(self, name: str) -> str | None:
        raw = self.query.get(name)
        return raw if raw is not None and raw.strip() else None

    def one_of(
        self, name: str, column: str, allowed: frozenset[str] | None = None, norm: Callable[[str], str] = str
    ) -> None:
        raw = self._raw(name)
        if raw is None:
            return
        values = [norm(v) for v in _items(raw)]
        if allowed is not None:
            bad = [v for v in values if v not in allowed]
            if bad:
                self.errors.append({"message": f"Invalid value: {', '.join(bad)[:64]}", "uri": f"#/{name}"})
                return
        self.flt.add(f"{column} = ANY({{}}::text[])", values)

    def part(self, name: str, column: str) -> None:
        raw = self._raw(name)
        if raw is not None:
            self.flt.add(f"{column} ILIKE {{}}", _like(raw.strip()))

    def created(self) -> None:
        for name, op, upper in (("created_from", ">=", False), ("created_to", "<", True)):
            raw = self._raw(name)
            if raw is None:
                continue
            t = _time(raw, upper=upper)
            if t is None:
                self.errors.append({"message": "Invalid date, expected YYYY-MM-DD HH:MM:SS", "uri": f"#/{name}"})
                continue
            self.flt.add(f"created {op} {{}}", t)

    def done(self) -> SqlFilter:
        if self.errors:
            raise OrderError("validation", "Validation failed", errors=self.errors)
        return self.flt


def orders_query(project_id: int, query: Mapping[str, str]) -> tuple[tuple[int, int], SqlFilter]:
    """``((page, page_size), filter)`` of a ``GET /orders/`` query."""
    page = page_of(query)
    b = _Builder(project_id, query)
    b.one_of("status", "status", _ORDER_STATUSES, str.lower)
    b.created()
    b.one_of("merchant_order_id", "merchant_order_id")
    b.one_of("card.type", "card_type", None, str.lower)
    b.one_of("card.subtype", "card_subtype", None, str.lower)
    b.one_of("location.ip", "location ->> 'ip'")
    b.part("client.name", "client ->> 'name'")
    b.part("client.email", "client ->> 'email'")
    b.one_of("issuer.country", "issuer ->> 'country'", None, str.upper)
    b.one_of("issuer.bin", "card_bin")
    b.part("issuer.title", "issuer ->> 'title'")
    b.one_of("invoice_id", "invoice_id")
    return page, b.done()


def operations_query(project_id: int, query: Mapping[str, str]) -> tuple[tuple[int, int], SqlFilter]:
    """``((page, page_size), filter)`` of a ``GET /operations/`` query."""
    page = page_of(query)
    b = _Builder(project_id, query)
    b.one_of("status", "status", _OPERATION_STATUSES, str.lower)
    b.one_of("type", "type", _OPERATION_TYPES, str.lower)
    b.created()
    return page, b.done()
