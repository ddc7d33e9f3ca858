"""The query strings of ``GET /orders/`` and ``GET /operations/`` as the service's typed queries.

Every filter of seeds/003: lists are comma-separated and match exactly
(``status=charged,refunded``); ``client.name``, ``client.email`` and
``issuer.title`` find a part, case-insensitively; ``created_from`` and
``created_to`` take ``YYYY-MM-DD HH:MM:SS`` (UTC) or ``YYYY-MM-DD``, both
bounds inclusive (a date alone as ``created_to`` means the whole day).
``invoice_id`` (``extra_fields.attributes.invoice_id``) filters too, and beyond the seed (the merchant
portal's filters, issue 13): ``currency`` (ISO 4217 alpha codes) and ``amount_from`` / ``amount_to`` (the
order's amount in minor units, both bounds inclusive).
``page`` counts from 1 (default 1); ``page_size`` is 1..2000 (default
100). Names the doc does not list (``expand`` among them) are left to the
caller.

>>> q = orders_query({"status": "charged,refunded", "client.email": "@yahoo.com", "page": "2"})
>>> q.page, q.page_size, q.status, q.client_email
(2, 100, ('charged', 'refunded'), '@yahoo.com')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from switch.orders.errors import InvalidInput, Problem
from switch.orders.model import OperationStatus, OperationType, OrderStatus
from switch.orders.requests import OperationsQuery, OrdersQuery

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "operations_query", "orders_query", "page_of"]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 2000  # seeds/003, Fetching data: "limited to 2000 per page"

_ORDER_STATUSES = frozenset(s.value for s in OrderStatus)
_OPERATION_STATUSES = frozenset(s.value for s in OperationStatus if s.visible)
_OPERATION_TYPES = frozenset(t.value for t in OperationType)


def page_of(query: Mapping[str, str]) -> tuple[int, int]:
    """``(page, page_size)``; bad values are the doc's validation error ``Invalid page`` / ``Invalid page size``.

    Both are checked before failing, so one answer names every bad one (``errors``), the first as the message.
    """
    page = _positive(query.get("page"), 1, None)
    size = _positive(query.get("page_size"), DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    problems = []
    if page is None:
        problems.append(Problem("Invalid page", "page"))
    if size is None:
        problems.append(Problem("Invalid page size", "page_size"))
    if problems:
        raise InvalidInput(problems[0].message, problems)
    assert page is not None and size is not None
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
    """Reads a query's filters into keyword arguments, collecting every bad value before failing."""

    def __init__(self, query: Mapping[str, str]) -> None:
        self.query = query
        self.fields: dict[str, Any] = {}
        self.problems: list[Problem] = []

    def _raw(self, name: str) -> str | None:
        raw = self.query.get(name)
        return raw if raw is not None and raw.strip() else None

    def one_of(
        self, name: str, field: str, allowed: frozenset[str] | None = None, norm: Callable[[str], str] = str
    ) -> None:
        raw = self._raw(name)
        if raw is None:
            return
        values = tuple(norm(v) for v in _items(raw))
        if allowed is not None:
            bad = [v for v in values if v not in allowed]
            if bad:
                self.problems.append(Problem(f"Invalid value: {', '.join(bad)[:64]}", name))
                return
        self.fields[field] = values

    def part(self, name: str, field: str) -> None:
        raw = self._raw(name)
        if raw is not None:
            self.fields[field] = raw.strip()

    def minor(self, name: str, field: str) -> None:
        raw = self._raw(name)
        if raw is None:
            return
        raw = raw.strip()
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 15):
            self.problems.append(Problem("Invalid amount, expected minor units (digits)", name))
            return
        self.fields[field] = int(raw)

    def created(self) -> None:
        for name, field, upper in (("created_from", "created_from", False), ("created_to", "created_before", True)):
            raw = self._raw(name)
            if raw is None:
                continue
            t = _time(raw, upper=upper)
            if t is None:
                self.problems.append(Problem("Invalid date, expected YYYY-MM-DD HH:MM:SS", name))
                continue
            self.fields[field] = t

    def done(self) -> dict[str, Any]:
        if self.problems:
            raise InvalidInput(problems=self.problems)
        return self.fields


def orders_query(query: Mapping[str, str], paging: tuple[int, int] | None = None) -> OrdersQuery:
    """The typed query of a ``GET /orders/`` query string."""
    page, size = paging or page_of(query)
    b = _Builder(query)
    b.one_of("status", "status", _ORDER_STATUSES, str.lower)
    b.created()
    b.one_of("merchant_order_id", "merchant_order_id")
    b.one_of("card.type", "card_type", None, str.lower)
    b.one_of("card.subtype", "card_subtype", None, str.lower)
    b.one_of("location.ip", "location_ip")
    b.part("client.name", "client_name")
    b.part("client.email", "client_email")
    b.one_of("issuer.country", "issuer_country", None, str.upper)
    b.one_of("issuer.bin", "issuer_bin")
    b.part("issuer.title", "issuer_title")
    b.one_of("invoice_id", "invoice_id")
    b.one_of("currency", "currency", None, str.upper)
    b.minor("amount_from", "amount_min")
    b.minor("amount_to", "amount_max")
    return OrdersQuery(page=page, page_size=size, **b.done())


def operations_query(query: Mapping[str, str], paging: tuple[int, int] | None = None) -> OperationsQuery:
    """The typed query of a ``GET /operations/`` query string."""
    page, size = paging or page_of(query)
    b = _Builder(query)
    b.one_of("status", "status", _OPERATION_STATUSES, str.lower)
    b.one_of("type", "type", _OPERATION_TYPES, str.lower)
    b.created()
    return OperationsQuery(page=page, page_size=size, **b.done())
