"""The payments list's filter, columns and exports (issue 13 item 6; seeds/000 "Using the payments filter",
"Payments table", "Exporting payments").

The filter form uses ``GET /orders/``'s own names (``status``, ``created_from``, ``created_to``,
``merchant_order_id``, ``card.type``, ``currency``, ``amount_from``, ``amount_to``), a list as repeated fields or
comma-separated; :func:`api_params` turns it into the API's query and
:func:`http_front.orders.query.orders_query` -- the API's own parser -- reads it: the page, its exports and
``GET /orders/`` with the same query select the same orders by construction. ``alias`` (seeds/000 "Merchant
alias") is the portal's only other filter: the session's project login, or anything else, which matches nothing.

Exports (:func:`export`) write every order the filter selects (not only the page shown), in the chosen columns,
newest first, read a page of :data:`EXPORT_PAGE` at a time; over :data:`MAX_EXPORT` orders the export is refused
(the page says to narrow the filter) rather than cut short.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

from multidict import MultiMapping

from http_front.orders.query import orders_query
from http_front.orders.views import order_view
from switch.orders.errors import InvalidInput
from switch.orders.model import Order, OrderStatus
from switch.orders.requests import OrdersQuery
from switch.orders.service import OrdersService
from switch.store.projects import Project

__all__ = [
    "COLUMNS",
    "DEFAULT_COLUMNS",
    "EXPORT_PAGE",
    "FILTER_NAMES",
    "FORMATS",
    "MAX_EXPORT",
    "PAGE_SIZES",
    "Listing",
    "api_params",
    "chosen_columns",
    "export",
    "listing",
]

PAGE_SIZES = (10, 20, 50, 100)
EXPORT_PAGE = 500
MAX_EXPORT = 10_000
# The API's names the form sends, lists among them.
FILTER_NAMES = (
    "created_from",
    "created_to",
    "amount_from",
    "amount_to",
    "merchant_order_id",
    "status",
    "currency",
    "card.type",
)
STATUSES = tuple(s.value for s in OrderStatus)


def _v(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda view: "" if view.get(key) is None else str(view[key])


def _sub(outer: str, key: str) -> Callable[[dict[str, Any]], str]:
    return lambda view: str((view.get(outer) or {}).get(key) or "")


#: key -> (label, value of the order's API view with card, client and location expanded).
COLUMNS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "id": ("Payment", _v("id")),
    "created": ("Created", _v("created")),
    "updated": ("Updated", _v("updated")),
    "status": ("Status", _v("status")),
    "amount": ("Amount", _v("amount")),
    "currency": ("Currency", _v("currency")),
    "amount_charged": ("Charged", _v("amount_charged")),
    "amount_refunded": ("Refunded", _v("amount_refunded")),
    "pan": ("Card", _v("pan")),
    "card_type": ("Card type", _sub("card", "type")),
    "merchant_order_id": ("Reference", _v("merchant_order_id")),
    "description": ("Description", _v("description")),
    "client_email": ("E-mail", _sub("client", "email")),
    "client_name": ("Customer", _sub("client", "name")),
    "ip": ("IP address", _sub("location", "ip")),
    "auth_code": ("Auth code", _v("auth_code")),
    "rrn": ("RRN", _v("rrn")),
}
DEFAULT_COLUMNS = ("id", "created", "status", "amount", "currency", "pan", "merchant_order_id")
_EXPAND = ("card", "client", "location")
# Free text a spreadsheet would run as a formula (CSV/XLSX injection): shown with a leading apostrophe there.
_TEXT_COLUMNS = frozenset({"merchant_order_id", "description", "client_email", "client_name"})
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _values(query: MultiMapping[str], name: str) -> list[str]:
    out: list[str] = []
    for raw in query.getall(name, []):
        out.extend(p.strip() for p in raw[:512].split(",") if p.strip())
    return out[:50]


def api_params(query: MultiMapping[str]) -> dict[str, str]:
    """The ``GET /orders/`` query of the page's filter (empty fields left out)."""
    out = {}
    for name in FILTER_NAMES:
        values = _values(query, name)
        if values:
            out[name] = ",".join(values)
    return out


def chosen_columns(query: MultiMapping[str]) -> tuple[str, ...]:
    cols = tuple(dict.fromkeys(c for c in query.getall("col", []) if c in COLUMNS))
    return cols or DEFAULT_COLUMNS


def _page(query: MultiMapping[str]) -> tuple[int, int]:
    raw = query.get("page", "1")
    page = int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 6 and int(raw) > 0 else 1
    size_raw = query.get("size", "")
    size = int(size_raw) if size_raw.isascii() and size_raw.isdigit() and int(size_raw) in PAGE_SIZES else 20
    return page, size


@dataclass(frozen=True, slots=True)
class Listing:
    """What the list page shows: the filter as the form had it, its API query, the columns, errors or a page."""

    form: dict[str, list[str]]  # name -> values, to fill the form again
    params: dict[str, str]  # the API query
    columns: tuple[str, ...]
    query: OrdersQuery | None  # None: nothing matches (another alias) or the filter is wrong
    errors: dict[str, str]
    page: int
    size: int

    def link(self, **changes: Any) -> str:
        """The list page's query string with ``changes`` (page, size, format...)."""
        pairs: list[tuple[str, str]] = [(k, v) for k, vs in self.form.items() for v in vs]
        pairs += [("col", c) for c in self.columns] if self.columns != DEFAULT_COLUMNS else []
        base = {"page": str(self.page), "size": str(self.size)}
        base.update({k: str(v) for k, v in changes.items()})
        pairs += [(k, v) for k, v in base.items() if not (k == "page" and v == "1") and not (k == "size" and v == "20")]
        return urlencode(pairs)

    @property
    def filter_query(self) -> str:
        """The filter and columns alone (what a template keeps)."""
        pairs = [(k, v) for k, vs in self.form.items() for v in vs] + [("col", c) for c in self.columns]
        return urlencode(pairs)


def listing(query: MultiMapping[str], project: Project) -> Listing:
    """The page's filter read from its query string (the API's validation; its messages per field)."""
    form = {name: _values(query, name) for name in (*FILTER_NAMES, "alias")}
    form = {k: v for k, v in form.items() if v}
    params = api_params(query)
    page, size = _page(query)
    errors: dict[str, str] = {}
    parsed: OrdersQuery | None = None
    try:
        parsed = orders_query(params, (page, size))
    except InvalidInput as e:
        errors = {p.field or "filter": p.message for p in e.problems}
    alias = form.get("alias")
    if alias and any(a.lower() != project.login.lower() for a in alias):
        parsed = None  # another merchant's alias: none of this session's payments
    return Listing(form, params, chosen_columns(query), parsed, errors, page, size)


def view_of(order: Order) -> dict[str, Any]:
    return order_view(order, _EXPAND)


def row_of(view: dict[str, Any], columns: tuple[str, ...]) -> list[str]:
    return [COLUMNS[c][1](view) for c in columns]


# -- exports ------------------------------------------------------------------------------------------


FORMATS = {
    "csv": ("text/csv", "csv"),
    "xml": ("application/xml", "xml"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
}


async def _rows(
    orders: OrdersService, project: Project, query: OrdersQuery, columns: tuple[str, ...]
) -> AsyncIterator[list[list[str]]]:
    """Every matching order's row, a page at a time, newest first (the caller checked the total)."""
    page = 1
    while True:
        q = OrdersQuery(**{**_fields(query), "page": page, "page_size": EXPORT_PAGE})
        got = await orders.list_orders(project, q)
        yield [row_of(view_of(o), columns) for o in got.items]
        if not got.has_next or page * EXPORT_PAGE >= MAX_EXPORT:
            return
        page += 1


def _fields(query: OrdersQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in query.__dataclass_fields__}


def _guard(columns: tuple[str, ...], row: list[str]) -> list[str]:
    return [
        "'" + v if c in _TEXT_COLUMNS and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v
        for c, v in zip(columns, row, strict=True)
    ]


async def export(
    fmt: str, orders: OrdersService, project: Project, query: OrdersQuery | None, columns: tuple[str, ...]
) -> AsyncIterator[bytes]:
    """The export in ``fmt`` (a key of :data:`FORMATS`) of every order ``query`` selects (None: none)."""
    labels = [COLUMNS[c][0] for c in columns]

    async def pages() -> AsyncIterator[list[list[str]]]:
        if query is not None:
            async for rows in _rows(orders, project, query, columns):
                yield rows

    if fmt == "csv":
        yield b"\xef\xbb\xbf"  # a BOM: spreadsheets then read the file as UTF-8
        yield _csv([labels])
        async for rows in pages():
            yield _csv([_guard(columns, r) for r in rows])
    elif fmt == "xml":
        yield b'<?xml version="1.0" encoding="UTF-8"?>\n<payments project=' + quoteattr(project.login).encode() + b">\n"
        async for rows in pages():
            yield "".join(_xml(columns, r) for r in rows).encode()
        yield b"</payments>\n"
    else:
        yield await _xlsx(labels, columns, pages())


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()


def _xml(columns: tuple[str, ...], row: list[str]) -> str:
    cells = "".join(f"<{c}>{escape(_XML_BAD.sub('', v))}</{c}>" for c, v in zip(columns, row, strict=True))
    return f"  <payment>{cells}</payment>\n"


async def _xlsx(labels: list[str], columns: tuple[str, ...], pages: AsyncIterator[list[list[str]]]) -> bytes:
    # A zip's directory comes last: the workbook is built whole (bounded by MAX_EXPORT rows), then sent.
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Payments")
    sheet.append(labels)
    async for rows in pages:
        for r in rows:
            sheet.append([_XML_BAD.sub("", v) for v in _guard(columns, r)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
