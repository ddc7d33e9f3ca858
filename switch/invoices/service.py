"""Invoices (seeds/002): created by the merchant, paid by the cardholder on the hosted page.

An invoice owns an order made through the same service (DESIGN.md, "Invoices
and the portal"): creating one writes the invoice row (the claim of its
``reference_id``), then a waiting order (status ``new``, ``invoice_id`` set,
so ``GET /orders/`` shows it) and a hosted payment page of kind ``invoice``
for it; paying the page pays the order (``flow: charge`` charges it at once,
``verify`` only authorizes). The invoice's status is read from its order
(:func:`switch.invoices.model.state_of`).

A host-to-host service (flow ``h2h``, the card in the request) pays at once: the
invoice row is written once the card and the request are checked (``claim`` of
:meth:`OrdersService.authorize`, before the intent), then the order is
authorized (``flow: charge``: and charged) through the order service. A decline is
an answer (the invoice is ``process_failed``/``declined``); an issuer that could not
be asked, answered something unusable or did not answer in time (its reversal goes
through store-and-forward as any) is :class:`GatewayFailure`, seeds/002's 503/502/504,
and the invoice stays readable by id and reference, as the seed's code table advises.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from switch.invoices.mail import invoice_mail
from switch.invoices.model import PENDING, Invoice, InvoiceRequest, state_of, test_flow_state
from switch.invoices.services import PaymentService, PaymentServices
from switch.invoices.store import InvoiceStore
from switch.mail import Mailer, QueuedMail, check_address
from switch.money import currency, from_minor
from switch.orders.cashflow import percent_of
from switch.orders.errors import Declined, Fraud, InvalidInput, IssuerError, Rejected
from switch.orders.model import Order, OrderStatus
from switch.orders.pages import PaymentPages
from switch.orders.requests import AuthorizeRequest, CreateRequest, Details, PageOptions
from switch.orders.verdicts import ISSUER_BUSY, ISSUER_UNAVAILABLE, LINK_LOST, NOT_ENCODED, TIMED_OUT
from switch.store.db import DATABASE_DOWN
from switch.store.projects import Project
from switch.store.vault import Vault

__all__ = [
    "DEFAULT_LIFETIME",
    "DuplicateInvoice",
    "GatewayFailure",
    "InvoiceView",
    "Invoices",
    "NotMailable",
    "failure_kind",
]

DEFAULT_LIFETIME = timedelta(days=1)  # when the request says no `expires` (seeds/002 allows 14 min to 2 days)
_ALPHABET = string.ascii_letters + string.digits


def _base62(n: int, length: int = 16) -> str:
    out = []
    for _ in range(length):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(out)


def _new_id() -> str:
    return "cpi_" + "".join(secrets.choice(_ALPHABET) for _ in range(16))


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


# What a create that got no usable answer tells the merchant (seeds/002's 5xx), as data: by the reason an
# operation was not answered, else by the issuer's DE 39 when it answered with an error code.
BAD_GATEWAY, UNAVAILABLE, TIMEOUT, INTERNAL = "bad_gateway", "unavailable", "timeout", "internal"
_UNANSWERED = {
    ISSUER_UNAVAILABLE: UNAVAILABLE,  # no ready link, no route: nothing was sent
    ISSUER_BUSY: UNAVAILABLE,
    TIMED_OUT: TIMEOUT,  # sent, no answer in time: reversed through store-and-forward
    LINK_LOST: BAD_GATEWAY,  # sent, the connection dropped before the answer: reversed too
    NOT_ENCODED: INTERNAL,  # our bug, logged by the engine
}
_ANSWERED = {"91": UNAVAILABLE, "92": UNAVAILABLE}  # issuer inoperative, no route to it; other codes: unusable
_DETAILS = {
    BAD_GATEWAY: "The issuer's answer could not be used.",
    UNAVAILABLE: "The issuer is unavailable.",
    TIMEOUT: "The issuer did not answer in time; the authorization is being reversed.",
    INTERNAL: "The request could not be sent to the issuer.",
}
_CHECK = " Check the invoice's status (by id or reference_id) before creating it again."


def failure_kind(order: Order | None) -> str:
    """Which 5xx an h2h invoice's order that failed with an issuer error answers (its last operation says)."""
    last = order.operations[-1] if order is not None and order.operations else None
    if last is None:
        return UNAVAILABLE
    if last.iso_response_code is not None:
        return _ANSWERED.get(last.iso_response_code, BAD_GATEWAY)
    return _UNANSWERED.get(last.iso_message or "", BAD_GATEWAY)


class GatewayFailure(Exception):
    """An invoice create that got no usable answer: ``kind`` (bad_gateway, unavailable, timeout, internal: the
    seed's 502, 503, 504, 500), why in words, and the invoice as stored when one was written (None: none was)."""

    def __init__(self, kind: str, view: InvoiceView | None, detail: str | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.view = view
        self.detail = (detail or _DETAILS[kind]) + (_CHECK if view is not None else "")


class NotMailable(Exception):
    """The invoice cannot be mailed: ``field`` says what to change (seeds/002's 422, keyed by it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class Invoices:
    """The invoice service: payment services as data, invoices and the orders that pay them."""

    def __init__(
        self,
        services: PaymentServices,
        store: InvoiceStore | None = None,
        pages: PaymentPages | None = None,
        vault: Vault | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self.services = services
        self.store = store
        self.pages = pages
        self._vault = vault
        self._mailer = mailer

    def now(self) -> datetime:
        """The engine's clock (what expiries are checked against)."""
        _, pages, _ = self._parts()
        return pages.engine.clock()

    def _parts(self) -> tuple[InvoiceStore, PaymentPages, Vault]:
        assert self.store is not None and self.pages is not None and self._vault is not None
        return self.store, self.pages, self._vault

    async def create(self, project: Project, req: InvoiceRequest) -> InvoiceView:
        """A new invoice (and, for a page's service, its waiting order and page; for an h2h service, its
        payment); :class:`DuplicateInvoice` when the reference is taken, :class:`GatewayFailure` when the issuer
        or the database did not serve it. The request is checked already (the front's parse)."""
        service = self.services.get(req.service)
        assert service is not None
        try:
            if service.flow == "h2h":
                return await self._pay_now(project, req, service)
            return await self._create(project, req, service)
        except DATABASE_DOWN as e:
            raise GatewayFailure(UNAVAILABLE, None, "The service is unavailable, try again later.") from e

    async def _pay_now(self, project: Project, req: InvoiceRequest, service: PaymentService) -> InvoiceView:
        """An h2h invoice: written when its order is built, then authorized (and charged) at once."""
        store, pages, _ = self._parts()
        invoice_id = _new_id()
        written: list[Invoice] = []

        async def claim(order_id: str, now: datetime) -> None:
            invoice = self._invoice(project, req, invoice_id, order_id, now)
            if not await store.insert(invoice):
                existing = await store.by_reference(project.id, req.reference_id)
                assert existing is not None  # unique and never deleted
                raise DuplicateInvoice(await self._view(project, existing))
            written.append(invoice)

        card, settings = req.card, project.settings
        assert card is not None  # the front's parse took it out of service_fields
        if settings.require_3ds:
            # No cardholder's browser host to host: the project's rule is kept, not bypassed (nothing is made).
            raise Rejected("This project requires 3-D Secure: use a hosted page's service (hpp)")
        if settings.holder_required and not card.holder:
            key = (service.card_fields or {}).get("holder", "card_holder")
            raise InvalidInput.one("This value should not be blank.", f"service_fields.{key}")
        cur = currency(req.currency)
        pay = AuthorizeRequest(
            amount=Decimal(from_minor(req.amount, cur)),
            card=card,
            currency=cur,
            details=Details(description=req.description, invoice_id=invoice_id),
            auto_charge=req.payment_flow == "charge",
            test_mode=req.test_mode,
        )
        failed = False
        try:
            await pages.service.authorize(project, pay, claim=claim)
        except (Declined, Fraud):
            pass  # an answer: the invoice reads process_failed / declined
        except IssuerError:
            failed = True
        view = await self._view(project, written[0])
        if failed:
            raise GatewayFailure(failure_kind(view.order), view)
        return view

    def _invoice(
        self,
        project: Project,
        req: InvoiceRequest,
        invoice_id: str,
        order_id: str | None,
        now: datetime,
        page: tuple[str | None, bytes | None] = (None, None),
    ) -> Invoice:
        """The invoice row of ``req`` (``page``: its page token, sealed by the vault)."""
        customer = req.customer
        return Invoice(
            id=invoice_id,
            project_id=project.id,
            order_id=order_id,
            reference_id=req.reference_id,
            test_mode=req.test_mode,
            service=req.service,  # the service's code (the front's parse)
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
            page_key_id=page[0],
            page_token=page[1],
            callback_logs={},
            created=now,
            updated=now,
            cart=req.cart,
        )

    async def _create(self, project: Project, req: InvoiceRequest, service: PaymentService) -> InvoiceView:
        """An invoice of a page's service (its waiting order and page) or of the test flow."""
        store, pages, vault = self._parts()
        engine = pages.engine
        now = engine.clock()
        invoice_id = _new_id()
        hpp = service.flow == "hpp"
        token = secrets.token_urlsafe(32) if hpp else None  # 256 bits: the page's URL is its only credential
        key_id, sealed = vault.seal(token.encode(), invoice_id.encode()) if token else (None, None)
        order_id = await engine.take(engine.ids.order_id) if hpp else None
        invoice = self._invoice(project, req, invoice_id, order_id, now, (key_id, sealed))
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
                page=PageOptions(return_url=success, language=req.language),
                test_mode=req.test_mode,
            )
            kind = "invoice"
            order = await pages.open_waiting(
                project, create, req.amount, cur.alpha, invoice.expires, token, kind=kind, order_id=order_id
            )
        return self._state(project, invoice, order, token)

    async def send_mail(self, project: Project, view: InvoiceView, url: str) -> QueuedMail:
        """Mail the invoice's pay link ``url`` (its hpp_url, which the front makes) to ``customer.email``, through
        the mail outbox (sent and retried by its worker); :class:`NotMailable` when it cannot be."""
        assert self._mailer is not None
        invoice = view.invoice
        email = (invoice.customer or {}).get("email")
        if view.token is None:
            raise NotMailable("service", "This invoice has no payment page to send (the test flow).")
        if view.status != PENDING:
            raise NotMailable("status", f"This invoice is {view.status} ({view.resolution}): there is nothing to pay.")
        if not (isinstance(email, str) and check_address(email)):
            raise NotMailable("customer.email", "This invoice's customer has no valid email address.")
        return await self._mailer.enqueue(invoice_mail(invoice, project.name, url, email))

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
