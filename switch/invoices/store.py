"""Invoices in PostgreSQL (schemas/sql/021_payment_invoices.sql)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import asyncpg

from switch.invoices.model import Invoice

__all__ = ["InvoiceStore"]

_FIELDS = [f.name for f in dataclasses.fields(Invoice)]
_COLUMNS = ", ".join(_FIELDS)
_INSERT = (
    f"INSERT INTO payment_invoices ({_COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, len(_FIELDS) + 1))})"
    " ON CONFLICT (project_id, reference_id) DO NOTHING RETURNING id"
)
_GET = f"SELECT {_COLUMNS} FROM payment_invoices WHERE project_id = $1 AND id = $2"
_BY_REFERENCE = f"SELECT {_COLUMNS} FROM payment_invoices WHERE project_id = $1 AND reference_id = $2"
_OF_ORDER = f"SELECT {_COLUMNS} FROM payment_invoices WHERE order_id = $1"


def _invoice(r: asyncpg.Record) -> Invoice:
    return Invoice(**{k: r[k] for k in _FIELDS})


class InvoiceStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(self, invoice: Invoice) -> bool:
        """False when the project has an invoice of this reference_id already (nothing written)."""
        row = await self._pool.fetchval(_INSERT, *(getattr(invoice, k) for k in _FIELDS))
        return row is not None

    async def get(self, project_id: int, invoice_id: str) -> Invoice | None:
        r = await self._pool.fetchrow(_GET, project_id, invoice_id)
        return None if r is None else _invoice(r)

    async def by_reference(self, project_id: int, reference_id: str) -> Invoice | None:
        r = await self._pool.fetchrow(_BY_REFERENCE, project_id, reference_id)
        return None if r is None else _invoice(r)

    async def of_order(self, order_id: str) -> Invoice | None:
        r = await self._pool.fetchrow(_OF_ORDER, order_id)
        return None if r is None else _invoice(r)

    async def page(
        self,
        project_id: int,
        size: int,
        *,
        after: tuple[datetime, str] | None = None,
        before: tuple[datetime, str] | None = None,
        reference_id: str | None = None,
    ) -> tuple[list[Invoice], bool, int]:
        """Newest first: up to ``size`` invoices older than ``after`` (or newer than ``before``), whether more lie
        beyond them in that direction, and how many the project has (with the filter)."""
        where: list[str] = ["project_id = $1"]
        args: list[object] = [project_id]
        if reference_id is not None:
            args.append(reference_id)
            where.append(f"reference_id = ${len(args)}")
        count = await self._pool.fetchval(f"SELECT count(*) FROM payment_invoices WHERE {' AND '.join(where)}", *args)
        order = "DESC"
        if after is not None:
            args.extend(after)
            where.append(f"(created, id) < (${len(args) - 1}, ${len(args)})")
        elif before is not None:
            args.extend(before)
            where.append(f"(created, id) > (${len(args) - 1}, ${len(args)})")
            order = "ASC"
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM payment_invoices WHERE {' AND '.join(where)}"
            f" ORDER BY created {order}, id {order} LIMIT {size + 1}",
            *args,
        )
        found = [_invoice(r) for r in rows[:size]]
        if order == "ASC":
            found.reverse()
        return found, len(rows) > size, int(count)

    async def cursor(self, project_id: int, invoice_id: str) -> tuple[datetime, str] | None:
        r = await self._pool.fetchrow(
            "SELECT created, id FROM payment_invoices WHERE project_id = $1 AND id = $2", project_id, invoice_id
        )
        return None if r is None else (r["created"], r["id"])
