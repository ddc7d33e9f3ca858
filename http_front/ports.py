"""What the front needs of the runtime, as structural types.

The front uses three objects of ``switch.runtime.Runtime``: the orders
service, the project store (HTTP Basic) and the idempotency store. Typing
them as protocols keeps ``http_front`` to that surface and lets the unit
tests run the app over small fakes; the values that cross it (projects,
orders, pages, idempotency decisions) are the core's own types.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from switch.invoices.model import InvoiceRequest
from switch.invoices.service import InvoiceView
from switch.invoices.services import PaymentServices
from switch.links.model import LinkRequest, PaymentLink
from switch.links.service import LinkPage, LinkPayment
from switch.mail import QueuedMail
from switch.orders.model import Operation, Order
from switch.orders.oneclick import KeptCard
from switch.orders.pages import PageView
from switch.orders.requests import (
    AmountRequest,
    AuthorizeRequest,
    CreateRequest,
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
from switch.translate import Card

__all__ = [
    "IdempotencyPort",
    "InvoicesPort",
    "LinksPort",
    "OrdersPort",
    "PagesPort",
    "ProjectsPort",
    "RuntimePort",
    "SafCountsPort",
    "WebhookCountsPort",
    "MailCountsPort",
]


class ProjectsPort(Protocol):
    async def authenticate(self, login: str, password: str) -> Project | None: ...
    async def by_public_key(self, key: str) -> tuple[Project, bool] | None: ...


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


class PagesPort(Protocol):
    """The hosted payment pages (switch.orders.pages.PaymentPages)."""

    async def create(self, project: Project, req: CreateRequest) -> tuple[Order, str]: ...
    async def reissue(self, project: Project, order_id: str) -> str | None: ...
    async def view(self, token: str) -> PageView: ...
    async def pay(
        self,
        token: str,
        card: Card,
        *,
        browser: Mapping[str, Any] | None = None,
        ip: str | None = None,
        save_card: bool = False,
        links: Any = None,
    ) -> PageView: ...
    async def resume(self, token: str, links: Any) -> PageView: ...
    async def after_secure3d(self, order: Order) -> PageView | None: ...


class InvoicesPort(Protocol):
    """Invoices and their payment services (switch.invoices.service.Invoices)."""

    @property
    def services(self) -> PaymentServices: ...
    def now(self) -> datetime: ...
    async def create(self, project: Project, req: InvoiceRequest) -> InvoiceView: ...
    async def get(self, project: Project, invoice_id: str) -> InvoiceView | None: ...
    async def by_reference(self, project: Project, reference_id: str) -> InvoiceView | None: ...
    async def return_urls(self, order_id: str) -> dict[str, str]: ...
    async def send_mail(self, project: Project, view: InvoiceView, url: str) -> QueuedMail: ...
    async def page(
        self,
        project: Project,
        size: int,
        *,
        after: str | None = None,
        before: str | None = None,
        reference_id: str | None = None,
    ) -> tuple[list[InvoiceView], bool, int] | None: ...


class LinksPort(Protocol):
    """Payment links (switch.links.service.PaymentLinks)."""

    def now(self) -> datetime: ...
    async def create(self, project: Project, req: LinkRequest) -> PaymentLink: ...
    async def update(self, project: Project, link_id: str, req: LinkRequest) -> PaymentLink | None: ...
    async def delete(self, project: Project, link_id: str) -> bool: ...
    async def get(self, project: Project, link_id: str) -> PaymentLink | None: ...
    async def page(self, project: Project, number: int, size: int) -> tuple[list[PaymentLink], int]: ...
    async def open(self, slug: str) -> LinkPage | None: ...
    async def pay(self, page: LinkPage, posted: dict[str, str], submission: str) -> LinkPayment: ...


class RuntimePort(Protocol):
    @property
    def orders(self) -> OrdersPort: ...
    @property
    def projects(self) -> ProjectsPort: ...
    @property
    def idempotency(self) -> IdempotencyPort: ...
    @property
    def pages(self) -> PagesPort: ...
    @property
    def invoices(self) -> InvoicesPort: ...
    @property
    def links(self) -> LinksPort: ...


@runtime_checkable
class SafCountsPort(Protocol):
    """A runtime with store-and-forward: ``/metrics`` reads its queue's counts (others are scraped without)."""

    async def saf_counts(self) -> SafCounts: ...


@runtime_checkable
class MailCountsPort(Protocol):
    """A runtime with the mail outbox: ``/metrics`` reads its (pending, failed) counts."""

    async def mail_counts(self) -> tuple[int, int]: ...


@runtime_checkable
class WebhookCountsPort(Protocol):
    """A runtime with the webhook outbox: ``/metrics`` reads its (pending, failed) counts."""

    async def webhook_counts(self) -> tuple[int, int]: ...
