"""Hosted payment pages in PostgreSQL (schemas/sql/009_payment_pages.sql): one row per page URL.

The URL's token is never stored: rows are found by its SHA-256. No card data
is ever written here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from switch.orders.repo import Writer

__all__ = ["PageRow", "PageStore", "token_hash"]


def token_hash(token: str) -> bytes:
    """SHA-256 of the page token (what the table keeps and looks rows up by)."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class PageRow:
    token_hash: bytes
    kind: str
    order_id: str
    project_id: int
    form_key: bytes
    expires_at: datetime
    language: str
    template: str | None
    mobile: bool
    return_url: str | None
    force3d: bool
    auto_charge: bool
    state: str
    created: datetime
    updated: datetime
    oneclick_customer: str | None = None  # the page offers "Save this card" for this customer (012)
    oneclick_prechecked: bool = False
    save_card: bool = False  # the cardholder's choice when paying
    terminal: str | None = None  # DE 41 of the page's payment, chosen at create (015); None: the project's default


_COLUMNS = (
    "token_hash, kind, order_id, project_id, form_key, expires_at, language, template, mobile, return_url,"
    " force3d, auto_charge, state, created, updated, oneclick_customer, oneclick_prechecked, save_card, terminal"
)
_INSERT = (
    f"INSERT INTO payment_pages ({_COLUMNS})"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
)
_GET = f"SELECT {_COLUMNS} FROM payment_pages WHERE token_hash = $1"
_OF_ORDER = f"SELECT {_COLUMNS} FROM payment_pages WHERE order_id = $1 AND project_id = $2 ORDER BY created LIMIT 1"
# Every page of the order ends with it: a second URL of the same order shows the same result.
_SET_STATE = "UPDATE payment_pages SET state = $2, updated = $3 WHERE order_id = $1 AND state = 'open'"
_SAVE_CARD = "UPDATE payment_pages SET save_card = $2, updated = $3 WHERE order_id = $1"


def _row(r: asyncpg.Record) -> PageRow:
    return PageRow(**{k: r[k] for k in PageRow.__slots__})


class PageStore:
    """SQL of the payment pages; knows nothing of orders beyond their ids."""

    def __init__(self, pool: asyncpg.Pool, writer: Writer) -> None:
        self._pool = pool
        self._writer = writer

    async def insert(self, row: PageRow) -> None:
        await self._writer.execute(
            _INSERT,
            (
                row.token_hash,
                row.kind,
                row.order_id,
                row.project_id,
                row.form_key,
                row.expires_at,
                row.language,
                row.template,
                row.mobile,
                row.return_url,
                row.force3d,
                row.auto_charge,
                row.state,
                row.created,
                row.updated,
                row.oneclick_customer,
                row.oneclick_prechecked,
                row.save_card,
                row.terminal,
            ),
        )

    async def get(self, token_digest: bytes) -> PageRow | None:
        r = await self._pool.fetchrow(_GET, token_digest)
        return None if r is None else _row(r)

    async def of_order(self, project_id: int, order_id: str) -> PageRow | None:
        """The first page made for the project's order (a replayed create copies its options)."""
        r = await self._pool.fetchrow(_OF_ORDER, order_id, project_id)
        return None if r is None else _row(r)

    async def close(self, order_id: str, state: str, now: datetime) -> None:
        """Every open page of the order is now ``state`` (paid or declined)."""
        await self._writer.execute(_SET_STATE, (order_id, state, now))

    async def choose_save_card(self, order_id: str, save: bool, now: datetime) -> None:
        """The cardholder's "Save this card" choice, on every page of the order (read when the payment ends)."""
        await self._writer.execute(_SAVE_CARD, (order_id, save, now))
