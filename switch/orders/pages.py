"""Hosted payment pages: orders the cardholder pays on a page of ours (``POST /orders/create``, invoices).

(Over 500 lines on purpose: a page's whole life, made, shown, paid, through 3-D Secure, settled, reads here.)

``create`` writes the order waiting (status ``new``, no card) and a page row
whose random token makes the page's URL; only the token's hash is kept
(:mod:`switch.orders.page_store`). ``view`` reads a page by its token:
open, expired, paid or declined. ``pay`` attaches the cardholder's card to
the waiting order (sealed in the vault, ``save_waiting`` under the order's
version guard, so two submissions pay once), authorizes it through the
engine's write-ahead path (the first operation makes the order's status as a
new order's), then charges it when the page was made with ``auto_charge``.

3-D Secure: a page made with ``force3d``, or any page of a project with
``require_3ds``, pays through :class:`Secure3DStart` (the 3-D Secure service,
set by the runtime: :mod:`switch.secure3d.pages`); without one it refuses the
payment, nothing authorized, rather than paying without 3-D Secure. When the
cardholder comes back from the ACS, the completion calls :meth:`PaymentPages.settle`
(auto charge, the card kept, the pages closed).

Oneclick: a page made with ``extra_fields.oneclick`` offers "Save this card";
when ticked, the card is kept for the merchant's customer once the payment is
approved (:meth:`OrdersService.oneclick_bind`).

One payment attempt at a time, across processes: the card goes onto the
order only while it has none (``save_waiting(attach_card=True)``); an attempt
that fails before anything is sent or prepared takes it off again.

Over 500 lines on purpose: the page's whole life (made, shown, paid, settled)
reads best in one place; the SQL is in :mod:`switch.orders.page_store`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from switch.money import currency
from switch.orders.credentials import merchant_for
from switch.orders.engine import Step, merchant_of
from switch.orders.errors import InvalidInput, OrderError, Rejected
from switch.orders.model import OperationStatus, OperationType, Order, OrderStatus
from switch.orders.page_store import PageRow, PageStore, token_hash
from switch.orders.requests import CreateRequest
from switch.orders.service import OrdersService, fill_details, minor_of
from switch.store.projects import Project
from switch.translate import Authorize, Card, CredentialReason, Initiator, StoredCredential

__all__ = [
    "Challenge",
    "PageClosed",
    "PageNotFound",
    "PageView",
    "PagesConfig",
    "PaymentPages",
    "Secure3DStart",
    "parse_timeout",
]

log = logging.getLogger("isoswitch.orders")

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_TIMEOUT_RE = re.compile(r"([0-9]{1,7})([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_timeout(raw: object) -> timedelta | None:
    """``options.expiration_timeout``: seconds, or a number with s/m/h/d; None when not of that form.

    >>> parse_timeout("30m"), parse_timeout(90), parse_timeout("2h"), parse_timeout("x")
    (datetime.timedelta(seconds=1800), datetime.timedelta(seconds=90), datetime.timedelta(seconds=7200), None)
    """
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        return None
    m = _TIMEOUT_RE.fullmatch(raw.strip())
    if m is None:
        return None
    return timedelta(seconds=int(m.group(1)) * _UNIT[m.group(2)])


@dataclass(frozen=True, slots=True)
class PagesConfig:
    """``[pages]``: how long a page takes payment, in seconds.

    ``expiration`` when the merchant says nothing (default 30 minutes), and the
    bounds of ``options.expiration_timeout`` (default 60 s to 7 days).
    """

    expiration: int = 1800
    min_expiration: int = 60
    max_expiration: int = 7 * 86400

    def __post_init__(self) -> None:
        if not 0 < self.min_expiration <= self.expiration <= self.max_expiration:
            raise ValueError("pages: need 0 < min_expiration <= expiration <= max_expiration")


class Challenge(Protocol):
    """What 3-D Secure hands back when the browser must go to the ACS: the seed's ``form3d``."""

    @property
    def form3d(self) -> Mapping[str, Any]: ...  # action, method, and the fields (PaReq, MD, TermUrl / creq ...)

    @property
    def step(self) -> str: ...  # "challenge": the ACS's page; "method": 3DS2's method in a hidden frame, then resume


class Secure3DStart(Protocol):
    """The 3-D Secure service's entry for an order that exists (status new, card just attached).

    Returns the order when 3-D Secure ended without the cardholder (not
    enrolled, frictionless: authorized or declined already), else the
    :class:`Challenge` the page sends the browser to (3DS2's method step is
    one too: its ``form3d`` posts to the method URL). ``links``: the
    service's own callback URLs, made by the front from the request (opaque
    here). ``terminal``: the page's DE 41 (None: the project's default), for
    the later 0100. A decline raises :class:`~switch.orders.errors.Declined`.
    """

    async def begin(
        self,
        project: Project,
        order: Order,
        card: Card,
        *,
        reason: str,
        browser: Mapping[str, Any] | None,
        return_url: str | None,
        links: Any,
        terminal: str | None = None,
    ) -> Order | Challenge: ...

    async def resume(self, project: Project, order: Order, links: Any) -> Order | Challenge:
        """3DS2 after the method step: frictionless (the order) or the challenge."""
        ...


class PageNotFound(Rejected):
    """No page has this token (or it is malformed): the same answer either way."""

    def __init__(self) -> None:
        super().__init__("Payment page not found")


@dataclass(frozen=True, slots=True)
class PageView:
    """A page as the cardholder sees it: its options, its order, and whether it still takes payment.

    ``closed``: None (open), ``expired``, ``paid``, ``declined`` or ``pending``
    (in 3-D Secure). ``reason``: why a payment was declined (the issuer's
    message). ``challenge``: set by :meth:`PaymentPages.pay` when the browser
    must go to the ACS.
    """

    row: PageRow
    order: Order
    merchant: str
    closed: str | None
    reason: str | None = None
    challenge: Challenge | None = None
    # The project's card rules (cvv_required, holder_required): the page's form asks for these as optional
    # when off, as the REST API takes a card without them.
    cvv_required: bool = True
    holder_required: bool = True


class PageClosed(Rejected):
    """The page takes no payment (expired, paid, declined): ``view`` says which."""

    def __init__(self, view: PageView) -> None:
        super().__init__(f"Payment page is {view.closed}", order_id=view.order.id)
        self.view = view


_PAID = frozenset({OrderStatus.AUTHORIZED, OrderStatus.CHARGED, OrderStatus.REVERSED, OrderStatus.REFUNDED})


def _closed(row: PageRow, order: Order, now: datetime) -> tuple[str | None, str | None]:
    if order.status is OrderStatus.NEW and not order.operations:
        if row.state != "open":
            return row.state, None
        if now >= row.expires_at:
            return "expired", None
        # A card attached: a payment attempt is under way (no other may replace its card).
        return ("pending", None) if order.card_blob is not None else (None, None)
    if order.status is OrderStatus.REJECTED and not order.operations:
        return "expired", None  # an invoice's order closed by its expiry (switch/invoices/expiry.py)
    if order.status in _PAID or order.status is OrderStatus.CHARGEDBACK:
        return "paid", None
    if order.status is OrderStatus.PREPARED or order.status is OrderStatus.NEW:
        return "pending", None
    auth = order.last(OperationType.AUTHORIZE, OperationStatus.FAILURE) or order.last(
        OperationType.AUTHORIZE, OperationStatus.ERROR
    )
    return "declined", auth.iso_message if auth is not None else None


ProjectLookup = Callable[[int], Awaitable[Project | None]]


class PaymentPages:
    """Create, show and pay hosted payment pages, on the orders service's engine."""

    def __init__(
        self,
        service: OrdersService,
        store: PageStore,
        projects: ProjectLookup,
        config: PagesConfig | None = None,
        secure3d: Secure3DStart | None = None,
    ) -> None:
        self.service = service
        self.engine = service.engine
        self.store = store
        self._projects = projects
        self.config = config or PagesConfig()
        self.secure3d = secure3d  # set by the runtime once 3-D Secure exists

    # -- the merchant's side -------------------------------------------------------

    def _expiry(self, asked: timedelta | None, minutes: int = 0) -> timedelta:
        """``asked`` (options.expiration_timeout, checked against the bounds), else the project's session duration
        (``minutes``, the portal's setting; 0: none), else the configured ``expiration``."""
        cfg = self.config
        if asked is None:
            return timedelta(minutes=minutes) if minutes else timedelta(seconds=cfg.expiration)
        if not cfg.min_expiration <= asked.total_seconds() <= cfg.max_expiration:
            raise InvalidInput.one(
                f"Must be between {cfg.min_expiration} and {cfg.max_expiration} seconds", "options/expiration_timeout"
            )
        return asked

    async def create(self, project: Project, req: CreateRequest) -> tuple[Order, str]:
        """``POST /orders/create``: the order (status new, no card) and its page's token."""
        settings = project.settings
        expiry = self._expiry(req.page.expiration, settings.payment_session_minutes)
        merchant_for(settings, req.page.terminal)  # an unknown terminal is refused now, as authorize does
        cur = req.currency or currency(settings.currency)
        token = secrets.token_urlsafe(32)  # 256 bits: the URL is the only credential
        order = await self.open_waiting(project, req, minor_of(req.amount, cur), cur.alpha, expiry, token)
        return order, token

    async def open_waiting(
        self,
        project: Project,
        req: CreateRequest,
        amount: int,
        currency_code: str,
        expires: datetime | timedelta,  # a time, or how long from the order's creation
        token: str,
        *,
        kind: str = "order",
        order_id: str | None = None,
    ) -> Order:
        """A waiting order (status new, no card; ``order_id`` or a new id) and a page of ``kind`` at ``token``."""
        engine, settings = self.engine, project.settings
        terminal = settings.terminal(req.page.terminal)  # None: the project's default
        now = engine.clock()
        order_id = order_id or await engine.take(engine.ids.order_id)
        order = Order(
            id=order_id,
            project_id=project.id,
            status=OrderStatus.NEW,
            amount=amount,
            currency=currency_code,
            created=now,
            updated=now,
            recurring=req.recurring,
            test_mode=req.test_mode,
        )
        fill_details(order, req.details, settings, req.descriptor)
        order.notification_url = req.notification_url  # its events go there too, from the first one
        await engine.repo.create_waiting(order)
        auto_charge = settings.auto_charge if req.auto_charge is None else req.auto_charge
        until = now + expires if isinstance(expires, timedelta) else expires
        await self._page(order, now, until, req, auto_charge, token, kind, terminal)
        return order

    async def _page(
        self,
        order: Order,
        now: datetime,
        expires: datetime,
        req: CreateRequest,
        auto_charge: bool,
        token: str,
        kind: str,
        terminal: str | None,
    ) -> None:
        opts = req.page
        row = PageRow(
            token_hash=token_hash(token),
            kind=kind,
            order_id=order.id,
            project_id=order.project_id,
            form_key=secrets.token_bytes(32),
            expires_at=expires,
            language=opts.language,
            template=opts.template,
            mobile=opts.mobile,
            return_url=opts.return_url,
            force3d=opts.force3d,
            auto_charge=auto_charge,
            state="open",
            created=now,
            updated=now,
            oneclick_customer=req.oneclick.customer_id if req.oneclick else None,
            oneclick_prechecked=bool(req.oneclick and req.oneclick.bind),
            terminal=terminal,
        )
        await self.store.insert(row)

    async def reissue(self, project: Project, order_id: str) -> str | None:
        """A new token for the project's order's page, as it was made (a create replayed by Idempotency-Key).

        The first URL keeps working; either pays the order once. None: the order has no page.
        """
        first = await self.store.of_order(project.id, order_id)
        if first is None:
            return None
        token = secrets.token_urlsafe(32)
        now = self.engine.clock()
        row = PageRow(
            **{
                **{k: getattr(first, k) for k in PageRow.__slots__},
                "token_hash": token_hash(token),
                "form_key": secrets.token_bytes(32),
                "created": now,
                "updated": now,
            }
        )
        await self.store.insert(row)
        return token

    # -- the cardholder's side -----------------------------------------------------

    async def view(self, token: str) -> PageView:
        """The page of ``token``; :class:`PageNotFound` when there is none."""
        if not (isinstance(token, str) and _TOKEN_RE.fullmatch(token)):
            raise PageNotFound()
        row = await self.store.get(token_hash(token))
        if row is None:
            raise PageNotFound()
        return await self._view(row)

    async def _view(self, row: PageRow) -> PageView:
        order = await self.engine.repo.get(row.project_id, row.order_id)
        project = await self._projects(row.project_id)
        if order is None or project is None:
            raise PageNotFound()
        closed, reason = _closed(row, order, self.engine.clock())
        return _page(row, order, project, closed, reason)

    async def pay(
        self,
        token: str,
        card: Card,
        *,
        browser: Mapping[str, Any] | None = None,
        ip: str | None = None,
        save_card: bool = False,
        links: Any = None,
    ) -> PageView:
        """Pay the page's order with ``card`` (CVV included, never kept); the page as it is afterwards.

        Raises :class:`PageClosed` when the page takes no payment (nothing is
        sent), :class:`Rejected` when 3-D Secure is required but not available.
        A decline is not raised: the returned view says ``declined`` and why.
        ``browser``: 3-D Secure 2's eleven browser details (None: 3DS1);
        ``links``: 3-D Secure's callback URLs (:class:`Secure3DStart`);
        ``save_card``: the cardholder ticked "Save this card" (a oneclick page only).
        """
        view = await self.view(token)
        engine = self.engine
        async with engine.lock(view.order.id):
            view = await self._view(view.row)  # as it is now that no one else in this process pays it
            if view.closed is not None:
                raise PageClosed(view)
            row, order = view.row, view.order
            project = await self._projects(row.project_id)
            assert project is not None  # _view found it
            reason = "force3d" if row.force3d else "require_3ds" if project.settings.require_3ds else None
            if reason is not None and self.secure3d is None:
                raise Rejected("3-D Secure is required for this payment and is not available", order_id=order.id)
            now = engine.clock()
            if reason is None:
                # Its 0100 is built below. 3-D Secure takes an RRN only when (if) its 0100 is built.
                order.rrn = await engine.take(lambda: engine.ids.rrn(now))
                order.initial_rrn = order.rrn
            cur = currency(order.currency)
            sealed = engine.cards.new_order(
                project, order.id, card, order.amount, cur, now, rrn="", recurring=order.recurring
            )
            _attach(order, sealed)
            if ip and not order.location:
                order.location = {"ip": ip}
            order.updated = now
            # Only onto an order without a card: a second submission on another process (engine.lock is
            # this process's) that read the order after this card went on must not replace it.
            if not await engine.repo.save_waiting(order, attach_card=True):
                # Another request took this order first: show what it made of it (pending while it pays).
                taken = await self._view(row)
                raise PageClosed(dataclasses.replace(taken, closed=taken.closed or "pending"))
            try:
                return await self._attempt(project, view, order, card, reason, browser, save_card, links, now)
            except Exception as e:
                await self._release(order)
                if isinstance(e, OrderError):
                    # Its invoice's expiry closed the order under the attempt (switch/invoices/expiry.py).
                    after = await self._view(row)
                    if after.closed == "expired":
                        raise PageClosed(after) from e
                raise

    async def _attempt(
        self,
        project: Project,
        view: PageView,
        order: Order,
        card: Card,
        reason: str | None,
        browser: Mapping[str, Any] | None,
        save_card: bool,
        links: Any,
        now: datetime,
    ) -> PageView:
        """The payment of the order whose card was just attached: 3-D Secure first, or the 0100 at once."""
        row = view.row
        if row.oneclick_customer is not None and save_card:
            row = dataclasses.replace(row, save_card=True)
            await self.store.choose_save_card(order.id, True, now)  # 3-D Secure may end in another request
        if reason is not None:
            secure3d = self.secure3d
            assert secure3d is not None
            start = secure3d.begin(
                project,
                order,
                card,
                reason=reason,
                browser=browser,
                return_url=row.return_url,
                links=links,
                terminal=row.terminal,
            )
            return await self._three_ds(project, row, order, start)
        await self._authorize(project, order, card, now, row.terminal)
        closed, why = await self._settle(project, row, order)
        return _page(row, order, project, closed, why)

    async def _release(self, attempt: Order) -> None:
        """A payment attempt that failed before anything was sent or prepared (the DS down, a card the
        translator refuses): its card comes off the order, so the cardholder may try again."""
        try:
            order = await self.engine.repo.get(attempt.project_id, attempt.id)
            if order is None or order.status is not OrderStatus.NEW or order.operations:
                return  # an operation or a 3-D Secure session has it: that attempt is the payment
            if order.card_blob != attempt.card_blob:
                return
            _attach(order, _NO_CARD)
            order.rrn = order.initial_rrn = None
            order.updated = self.engine.clock()
            await self.engine.repo.save_waiting(order)
        except Exception:
            log.error("page's card not released after a failed attempt", extra={"order_id": attempt.id}, exc_info=True)

    async def resume(self, token: str, links: Any) -> PageView:
        """3-D Secure 2 after the page's method step: frictionless (paid or declined) or the ACS's challenge."""
        view = await self.view(token)
        async with self.engine.lock(view.order.id):
            view = await self._view(view.row)
            if view.closed != "pending" or self.secure3d is None:
                raise PageClosed(view)
            project = await self._projects(view.row.project_id)
            assert project is not None
            start = self.secure3d.resume(project, view.order, links)
            return await self._three_ds(project, view.row, view.order, start)

    async def _three_ds(
        self, project: Project, row: PageRow, order: Order, step: Awaitable[Order | Challenge]
    ) -> PageView:
        """A step of 3-D Secure: the challenge to show, or the payment's end (a decline raised is shown)."""
        try:
            started = await step
        except OrderError:
            # Declined (frictionless N, the issuer's 0110) or not able to go on: the stored order tells which.
            after = await self._view(row)
            if after.closed not in ("paid", "declined"):
                raise
            order = after.order
        else:
            if not isinstance(started, Order):
                return _page(row, order, project, "pending", challenge=started)
            order = started
        closed, why = await self._settle(project, row, order)
        return _page(row, order, project, closed, why)

    async def settle(self, project: Project, order: Order) -> None:
        """After a page's order got its authorization elsewhere (3-D Secure's completion): the page's
        ``auto_charge``, the card kept (oneclick), and its pages closed. The caller holds
        ``engine.lock(order.id)``; a no-op for an order that has no page."""
        row = await self.store.of_order(project.id, order.id)
        if row is not None:
            await self._settle(project, row, order)

    async def after_secure3d(self, order: Order) -> PageView | None:
        """3-D Secure's completion of ``order`` (authorized or declined): settled as :meth:`settle`, and the
        page as the cardholder should see it now; None when the order has no page."""
        project = await self._projects(order.project_id)
        if project is None:
            return None
        row = await self.store.of_order(project.id, order.id)
        if row is None:
            return None
        async with self.engine.lock(order.id):
            closed, why = await self._settle(project, row, order)
        return _page(row, order, project, closed, why)

    async def _settle(self, project: Project, row: PageRow, order: Order) -> tuple[str | None, str | None]:
        closed, reason = _closed(row, order, self.engine.clock())
        if closed == "paid" and row.oneclick_customer is not None and row.save_card:
            await self._keep(project, order, row.oneclick_customer)
        if closed == "paid" and row.auto_charge and order.status is OrderStatus.AUTHORIZED:
            await self._charge(project, order)
        if closed in ("paid", "declined"):
            await self.store.close(order.id, closed, self.engine.clock())
        return closed, reason

    async def _keep(self, project: Project, order: Order, customer_id: str) -> None:
        try:
            await self.service.oneclick_bind(project, order, customer_id)
        except Exception:
            # The payment is made and shown as such: a card that could not be kept is logged, not an error.
            log.error("page's card not kept for the oneclick customer", extra={"order_id": order.id}, exc_info=True)

    async def _authorize(
        self, project: Project, order: Order, card: Card, now: datetime, terminal: str | None = None
    ) -> None:
        engine, settings = self.engine, project.settings
        rrn, cur = order.rrn or "", currency(order.currency)
        recurring = order.recurring
        merchant = merchant_of(settings)
        if terminal:  # chosen among the project's when the page was made
            merchant = dataclasses.replace(merchant, terminal_id=terminal)
        msg = engine.translate(
            lambda: Authorize(
                merchant=merchant,
                card=card,
                amount=order.amount,
                currency=cur,
                rrn=rrn,
                stored_credential=StoredCredential(Initiator.CARDHOLDER, CredentialReason.FIRST) if recurring else None,
            ),
            now,
        )
        # A decline is the page's answer, not an error: the order's status and operation tell it.
        await engine.perform(project, order, Step(OperationType.AUTHORIZE, order.amount, msg, now))

    async def _charge(self, project: Project, order: Order) -> None:
        try:
            await self.service.capture(project, order, order.amount)
        except OrderError as e:
            # The authorization stands; the merchant sees an authorized order and may charge it.
            log.warning("auto charge of a page's order failed: %s", e.message, extra={"order_id": order.id})


_NO_CARD = Order(
    id="",
    project_id=0,
    status=OrderStatus.NEW,
    amount=0,
    currency="",
    created=datetime.min,
    updated=datetime.min,
    issuer={},
)


def _attach(order: Order, sealed: Order) -> None:
    """The card of ``sealed`` (a new order sealed for ``order.id``) onto the waiting ``order``."""
    order.pan_mask = sealed.pan_mask
    order.card_key_id = sealed.card_key_id
    order.card_blob = sealed.card_blob
    order.card_holder = sealed.card_holder
    order.card_type = sealed.card_type
    order.card_subtype = sealed.card_subtype
    order.expiry_month = sealed.expiry_month
    order.expiry_year = sealed.expiry_year
    order.issuer = sealed.issuer


def _page(
    row: PageRow, order: Order, project: Project, closed: str | None, reason: str | None = None, **more: Any
) -> PageView:
    """The page of ``row`` as it is, with the project's name and card rules."""
    s = project.settings
    return PageView(
        row, order, _merchant_name(project), closed, reason, **more,
        cvv_required=s.cvv_required, holder_required=s.holder_required,
    )  # fmt: skip


def _merchant_name(project: Project) -> str:
    """What the page names the shop by: the descriptor's merchant part (DE 43), else the project's name."""
    descriptor = project.settings.descriptor
    if descriptor:
        return descriptor.split("/")[0].split(">")[0].strip() or project.name
    return project.name
