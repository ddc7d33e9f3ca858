"""What the front needs of the runtime, as structural types.

The front uses three objects of ``switch.runtime.Runtime``: the orders
service, the project store (HTTP Basic) and the idempotency store. Typing
them as protocols keeps ``http_front`` to that surface and lets the unit
tests run the app over small fakes; the values that cross it (projects,
orders, pages, idempotency decisions) are the core's own types.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from switch.orders.model import Operation, Order
from switch.orders.oneclick import KeptCard
from switch.orders.requests import (
    AmountRequest,
    AuthorizeRequest,
    CreditRequest,
    OperationsQuery,
    OrdersQuery,
    RebillRequest,
    TokenPayRequest,
)
from switch.orders.service import Page
from switch.saf import SafCounts
from switch.store.idempotency import Begin
from switch.store.projects import Project

__all__ = ["IdempotencyPort", "OrdersPort", "ProjectsPort", "RuntimePort", "SafCountsPort"]


class ProjectsPort(Protocol):
    async def authenticate(self, login: str, password: str) -> Project | None: ...


class IdempotencyPort(Protocol):
    async def begin(self, project_id: int, key: str, fingerprint: bytes) -> Begin: ...
    async def finish(self, project_id: int, key: str, status: int, body: bytes) -> None: ...
    async def abandon(self, project_id: int, key: str) -> None: ...


class OrdersPort(Protocol):
    async def authorize(self, project: Project, req: AuthorizeRequest) -> Order: ...
    async def token_pay(self, project: Project, req: TokenPayRequest) -> Order: ...
    async def oneclick_cards(self, project: Project, customer_id: str) -> list[KeptCard]: ...
    async def charge(self, project: Project, order_id: str, req: AmountRequest) -> Order: ...
    async def reverse(self, project: Project, order_id: str) -> Order: ...
    async def refund(self, project: Project, order_id: str, req: AmountRequest) -> Order: ...
    async def cancel(self, project: Project, order_id: str, req: AmountRequest) -> Order: ...
    async def rebill(self, project: Project, order_id: str, req: RebillRequest) -> Order: ...
    async def credit(self, project: Project, order_id: str | None, req: CreditRequest) -> Order: ...
    async def get_order(self, project: Project, order_id: str) -> Order: ...
    async def list_orders(self, project: Project, query: OrdersQuery) -> Page[Order]: ...
    async def list_operations(self, project: Project, query: OperationsQuery) -> Page[Operation]: ...


class RuntimePort(Protocol):
    @property
    def orders(self) -> OrdersPort: ...
    @property
    def projects(self) -> ProjectsPort: ...
    @property
    def idempotency(self) -> IdempotencyPort: ...


@runtime_checkable
class SafCountsPort(Protocol):
    """A runtime with store-and-forward: ``/metrics`` reads its queue's counts (others are scraped without)."""

    async def saf_counts(self) -> SafCounts: ...
