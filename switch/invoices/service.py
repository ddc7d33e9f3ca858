"""Invoices (seeds/002): created by the merchant, paid by the cardholder on the hosted page.

An invoice owns an order made through the same service (DESIGN.md, "Invoices
and the portal"): creating one writes the invoice row (the claim of its
``reference_id``), then a waiting order (status ``new``, ``invoice_id`` set,
so ``GET /orders/`` shows it) and a hosted payment page of kind ``invoice``
for it; paying the page pays the order (``flow: charge`` charges it at once,
``verify`` only authorizes). The invoice's status is read from its order
(:func:`switch.invoices.model.state_of`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from switch.invoices.model import Invoice, InvoiceRequest, state_of, test_flow_state
from switch.invoices.services import PaymentService, PaymentServices
from switch.invoices.store import InvoiceStore
from switch.money import currency, from_minor
from switch.orders.cashflow import percent_of
from switch.orders.model import Order, OrderStatus
from switch.orders.pages import PaymentPages
from switch.orders.requests import CreateRequest, Details, PageOptions
from switch.store.projects import Project
from switch.store.vault import Vault

__all__ = ["DEFAULT_LIFETIME", "DuplicateInvoice", "InvoiceView", "Invoices"]

DEFAULT_LIFETIME = timedelta(days=1)  # when the request says no `expires` (seeds/002 allows 14 min to 2 days)
_ALPHABET = string.ascii_letters + string.digits


def _base62(n: int, length: int = 16) -> str:
    out = []
    for _ in range(length):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(out)


def customer_id(project_id: int, reference_id: str) -> str:
    """``cus_`` and 16 base62 characters, the same for one merchant's customer reference every time.

    >>> customer_id(1, "1203515") == customer_id(1, "1203515") != customer_id(2, "1203515")
    True
    """
    digest = hashlib.sha256(f"{project_id}:{reference_id}".encode()).digest()
    return "cus_" + _base62(int.from_bytes(digest[:12]))


def _paying(order: Order | None) -> bool:
    """A payment was made (an operation) or is under way (a card on the still waiting order)."""
    if order is None:
        return False
    return bool(order.operations) or (order.status is OrderStatus.NEW and order.card_blob is not None)


@dataclass(frozen=True, slots=True)
class InvoiceView:
    """An invoice with what its answer shows: its order (None: test flow), its page's token, its state."""

    invoice: Invoice
    order: Order | None
    token: str | None
    status: str
    resolution: str
    service: PaymentService | None
    fee: int  # minor units, from the project's fee settings


class DuplicateInvoice(Exception):
    """The project has an invoice of this ``reference_id``: seeds/002's 409, with that invoice."""

    def __init__(self, existing: InvoiceView) -> None:
        super().__init__(existing.invoice.id)
        self.existing = existing


class Invoices:
    """The invoice service: payment services as data, invoices and the orders that pay them."""

    def __init__(
        self,
        services: PaymentServices,
        store: InvoiceStore | None = None,
        pages: PaymentPages | None = None,
        vault: Vault | None = None,
    ) -> None:
        self.services = services
        self.store = store
        self.pages = pages
        self._vault = vault

    def now(self) -> datetime:
        """The engine's clock (what expiries are checked against)."""
        _, pages, _ = self._parts()
        return pages.engine.clock()

    def _parts(self) -> tuple[InvoiceStore, PaymentPages, Vault]:
        assert self.store is not None and self.pages is not None and self._vault is not None
        return self.store, self.pages, self._vault

    async def create(self, project: Project, req: InvoiceRequest) -> InvoiceView:
        """A new invoice (and, for a page's service, its waiting order and page); :class:`DuplicateInvoice` when
        the reference is taken. The request is checked already (the front's parse)."""
        store, pages, vault = self._parts()
        service = self.services.get(req.service)
        assert service is not None
        engine = pages.engine
        now = engine.clock()
        invoice_id = "cpi_" + "".join(secrets.choice(_ALPHABET) for _ in range(16))
        hpp = service.flow == "hpp"
        token = secrets.token_urlsafe(32) if hpp else None  # 256 bits: the page's URL is its only credential
        key_id, sealed = vault.seal(token.encode(), invoice_id.encode()) if token else (None, None)
        order_id = await engine.take(engine.ids.order_id) if hpp else None
        customer = req.customer
        invoice = Invoice(
            id=invoice_id,
            project_id=project.id,
            order_id=order_id,
            reference_id=req.reference_id,
            test_mode=req.test_mode,
            service=service.code,
            payment_flow=req.payment_flow,
            amount=req.amount,
            currency=req.currency,
            description=req.description,
            service_fields=req.service_fields or {},
            customer=customer,
            customer_id=customer_id(project.id, str(customer["reference_id"])) if customer else None,
            metadata=req.metadata,
            return_url=req.return_url,
            return_urls=req.return_urls,
            callback_url=req.callback_url,
            gateway_options=req.gateway_options,
            source=req.source,
            expires=req.expires or now + DEFAULT_LIFETIME,
            page_key_id=key_id,
            page_token=sealed,
            callback_logs={},
            created=now,
            updated=now,
        )
        if not await store.insert(invoice):
            existing = await store.by_reference(project.id, req.reference_id)
            assert existing is not None  # unique and never deleted
            raise DuplicateInvoice(await self._view(project, existing))
        order = None
        if order_id is None:  # the test flow: its outcome is known now, and so is its one callback
            status, resolution = test_flow_state(invoice.service_fields.get("status"), invoice.expires, now)
            await store.add_callback(invoice, status, resolution, now)
        if token is not None and order_id is not None:
            cur = currency(req.currency)
            success = (req.return_urls or {}).get("success") or req.return_url
            create = CreateRequest(
                amount=Decimal(from_minor(req.amount, cur)),
                currency=cur,
                details=Details(description=req.description, invoice_id=invoice_id),
                auto_charge=req.payment_flow == "charge",
                page=PageOptions(return_url=success),
            )
            kind = "invoice"
            order = await pages.open_waiting(
                project, create, req.amount, cur.alpha, invoice.expires, token, kind=kind, order_id=order_id
            )
        return self._state(project, invoice, order, token)

    async def return_urls(self, order_id: str) -> dict[str, str]:
        """Where the page of the invoice paid by ``order_id`` sends the cardholder, by the page's outcome
        (``paid``, ``declined``, ``pending``; ``expired``, a failure too): ``return_urls.success|fail|pending``, else
        ``return_url`` (seeds/002: "a common URL for user return after payment"). Empty: no invoice, or no URL."""
        store, _, _ = self._parts()
        invoice = await store.of_order(order_id)
        if invoice is None:
            return {}
        urls = invoice.return_urls or {}
        by_outcome = {"paid": "success", "declined": "fail", "expired": "fail", "pending": "pending"}
        found = {state: urls.get(name) or invoice.return_url for state, name in by_outcome.items()}
        return {state: url for state, url in found.items() if url}

    async def get(self, project: Project, invoice_id: str) -> InvoiceView | None:
        store, _, _ = self._parts()
        invoice = await store.get(project.id, invoice_id)
        return None if invoice is None else await self._view(project, invoice)

    async def by_reference(self, project: Project, reference_id: str) -> InvoiceView | None:
        store, _, _ = self._parts()
        invoice = await store.by_reference(project.id, reference_id)
        return None if invoice is None else await self._view(project, invoice)

    async def page(
        self,
        project: Project,
        size: int,
        *,
        after: str | None = None,
        before: str | None = None,
        reference_id: str | None = None,
    ) -> tuple[list[InvoiceView], bool, int] | None:
        """Newest first (see :meth:`InvoiceStore.page`); None when a cursor names no invoice of the project."""
        store, _, _ = self._parts()
        cursors = {}
        for name, value in (("after", after), ("before", before)):
            if value is not None:
                found = await store.cursor(project.id, value)
                if found is None:
                    return None
                cursors[name] = found
        rows, more, count = await store.page(project.id, size, reference_id=reference_id, **cursors)
        return [await self._view(project, r) for r in rows], more, count

    async def _view(self, project: Project, invoice: Invoice) -> InvoiceView:
        store, pages, vault = self._parts()
        order = None
        if invoice.order_id is not None:
            order = await pages.engine.repo.get(project.id, invoice.order_id)
        if invoice.callback_url is not None:
            invoice = dataclasses.replace(invoice, callback_logs=await store.callbacks(invoice.id))
        token = None
        if invoice.page_token is not None and invoice.page_key_id is not None:
            token = vault.open(invoice.page_key_id, invoice.page_token, invoice.id.encode()).decode()
        return self._state(project, invoice, order, token)

    def _state(self, project: Project, invoice: Invoice, order: Order | None, token: str | None) -> InvoiceView:
        _, pages, _ = self._parts()
        now = pages.engine.clock()
        service = self.services.get(invoice.service)
        if invoice.order_id is None:
            status, resolution = test_flow_state(invoice.service_fields.get("status"), invoice.expires, now)
        else:
            status, resolution = state_of(
                invoice.payment_flow,
                order.status if order is not None else None,
                _paying(order),
                invoice.expires,
                now,
                invoice.created,
            )
        settings = project.settings
        fee = percent_of(invoice.amount, settings.fee_rate) + settings.fee_fixed
        return InvoiceView(invoice, order, token, status, resolution, service, min(fee, invoice.amount))
