"""Payment links: the merchant's templates, and the invoice each payment through one makes.

A link is a template (:class:`~switch.links.model.PaymentLink`) with a public,
unguessable slug (192 random bits). Its pre-payment page collects what the
template asks for; :meth:`PaymentLinks.pay` checks it (amount, the standard
fields, each parameter against its regexp) and makes an invoice through the
invoice service (source ``payment_link``, the payer's values in its
``metadata``), whose hosted page takes the card. The invoice's
``reference_id`` is derived from the submission (the rendered form's one-time
nonce): the same form posted twice makes one invoice, and the second post is
sent to it too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from switch.errors import TranslationError
from switch.invoices.model import InvoiceRequest
from switch.invoices.service import DuplicateInvoice, Invoices, InvoiceView
from switch.links.model import LinkRequest, PaymentLink, check_values, state_of
from switch.links.store import LinkStore
from switch.money import to_minor
from switch.store.projects import Project, Projects

__all__ = ["DEFAULT_PERIOD", "LinkClosed", "LinkPage", "LinkPayment", "PaymentLinks"]

DEFAULT_PERIOD = timedelta(days=30)  # seeds/000: "one month from the current date" unless told otherwise
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class LinkPage:
    """A link as its public page shows it: the template, its project, whether it takes payments now."""

    link: PaymentLink
    project: Project
    state: str  # active, disabled, scheduled, expired (model.state_of)
    merchant: str


@dataclass(frozen=True, slots=True)
class LinkPayment:
    """A submission's outcome: field errors (the form again), or the invoice to pay on its page."""

    errors: dict[str, str]
    invoice: InvoiceView | None = None


class LinkClosed(Exception):
    """The link takes no payment now (disabled, not started yet, or past its period)."""

    def __init__(self, page: LinkPage) -> None:
        super().__init__(page.state)
        self.page = page


def _merchant_name(project: Project) -> str:
    descriptor = project.settings.descriptor  # as the hosted page names the shop (switch.orders.pages)
    if descriptor:
        return descriptor.split("/")[0].split(">")[0].strip() or project.name
    return project.name


class PaymentLinks:
    """The link service: templates (create, read, update, delete) and payments through them."""

    def __init__(self, invoices: Invoices, store: LinkStore, projects: Projects) -> None:
        self.invoices = invoices
        self._store = store
        self._projects = projects

    def now(self) -> datetime:
        return self.invoices.now()

    async def create(self, project: Project, req: LinkRequest) -> PaymentLink:
        now = self.now()
        link = PaymentLink(
            id="cpl_" + "".join(secrets.choice(_ALPHABET) for _ in range(16)),
            project_id=project.id,
            slug=secrets.token_urlsafe(24),  # 32 characters: the URL is public, never guessable
            form_key=secrets.token_bytes(32),
            **_template(req, now),
            created=now,
            updated=now,
        )
        await self._store.insert(link)
        return link

    async def update(self, project: Project, link_id: str, req: LinkRequest) -> PaymentLink | None:
        """The template replaced by ``req`` (the front merges a partial update first); None: no such link."""
        old = await self._store.get(project.id, link_id)
        if old is None:
            return None
        now = self.now()
        fields = _template(req, now)
        if req.active_from is None:
            fields["active_from"] = old.active_from  # an update does not restart the period
        return await self._store.update(dataclasses.replace(old, **fields, updated=now))

    async def delete(self, project: Project, link_id: str) -> bool:
        return await self._store.delete(project.id, link_id, self.now())

    async def get(self, project: Project, link_id: str) -> PaymentLink | None:
        return await self._store.get(project.id, link_id)

    async def page(self, project: Project, number: int, size: int) -> tuple[list[PaymentLink], int]:
        return await self._store.page(project.id, (number - 1) * size, size)

    async def open(self, slug: str) -> LinkPage | None:
        """The link at ``slug`` (None: none, or deleted)."""
        link = await self._store.by_slug(slug)
        if link is None:
            return None
        project = await self._projects.get(link.project_id)
        if project is None:
            return None
        return LinkPage(link, project, state_of(link, self.now()), _merchant_name(project))

    async def pay(self, page: LinkPage, posted: dict[str, str], submission: str) -> LinkPayment:
        """Check the payer's form and make the invoice (or find the one this submission made already)."""
        if state_of(page.link, self.now()) != "active":
            raise LinkClosed(page)
        link = page.link
        values, customer, errors = check_values(link.parameters, link.customer_fields, posted)
        amount = link.amount
        if amount is None:
            amount = _amount(link, posted.get("amount", ""), errors)
        if errors:
            return LinkPayment(errors)
        assert amount is not None
        service = self.invoices.services.get(link.service)
        if service is None or service.flow != "hpp":  # the services' data changed since the link was made
            return LinkPayment({}, None)
        metadata: dict[str, Any] = {"payment_link": {"id": link.id, "name": link.name}, "parameters": values}
        if customer:
            metadata["customer"] = customer
        digest = hashlib.sha256(f"{link.id}:{submission}".encode()).hexdigest()[:32]
        req = InvoiceRequest(
            reference_id=f"{link.id}_{digest}",
            service=link.service,
            amount=amount,
            currency=link.currency,
            test_mode=link.test_mode,
            description=link.payment_description or link.title,
            metadata=metadata,
            return_url=link.return_url,
            callback_url=link.callback_url,
            source="payment_link",
            language=link.language,
        )
        try:
            return LinkPayment({}, await self.invoices.create(page.project, req))
        except DuplicateInvoice as e:
            return LinkPayment({}, e.existing)  # the same form posted again: the invoice it made


def _template(req: LinkRequest, now: datetime) -> dict[str, Any]:
    fields = {f.name: getattr(req, f.name) for f in dataclasses.fields(LinkRequest)}
    fields["active_from"] = req.active_from or now
    return fields


def _amount(link: PaymentLink, raw: str, errors: dict[str, str]) -> int | None:
    """The payer's amount (``12.50`` or ``12,50``) in minor units, within the link's range."""
    text = raw.strip().replace(",", ".")
    try:
        value = Decimal(text) if len(text) <= 20 else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value <= 0:
        errors["amount"] = "amount_invalid"
        return None
    try:
        minor = to_minor(value, link.currency)
    except (TranslationError, ValueError):
        errors["amount"] = "amount_invalid"  # more decimals than the currency has
        return None
    assert link.amount_min is not None and link.amount_max is not None
    if not link.amount_min <= minor <= link.amount_max:
        errors["amount"] = "amount_range"
        return None
    return minor
