"""Invoices in PostgreSQL (schemas/sql/021_payment_invoices.sql)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from switch.invoices.model import Invoice
from switch.money import from_minor

__all__ = ["InvoiceStore", "add_error_callback", "callback_logs", "callback_payload"]

_FIELDS = [f.name for f in dataclasses.fields(Invoice)]
_COLUMNS = ", ".join(_FIELDS)
_INSERT = (
    f"INSERT INTO payment_invoices ({_COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, len(_FIELDS) + 1))})"
    " ON CONFLICT (project_id, reference_id) DO NOTHING RETURNING id"
)
_GET = f"SELECT {_COLUMNS} FROM payment_invoices WHERE project_id = $1 AND id = $2"
_BY_REFERENCE = f"SELECT {_COLUMNS} FROM payment_invoices WHERE project_id = $1 AND reference_id = $2"
_OF_ORDER = f"SELECT {_COLUMNS} FROM payment_invoices WHERE order_id = $1"

# An invoice's callbacks (022): one outbox row per status, oldest first, with its last attempt.
_CALLBACKS = """
SELECT created, event_type, state, attempts, last_status, last_attempt_at, delivered_at
FROM webhook_outbox WHERE invoice_id = $1 ORDER BY created, id
"""
# The test flow's one callback, written with the invoice (it has no order: order_id names the invoice).
_ADD_CALLBACK = """
INSERT INTO webhook_outbox (event_id, project_id, order_id, event_type, payload, url, invoice_id)
VALUES ($1, $2, $3, $4, $5, $6, $3) ON CONFLICT DO NOTHING
"""
_LOG_STATES = {"delivered": "done", "failed": "failed"}
# The invoice of an order crash recovery just turned `error` (switch.saf.recovery), when it has a callback_url.
_OF_ERRORED_ORDER = (
    f"SELECT {_COLUMNS}, (SELECT updated FROM orders WHERE id = $1 AND status = 'error') AS errored"
    " FROM payment_invoices WHERE order_id = $1 AND callback_url IS NOT NULL"
)
_ADD_ORDER_CALLBACK = """
INSERT INTO webhook_outbox (event_id, project_id, order_id, event_type, payload, url, invoice_id)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
"""


def callback_payload(invoice: Invoice, status: str, resolution: str, at: datetime) -> dict[str, Any]:
    """The body of an invoice's callback, as repo.py's _OUTBOX_ROWS builds it for an invoice with an order."""
    return {
        "type": f"invoice.{status}",
        "timestamp": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "data": {
            "type": "payment-invoices",
            "id": invoice.id,
            "attributes": {
                "serial_number": invoice.serial_number,
                "status": status,
                "resolution": resolution,
                "reference_id": invoice.reference_id,
                "amount": float(Decimal(from_minor(invoice.amount, invoice.currency))),
                "currency": invoice.currency,
                "test_mode": invoice.test_mode,
                "service": invoice.service,
                "payment_flow": invoice.payment_flow,
                "metadata": invoice.metadata,
            },
            "links": {"self": f"/api/payment-invoices/{invoice.id}"},
        },
    }


def callback_logs(rows: list[asyncpg.Record]) -> dict[str, Any]:
    """seeds/002's ``callback_logs``: by the unix time of the status change, its callback's last attempt.

    Two changes in one second (a page paid at once) would share a key: the later one's gets ``-2``, ``-3`` ...
    """
    logs: dict[str, Any] = {}
    for r in rows:
        key = base = str(int(r["created"].timestamp()))
        n = 1
        while key in logs:
            n += 1
            key = f"{base}-{n}"
        at = r["delivered_at"] or r["last_attempt_at"]
        state = _LOG_STATES.get(r["state"], "pending" if r["attempts"] == 0 else "retrying")
        logs[key] = {
            "status": state,
            "processed": None if at is None else int(at.timestamp()),
            "response_code": r["last_status"],
            "transaction_status": r["event_type"].removeprefix("invoice."),
        }
    return logs


async def add_error_callback(conn: asyncpg.Connection, order_id: str) -> bool:
    """The ``process_failed`` / ``error`` callback of the invoice whose order crash recovery turned ``error``, on
    ``conn`` (recovery's transaction: written with the change, or not at all). The order's other writers make
    their invoice's callback in their own statements (switch/orders/repo.py _OUTBOX_ROWS); recovery's SQL
    builds no bodies (its order events are rendered when sent), and an invoice's body needs the currency's
    exponent, hence this. False: no invoice with a callback_url, or the order is not ``error``."""
    r = await conn.fetchrow(_OF_ERRORED_ORDER, order_id)
    if r is None or r["errored"] is None:
        return False
    invoice = _invoice(r)
    status, resolution = "process_failed", "error"
    payload = callback_payload(invoice, status, resolution, r["errored"])
    await conn.execute(
        _ADD_ORDER_CALLBACK,
        f"cb_{invoice.id}_{status}",
        invoice.project_id,
        order_id,
        f"invoice.{status}",
        payload,
        invoice.callback_url,
        invoice.id,
    )
    return True


def _invoice(r: asyncpg.Record) -> Invoice:
    return Invoice(**{k: r[k] for k in _FIELDS})


class InvoiceStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(self, invoice: Invoice) -> bool:
        """False when the project has an invoice of this reference_id already (nothing written)."""
        row = await self._pool.fetchval(_INSERT, *(getattr(invoice, k) for k in _FIELDS))
        return row is not None

    async def callbacks(self, invoice_id: str) -> dict[str, Any]:
        """The invoice's ``callback_logs`` (empty: none was made)."""
        return callback_logs(await self._pool.fetch(_CALLBACKS, invoice_id))

    async def add_callback(self, invoice: Invoice, status: str, resolution: str, at: datetime) -> None:
        """A callback of an invoice that has no order (the test flow), to its callback_url."""
        if invoice.callback_url is None:
            return
        payload = callback_payload(invoice, status, resolution, at)
        await self._pool.execute(
            _ADD_CALLBACK,
            f"cb_{invoice.id}_{status}",
            invoice.project_id,
            invoice.id,
            f"invoice.{status}",
            payload,
            invoice.callback_url,
        )

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
