"""The order-status table of seeds/003 as data: which operations each status allows.

Loaded once from ``schemas/orders/status_table.json``.

>>> allowed(OrderStatus.AUTHORIZED, "charge"), allowed(OrderStatus.CHARGED, "charge")
(True, False)
>>> cancel_action(OrderStatus.AUTHORIZED), cancel_action(OrderStatus.REFUNDED), cancel_action(OrderStatus.NEW)
('reverse', 'refund', None)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from schemas import SCHEMAS_DIR
from switch.orders.model import OrderStatus

__all__ = ["ACTIONS", "Action", "StatusTable", "allowed", "cancel_action", "status_table"]

Action = Literal["charge", "reverse", "refund", "credit", "rebill"]
ACTIONS: tuple[Action, ...] = ("charge", "reverse", "refund", "credit", "rebill")

TABLE_PATH = SCHEMAS_DIR / "orders" / "status_table.json"


@dataclass(frozen=True, slots=True)
class StatusTable:
    allowed: Mapping[OrderStatus, frozenset[str]]
    cancel: Mapping[OrderStatus, str]


@functools.cache
def status_table() -> StatusTable:
    """The table, read and checked once: every status present, only known actions."""
    with open(TABLE_PATH, encoding="utf-8") as f:
        doc = json.load(f)
    rows = doc["statuses"]
    missing = {s.value for s in OrderStatus} - set(rows)
    if missing:
        raise ValueError(f"{TABLE_PATH}: statuses missing: {sorted(missing)}")
    table: dict[OrderStatus, frozenset[str]] = {}
    for status, actions in rows.items():
        unknown = set(actions) - set(ACTIONS)
        if unknown:
            raise ValueError(f"{TABLE_PATH}: {status}: unknown operations {sorted(unknown)}")
        table[OrderStatus(status)] = frozenset(actions)
    cancel: dict[OrderStatus, str] = {}
    for action, statuses in doc["cancel"].items():
        if action not in ("reverse", "refund"):
            raise ValueError(f"{TABLE_PATH}: cancel may be a reverse or a refund, not {action!r}")
        for status in statuses:
            st = OrderStatus(status)
            if action not in table[st]:
                raise ValueError(f"{TABLE_PATH}: cancel as {action} in {status}, where {action} is not allowed")
            cancel[st] = action
    return StatusTable(table, cancel)


def allowed(status: OrderStatus, action: str) -> bool:
    """True when ``action`` may run on an order in ``status``."""
    return action in status_table().allowed[status]


def cancel_action(status: OrderStatus) -> str | None:
    """What a cancel does in ``status``: ``"reverse"``, ``"refund"`` or None (refused)."""
    return status_table().cancel.get(status)
