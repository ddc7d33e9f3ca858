"""The orders service driven with the API's JSON bodies, as the REST front drives it.

The service takes typed requests (switch.orders.requests); the front builds
them with http_front.orders.parse. Service-level tests speak the seed's
JSON, so this adapter does the front's half (parse, then call) and nothing
else: same errors, same orders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from http_front.orders import parse
from http_front.orders.query import operations_query, orders_query
from http_front.orders.status import error_body, http_status
from switch.orders import Operation, Order, OrdersService, Page
from switch.orders.errors import OrderError
from switch.store.projects import Project

__all__ = ["JsonOrders", "body_of", "http_status"]


def body_of(err: OrderError) -> dict[str, Any]:
    """The seed's failure body the front answers ``err`` with."""
    return error_body(err)


class JsonOrders:
    """:class:`OrdersService` with JSON bodies and query strings in (anything else passes through)."""

    def __init__(self, service: OrdersService) -> None:
        self.service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self.service, name)

    async def authorize(self, project: Project, body: Mapping[str, Any]) -> Order:
        return await self.service.authorize(project, parse.authorize_request(body, project.settings))

    async def token_pay(self, project: Project, body: Mapping[str, Any]) -> Order:
        return await self.service.token_pay(project, parse.token_pay_request(body))

    async def rebill(self, project: Project, order_id: str, body: Mapping[str, Any]) -> Order:
        return await self.service.rebill(project, order_id, parse.rebill_request(body, order_id))

    async def credit(self, project: Project, order_id: str | None, body: Mapping[str, Any]) -> Order:
        return await self.service.credit(project, order_id, parse.credit_request(body, with_card=order_id is None))

    async def charge(self, project: Project, order_id: str, body: Mapping[str, Any] | None = None) -> Order:
        return await self.service.charge(project, order_id, parse.amount_request(body))

    async def refund(self, project: Project, order_id: str, body: Mapping[str, Any] | None = None) -> Order:
        return await self.service.refund(project, order_id, parse.amount_request(body))

    async def cancel(self, project: Project, order_id: str, body: Mapping[str, Any] | None = None) -> Order:
        return await self.service.cancel(project, order_id, parse.amount_request(body))

    async def reverse(self, project: Project, order_id: str, body: Mapping[str, Any] | None = None) -> Order:
        return await self.service.reverse(project, order_id)

    async def list_orders(self, project: Project, query: Mapping[str, str]) -> Page[Order]:
        return await self.service.list_orders(project, orders_query(query))

    async def list_operations(self, project: Project, query: Mapping[str, str]) -> Page[Operation]:
        return await self.service.list_operations(project, operations_query(query))
