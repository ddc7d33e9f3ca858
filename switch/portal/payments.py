"""The portal's payments area below HTTP (issue 13 item 6; seeds/000 "Working with payments"): a user's saved filter
templates, an order's cart (its invoice's) and refunds by cart items, and the back-office operations with the portal
user named in the audit log.

Operations go through :class:`~switch.orders.service.OrdersService` (its status table, amount checks, ISO
messages and ``audit_log`` row): :func:`as_portal_user` only says who pressed the button, in the audit's request
source (``channel`` ``portal``, ``portal_user`` the e-mail; ``schemas/sql/036_portal_payments.sql``).

A refund by cart items is one refund of the order service for the lines' sum; the lines and quantities are kept
once it is approved (``portal_cart_refunds``), so the cart tab shows what was taken back and a line is never refunded
beyond its quantity from the portal. Two such refunds of one order at once may both pass that check: the order
service's own bound (never more than charged minus refunded) still holds for the money.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg
import orjson

from switch.invoices.cart import CartLine
from switch.money import from_minor
from switch.orders.errors import Rejected
from switch.orders.model import Order
from switch.orders.requests import AmountRequest
from switch.orders.service import OrdersService
from switch.store.audit import SOURCE, RequestSource
from switch.store.projects import Project

__all__ = [
    "MAX_TEMPLATES",
    "CartRow",
    "FilterTemplate",
    "PaymentDesk",
    "as_portal_user",
]

MAX_TEMPLATES = 30  # per user and project: a list to choose from, not a store


@dataclass(frozen=True, slots=True)
class FilterTemplate:
    id: int
    name: str
    query: str  # the list page's query string (its form's names)


@dataclass(frozen=True, slots=True)
class CartRow:
    """A line of the order's cart with what the portal refunded of it."""

    line: int  # 0-based position in the invoice's cart
    item: CartLine
    refunded_quantity: Decimal
    refunded_amount: int

    @property
    def left(self) -> Decimal:
        return self.item.quantity - self.refunded_quantity


@contextlib.contextmanager
def as_portal_user(email: str, ip: str | None) -> Iterator[None]:
    """The audit source of the calls inside: channel ``portal`` and the portal user's e-mail."""
    base = SOURCE.get()
    source = replace(base, channel="portal", user=email) if base is not None else None
    token = SOURCE.set(source or RequestSource(ip=ip, channel="portal", user=email))
    try:
        yield
    finally:
        SOURCE.reset(token)


_TEMPLATES = "SELECT id, name, query FROM portal_filter_templates WHERE user_id = $1 AND project_id = $2 ORDER BY name"
_SAVE = """
INSERT INTO portal_filter_templates (user_id, project_id, name, query) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, project_id, name) DO UPDATE SET query = EXCLUDED.query, created = now()
"""
_CART = "SELECT cart, currency FROM payment_invoices WHERE project_id = $1 AND order_id = $2"
_REFUNDED = (
    "SELECT line, sum(quantity) AS quantity, sum(amount) AS amount FROM portal_cart_refunds"
    " WHERE project_id = $1 AND order_id = $2 GROUP BY line"
)
_KEEP_REFUND = (
    "INSERT INTO portal_cart_refunds (project_id, order_id, line, quantity, amount, portal_user, at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)"
)


class PaymentDesk:
    """Templates, carts and the operations of the payments pages, over the pool and the orders service."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- filter templates --------------------------------------------------------------------

    async def templates(self, user_id: int, project_id: int) -> list[FilterTemplate]:
        rows = await self._pool.fetch(_TEMPLATES, user_id, project_id)
        return [FilterTemplate(r["id"], r["name"], r["query"]) for r in rows]

    async def save_template(self, user_id: int, project_id: int, name: str, query: str) -> None:
        """Keep (or replace, by name) a template; :class:`ValueError` for a bad name or one too many."""
        name = " ".join(name.split())
        if not 1 <= len(name) <= 64:
            raise ValueError("a template's name is 1 to 64 characters")
        if len(query) > 2000:
            raise ValueError("the filter is too long to keep")
        async with self._pool.acquire() as conn, conn.transaction():
            names = {r["name"] for r in await conn.fetch(_TEMPLATES, user_id, project_id)}
            if name not in names and len(names) >= MAX_TEMPLATES:
                raise ValueError(f"at most {MAX_TEMPLATES} templates; delete one first")
            await conn.execute(_SAVE, user_id, project_id, name, query)

    async def delete_template(self, user_id: int, project_id: int, template_id: int) -> bool:
        """Delete one of the user's own templates (another user's id deletes nothing)."""
        done = await self._pool.execute(
            "DELETE FROM portal_filter_templates WHERE id = $1 AND user_id = $2 AND project_id = $3",
            template_id,
            user_id,
            project_id,
        )
        return bool(done.endswith(" 1"))

    # -- the cart ----------------------------------------------------------------------------

    async def cart(self, project: Project, order: Order) -> list[CartRow]:
        """The order's invoice cart with what was refunded of each line (empty: no cart)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_CART, project.id, order.id)
            if row is None or row["cart"] is None:
                return []
            refunded = {r["line"]: r for r in await conn.fetch(_REFUNDED, project.id, order.id)}
        lines = row["cart"] if isinstance(row["cart"], list) else _json(row["cart"])
        out = []
        for i, raw in enumerate(lines):
            done = refunded.get(i)
            out.append(
                CartRow(
                    i,
                    CartLine.from_stored(raw),
                    Decimal(done["quantity"]) if done else Decimal(0),
                    int(done["amount"]) if done else 0,
                )
            )
        return out

    async def refund_items(
        self, orders: OrdersService, project: Project, order: Order, quantities: Mapping[int, str], user: str
    ) -> Order:
        """Refund ``quantities`` (line -> units, as typed) of the cart: one refund of their sum.

        :class:`~switch.orders.errors.Rejected` for a line that is not there, a quantity that is not a positive
        number or more than is left, or a sum that is not a whole number of minor units.
        """
        rows = {r.line: r for r in await self.cart(project, order)}
        chosen: list[tuple[CartRow, Decimal, int]] = []
        for line, raw in quantities.items():
            qty = _quantity(raw)
            if qty is None:
                raise Rejected("A refund quantity must be a positive number", order_id=order.id)
            if qty == 0:
                continue
            row = rows.get(line)
            if row is None:
                raise Rejected("No such line in the cart", order_id=order.id)
            if qty > row.left:
                raise Rejected(f"Line {line + 1}: at most {row.left.normalize()} left to refund", order_id=order.id)
            exact = row.item.price * qty
            if exact != exact.to_integral_value():
                raise Rejected(f"Line {line + 1}: that quantity is not a whole number of cents", order_id=order.id)
            chosen.append((row, qty, int(exact)))
        total = sum(a for _, _, a in chosen)
        if total <= 0:
            raise Rejected("Choose the quantities to refund", order_id=order.id)
        done = await orders.refund(project, order.id, AmountRequest(Decimal(from_minor(total, order.currency))))
        now = datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            for row, qty, units in chosen:
                await conn.execute(_KEEP_REFUND, project.id, order.id, row.line, qty, units, user, now)
        return done


def _quantity(raw: str) -> Decimal | None:
    raw = raw.strip()
    if raw == "":
        return Decimal(0)
    try:
        q = Decimal(raw)
    except InvalidOperation:
        return None
    if not q.is_finite() or q < 0 or q != q.quantize(Decimal("0.001")) or q > 1_000_000:
        return None
    return q


def _json(raw: Any) -> Any:
    return orjson.loads(raw)
