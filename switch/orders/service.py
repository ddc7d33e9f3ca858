"""The merchant's operations of seeds/003 on top of the exchange engine, per project.

Typed requests in (:mod:`switch.orders.requests`), orders out, failures
raised by kind (:mod:`switch.orders.errors`). Every operation runs the
write-ahead path of :mod:`switch.orders.engine`; this module decides *what*
to send (which ISO request, which amounts, the status table) and what an
approval changes. Requests from acquirer hosts (the ISO listener) are
:mod:`switch.orders.iso`'s, on the same engine.

Concurrency: operations on one order run one at a time in a process (the
engine's per-order lock), so the second of two concurrent charges sees the
first's result and is rejected by the status table or the amount check,
with a clean message; across processes the database decides (engine doc).

A little over 500 lines: one method per operation of the seed (authorize, token_pay, charge, reverse,
refund, cancel, rebill, credit, reads), each short; splitting them would scatter one table of rules.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Generic, TypeVar

from switch.errors import TranslationError
from switch.money import Currency, currency, to_minor
from switch.orders.audited import audited
from switch.orders.credentials import kept_card, merchant_for, sent_to_issuer, series_of
from switch.orders.engine import Engine, Step
from switch.orders.errors import InvalidInput, OrderNotFound, Rejected
from switch.orders.iso import IsoResult, IsoTransactions
from switch.orders.model import Operation, OperationType, Order, OrderStatus, Source
from switch.orders.oneclick import KeptCard, OneclickCards
from switch.orders.repo import operations_filter, orders_filter
from switch.orders.requests import (
    AmountRequest,
    AuthorizeRequest,
    CreditRequest,
    Details,
    DynamicDescriptor,
    OperationsQuery,
    OrdersQuery,
    RebillRequest,
    TokenPayRequest,
)
from switch.orders.stats import OrderStats
from switch.orders.status import cancel_action
from switch.orders.wallet import open_token
from switch.store.projects import Project, ProjectSettings
from switch.translate import Authorize, Capture, Channel, CredentialReason, Credit, Rebill, Refund, Reversal
from switch.wire.codec import Message
from switch.wire.wallet import Gateway

__all__ = ["IsoResult", "OrdersService", "Page", "fill_details", "minor_of"]

T = TypeVar("T")

log = logging.getLogger("isoswitch.orders")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: ``items``, the 1-based ``page``, ``page_size`` and the ``total`` matching."""

    items: list[T]
    page: int
    page_size: int
    total: int

    @property
    def has_next(self) -> bool:
        return self.page * self.page_size < self.total

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def _minor(amount: Decimal, cur: Currency, *, zero_ok: bool = False) -> int:
    """``amount`` in minor units of ``cur``; more decimals than it has, or over DE 4, is invalid input."""
    try:
        units = to_minor(amount, cur)
    except TranslationError as e:
        raise InvalidInput.of_translation(e, "amount") from None
    if units == 0 and not zero_ok:
        raise InvalidInput.one("Must be greater than zero", "amount")
    return units


def _fill(order: Order, details: Details, settings: ProjectSettings, dynamic: DynamicDescriptor | None) -> None:
    order.client = details.client
    order.location = details.location
    order.custom_fields = details.custom_fields
    order.description = details.description
    order.merchant_order_id = details.merchant_order_id
    order.segment = details.segment
    order.invoice_id = details.invoice_id
    order.descriptor = dynamic.shown if dynamic is not None else settings.descriptor


def _wallet_allowed(settings: ProjectSettings, kind: str) -> bool:
    """The project's wallet switches: Apple Pay, and Google Pay's tokens from an app (this API's callers)."""
    return {"apple_pay": settings.apple_pay, "google_pay": settings.google_pay_mobile}.get(kind, True)


# For other entry points that make orders (the hosted payment page: switch.orders.pages).
minor_of = _minor
fill_details = _fill


class OrdersService:
    """Authorize, charge, reverse, refund, cancel, rebill, credit, and read orders, per project."""

    def __init__(self, engine: Engine, wallet: Gateway | None = None) -> None:
        """Operations run on ``engine``: router, store, vault, reversals and audit (:mod:`switch.orders.engine`).

        ``wallet`` opens wallet tokens (``token_pay``); without it they are refused.
        """
        self.engine = engine
        self.iso = IsoTransactions(engine)
        self.wallet = wallet
        self.oneclick = OneclickCards(engine.repo.pool)
        self.stats = OrderStats(engine.repo.pool)  # the portal's dashboard and balance (read only)

    # -- reads ---------------------------------------------------------------

    async def get_order(self, project: Project, order_id: str) -> Order:
        """The project's order with its operations; :class:`OrderNotFound` for anyone else's."""
        if not (isinstance(order_id, str) and order_id.isascii() and order_id.isdigit() and len(order_id) == 17):
            raise OrderNotFound(order_id)
        order = await self.engine.repo.get(project.id, order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    async def list_orders(self, project: Project, query: OrdersQuery) -> Page[Order]:
        """``GET /orders/``: newest first, every filter of seeds/003."""
        size = query.page_size
        items, total = await self.engine.repo.list_orders(
            orders_filter(project.id, query), (query.page - 1) * size, size
        )
        return Page(items, query.page, size, total)

    async def list_operations(self, project: Project, query: OperationsQuery) -> Page[Operation]:
        """``GET /operations/``: newest first; each item carries its ``order_id``."""
        size = query.page_size
        items, total = await self.engine.repo.list_operations(
            operations_filter(project.id, query), (query.page - 1) * size, size
        )
        return Page(items, query.page, size, total)

    # -- ISO 8583 requests from the listener (switch.listener) ----------------

    async def iso_start(self, project: Project, msg: Message) -> IsoResult:
        return await self.iso.start(project, msg)

    async def iso_follow_up(self, project: Project, msg: Message) -> IsoResult:
        return await self.iso.follow_up(project, msg)

    # -- new orders ----------------------------------------------------------

    async def _begin(self) -> tuple[datetime, str, str]:
        """Now, a new order id and its RRN."""
        engine = self.engine
        now = engine.clock()
        order_id = await engine.take(engine.ids.order_id)
        rrn = await engine.take(lambda: engine.ids.rrn(now))
        return now, order_id, rrn

    async def authorize(
        self,
        project: Project,
        req: AuthorizeRequest,
        *,
        claim: Callable[[str, datetime], Awaitable[None]] | None = None,
    ) -> Order:
        """``POST /orders/authorize``: 2-stage, or 1-stage (authorize + charge) with ``auto_charge``.

        Terminal, stored credential and a oneclick customer's kept card: :mod:`switch.orders.credentials`
        (database reads only for a parent order or a kept card). A card to keep (``oneclick``) is kept
        once the authorization is approved. ``claim(order_id, now)`` runs once the request is checked
        and the order built, before anything is written (an h2h invoice claims its reference there).
        """
        return await self._authorize(project, req, claim)

    async def _authorize(
        self, project: Project, req: AuthorizeRequest, claim: Callable[[str, datetime], Awaitable[None]] | None = None
    ) -> Order:
        """:meth:`authorize`; ``claim(order_id, now)`` runs once the order is built, before its intent is written."""
        engine, settings = self.engine, project.settings
        cur = req.currency or currency(settings.currency)
        amount = _minor(req.amount, cur, zero_ok=True)
        auto_charge = settings.auto_charge if req.auto_charge is None else req.auto_charge
        if not settings.two_step_allowed and not auto_charge and amount > 0:  # seeds/000 "Two-step payment" off
            raise Rejected("Two-step payments are not allowed for this project: authorize with options.auto_charge")
        secure, recurring = req.secure3d, req.recurring
        merchant = merchant_for(settings, req.terminal)
        kept_from = None
        if req.card is not None:
            card = req.card
        elif req.oneclick is not None:
            card, kept_from = await kept_card(self.oneclick, engine.repo, engine.cards, project, req.oneclick, req.cvv)
        else:
            raise InvalidInput.required("pan")
        series = await series_of(engine.repo, project, req, kept_from)
        now, order_id, rrn = await self._begin()
        iso = engine.translate(
            lambda: Authorize(
                merchant=merchant,
                card=card,
                amount=amount,
                currency=cur,
                rrn=rrn,
                three_ds=secure.three_ds if secure else None,
                stored_credential=series.stored,
                descriptor=req.descriptor.descriptor if req.descriptor else None,
                tokenized=secure is not None and secure.tokenized,
                channel=req.channel,
            ),
            now,
        )
        source = Source.MOTO if req.channel is Channel.MOTO else Source.REST
        order = engine.cards.new_order(
            project, order_id, card, amount, cur, now, rrn=rrn, recurring=recurring, source=source
        )
        order.initial_rrn = series.first_rrn or rrn
        order.parent_order_id = series.parent_id
        order.test_mode = req.test_mode
        if kept_from is not None:
            order.card_holder = kept_from.card_holder
        _fill(order, req.details, settings, req.descriptor)
        order.notification_url = req.notification_url
        if secure is not None:
            order.secure3d = secure.shown
        if claim is not None:
            await claim(order_id, now)
        engine.approved(
            order, await engine.perform(project, order, Step(OperationType.AUTHORIZE, amount, iso, now, creates=True))
        )
        if req.oneclick is not None and req.oneclick.bind and req.card is not None:
            await self._keep_quietly(project, order, req.oneclick.customer_id)
        if auto_charge and amount > 0:
            await self._capture(project, order, amount)
        return order

    async def token_pay(self, project: Project, req: TokenPayRequest) -> Order:
        """``POST /orders/token_pay``: the wallet token opened and checked, then authorized as DSRP."""
        cur = req.currency or currency(project.settings.currency)
        amount = _minor(req.amount, cur)
        if not _wallet_allowed(project.settings, req.wallet_type):  # the portal's switches (seeds/000)
            raise Rejected(f"Payments by {req.wallet_type} are not allowed for this project")
        card, secure, payment = open_token(self.wallet, req.token, req.wallet_type, amount, cur)

        async def claim(order_id: str, now: datetime) -> None:
            # A token pays once (Apple Pay and Google Pay mint a new one per payment): a copy is a replay.
            # The database's primary key decides, so of two concurrent payments with one token one loses here,
            # before its intent is written and before any 0100 (schemas/sql/014_wallet_tokens_used.sql).
            if not await self.engine.repo.claim_wallet_token(payment.transaction_id, project.id, order_id, now):
                raise InvalidInput.one("Invalid token: already used", "dsrp/token")

        return await self._authorize(
            project,
            AuthorizeRequest(
                amount=req.amount,
                card=card,
                currency=cur,
                details=req.details,
                descriptor=req.descriptor,
                secure3d=secure,
                recurring=req.recurring,
                auto_charge=req.auto_charge,
                terminal=req.terminal,
            ),
            claim,
        )

    # -- oneclick --------------------------------------------------------------

    async def oneclick_bind(self, project: Project, order: Order, customer_id: str) -> KeptCard:
        """Keep ``order``'s card for the project's customer ``customer_id`` (:meth:`OneclickCards.keep`).

        For the hosted page too: call it once the page's payment is authorized and the cardholder ticked the box.
        """
        return await self.oneclick.keep(project, order, customer_id, self.engine.clock())

    async def oneclick_cards(self, project: Project, customer_id: str) -> list[KeptCard]:
        """The project's customer's kept cards, most recent first (none for an unknown customer)."""
        return await self.oneclick.list(project.id, customer_id)

    async def keep_card(self, project: Project, order: Order, customer_id: str) -> None:
        """Keep an approved ``order``'s card for ``customer_id`` as ``authorize`` does (a failure is logged only):
        3-D Secure's later authorization."""
        await self._keep_quietly(project, order, customer_id)

    async def _keep_quietly(self, project: Project, order: Order, customer_id: str) -> None:
        # The authorization is done and answered as such: a card that could not be kept is logged,
        # never turned into the merchant's error (a retry would authorize twice).
        try:
            await self.oneclick_bind(project, order, customer_id)
        except Exception:
            log.error("card not kept for the oneclick customer", extra={"order_id": order.id}, exc_info=True)

    @audited("rebill")
    async def rebill(self, project: Project, order_id: str, req: RebillRequest) -> Order:
        """``POST /orders/:id/rebill``: a new order on the parent's stored card, merchant-initiated.

        DE 124 says ``M`` + ``R`` (recurring: ``recurring`` here or on the
        parent) or ``U`` (unscheduled) + the RRN of the series' first
        transaction; DE 22 says credential on file. No CVV is sent: a
        merchant-initiated transaction carries none (and none is ever stored).
        """
        engine, settings = self.engine, project.settings
        parent = await self.get_order(project, order_id)
        engine.require(parent, "rebill")
        cur = req.currency or currency(parent.currency)
        amount = _minor(req.amount, cur)
        card = engine.cards.card(parent)
        recurring = req.recurring or parent.recurring
        first_rrn = parent.initial_rrn or parent.rrn
        if first_rrn is None or not sent_to_issuer(parent):
            # A merchant-initiated 0100 names the series' first transaction: one the network saw, on a
            # card that was authorized (a 3-D Secure order that failed or expired never got that far).
            raise Rejected("Order has no transaction to repeat", order_id=parent.id)
        merchant = merchant_for(settings, req.terminal)
        reason = req.reason or (CredentialReason.RECURRING if recurring else CredentialReason.UNSCHEDULED)
        now, new_id, rrn = await self._begin()
        iso = engine.translate(
            lambda: Rebill(
                merchant=merchant,
                card=card,
                amount=amount,
                currency=cur,
                rrn=rrn,
                first_rrn=first_rrn,
                trace_id=req.trace_id,
                reason=reason,
                descriptor=req.descriptor.descriptor if req.descriptor else None,
            ),
            now,
        )
        order = engine.cards.new_order(project, new_id, card, amount, cur, now, rrn=rrn, recurring=recurring)
        order.card_holder = parent.card_holder
        order.parent_order_id = parent.id
        order.initial_rrn = first_rrn
        _fill(order, req.details, settings, req.descriptor)
        order.notification_url = req.notification_url
        engine.approved(
            order, await engine.perform(project, order, Step(OperationType.AUTHORIZE, amount, iso, now, creates=True))
        )
        if settings.auto_charge if req.auto_charge is None else req.auto_charge:
            await self._capture(project, order, amount)
        return order

    @audited("credit")
    async def credit(self, project: Project, order_id: str | None, req: CreditRequest) -> Order:
        """OCT (0200, processing code 26) as a new order in status ``credited``.

        ``POST /orders/:id/credit`` (``order_id`` given) pays out to that
        order's card, allowed per the status table (charged, refunded), and
        names its capture in DE 90 when there is one in the same currency;
        ``POST /orders/credit`` (``order_id`` None) pays out to ``req.card``.
        Either way the doc's example answers with the credit as the order's
        only operation.
        """
        engine, settings = self.engine, project.settings
        parent: Order | None = None
        if order_id is not None:
            parent = await self.get_order(project, order_id)
            engine.require(parent, "credit")
            card = engine.cards.card(parent)
            cur = req.currency or currency(parent.currency)
        else:
            if req.card is None:
                raise InvalidInput.required("pan")
            card = req.card
            cur = req.currency or currency(settings.currency)
        amount = _minor(req.amount, cur)
        merchant = merchant_for(settings, req.terminal)
        original = None
        if parent is not None:
            capture = parent.last(OperationType.CHARGE)
            if capture is not None and capture.currency == cur.alpha:
                original = capture.original_ref()
        now, new_id, rrn = await self._begin()
        iso = engine.translate(
            lambda: Credit(
                merchant=merchant,
                card=card,
                amount=amount,
                currency=cur,
                rrn=rrn,
                original=original,
                descriptor=req.descriptor.descriptor if req.descriptor else None,
            ),
            now,
        )
        order = engine.cards.new_order(project, new_id, card, amount, cur, now, rrn=rrn, recurring=False)
        if parent is not None:
            order.card_holder = parent.card_holder
            order.parent_order_id = parent.id
        _fill(order, req.details, settings, req.descriptor)
        engine.approved(
            order, await engine.perform(project, order, Step(OperationType.CREDIT, amount, iso, now, creates=True))
        )
        return order

    # -- operations on an order ----------------------------------------------

    @audited("charge")
    async def charge(self, project: Project, order_id: str, req: AmountRequest) -> Order:
        """``PUT /orders/:id/charge``: the whole authorization, or ``amount`` of it (0220, ARN)."""
        async with self.engine.lock(order_id):
            order = await self.get_order(project, order_id)
            self.engine.require(order, "charge")
            remaining = order.amount - order.amount_charged
            amount = remaining if req.amount is None else _minor(req.amount, currency(order.currency))
            # Over-capture (the project's percentage, seeds/000): beyond the authorization, up to its limit.
            limit = project.settings.capture_limit(order.amount) - order.amount_charged
            if amount > limit:
                over = project.settings.overcapture_percent
                extra = f" plus {over} %" if over else ""
                raise Rejected(f"Amount exceeds the authorized amount{extra}", order_id=order.id)
            await self._capture(project, order, amount, limit if amount > remaining else None)
            return order

    @audited("reverse")
    async def reverse(self, project: Project, order_id: str) -> Order:
        """``PUT /orders/:id/reverse``: release the authorization (0400 of the 0100)."""
        async with self.engine.lock(order_id):
            order = await self.get_order(project, order_id)
            self.engine.require(order, "reverse")
            await self._reverse(project, order)
            return order

    @audited("refund")
    async def refund(self, project: Project, order_id: str, req: AmountRequest) -> Order:
        """``PUT /orders/:id/refund``: all that is left, or ``amount``; repeatable while charged > refunded."""
        async with self.engine.lock(order_id):
            order = await self.get_order(project, order_id)
            self.engine.require(order, "refund")
            await self._refund(project, order, req.amount)
            return order

    @audited("cancel")
    async def cancel(self, project: Project, order_id: str, req: AmountRequest) -> Order:
        """``PUT /orders/:id/cancel``: a reverse when authorized, a refund (of ``amount``) when charged/refunded."""
        async with self.engine.lock(order_id):
            order = await self.get_order(project, order_id)
            self.engine.require_idle(order)
            action = cancel_action(order.status)
            if action == "reverse":
                await self._reverse(project, order)
            elif action == "refund":
                await self._refund(project, order, req.amount)
            else:
                raise Rejected(f"Operation cancel is not allowed in status {order.status.value}", order_id=order.id)
            return order

    # -- the steps -----------------------------------------------------------

    async def capture(self, project: Project, order: Order, amount: int) -> None:
        """Charge ``amount`` of ``order``'s authorization (the caller holds the order's lock): a page's auto charge."""
        await self._capture(project, order, amount)

    async def _follow_up(
        self,
        project: Project,
        order: Order,
        original: Operation,
        kind: OperationType,
        amount: int,
        make: Callable[..., object],
        on_success: Callable[[Operation], None],
        *,
        arn: bool = False,
        released: int = 0,
    ) -> None:
        """One follow-up of ``original`` on the order's card and terminal; raises unless approved."""
        engine = self.engine
        card = engine.cards.card(order)
        merchant = engine.merchant_on(project, original)
        now = engine.clock()
        rrn = await engine.take(lambda: engine.ids.rrn(now)) if kind is OperationType.REFUND else None
        iso = engine.translate(lambda: make(merchant, card, rrn), now)  # type: ignore[arg-type,return-value]
        step = Step(kind, amount, iso, now, on_success=on_success, arn=arn, released=released)
        engine.approved(order, await engine.perform(project, order, step))

    async def _capture(self, project: Project, order: Order, amount: int, limit: int | None = None) -> None:
        """A 0220 of ``amount``; ``limit`` (over-capture) lets it exceed the authorization, up to that."""
        auth = order.last(OperationType.AUTHORIZE)
        if auth is None:
            raise Rejected("Order has no authorization to charge", order_id=order.id)

        def charged(op: Operation) -> None:
            order.amount_charged += amount
            order.status = OrderStatus.CHARGED

        await self._follow_up(
            project,
            order,
            auth,
            OperationType.CHARGE,
            amount,
            lambda merchant, card, _: Capture(
                merchant=merchant, card=card, original=auth.original_ref(), amount=amount, limit=limit
            ),
            charged,
            arn=True,
        )

    async def _reverse(self, project: Project, order: Order) -> None:
        auth = order.last(OperationType.AUTHORIZE)
        if auth is None:
            raise Rejected("Order has no authorization to reverse", order_id=order.id)

        def reversed_(op: Operation) -> None:
            order.status = OrderStatus.REVERSED

        await self._follow_up(
            project,
            order,
            auth,
            OperationType.REVERSE,
            auth.amount,
            lambda merchant, card, _: Reversal(merchant=merchant, card=card, original=auth.original_ref()),
            reversed_,
            released=auth.cashflow.reserve if auth.cashflow is not None else 0,
        )

    async def _refund(self, project: Project, order: Order, requested: Decimal | None) -> None:
        capture = order.last(OperationType.CHARGE)
        if capture is None:
            raise Rejected("Order has no charge to refund", order_id=order.id)
        cur = currency(order.currency)
        amount = None if requested is None else _minor(requested, cur)
        remaining = order.amount_charged - order.amount_refunded
        if remaining <= 0:
            raise Rejected("Order is fully refunded", order_id=order.id)
        if amount is None:
            amount = remaining
        if amount > remaining:
            raise Rejected("Amount exceeds the charged amount not yet refunded", order_id=order.id)
        refund = amount

        def refunded(op: Operation) -> None:
            order.amount_refunded += refund
            order.status = OrderStatus.REFUNDED

        await self._follow_up(
            project,
            order,
            capture,
            OperationType.REFUND,
            amount,
            lambda merchant, card, rrn: Refund(
                merchant=merchant, card=card, amount=refund, currency=cur, rrn=rrn, original=capture.original_ref()
            ),
            refunded,
            arn=True,
        )
