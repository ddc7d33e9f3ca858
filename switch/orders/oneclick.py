"""Oneclick: a merchant's customer and the cards they chose to keep (``extra_fields.oneclick``).

A binding names the order whose sealed card it pays with (schemas/sql/010):
no card data of its own, never a CVV. Every read and write goes through the
project *and* the customer id, so one project's customer id never reaches
another project's cards. Paying with a kept card needs no PAN: the request
names the customer (and optionally ``card_id``, one of
:meth:`OneclickCards.list`), the card comes out of the vault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from switch.orders.errors import InvalidInput, OrderNotFound, Rejected
from switch.orders.model import Order, OrderStatus
from switch.store.projects import Project

__all__ = ["CUSTOMER_ID", "KeptCard", "OneclickCards"]

CUSTOMER_ID = re.compile(r"[A-Za-z0-9]{1,40}", re.ASCII)

# Orders whose card may be kept: the authorization went through.
_KEEPABLE = frozenset({OrderStatus.AUTHORIZED, OrderStatus.CHARGED})

_COLUMNS = "id, order_id, pan_mask, expiry_month, expiry_year, card_type, created, updated"

_BIND = f"""
INSERT INTO oneclick_cards (project_id, customer_id, order_id, pan_mask, expiry_month, expiry_year, card_type,
                            created, updated)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
ON CONFLICT ON CONSTRAINT oneclick_cards_one_per_card
DO UPDATE SET order_id = EXCLUDED.order_id, card_type = EXCLUDED.card_type, updated = EXCLUDED.updated
RETURNING {_COLUMNS}
"""


@dataclass(frozen=True, slots=True)
class KeptCard:
    """One kept card as the merchant may see it (masked), and the order whose sealed card it is."""

    id: str
    order_id: str
    pan_mask: str
    expiry_month: int | None
    expiry_year: int | None
    card_type: str | None
    created: datetime
    updated: datetime


def _check_customer(customer_id: str, field: str) -> None:
    if not isinstance(customer_id, str) or CUSTOMER_ID.fullmatch(customer_id) is None:
        raise InvalidInput.one("Must be 1-40 letters or digits", field)


def _kept(row: asyncpg.Record) -> KeptCard:
    return KeptCard(
        str(row["id"]),
        row["order_id"],
        row["pan_mask"],
        row["expiry_month"],
        row["expiry_year"],
        row["card_type"],
        row["created"],
        row["updated"],
    )


class OneclickCards:
    """The ``oneclick_cards`` table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def keep(self, project: Project, order: Order, customer_id: str, now: datetime) -> KeptCard:
        """Keep the card of ``project``'s ``order`` (authorized or charged, card sealed) for ``customer_id``."""
        _check_customer(customer_id, "extra_fields/oneclick/customer_id")
        if order.project_id != project.id:
            raise OrderNotFound(order.id)
        if order.status not in _KEEPABLE or order.card_key_id is None or order.pan_mask is None:
            raise Rejected("Order has no authorized card to keep", order_id=order.id)
        return await self.bind(order, customer_id, now)

    async def bind(self, order: Order, customer_id: str, now: datetime) -> KeptCard:
        """Keep ``order``'s card for ``customer_id`` of the order's project (the same card again: moved to it)."""
        row = await self._pool.fetchrow(
            _BIND,
            order.project_id,
            customer_id,
            order.id,
            order.pan_mask,
            order.expiry_month,
            order.expiry_year,
            order.card_type,
            now,
        )
        return _kept(row)

    async def find(self, project_id: int, customer_id: str, card_id: str | None) -> KeptCard | None:
        """The customer's card ``card_id``, or (None) their most recently kept one."""
        if card_id is None:
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS} FROM oneclick_cards WHERE project_id = $1 AND customer_id = $2"
                " ORDER BY updated DESC, id DESC LIMIT 1",
                project_id,
                customer_id,
            )
        else:
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS} FROM oneclick_cards WHERE project_id = $1 AND customer_id = $2 AND id = $3",
                project_id,
                customer_id,
                int(card_id),
            )
        return None if row is None else _kept(row)

    async def list(self, project_id: int, customer_id: str) -> list[KeptCard]:
        """The customer's kept cards, most recent first."""
        _check_customer(customer_id, "customer_id")
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM oneclick_cards WHERE project_id = $1 AND customer_id = $2"
            " ORDER BY updated DESC, id DESC",
            project_id,
            customer_id,
        )
        return [_kept(r) for r in rows]
