"""What the orders engine needs of the rest of the core, as structural types.

The runtime passes the real router (``switch.pool.Router``), database
(``switch.store.Database``) and identifier leases (``switch.store.DbIds``);
tests may pass their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from switch.wire.codec import Message

__all__ = ["Database", "Ids", "Router"]


class Router(Protocol):
    # test_mode: a test-mode order's request, routed to the test destination (switch.pool.RoutingTable).
    # Only ever passed as True, so a router of a test that knows no test mode still works for live orders.
    async def request(self, msg: Message, *, timeout: float | None = None, test_mode: bool = False) -> Message: ...


class Database(Protocol):
    @property
    def pool(self) -> Any: ...


class Ids(Protocol):
    def order_id(self) -> str: ...
    def rrn(self, now: datetime | None = None) -> str: ...
    def arn(self, acquirer_bin: str, now: datetime | None = None) -> str: ...
    async def refill(self) -> None: ...
