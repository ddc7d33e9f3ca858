"""Orders in PostgreSQL: the write-ahead intent, the result, reads and list queries.

Writes go through the group writer (many requests share one commit) and
each is ONE statement, so an order and its first operation, or an
operation's result and its order's new state, commit together or not at
all. Reads go straight to the pool.

Over 500 lines on purpose: every statement on ``orders`` and ``operations`` lives here, sharing one
column list and one type list, so a column added to the table is added in one room (the waiting
orders', the hot path's batched ``unnest`` writes, the list filters, the wallet and page claims).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import asyncpg

from switch.orders.model import (
    Cashflow,
    Operation,
    OperationStatus,
    OperationType,
    Order,
    OrderStatus,
    Source,
)
from switch.orders.requests import OperationsQuery, OrdersQuery
from switch.store.writer import Columns

if TYPE_CHECKING:  # switch.webhooks imports the order model: no cycle at run time
    from switch.webhooks.events import Event, Events

__all__ = ["OrderRepo", "SqlFilter", "Writer", "operations_filter", "orders_filter"]

T = TypeVar("T")


class Writer(Protocol):
    """What the repository needs of ``switch.store.writer.GroupWriter``."""

    async def execute(self, sql: str | Columns, args: tuple[Any, ...] = ...) -> None: ...

    async def run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T: ...


_ORDER_COLUMNS = (
    "id, project_id, status, amount, amount_charged, amount_refunded, currency, auth_code, rrn, pan_mask,"
    " card_key_id, card_blob, card_bin, card_type, card_subtype, card_holder, expiry_month, expiry_year,"
    " client, location, custom_fields, description, merchant_order_id, segment, descriptor, secure3d, issuer,"
    " invoice_id, parent_order_id, initial_rrn, recurring, source, version, created, updated, notification_url,"
    " test_mode"
)

_OPERATION_COLUMNS = (
    "order_id, id, type, status, amount, currency, iso_response_code, iso_message, auth_code, arn, rrn, mti,"
    " stan, transmission_time, terminal_id, acquirer_id, processing_code, cashflow, created, updated"
)

_INSERT_OPERATION = """
INSERT INTO operations (order_id, id, project_id, type, status, amount, currency, iso_response_code,
    iso_message, auth_code, arn, rrn, mti, stan, transmission_time, terminal_id, acquirer_id,
    processing_code, cashflow, created, updated, owner, destination)
"""

# Column types, in the order of _ORDER_COLUMNS and of _operation_args: the
# hot-path writes are Columns statements (one execution per group commit,
# each parameter an array over the batch's rows), and unnest needs typed arrays.
_ORDER_TYPES = (
    "text bigint text bigint bigint bigint text text text text text bytea text text text text smallint smallint"
    " jsonb jsonb jsonb text text text text jsonb jsonb text text text boolean text integer timestamptz timestamptz"
    " text boolean"
).split()
_OPERATION_TYPES = (
    "text text bigint text text text text text text text text text text text text jsonb timestamptz timestamptz"
    " text text"
).split()


def _arrays(first: int, types: list[str]) -> str:
    return ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, first))


# New orders and their first (pending) operations: one statement, so each
# order and its operation (indeed the whole batch's) are written together or
# not at all. Parameters: the order's 37 (``_order_args``), the operation's
# id, then its 20 (``_operation_args``); the operation reuses $1 and $2
# (order id, project id).
_N_ORDER = len(_ORDER_TYPES)
_CREATE = Columns(
    f"""
WITH o AS (
    INSERT INTO orders ({_ORDER_COLUMNS})
    SELECT * FROM unnest({_arrays(1, _ORDER_TYPES)})
)
{_INSERT_OPERATION}
SELECT * FROM unnest($1::text[], ${_N_ORDER + 1}::integer[], $2::bigint[], {_arrays(_N_ORDER + 2, _OPERATION_TYPES)})
"""
)

# An order that waits for the cardholder (status new: the hosted page; prepared: 3-D Secure) is
# written alone, before any operation: its first operation is added later (_ADD_OPERATION) and its
# result makes the order (Engine.perform). Not on the authorization's hot path.
_CREATE_WAITING = f"""
INSERT INTO orders ({_ORDER_COLUMNS})
VALUES ({", ".join(f"${i}" for i in range(1, len(_ORDER_TYPES) + 1))})
"""

# A waiting order's changes before its first operation (the card the page took, new -> prepared,
# the 3-D Secure result shown): only while it still waits and nobody else changed it (version).
_SAVE_WAITING = """
UPDATE orders
SET status = $3, pan_mask = $4, card_key_id = $5, card_blob = $6, card_bin = $7, card_type = $8,
    card_subtype = $9, card_holder = $10, expiry_month = $11, expiry_year = $12, client = $13, location = $14,
    secure3d = $15, issuer = $16, recurring = $17, updated = $18, rrn = $19, initial_rrn = $20,
    version = version + 1
WHERE id = $1 AND version = $2 AND status IN ('new', 'prepared')
"""
# A card attached for a payment attempt (the hosted page): only to an order that has none yet, so a
# second attempt on another process, which read the order after the first one's card went on, cannot
# replace it (the version guard alone lets it through: it read the version the first attempt made).
_ATTACH_CARD = _SAVE_WAITING.rstrip() + " AND card_blob IS NULL\n"

# ON CONFLICT DO NOTHING: a lost race inserts nothing instead of raising,
# since an error would fail every other write of the same group commit.
_ADD_OPERATION = f"""
{_INSERT_OPERATION}
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
ON CONFLICT DO NOTHING
"""

# Operations' outcomes and their orders' new states, one statement for the
# batch. An order has at most one operation pending, so no order appears
# twice in one batch.
# Only a still-pending operation takes its result: once another node's recovery has settled an
# orphaned intent (error, reversal queued), a result write that was held up (a node cut off from
# PostgreSQL longer than the recovery grace) changes neither the operation nor its order.
_FINISH_VALUES = """
WITH v AS (
    SELECT * FROM unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::jsonb[], $11::timestamptz[], $12::text[], $13::bigint[],
                         $14::bigint[], $15::text[]{events})
        AS v (order_id, id, status, iso_response_code, iso_message, auth_code, arn, stan, transmission_time,
              cashflow, updated, order_status, amount_charged, amount_refunded, order_auth_code{event_columns})
), op AS (
    UPDATE operations AS p
    SET status = v.status, iso_response_code = v.iso_response_code, iso_message = v.iso_message,
        auth_code = v.auth_code, arn = v.arn, stan = v.stan, transmission_time = v.transmission_time,
        cashflow = v.cashflow, updated = v.updated
    FROM v WHERE p.order_id = v.order_id AND p.id = v.id AND p.status = 'pending'
    RETURNING p.order_id, p.id
)"""

_FINISH_ORDER = """
UPDATE orders AS o
SET status = v.order_status, amount_charged = v.amount_charged, amount_refunded = v.amount_refunded,
    auth_code = v.order_auth_code, updated = v.updated, version = o.version + 1
FROM v JOIN op ON op.order_id = v.order_id AND op.id = v.id
WHERE o.id = v.order_id
"""

_FINISH = Columns(_FINISH_VALUES.format(events="", event_columns="") + _FINISH_ORDER)

# The outbox rows of events (switch.webhooks): one per live endpoint of the project, and one for the
# order's own notification URL. Parameters: the event id, project id, order id, type, payload, URL.
# And the callback of the order's invoice (seeds/002), when it has a callback_url: its status by the invoice's
# flow (Events.invoice_state), one row per invoice status (the unique index of 022 drops a repeat: an order
# change that leaves its invoice's status as it was sends nothing), its body built here from the invoice row.
_OUTBOX_COLUMNS = "event_id, project_id, order_id, event_type, payload, endpoint_id, url, invoice_id"
_OUTBOX_ROWS = """
SELECT {v}event_id, {v}project_id, {v}order_id, {v}event_type, {v}payload, e.id, NULL, NULL
FROM {src} JOIN webhook_endpoints AS e ON e.project_id = {v}project_id AND e.removed_at IS NULL
UNION ALL
SELECT {v}event_id, {v}project_id, {v}order_id, {v}event_type, {v}payload, NULL, {v}notify_url, NULL
FROM {src} WHERE {v}notify_url IS NOT NULL
UNION ALL
SELECT 'cb_' || i.id || '_' || s.status, {v}project_id, {v}order_id, 'invoice.' || s.status,
    jsonb_build_object('type', 'invoice.' || s.status, 'timestamp', {v}invoice->>'timestamp',
      'data', jsonb_build_object(
        'type', 'payment-invoices', 'id', i.id, 'attributes', jsonb_build_object(
            'serial_number', substr(i.id, 5), 'status', s.status, 'resolution', s.resolution,
            'reference_id', i.reference_id, 'amount', ({v}invoice->>'amount')::numeric, 'currency', i.currency,
            'test_mode', i.test_mode, 'service', i.service, 'payment_flow', i.payment_flow, 'metadata', i.metadata),
        'links', jsonb_build_object('self', '/api/payment-invoices/' || i.id))),
    NULL, i.callback_url, i.id
FROM {src} JOIN payment_invoices AS i ON i.order_id = {v}order_id AND i.callback_url IS NOT NULL
CROSS JOIN LATERAL (SELECT {v}invoice->i.payment_flow->>0 AS status, {v}invoice->i.payment_flow->>1 AS resolution) s
WHERE {v}invoice IS NOT NULL
ON CONFLICT DO NOTHING
"""

# The notification of an event (switch.notify, schemas/sql/039_notifications.sql): a row of notify_events when
# a user of the project wants notifications (Events.wanted knows the projects; the EXISTS makes sure), fanned out
# to users and channels later by the notify worker; with the amount refunded by then (what the change was).
# A CTE of the statement that writes the webhook rows.
_NOTIFY_CTE = """, notify AS (
    INSERT INTO notify_events (event_id, project_id, order_id, event_type, detail)
    SELECT {v}event_id, {v}project_id, {v}order_id, {v}event_type,
           jsonb_build_object('amount_refunded', {v}payload #> '{{data,orders,0,amount_refunded}}') FROM {src}
    WHERE EXISTS (SELECT 1 FROM notify_prefs AS np WHERE np.project_id = {v}project_id)
    ON CONFLICT DO NOTHING
)
"""

# _FINISH with the event of each order it changes, in the same statement (so the same commit): used
# only for orders that make one (Events.wanted), so the others pay nothing for webhooks.
_FINISH_NOTIFY = Columns(
    _FINISH_VALUES.format(
        events=", $16::text[], $17::bigint[], $18::text[], $19::jsonb[], $20::text[], $21::jsonb[]",
        event_columns=", event_id, project_id, event_type, payload, notify_url, invoice",
    )
    + ", o AS ("
    + _FINISH_ORDER
    + " RETURNING o.id)"
    + _NOTIFY_CTE.format(v="v.", src="v JOIN o ON o.id = v.order_id")
    + f"INSERT INTO webhook_outbox ({_OUTBOX_COLUMNS})"
    + _OUTBOX_ROWS.format(v="v.", src="v JOIN o ON o.id = v.order_id")
)

# One event alone (waiting orders: their creation and changes; not on the hot path).
_INSERT_EVENT = f"""
WITH v AS (SELECT $1::text AS event_id, $2::bigint AS project_id, $3::text AS order_id, $4::text AS event_type,
                  $5::jsonb AS payload, $6::text AS notify_url, $7::jsonb AS invoice)
{_NOTIFY_CTE.format(v="v.", src="v")}INSERT INTO webhook_outbox ({_OUTBOX_COLUMNS})
{_OUTBOX_ROWS.format(v="v.", src="v")}
"""


# A waiting order's first operation takes the order's row first (OrderRepo.add_operation), in its transaction:
# none is added to an order the invoice expiry closed, and the expiry's close, which takes the row too, sees an
# operation added before it got the row.
_TAKE_WAITING = "SELECT 1 FROM orders WHERE id = $1 AND status IN ('new', 'prepared') FOR NO KEY UPDATE"

# Invoices' waiting orders past their invoice's `expires` (023's index): the gateway closes them, `rejected` with no
# operation (switch/invoices/expiry.py). An order with no card, or one whose payment attempt was abandoned (its
# card went on before the `abandoned` time and nothing followed: a process stopped mid-attempt). Under the row
# lock exactly one of "paid" and "expired" wins: the card goes on (_ATTACH_CARD) only while the order is new
# without one, the first operation only while it waits (_TAKE_WAITING), and the close, once it holds the row,
# wants it as they left it (new; no card, or one put on before `abandoned`; no operation: its own statement, so
# its own snapshot, taken after the lock). SKIP LOCKED: every serving process sweeps, none waits on another's rows.
_DUE_INVOICE_ORDERS = f"""
SELECT {", ".join("o." + c.strip() for c in _ORDER_COLUMNS.split(","))}
FROM orders AS o JOIN payment_invoices AS i ON i.id = o.invoice_id AND i.order_id = o.id
WHERE o.status = 'new' AND o.invoice_id IS NOT NULL AND i.expires <= $1
    AND (o.card_blob IS NULL OR o.updated < $3)
    AND NOT EXISTS (SELECT 1 FROM operations AS p WHERE p.order_id = o.id)
ORDER BY i.expires
LIMIT $2
FOR UPDATE OF o SKIP LOCKED
"""
_EXPIRE_ORDER = """
UPDATE orders SET status = 'rejected', updated = $3, version = version + 1
WHERE id = $1 AND version = $2 AND status = 'new' AND (card_blob IS NULL OR updated < $4)
    AND NOT EXISTS (SELECT 1 FROM operations WHERE order_id = $1)
RETURNING id
"""
# With its event (and so its invoice's `expired` callback) in the same statement.
_EXPIRE_ORDER_NOTIFY = f"""
WITH o AS ({_EXPIRE_ORDER.strip()}),
v AS (SELECT $5::text AS event_id, $6::bigint AS project_id, o.id AS order_id, $7::text AS event_type,
             $8::jsonb AS payload, $9::text AS notify_url, $10::jsonb AS invoice FROM o),
w AS (INSERT INTO webhook_outbox ({_OUTBOX_COLUMNS}) {_OUTBOX_ROWS.format(v="v.", src="v").strip()})
SELECT count(*) FROM o
"""


def _event_args(e: Event) -> tuple[Any, ...]:
    return (e.id, e.project_id, e.order_id, e.type, e.payload, e.url, e.invoice)


def _order_from(row: asyncpg.Record) -> Order:
    return Order(
        id=row["id"],
        project_id=row["project_id"],
        status=OrderStatus(row["status"]),
        amount=row["amount"],
        amount_charged=row["amount_charged"],
        amount_refunded=row["amount_refunded"],
        currency=row["currency"],
        auth_code=row["auth_code"],
        rrn=row["rrn"],
        pan_mask=row["pan_mask"],
        card_key_id=row["card_key_id"],
        card_blob=row["card_blob"],
        card_type=row["card_type"],
        card_subtype=row["card_subtype"],
        card_holder=row["card_holder"],
        expiry_month=row["expiry_month"],
        expiry_year=row["expiry_year"],
        client=row["client"],
        location=row["location"],
        custom_fields=row["custom_fields"],
        description=row["description"],
        merchant_order_id=row["merchant_order_id"],
        segment=row["segment"],
        descriptor=row["descriptor"],
        secure3d=row["secure3d"],
        issuer=row["issuer"],
        invoice_id=row["invoice_id"],
        parent_order_id=row["parent_order_id"],
        initial_rrn=row["initial_rrn"],
        recurring=row["recurring"],
        source=Source(row["source"]),
        version=row["version"],
        created=row["created"],
        updated=row["updated"],
        notification_url=row["notification_url"],
        test_mode=row["test_mode"],
    )


def _operation_from(row: asyncpg.Record) -> Operation:
    cf = row["cashflow"]
    return Operation(
        order_id=row["order_id"],
        id=row["id"],
        type=OperationType(row["type"]),
        status=OperationStatus(row["status"]),
        amount=row["amount"],
        currency=row["currency"],
        iso_response_code=row["iso_response_code"],
        iso_message=row["iso_message"],
        auth_code=row["auth_code"],
        arn=row["arn"],
        rrn=row["rrn"],
        mti=row["mti"],
        stan=row["stan"],
        transmission_time=row["transmission_time"],
        terminal_id=row["terminal_id"],
        acquirer_id=row["acquirer_id"],
        processing_code=row["processing_code"],
        cashflow=Cashflow.from_json(cf) if cf is not None else None,
        created=row["created"],
        updated=row["updated"],
    )


def _card_args(o: Order) -> list[Any]:
    """The card's columns, in the order of ``_ORDER_COLUMNS`` and of ``_SAVE_WAITING``: pan_mask through expiry_year."""
    return [
        o.pan_mask,
        o.card_key_id,
        o.card_blob,
        o.pan_mask[:6] if o.pan_mask else None,
        o.card_type,
        o.card_subtype,
        o.card_holder,
        o.expiry_month,
        o.expiry_year,
    ]


def _order_args(o: Order) -> list[Any]:
    return [
        o.id,
        o.project_id,
        o.status.value,
        o.amount,
        o.amount_charged,
        o.amount_refunded,
        o.currency,
        o.auth_code,
        o.rrn,
        *_card_args(o),
        o.client,
        o.location,
        o.custom_fields,
        o.description,
        o.merchant_order_id,
        o.segment,
        o.descriptor,
        o.secure3d,
        o.issuer,
        o.invoice_id,
        o.parent_order_id,
        o.initial_rrn,
        o.recurring,
        o.source.value,
        o.version,
        o.created,
        o.updated,
        o.notification_url,
        o.test_mode,
    ]


def _operation_args(op: Operation) -> list[Any]:
    """Everything after ``order_id, id, project_id`` in :data:`_INSERT_OPERATION`'s order."""
    return [
        op.type.value,
        op.status.value,
        op.amount,
        op.currency,
        op.iso_response_code,
        op.iso_message,
        op.auth_code,
        op.arn,
        op.rrn,
        op.mti,
        op.stan,
        op.transmission_time,
        op.terminal_id,
        op.acquirer_id,
        op.processing_code,
        op.cashflow.to_json() if op.cashflow is not None else None,
        op.created,
        op.updated,
        op.owner,
        op.destination,
    ]


class SqlFilter:
    """Conditions of a list query; ``$1`` is always the project id (every query is per project).

    >>> f = SqlFilter(7)
    >>> f.add("status = ANY({})", ["charged"])
    >>> f.sql, f.args
    ('project_id = $1 AND status = ANY($2)', [7, ['charged']])
    """

    def __init__(self, project_id: int) -> None:
        self.where: list[str] = ["project_id = $1"]
        self.args: list[Any] = [project_id]

    def add(self, condition: str, *values: Any) -> None:
        """``condition`` with ``{}`` for each value's placeholder."""
        marks = []
        for v in values:
            self.args.append(v)
            marks.append(f"${len(self.args)}")
        self.where.append(condition.format(*marks))

    @property
    def sql(self) -> str:
        return " AND ".join(self.where)


# Column of each list filter of OrdersQuery: exact (``= ANY``) for tuples, a part (``ILIKE``) for strings.
_ORDER_FILTERS: tuple[tuple[str, str], ...] = (
    ("status", "status"),
    ("merchant_order_id", "merchant_order_id"),
    ("card_type", "card_type"),
    ("card_subtype", "card_subtype"),
    ("location_ip", "location ->> 'ip'"),
    ("client_name", "client ->> 'name'"),
    ("client_email", "client ->> 'email'"),
    ("issuer_country", "issuer ->> 'country'"),
    ("issuer_bin", "card_bin"),
    ("issuer_title", "issuer ->> 'title'"),
    ("invoice_id", "invoice_id"),
    ("currency", "currency"),
)


def _like(raw: str) -> str:
    """``%raw%`` with LIKE's wildcards in ``raw`` taken literally."""
    escaped = raw.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filter(project_id: int, query: OrdersQuery | OperationsQuery, columns: tuple[tuple[str, str], ...]) -> SqlFilter:
    flt = SqlFilter(project_id)
    for name, column in columns:
        value = getattr(query, name)
        if isinstance(value, tuple) and value:
            flt.add(f"{column} = ANY({{}}::text[])", list(value))
        elif isinstance(value, str):
            flt.add(f"{column} ILIKE {{}}", _like(value))
    if query.created_from is not None:
        flt.add("created >= {}", query.created_from)
    if query.created_before is not None:
        flt.add("created < {}", query.created_before)
    if isinstance(query, OrdersQuery):
        if query.amount_min is not None:
            flt.add("amount >= {}", query.amount_min)
        if query.amount_max is not None:
            flt.add("amount <= {}", query.amount_max)
    return flt


def orders_filter(project_id: int, query: OrdersQuery) -> SqlFilter:
    """The WHERE of ``GET /orders/``.

    >>> f = orders_filter(7, OrdersQuery(status=("charged", "refunded"), client_email="@yahoo.com"))
    >>> f.sql
    "project_id = $1 AND status = ANY($2::text[]) AND client ->> 'email' ILIKE $3"
    >>> f.args
    [7, ['charged', 'refunded'], '%@yahoo.com%']
    """
    return _filter(project_id, query, _ORDER_FILTERS)


def operations_filter(project_id: int, query: OperationsQuery) -> SqlFilter:
    """The WHERE of ``GET /operations/``."""
    return _filter(project_id, query, (("status", "status"), ("type", "type")))


class OrderRepo:
    """SQL for orders and operations; knows nothing of ISO 8583 or the API."""

    def __init__(self, pool: asyncpg.Pool, writer: Writer, events: Events | None = None) -> None:
        """``events``: which changes make webhook events (written with the change); None: none do."""
        self._pool = pool
        self._writer = writer
        self.events = events

    def _event(self, order: Order) -> Event | None:
        events = self.events
        return events.event(order) if events is not None and events.wanted(order) else None

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool, for the stores beside the orders' (oneclick bindings)."""
        return self._pool

    async def create(self, order: Order, first: Operation) -> None:
        """The order and its first (pending) operation, durable when this returns."""
        await self._writer.execute(_CREATE, (*_order_args(order), first.id, *_operation_args(first)))

    async def create_waiting(self, order: Order) -> None:
        """An order with no operation yet (status new or prepared), durable when this returns.

        Its creation is an event (``order.new``, ``order.prepared``) when it makes events at all.
        """
        event = self._event(order)
        if event is None:
            await self._writer.execute(_CREATE_WAITING, tuple(_order_args(order)))
            return
        args = tuple(_order_args(order))

        async def insert(conn: asyncpg.Connection) -> None:
            await conn.execute(_CREATE_WAITING, *args)
            await conn.execute(_INSERT_EVENT, *_event_args(event))

        await self._writer.run(insert)

    async def save_waiting(self, order: Order, *, attach_card: bool = False) -> bool:
        """A waiting order's card, status, client, 3-D Secure data and RRN, if nobody changed it since it was read.

        On success ``order.version`` is the stored one again; False (nothing written) when another
        request changed the order first or it no longer waits. ``attach_card``: the order must have no
        card yet (a payment attempt's card is never replaced by another attempt's).
        """
        o = order
        args = (
            o.id,
            o.version,
            o.status.value,
            *_card_args(o),
            o.client,
            o.location,
            o.secure3d,
            o.issuer,
            o.recurring,
            o.updated,
            o.rrn,  # the first operation's RRN: a page's order or a 3-D Secure one takes it when it is paid
            o.initial_rrn,
        )

        wants = self.events is not None and self.events.wanted(order)

        async def update(conn: asyncpg.Connection) -> str:
            before = None
            if wants:  # a change of status is an event: the status it had (cold path, one more read)
                before = await conn.fetchval(
                    "SELECT status FROM orders WHERE id = $1 AND version = $2", o.id, o.version
                )
            status: str = await conn.execute(_ATTACH_CARD if attach_card else _SAVE_WAITING, *args)
            if status == "UPDATE 1" and before is not None and before != o.status.value and self.events is not None:
                order.version += 1  # the event's id is the version the change makes
                try:
                    await conn.execute(_INSERT_EVENT, *_event_args(self.events.event(order)))
                finally:
                    order.version -= 1
            return status

        done = (await self._writer.run(update)) == "UPDATE 1"
        if done:
            order.version += 1
        return done

    async def expire_invoice_orders(self, now: datetime, limit: int, abandoned: datetime) -> list[Order]:
        """Up to ``limit`` waiting orders of invoices whose ``expires`` is past, now ``rejected`` (each with its
        event, and its invoice's callback, in the statement that changes it); the orders as they are now.
        ``abandoned``: an order with a card (a payment attempt) is closed only when that card went on before it.

        One transaction holds the rows (``FOR UPDATE SKIP LOCKED``) from the read to the change: a card going
        onto one of them meanwhile waits, then finds it closed (and the page says expired). Not through the
        group writer: the rows it locks would wait on it.
        """
        closed: list[Order] = []
        async with self._pool.acquire() as conn, conn.transaction():
            for row in await conn.fetch(_DUE_INVOICE_ORDERS, now, limit, abandoned):
                order = _order_from(row)
                before = order.version
                order.status, order.updated, order.version = OrderStatus.REJECTED, now, before + 1
                event = self._event(order)
                if event is None:
                    done = await conn.fetchval(_EXPIRE_ORDER, order.id, before, now, abandoned)
                else:
                    e = event
                    args = (e.id, e.project_id, e.type, e.payload, e.url, e.invoice)
                    done = await conn.fetchval(_EXPIRE_ORDER_NOTIFY, order.id, before, now, abandoned, *args)
                if done:
                    closed.append(order)
        return closed

    async def add_operation(self, order: Order, op: Operation) -> bool:
        """A new (pending) operation of an existing order, durable when this returns.

        False, with nothing written, when another writer added operation
        ``op.id`` first or has one pending (see 002_orders.sql).
        """
        args = (op.order_id, op.id, order.project_id, *_operation_args(op))
        first = not order.operations and order.status in (OrderStatus.NEW, OrderStatus.PREPARED)

        async def insert(conn: asyncpg.Connection) -> str:
            # A waiting order's first operation: only while it still waits (_TAKE_WAITING; the invoice expiry).
            if first and await conn.fetchval(_TAKE_WAITING, op.order_id) is None:
                return "closed"
            status: str = await conn.execute(_ADD_OPERATION, *args)
            return status

        return (await self._writer.run(insert)) == "INSERT 0 1"

    async def finish(self, order: Order, op: Operation, *, changed: bool = True) -> None:
        """``op``'s outcome and ``order``'s state (status, amounts, auth code), in one commit.

        ``changed`` (the order's status or amounts differ from before the operation): its event, if
        it makes events, goes to the outbox in the same statement.
        """
        event = self._event(order) if changed else None
        args = (
            op.order_id,
            op.id,
            op.status.value,
            op.iso_response_code,
            op.iso_message,
            op.auth_code,
            op.arn,
            op.stan,
            op.transmission_time,
            op.cashflow.to_json() if op.cashflow is not None else None,
            op.updated,
            order.status.value,
            order.amount_charged,
            order.amount_refunded,
            order.auth_code,
        )
        if event is None:
            await self._writer.execute(_FINISH, args)
        else:
            await self._writer.execute(
                _FINISH_NOTIFY,
                (*args, event.id, event.project_id, event.type, event.payload, event.url, event.invoice),
            )

    async def claim_wallet_token(self, transaction_id: str, project_id: int, order_id: str, now: datetime) -> bool:
        """Claim the wallet token ``transaction_id`` for ``order_id``; False when it was claimed already.

        Its own statement on the pool, never in the writer's group-commit batch: the primary key decides
        between concurrent claims, and a conflict there would fail the writes batched with it.
        """
        claimed = await self._pool.fetchval(
            "INSERT INTO wallet_tokens_used (transaction_id, project_id, order_id, created) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING true",
            transaction_id,
            project_id,
            order_id,
            now,
        )
        return claimed is not None

    async def get(self, project_id: int, order_id: str) -> Order | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = $1 AND project_id = $2", order_id, project_id
            )
            if row is None:
                return None
            order = _order_from(row)
            rows = await conn.fetch(
                f"SELECT {_OPERATION_COLUMNS} FROM operations WHERE order_id = $1 ORDER BY id", order_id
            )
        order.operations = [_operation_from(r) for r in rows]
        return order

    async def list_orders(self, flt: SqlFilter, offset: int, limit: int) -> tuple[list[Order], int]:
        """One page of the project's orders matching ``flt``, newest first, and the total count."""
        where, args = flt.sql, flt.args
        async with self._pool.acquire() as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM orders WHERE {where}", *args)
            rows = await conn.fetch(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE {where}"
                f" ORDER BY created DESC, id DESC OFFSET ${len(args) + 1} LIMIT ${len(args) + 2}",
                *args,
                offset,
                limit,
            )
            orders = [_order_from(r) for r in rows]
            if orders:
                by_id = {o.id: o for o in orders}
                ops = await conn.fetch(
                    f"SELECT {_OPERATION_COLUMNS} FROM operations WHERE order_id = ANY($1::text[])"
                    " ORDER BY order_id, id",
                    list(by_id),
                )
                for r in ops:
                    by_id[r["order_id"]].operations.append(_operation_from(r))
        return orders, int(total)

    async def list_operations(self, flt: SqlFilter, offset: int, limit: int) -> tuple[list[Operation], int]:
        """One page of the project's operations (never pending ones), newest first, and the total."""
        where, args = flt.sql + " AND status <> 'pending'", flt.args
        async with self._pool.acquire() as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM operations WHERE {where}", *args)
            rows = await conn.fetch(
                f"SELECT {_OPERATION_COLUMNS} FROM operations WHERE {where}"
                f" ORDER BY created DESC, order_id DESC, id DESC OFFSET ${len(args) + 1} LIMIT ${len(args) + 2}",
                *args,
                offset,
                limit,
            )
        return [_operation_from(r) for r in rows], int(total)

    # -- the ISO listener's peers (004_iso_peer_refs.sql) --------------------------

    async def add_peer_ref(
        self,
        project_id: int,
        peer: tuple[str, str, str, str],
        rrn: str | None,
        order_id: str,
        operation_id: int,
    ) -> bool:
        """Record that the peer's request ``(DE 41, MTI, DE 11, DE 7)`` is this operation; False for a repeat."""
        status = await self._pool.execute(
            "INSERT INTO iso_peer_refs (project_id, terminal_id, mti, stan, transmission_time, rrn, order_id,"
            " operation_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            project_id,
            *peer,
            rrn,
            order_id,
            operation_id,
        )
        return bool(status == "INSERT 0 1")

    async def peer_ref(self, project_id: int, peer: tuple[str, str, str, str]) -> tuple[str, int] | None:
        """(order id, operation id) the peer's request ``(DE 41, MTI, DE 11, DE 7)`` became."""
        row = await self._pool.fetchrow(
            "SELECT order_id, operation_id FROM iso_peer_refs WHERE project_id = $1 AND terminal_id = $2"
            " AND mti = $3 AND stan = $4 AND transmission_time = $5",
            project_id,
            *peer,
        )
        return None if row is None else (row["order_id"], row["operation_id"])

    async def peer_ref_by_rrn(self, project_id: int, terminal_id: str, rrn: str) -> tuple[str, int] | None:
        """The newest 0100/0200 of the peer's terminal with DE 37 ``rrn``."""
        row = await self._pool.fetchrow(
            "SELECT order_id, operation_id FROM iso_peer_refs WHERE project_id = $1 AND terminal_id = $2"
            " AND rrn = $3 AND mti IN ('0100', '0200') ORDER BY created DESC LIMIT 1",
            project_id,
            terminal_id,
            rrn,
        )
        return None if row is None else (row["order_id"], row["operation_id"])
