"""The orders API's operations on top of the ISO core, every step durable.

One operation, whatever its type, runs the same path (:meth:`OrdersService._perform_outcome`):

1. the ISO request is built first, so bad input is a 422 and leaves no trace;
2. the order (when new) and a **pending** operation, holding the request's
   MTI, RRN, DE 7, DE 41, DE 32 and amount, are committed through the group
   writer (write-ahead intent) before the host sees anything;
3. the request goes to the router; DE 11 was reserved from the destination's
   STAN space before the intent (with reversals; else the link stamps it);
4. the outcome and the order's new state are committed in one statement,
   then the caller gets the order (or an :class:`OrderError`).

Steps 2-4 run shielded from the caller's cancellation: a client that hangs
up mid-way never leaves an operation pending in a live process.

What the outcome does (DESIGN.md's DE 39 table):

=====================  ============  =========================================
outcome                operation     order
=====================  ============  =========================================
approved (00)          success       the operation's status (authorized, ...)
declined (05, A1, ..)  failure       declined if the operation made the order
                                     (authorize, rebill, credit); else unchanged
fraud (59, 63)         failure       fraud if it made the order; else unchanged
error code (91, 96..)  error         error if it made the order; else unchanged
timeout, lost link     error         error, always: the outcome is unknown, so
                                     a reversal is queued and sent (0400 at
                                     once, then 0420/0421: switch.orders.saf);
                                     the order allows nothing but rebill
nothing sent (no link  error         error if it made the order; else unchanged
route, busy)
=====================  ============  =========================================

A follow-up (charge, reverse, refund) that the host declines or that never
left leaves the order as it was, so it can be retried; only an unknown
outcome freezes it.

Concurrency. Within a process, operations on one order run one at a time
(an ``asyncio.Lock`` per order id), so the second of two concurrent
charges sees the first's result and is rejected by the status table or the
amount check, with a clean message. Across processes, the database
decides: an operation's id is its position in the order and the primary
key ``(order_id, id)`` plus "one pending operation per order" make the
intent insert of a writer that read a stale order insert nothing (it is
then rejected), and CHECK constraints keep ``charged <= amount`` and
``refunded <= charged`` whatever happens. No row lock is held while the
host answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import enum
import functools
import logging
import weakref
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar, cast

from switch.errors import (
    DestinationUnavailable,
    DuplicateRequest,
    LinkBusy,
    LinkClosed,
    LinkNotReady,
    NoRoute,
    RequestTimeout,
    TranslationError,
)
from switch.money import Currency, currency
from switch.orders import cashflow as cashflows
from switch.orders.cards import describe
from switch.orders.errors import OrderError, OrderNotFound
from switch.orders.model import Operation, OperationStatus, OperationType, Order, OrderStatus, Source
from switch.orders.parse import (
    Details,
    amount_of,
    card_of,
    check_cvv,
    currency_of,
    descriptor_of,
    details_of,
    flag,
    section,
    secure3d_of,
    translation_error,
)
from switch.orders.query import operations_query, orders_query
from switch.orders.repo import OrderRepo, Writer
from switch.orders.status import allowed, cancel_action
from switch.saf import REVERSIBLE, Reversals
from switch.store.audit import SOURCE, AuditLog, AuditNote
from switch.store.errors import SequenceExhausted, VaultError
from switch.store.projects import Project, ProjectSettings
from switch.translate import (
    Authorize,
    Capture,
    Card,
    CredentialReason,
    Credit,
    Initiator,
    Merchant,
    Outcome,
    Rebill,
    Refund,
    Result,
    Reversal,
    StoredCredential,
    build,
    interpret,
)
from switch.translate import IsoRequest as IsoOperation
from switch.wire import messages
from switch.wire.cards import mask_pan
from switch.wire.codec import EncodeError, Message

__all__ = ["IsoResult", "OrderError", "OrderNotFound", "OrdersService", "Page"]

log = logging.getLogger("isoswitch.orders")

T = TypeVar("T")

# The audit note of the back-office call running in this task (and in the
# shielded exchange it starts): set by ``_audited``, filled by ``_perform_outcome``.
_NOTE: contextvars.ContextVar[AuditNote | None] = contextvars.ContextVar("isoswitch_audit_note", default=None)

_Call = TypeVar("_Call", bound=Callable[..., Coroutine[Any, Any, Order]])


def _audited(action: str) -> Callable[[_Call], _Call]:
    """One ``audit_log`` row per call of the decorated method (see :mod:`switch.store.audit`).

    Written with the operation's result when the call made one (``_exchange``),
    else here, before the caller gets its answer or error.
    """

    def wrap(method: _Call) -> _Call:
        @functools.wraps(method)
        async def call(self: OrdersService, project: Project, order_id: str | None, *args: Any, **kw: Any) -> Order:
            audit = self._audit
            if audit is None:
                return await method(self, project, order_id, *args, **kw)
            note = AuditNote(action, project.id, project.login, order_id, SOURCE.get())
            token = _NOTE.set(note)
            result, message = "success", None
            try:
                return await method(self, project, order_id, *args, **kw)
            except OrderError as e:
                result, message = e.failure_type, e.message
                raise
            except asyncio.CancelledError:
                # Nothing to record unless an operation started, and that one's exchange records it.
                note.written = True
                raise
            except Exception:
                result, message = "error", "Internal error"
                raise
            finally:
                _NOTE.reset(token)
                if not note.written:
                    note.written = True
                    await self._record(note.entry(result, message))

        return cast(_Call, call)

    return wrap


class _Router(Protocol):
    async def request(self, msg: Message, *, timeout: float | None = None) -> Message: ...


class _Database(Protocol):
    @property
    def pool(self) -> Any: ...


class _Ids(Protocol):
    def order_id(self) -> str: ...
    def rrn(self, now: datetime | None = None) -> str: ...
    def arn(self, acquirer_bin: str, now: datetime | None = None) -> str: ...
    async def refill(self) -> None: ...


class _Vault(Protocol):
    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]: ...
    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes: ...


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


@dataclass(frozen=True, slots=True)
class IsoResult:
    """What a request from the ISO listener became (:meth:`OrdersService.iso_start` / ``iso_follow_up``).

    ``response`` is the host's answer to pass back (None when the host did not
    answer or was not asked); ``code`` is then the DE 39 to answer with:
    91 nothing sent (no route, no ready link, busy), 68 sent but not answered
    (timeout, lost link: reversed by store-and-forward), 25 original not
    found, 12 not allowed in the order's state (a partial reversal among
    them), 13/14/30 bad amount/PAN/field, 00 a reversal with nothing left to
    reverse (the order holds no funds: answered without the host). A repeat,
    or a follow-up, of a request still in flight waits for its outcome (up to
    our request timeout + 2 s), then gets the first one's answer or is
    carried out; past that wait: 94 (repeat) or 91 (follow-up).
    """

    order_id: str | None
    code: str | None = None
    response: Message | None = None


# The peer's identity fields: restamped on what the host gets, restored on what the peer gets.
ISO_RESTAMPED = frozenset({"7", "11", "37"})
# Never forwarded nor echoed as received: the bitmaps (the codec rebuilds them) and the peer's MAC.
_ISO_DROPPED = frozenset({"p", "1", "64", "128"})
# Beyond a request's timeout, the time its result takes to be written (ISO repeats and follow-ups wait both).
_ISO_SETTLE_MARGIN = 2.0


def _longest_timeout(router: Any) -> float:
    """The longest per-request timeout of the router's links (5 s, the links' default, without any)."""
    pools = getattr(router, "pools", {})
    return max((link.config.timeout for p in pools.values() for link in p.links), default=5.0)


_ISO_NOTHING_HELD = frozenset({OrderStatus.REVERSED, OrderStatus.DECLINED, OrderStatus.FRAUD, OrderStatus.ERROR})


def _peer_key(msg: Mapping[str, str]) -> tuple[str, str, str, str]:
    """The peer's name for its request: DE 41 (right-trimmed), MTI, DE 11, DE 7."""
    return (msg.get("41", "").rstrip(), msg["t"], msg.get("11", ""), msg.get("7", ""))


def _iso_identity_ok(msg: Mapping[str, str]) -> bool:
    """Whether the peer's fields an original keeps for its follow-ups are well formed: DE 3 (6 digits), DE 32 (1-11)."""
    code, acquirer = msg.get("3", "000000"), msg.get("32", "0")
    return (
        len(code) == 6
        and code.isascii()
        and code.isdigit()
        and 0 < len(acquirer) <= 11
        and acquirer.isascii()
        and acquirer.isdigit()
    )


def _iso_card(msg: Mapping[str, str]) -> Card:
    expiry = msg.get("14")
    if expiry is not None and len(expiry) == 4 and expiry.isdigit():
        return Card(msg.get("2", ""), expiry_month=int(expiry[2:]), expiry_year=2000 + int(expiry[:2]))
    return Card(msg.get("2", ""))


def _iso_amount(msg: Mapping[str, str]) -> int | None:
    raw = msg.get("4", "")
    return int(raw) if len(raw) == 12 and raw.isascii() and raw.isdigit() else None


class _Sent(enum.Enum):
    ANSWERED = "answered"
    UNKNOWN = "unknown"  # sent, no answer: timeout or lost link
    NOT_SENT = "not_sent"  # failed fast: no link, no route, busy


@dataclass(frozen=True, slots=True)
class _Outcome:
    sent: _Sent
    result: Result | None = None
    reason: str = ""  # when not answered: why, for iso_message and failure_message
    response: Message | None = None  # the host's answer as received (the ISO listener maps it back)

    @property
    def approved(self) -> bool:
        return self.result is not None and self.result.approved


def _utcnow() -> datetime:
    return datetime.now(UTC)


@functools.lru_cache(maxsize=1024)
def _merchant(settings: ProjectSettings) -> Merchant:
    return settings.merchant()


def _acquirer_bin(settings: ProjectSettings) -> str:
    """The 6-digit acquirer BIN of the ARN, from DE 32."""
    return settings.acquirer_id.zfill(6)[:6]


def _seal_text(card: Card) -> bytes:
    return f"{card.pan}|{card.expiry or ''}".encode()


class OrdersService:
    """Authorize, charge, reverse, refund, cancel, rebill, credit, and read orders, per project."""

    def __init__(
        self,
        router: _Router,
        db: _Database,
        writer: Writer,
        ids: _Ids,
        vault: _Vault,
        *,
        clock: Callable[[], datetime] = _utcnow,
        request_timeout: float | None = None,
        reversals: Reversals | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        """``request_timeout`` overrides the links' own timeout (seconds) for every request.

        With ``reversals`` (the runtime always gives one) each intent carries
        its reserved STAN, destination and owner, and an unknown outcome is
        reversed (:mod:`switch.orders.saf`); without, DE 11 is the link's and
        nothing is reversed (unit tests of the bare path). With ``audit``, every
        back-office call (charge, reverse, refund, cancel, credit, rebill) is logged.
        """
        self._router = router
        self._repo = OrderRepo(db.pool, writer)
        self._ids = ids
        self._vault = vault
        self._clock = clock
        self._timeout = request_timeout
        self._reversals = reversals
        self._audit = audit
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._in_progress: set[str] = set()  # orders with an exchange in progress in this process
        self._settle_events: dict[str, asyncio.Event] = {}  # set when that exchange ends; made by waiters
        # An ISO repeat or follow-up waits this long for the operation it depends on: the
        # longest a request of ours can take, plus the time to write its result.
        self._settle_wait = (request_timeout or _longest_timeout(router)) + _ISO_SETTLE_MARGIN

    # -- reads ---------------------------------------------------------------

    async def get_order(self, project: Project, order_id: str) -> Order:
        """The project's order with its operations; :class:`OrderNotFound` for anyone else's."""
        if not (isinstance(order_id, str) and order_id.isascii() and order_id.isdigit() and len(order_id) == 17):
            raise OrderNotFound(order_id)
        order = await self._repo.get(project.id, order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    async def list_orders(self, project: Project, query: Mapping[str, str]) -> Page[Order]:
        """``GET /orders/``: newest first, every filter of seeds/003 (see :mod:`switch.orders.query`)."""
        (page, size), flt = orders_query(project.id, query)
        items, total = await self._repo.list_orders(flt, (page - 1) * size, size)
        return Page(items, page, size, total)

    async def list_operations(self, project: Project, query: Mapping[str, str]) -> Page[Operation]:
        """``GET /operations/``: newest first; each item carries its ``order_id``."""
        (page, size), flt = operations_query(project.id, query)
        items, total = await self._repo.list_operations(flt, (page - 1) * size, size)
        return Page(items, page, size, total)

    # -- new orders ----------------------------------------------------------

    async def authorize(self, project: Project, body: Mapping[str, Any]) -> Order:
        """``POST /orders/authorize``: 2-stage, or 1-stage (authorize + charge) with ``options.auto_charge``."""
        settings = project.settings
        options = section(body, "options")
        cur = currency_of(body, settings.currency)
        amount = amount_of(body, cur, zero_ok=True)
        assert amount is not None
        card = card_of(body)
        details = details_of(body)
        dynamic = descriptor_of(body)
        secure = secure3d_of(body)
        recurring = flag(options.get("recurring"))
        auto_charge = flag(options["auto_charge"]) if options.get("auto_charge") is not None else settings.auto_charge
        now = self._clock()
        order_id = await self._take(self._ids.order_id)
        rrn = await self._take(lambda: self._ids.rrn(now))
        iso = self._translate(
            lambda: Authorize(
                merchant=_merchant(settings),
                card=card,
                amount=amount,
                currency=cur,
                rrn=rrn,
                three_ds=secure.three_ds if secure else None,
                stored_credential=StoredCredential(Initiator.CARDHOLDER, CredentialReason.FIRST) if recurring else None,
                descriptor=dynamic.descriptor if dynamic else None,
            ),
            now,
        )
        order = self._new_order(project, order_id, card, amount, cur, now, rrn=rrn, recurring=recurring)
        order.initial_rrn = rrn
        self._fill(order, details, settings)
        if dynamic is not None:
            order.descriptor = dynamic.shown
        if secure is not None:
            order.secure3d = secure.shown
        self._approved(
            order, await self._perform_outcome(project, order, OperationType.AUTHORIZE, amount, iso, now, creates=True)
        )
        if auto_charge and amount > 0:
            await self._capture(project, order, amount)
        return order

    @_audited("rebill")
    async def rebill(self, project: Project, order_id: str, body: Mapping[str, Any]) -> Order:
        """``POST /orders/:id/rebill``: a new order on the parent's stored card, merchant-initiated.

        DE 124 says ``M`` + ``R`` (recurring: ``options.recurring`` here or on
        the parent) or ``U`` (unscheduled) + the RRN of the series' first
        transaction; DE 22 says credential on file. The ``cvv`` the doc
        requires is checked for form but not sent: a merchant-initiated
        transaction carries no CVV (and none is ever stored).
        """
        parent = await self.get_order(project, order_id)
        self._require(parent, "rebill")
        settings = project.settings
        if body.get("cvv") is not None:
            check_cvv(body["cvv"], "#/cvv")
        options = section(body, "options")
        cur = currency_of(body, parent.currency)
        amount = amount_of(body, cur)
        assert amount is not None
        details = details_of(body)
        dynamic = descriptor_of(body)
        card = self._card(parent)
        recurring = flag(options.get("recurring")) or parent.recurring
        first_rrn = parent.initial_rrn or parent.rrn
        if first_rrn is None:
            raise OrderError("rejected", "Order has no transaction to repeat", order_id=parent.id)
        auto_charge = flag(options["auto_charge"]) if options.get("auto_charge") is not None else settings.auto_charge
        now = self._clock()
        new_id = await self._take(self._ids.order_id)
        rrn = await self._take(lambda: self._ids.rrn(now))
        iso = self._translate(
            lambda: Rebill(
                merchant=_merchant(settings),
                card=card,
                amount=amount,
                currency=cur,
                rrn=rrn,
                first_rrn=first_rrn,
                reason=CredentialReason.RECURRING if recurring else CredentialReason.UNSCHEDULED,
                descriptor=dynamic.descriptor if dynamic else None,
            ),
            now,
        )
        order = self._new_order(project, new_id, card, amount, cur, now, rrn=rrn, recurring=recurring)
        order.card_holder = parent.card_holder
        order.parent_order_id = parent.id
        order.initial_rrn = first_rrn
        self._fill(order, details, settings)
        if dynamic is not None:
            order.descriptor = dynamic.shown
        self._approved(
            order, await self._perform_outcome(project, order, OperationType.AUTHORIZE, amount, iso, now, creates=True)
        )
        if auto_charge:
            await self._capture(project, order, amount)
        return order

    @_audited("credit")
    async def credit(self, project: Project, order_id: str | None, body: Mapping[str, Any]) -> Order:
        """OCT (0200, processing code 26) as a new order in status ``credited``.

        ``POST /orders/:id/credit`` (``order_id`` given) pays out to that
        order's card, allowed per the status table (charged, refunded), and
        names its capture in DE 90 when there is one in the same currency;
        ``POST /orders/credit`` (``order_id`` None) takes ``pan`` (and
        optionally ``card``) from the body. Either way the doc's example
        answers with the credit as the order's only operation.
        """
        settings = project.settings
        parent: Order | None = None
        if order_id is not None:
            parent = await self.get_order(project, order_id)
            self._require(parent, "credit")
            card = self._card(parent)
            cur = currency_of(body, parent.currency)
        else:
            card = card_of(body, need_expiry=False)
            cur = currency_of(body, settings.currency)
        amount = amount_of(body, cur)
        assert amount is not None
        details = details_of(body)
        dynamic = descriptor_of(body)
        original = None
        if parent is not None:
            capture = parent.last(OperationType.CHARGE)
            if capture is not None and capture.currency == cur.alpha:
                original = capture.original_ref()
        now = self._clock()
        new_id = await self._take(self._ids.order_id)
        rrn = await self._take(lambda: self._ids.rrn(now))
        iso = self._translate(
            lambda: Credit(
                merchant=_merchant(settings),
                card=card,
                amount=amount,
                currency=cur,
                rrn=rrn,
                original=original,
                descriptor=dynamic.descriptor if dynamic else None,
            ),
            now,
        )
        order = self._new_order(project, new_id, card, amount, cur, now, rrn=rrn, recurring=False)
        if parent is not None:
            order.card_holder = parent.card_holder
            order.parent_order_id = parent.id
        self._fill(order, details, settings)
        if dynamic is not None:
            order.descriptor = dynamic.shown
        self._approved(
            order, await self._perform_outcome(project, order, OperationType.CREDIT, amount, iso, now, creates=True)
        )
        return order

    # -- operations on an order ----------------------------------------------

    @_audited("charge")
    async def charge(self, project: Project, order_id: str, body: Mapping[str, Any]) -> Order:
        """``PUT /orders/:id/charge``: the whole authorization, or ``amount`` of it (0220, ARN)."""
        async with self._lock(order_id):
            order = await self.get_order(project, order_id)
            self._require(order, "charge")
            amount = amount_of(body, currency(order.currency), required=False)
            remaining = order.amount - order.amount_charged
            if amount is None:
                amount = remaining
            if amount > remaining:
                raise OrderError("rejected", "Amount exceeds the authorized amount", order_id=order.id)
            await self._capture(project, order, amount)
            return order

    @_audited("reverse")
    async def reverse(self, project: Project, order_id: str, body: Mapping[str, Any] | None = None) -> Order:
        """``PUT /orders/:id/reverse``: release the authorization (0400 of the 0100)."""
        async with self._lock(order_id):
            order = await self.get_order(project, order_id)
            self._require(order, "reverse")
            await self._reverse(project, order)
            return order

    @_audited("refund")
    async def refund(self, project: Project, order_id: str, body: Mapping[str, Any]) -> Order:
        """``PUT /orders/:id/refund``: all that is left, or ``amount``; repeatable while charged > refunded."""
        async with self._lock(order_id):
            order = await self.get_order(project, order_id)
            self._require(order, "refund")
            await self._refund(project, order, body)
            return order

    @_audited("cancel")
    async def cancel(self, project: Project, order_id: str, body: Mapping[str, Any]) -> Order:
        """``PUT /orders/:id/cancel``: a reverse when authorized, a refund (of ``amount``) when charged/refunded."""
        async with self._lock(order_id):
            order = await self.get_order(project, order_id)
            self._require_idle(order)
            action = cancel_action(order.status)
            if action == "reverse":
                await self._reverse(project, order)
            elif action == "refund":
                await self._refund(project, order, body)
            else:
                raise OrderError(
                    "rejected", f"Operation cancel is not allowed in status {order.status.value}", order_id=order.id
                )
            return order

    # -- ISO 8583 requests from the listener (switch.listener) ----------------

    async def iso_start(self, project: Project, msg: Message) -> IsoResult:
        """A peer's 0100 (authorize), 0200/000000 (sale) or 0200/260000 (credit): a new order, source ``iso``.

        The host gets the peer's fields with our DE 37 (a new RRN), DE 7 (now)
        and DE 11 (the destination's STAN space); CVV2 (DE 120) is forwarded,
        never stored. The peer's DE 37 becomes the order's
        ``merchant_order_id``. A repeat (same DE 41, MTI, DE 11, DE 7) is
        answered from the first one's outcome and has no second effect.
        """
        mti, code = msg["t"], msg.get("3", "000000")
        if mti == "0100":
            kind = OperationType.AUTHORIZE
        elif mti == "0200" and code[:2] == "00":
            kind = OperationType.CHARGE
        elif mti == "0200" and code[:2] == "26":
            kind = OperationType.CREDIT
        else:
            return IsoResult(None, "12")
        if not _iso_identity_ok(msg):
            return IsoResult(None, "30")  # a follow-up could not refer to it (DE 90, DE 32, DE 3)
        try:
            card = _iso_card(msg)
        except TranslationError:
            return IsoResult(None, "14")
        amount = _iso_amount(msg)
        if amount is None:
            return IsoResult(None, "13")
        try:
            cur = currency(msg.get("49", ""))
        except TranslationError:
            return IsoResult(None, "30")
        now = self._clock()
        order_id = await self._take(self._ids.order_id)
        rrn = await self._take(lambda: self._ids.rrn(now))
        repeat = await self._iso_claim(project, msg, order_id, 1)
        if repeat is not None:
            return repeat
        out = {k: v for k, v in msg.items() if k not in _ISO_DROPPED}
        out["7"] = messages.de7(now.timestamp())
        out["37"] = rrn
        out.pop("11", None)  # reserved from the destination (or stamped by the link)
        order = self._new_order(project, order_id, card, amount, cur, now, rrn=rrn, recurring=False, source=Source.ISO)
        order.initial_rrn = rrn
        order.merchant_order_id = msg.get("37")
        order.descriptor = msg.get("43", "").strip() or project.settings.descriptor

        def sold(op: Operation) -> None:
            order.amount_charged = amount
            order.status = OrderStatus.CHARGED

        outcome = await self._perform_outcome(
            project,
            order,
            kind,
            amount,
            out,
            now,
            creates=True,
            on_success=sold if kind is OperationType.CHARGE else None,
            arn=kind is OperationType.CHARGE,
        )
        return self._iso_result(order.id, outcome)

    async def iso_follow_up(self, project: Project, msg: Message) -> IsoResult:
        """A peer's 0220 (capture), 0400/0420/0421 (reversal) or 0200/200000 (refund) of an order it started.

        The original is found by DE 41 + DE 90 (the peer's original MTI,
        STAN, DE 7) or, without DE 90, DE 41 + DE 37. The host gets our own
        message about our own original (our DE 90, RRN, auth code).
        """
        mti = msg["t"]
        terminal = msg.get("41", "").rstrip()
        de90 = msg.get("90", "")
        found = None
        if len(de90) >= 20:
            found = await self._repo.peer_ref(project.id, (terminal, de90[:4], de90[4:10], de90[10:20]))
        elif msg.get("37"):
            found = await self._repo.peer_ref_by_rrn(project.id, terminal, msg["37"])
        if found is None:
            return IsoResult(None, "25")
        order_id, original_id = found
        # A peer reverses after its own timeout, which may be shorter than ours: the original
        # (or an earlier follow-up) may still be in flight here. Wait for it, then act on its outcome.
        if not await self._iso_settled(project, order_id, None):
            return IsoResult(order_id, "91")  # still in flight after our own timeout: the peer repeats later
        async with self._lock(order_id):
            order = await self._repo.get(project.id, order_id)
            original = None if order is None else next((o for o in order.operations if o.id == original_id), None)
            if order is None or original is None:
                return IsoResult(None, "25")
            if any(op.status is OperationStatus.PENDING for op in order.operations):
                return IsoResult(order.id, "91")  # another follow-up started meanwhile: the peer repeats later
            amount = _iso_amount(msg)
            if mti in ("0400", "0420", "0421"):
                if order.status in _ISO_NOTHING_HELD:
                    return IsoResult(order.id, "00")
                if original.status is not OperationStatus.SUCCESS or not (
                    (original.type is OperationType.AUTHORIZE and order.status is OrderStatus.AUTHORIZED)
                    or (original.type is OperationType.CHARGE and order.amount_refunded == 0)
                ):
                    return IsoResult(order.id, "12")
                kind, op_amount, make = OperationType.REVERSE, original.amount, "reverse"
            elif mti == "0220":
                if not allowed(order.status, "charge") or original.type is not OperationType.AUTHORIZE:
                    return IsoResult(order.id, "12")
                if amount is None or not 0 < amount <= order.amount - order.amount_charged:
                    return IsoResult(order.id, "13")
                kind, op_amount, make = OperationType.CHARGE, amount, "capture"
            else:
                capture = order.last(OperationType.CHARGE)
                if capture is None or not allowed(order.status, "refund"):
                    return IsoResult(order.id, "12")
                if amount is None or not 0 < amount <= order.amount_charged - order.amount_refunded:
                    return IsoResult(order.id, "13")
                original, kind, op_amount, make = capture, OperationType.REFUND, amount, "refund"
            repeat = await self._iso_claim(project, msg, order.id, len(order.operations) + 1)
            if repeat is not None:
                return repeat
            card = self._card(order)
            merchant = self._merchant_of(project, original)
            now = self._clock()
            ref = original.original_ref()
            if make == "capture":
                out = self._translate(lambda: Capture(merchant=merchant, card=card, original=ref, amount=amount), now)
            elif make == "reverse":
                out = self._translate(lambda: Reversal(merchant=merchant, card=card, original=ref), now)
            else:
                rrn = await self._take(lambda: self._ids.rrn(now))
                cur = currency(order.currency)
                out = self._translate(
                    lambda: Refund(merchant=merchant, card=card, amount=op_amount, currency=cur, rrn=rrn, original=ref),
                    now,
                )
            out["32"] = ref.acquirer_id  # the original's DE 32, as the peer sent it

            def done(op: Operation) -> None:
                if make == "capture":
                    order.amount_charged += op_amount
                    order.status = OrderStatus.CHARGED
                elif make == "reverse":
                    order.status = OrderStatus.REVERSED
                    if original.type is OperationType.CHARGE:
                        order.amount_charged = 0
                else:
                    order.amount_refunded += op_amount
                    order.status = OrderStatus.REFUNDED

            released = original.cashflow.reserve if make == "reverse" and original.cashflow is not None else 0
            outcome = await self._perform_outcome(
                project, order, kind, op_amount, out, now, on_success=done, arn=make != "reverse", released=released
            )
            return self._iso_result(order.id, outcome)

    async def _iso_claim(self, project: Project, msg: Message, order_id: str, operation_id: int) -> IsoResult | None:
        """None for a new request; for a repeat, the answer the first one got (94 while it is in flight)."""
        key = _peer_key(msg)
        if await self._repo.add_peer_ref(project.id, key, msg.get("37"), order_id, operation_id):
            return None
        found = await self._repo.peer_ref(project.id, key)
        if found is not None:
            # The first copy may still be in flight: answer the repeat with its outcome once it has one.
            await self._iso_settled(project, found[0], found[1])
        order = None if found is None else await self._repo.get(project.id, found[0])
        op = None if order is None else next((o for o in order.operations if o.id == found[1]), None)  # type: ignore[index]
        if order is None or op is None or op.status is OperationStatus.PENDING:
            return IsoResult(None if order is None else order.id, "94")
        if op.iso_response_code is None:
            return IsoResult(order.id, "68" if op.status is OperationStatus.ERROR else "96")
        response: Message = {"39": op.iso_response_code}
        if op.auth_code:
            response["38"] = op.auth_code
        return IsoResult(order.id, None, response)

    async def _iso_settled(self, project: Project, order_id: str, operation_id: int | None) -> bool:
        """Wait until operation ``operation_id`` (None: every operation) of the order is no longer pending.

        False if it still is after our longest request timeout plus the time to write a result.
        In flight in this process: woken when it ends. Elsewhere (another worker or node): the
        database is asked again after 50 ms, doubling to 500 ms, so waiters add little load.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settle_wait
        delay = 0.05
        while True:
            order = await self._repo.get(project.id, order_id)
            if order is None:
                return True
            ops = [o for o in order.operations if operation_id is None or o.id == operation_id]
            if not any(o.status is OperationStatus.PENDING for o in ops):
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            if order_id in self._in_progress:
                ended = self._settle_events.setdefault(order_id, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), left)
            else:
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, 0.5)

    @staticmethod
    def _iso_result(order_id: str, outcome: _Outcome) -> IsoResult:
        if outcome.response is not None:
            return IsoResult(order_id, None, outcome.response)
        return IsoResult(order_id, "68" if outcome.sent is _Sent.UNKNOWN else "91")

    # -- the steps -----------------------------------------------------------

    async def _capture(self, project: Project, order: Order, amount: int) -> None:
        auth = order.last(OperationType.AUTHORIZE)
        if auth is None:
            raise OrderError("rejected", "Order has no authorization to charge", order_id=order.id)
        card = self._card(order)
        merchant = self._merchant_of(project, auth)
        now = self._clock()
        iso = self._translate(
            lambda: Capture(merchant=merchant, card=card, original=auth.original_ref(), amount=amount), now
        )

        def charged(op: Operation) -> None:
            order.amount_charged += amount
            order.status = OrderStatus.CHARGED

        self._approved(
            order,
            await self._perform_outcome(
                project, order, OperationType.CHARGE, amount, iso, now, on_success=charged, arn=True
            ),
        )

    async def _reverse(self, project: Project, order: Order) -> None:
        auth = order.last(OperationType.AUTHORIZE)
        if auth is None:
            raise OrderError("rejected", "Order has no authorization to reverse", order_id=order.id)
        card = self._card(order)
        merchant = self._merchant_of(project, auth)
        now = self._clock()
        iso = self._translate(lambda: Reversal(merchant=merchant, card=card, original=auth.original_ref()), now)

        def reversed_(op: Operation) -> None:
            order.status = OrderStatus.REVERSED

        released = auth.cashflow.reserve if auth.cashflow is not None else 0
        self._approved(
            order,
            await self._perform_outcome(
                project, order, OperationType.REVERSE, auth.amount, iso, now, on_success=reversed_, released=released
            ),
        )

    async def _refund(self, project: Project, order: Order, body: Mapping[str, Any]) -> None:
        capture = order.last(OperationType.CHARGE)
        if capture is None:
            raise OrderError("rejected", "Order has no charge to refund", order_id=order.id)
        cur = currency(order.currency)
        amount = amount_of(body, cur, required=False)
        remaining = order.amount_charged - order.amount_refunded
        if remaining <= 0:
            raise OrderError("rejected", "Order is fully refunded", order_id=order.id)
        if amount is None:
            amount = remaining
        if amount > remaining:
            raise OrderError("rejected", "Amount exceeds the charged amount not yet refunded", order_id=order.id)
        card = self._card(order)
        merchant = self._merchant_of(project, capture)
        now = self._clock()
        rrn = await self._take(lambda: self._ids.rrn(now))
        iso = self._translate(
            lambda: Refund(
                merchant=merchant, card=card, amount=amount, currency=cur, rrn=rrn, original=capture.original_ref()
            ),
            now,
        )

        def refunded(op: Operation) -> None:
            order.amount_refunded += amount
            order.status = OrderStatus.REFUNDED

        self._approved(
            order,
            await self._perform_outcome(
                project, order, OperationType.REFUND, amount, iso, now, on_success=refunded, arn=True
            ),
        )

    def _approved(self, order: Order, outcome: _Outcome) -> None:
        """Raises :class:`OrderError` unless ``outcome`` is an approval (the REST calls; the listener answers any)."""
        if not outcome.approved:
            raise self._failure(order, outcome)

    async def _perform_outcome(
        self,
        project: Project,
        order: Order,
        kind: OperationType,
        amount: int,
        msg: Message,
        now: datetime,
        *,
        creates: bool = False,
        on_success: Callable[[Operation], None] | None = None,
        arn: bool = False,
        released: int = 0,
    ) -> _Outcome:
        """Intent, exchange, result (module doc): the outcome, approved or not."""
        if not creates:
            self._require_idle(order)
        op = Operation(
            order_id=order.id,
            id=len(order.operations) + 1,
            type=kind,
            status=OperationStatus.PENDING,
            amount=amount,
            currency=order.currency,
            created=now,
            updated=now,
            rrn=msg.get("37"),
            mti=msg["t"],
            transmission_time=msg.get("7"),
            terminal_id=msg["41"].rstrip() if "41" in msg else None,
            acquirer_id=msg.get("32"),
            processing_code=msg.get("3"),
        )
        if self._reversals is not None:
            # DE 11 before the intent: a crash between send and result still knows what to reverse.
            op.stan, op.destination = self._reversals.prepare(msg)
            op.owner = self._reversals.owner
        note = _NOTE.get()
        if note is not None and not note.written and note.operation_id is None:
            # The first operation of the call is the one audited (a rebill's authorization, not its auto-charge).
            if creates:
                note.new_order_id = order.id
                note.order_id = note.order_id or order.id
            note.operation_id, note.amount, note.currency = op.id, amount, order.currency
        else:
            note = None
        exchange = self._exchange(project, order, op, msg, creates, on_success, arn, released, note)
        if self._reversals is not None:
            exchange = self._reversals.working(op.order_id, op.id, exchange)
        return await _shielded(exchange)

    def _settled(self, order_id: str) -> None:
        """The exchange in progress on ``order_id`` ended: wake whoever waits for it (_iso_settled)."""
        self._in_progress.discard(order_id)
        waiting = self._settle_events.pop(order_id, None)
        if waiting is not None:
            waiting.set()

    async def _exchange(
        self,
        project: Project,
        order: Order,
        op: Operation,
        msg: Message,
        creates: bool,
        on_success: Callable[[Operation], None] | None,
        arn: bool,
        released: int,
        note: AuditNote | None = None,
    ) -> _Outcome:
        # While it runs, an ISO repeat or follow-up of this order waiting in this process
        # (_iso_settled) is woken by its end rather than polling. Only the exchange that marked
        # the order ends the mark: a second one (a cancelled request's shielded exchange still
        # running) must not wake waiters early. No event is made unless somebody waits.
        mine = order.id not in self._in_progress
        if mine:
            self._in_progress.add(order.id)
        try:
            if creates:
                await self._repo.create(order, op)
            elif not await self._repo.add_operation(order, op):
                raise OrderError("rejected", "Order was changed by another request, try again", order_id=order.id)
            order.operations.append(op)
            debug = log.isEnabledFor(logging.DEBUG)  # the request id rides on each of these lines
            if debug:
                log.debug("intent written", extra={"order_id": order.id, "operation_id": op.id, "mti": msg["t"]})
            outcome = await self._send(msg)
            if debug:
                resp = outcome.response or {}
                extra = {"order_id": order.id, "destination": op.destination, "mti": msg["t"], "stan": msg.get("11")}
                extra.update(rrn=msg.get("37"), response_mti=resp.get("t"), rc=resp.get("39"), sent=outcome.sent.value)
                log.debug("iso exchange", extra=extra)
            saf_id: int | None = None
            reversals = self._reversals
            if reversals is not None and outcome.sent is _Sent.UNKNOWN and msg["t"] in REVERSIBLE:
                # Durable before the result: a crash between the two leaves a pending intent whose
                # reversal recovery finds already queued (one row per operation).
                saf_id = await reversals.queue(order.id, op.id, op.destination, msg, op.currency)
            now = self._clock()
            op.stan = msg.get("11")  # stamped by the link as it sent (None if it never got that far)
            op.transmission_time = msg.get("7", op.transmission_time)
            result = outcome.result
            if result is not None:
                op.iso_response_code = result.response_code
                op.iso_message = result.message
                op.auth_code = result.auth_code
            else:
                op.iso_message = outcome.reason
            if outcome.approved:
                op.status = OperationStatus.SUCCESS
                if arn:
                    op.arn = await self._take(lambda: self._ids.arn(_acquirer_bin(project.settings), now))
                if creates:
                    order.status = OrderStatus.CREDITED if op.type is OperationType.CREDIT else OrderStatus.AUTHORIZED
                    order.auth_code = op.auth_code
                if on_success is not None:
                    on_success(op)
            else:
                declined = result is not None and result.outcome in (Outcome.DECLINED, Outcome.FRAUD)
                op.status = OperationStatus.FAILURE if declined else OperationStatus.ERROR
                if outcome.sent is _Sent.UNKNOWN:
                    order.status = OrderStatus.ERROR
                elif creates:
                    assert result is None or result.outcome is not Outcome.APPROVED
                    if result is not None and result.outcome is Outcome.DECLINED:
                        order.status = OrderStatus.DECLINED
                    elif result is not None and result.outcome is Outcome.FRAUD:
                        order.status = OrderStatus.FRAUD
                    else:
                        order.status = OrderStatus.ERROR
            s = project.settings
            rates = cashflows.Rates(s.fee_rate, s.fee_fixed, s.reserve_rate)
            op.cashflow = cashflows.for_operation(
                op.type, op.amount, op.currency, rates, status=op.status, released_reserve=released
            )
            op.updated = now
            order.updated = now
            order.version += 1
            if note is None:
                await self._repo.finish(order, op)
            else:
                # Queued together: one batch, so the row commits with the result it describes.
                failure = None if outcome.approved else self._failure(order, outcome)
                note.written = True
                entry = note.entry("success") if failure is None else note.entry(failure.failure_type, failure.message)
                await asyncio.gather(self._repo.finish(order, op), self._record(entry))
            if reversals is not None and saf_id is not None:
                reversals.reverse_soon(saf_id, op.destination, msg, op.currency)
            if log.isEnabledFor(logging.INFO):  # one per operation: skip building the record when INFO is off
                log.info(
                    "operation done",  # written: the result is durable by now
                    extra={
                        "order_id": order.id,
                        "operation": op.type.value,
                        "status": op.status.value,
                        "mti": msg["t"],
                        "stan": op.stan,
                        "rrn": msg.get("37"),
                        "iso_response_code": op.iso_response_code,
                        "sent": outcome.sent.value,
                    },
                )
            return outcome
        finally:
            if mine:
                self._settled(order.id)

    async def _send(self, msg: Message) -> _Outcome:
        try:
            resp = await self._router.request(msg, timeout=self._timeout)
        except RequestTimeout:
            return _Outcome(_Sent.UNKNOWN, reason="Request timed out")
        except LinkClosed:
            return _Outcome(_Sent.UNKNOWN, reason="Connection to the issuer lost")
        except (DestinationUnavailable, NoRoute, LinkNotReady):
            return _Outcome(_Sent.NOT_SENT, reason="Issuer unavailable")
        except (LinkBusy, DuplicateRequest):
            return _Outcome(_Sent.NOT_SENT, reason="Issuer busy")
        except EncodeError:
            # translate checks every field first; reaching this is our bug, not the merchant's input
            log.exception("request could not be encoded")
            return _Outcome(_Sent.NOT_SENT, reason="Request could not be encoded")
        return _Outcome(_Sent.ANSWERED, interpret(resp), response=resp)

    def _failure(self, order: Order, outcome: _Outcome) -> OrderError:
        result = outcome.result
        if result is not None and result.outcome is Outcome.DECLINED:
            return OrderError("declined", result.message, order_id=order.id)
        if result is not None and result.outcome is Outcome.FRAUD:
            return OrderError("fraud", result.message, order_id=order.id)
        message = result.message if result is not None else outcome.reason
        return OrderError("error", message, order_id=order.id)

    # -- helpers ---------------------------------------------------------------

    async def _record(self, entry: Any) -> None:
        """Write an audit entry; a failure is logged, never turned into the caller's error.

        The operation it describes has happened: failing the answer would
        make the merchant retry something already done.
        """
        if self._audit is None:
            return
        try:
            await asyncio.shield(self._audit.record(entry))
        except Exception:
            log.error("audit entry not written", extra={"action": entry.action, "order_id": entry.order_id})

    def _lock(self, order_id: str) -> asyncio.Lock:
        lock = self._locks.get(order_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[order_id] = lock
        return lock

    def _require(self, order: Order, action: str) -> None:
        if not allowed(order.status, action):
            raise OrderError(
                "rejected", f"Operation {action} is not allowed in status {order.status.value}", order_id=order.id
            )
        self._require_idle(order)

    @staticmethod
    def _require_idle(order: Order) -> None:
        if any(op.status is OperationStatus.PENDING for op in order.operations):
            raise OrderError("rejected", "Another operation on this order is in progress", order_id=order.id)

    @staticmethod
    def _translate(make: Callable[[], IsoOperation], now: datetime) -> Message:
        """Build the ISO request at ``now``; the translator's refusals are the merchant's input (422)."""
        try:
            return build(make(), now)
        except TranslationError as e:
            raise translation_error(e) from None

    async def _take(self, make: Callable[[], str]) -> str:
        """An identifier; when both leased blocks are used up, wait for a refill and take again.

        A loop, not one retry: under a burst, other requests may empty the
        refilled block before this one runs again. A database that cannot
        lease raises from ``refill``.
        """
        while True:
            try:
                return make()
            except SequenceExhausted:
                await self._ids.refill()

    @staticmethod
    def _merchant_of(project: Project, original: Operation) -> Merchant:
        """The project's acceptor, on the terminal the original went through (the host matches DE 41)."""
        merchant = _merchant(project.settings)
        if original.terminal_id and original.terminal_id != merchant.terminal_id:
            merchant = dataclasses.replace(merchant, terminal_id=original.terminal_id)
        return merchant

    def _new_order(
        self,
        project: Project,
        order_id: str,
        card: Card,
        amount: int,
        cur: Currency,
        now: datetime,
        *,
        rrn: str,
        recurring: bool,
        source: Source = Source.REST,
    ) -> Order:
        info = describe(card.pan)
        key_id, blob = self._vault.seal(_seal_text(card), order_id.encode())
        expiry = card.expiry
        return Order(
            id=order_id,
            project_id=project.id,
            status=OrderStatus.NEW,
            amount=amount,
            currency=cur.alpha,
            created=now,
            updated=now,
            rrn=rrn,
            pan_mask=mask_pan(card.pan),
            card_key_id=key_id,
            card_blob=blob,
            card_holder=card.holder,
            card_type=info.type,
            card_subtype=info.subtype,
            expiry_month=int(expiry[2:]) if expiry else None,
            expiry_year=2000 + int(expiry[:2]) if expiry else None,
            issuer=info.issuer,
            recurring=recurring,
            source=source,
        )

    @staticmethod
    def _fill(order: Order, details: Details, settings: ProjectSettings) -> None:
        order.client = details.client
        order.location = details.location
        order.custom_fields = details.custom_fields
        order.description = details.description
        order.merchant_order_id = details.merchant_order_id
        order.segment = details.segment
        order.invoice_id = details.invoice_id
        order.descriptor = settings.descriptor

    def _card(self, order: Order) -> Card:
        """The order's card from the vault (PAN and expiry; never a CVV)."""
        if order.card_key_id is None or order.card_blob is None:
            raise OrderError("rejected", "Order has no card", order_id=order.id)
        try:
            text = self._vault.open(order.card_key_id, bytes(order.card_blob), order.id.encode()).decode()
        except VaultError:
            log.error("stored card cannot be opened", extra={"order_id": order.id})
            raise OrderError("error", "Stored card cannot be read", order_id=order.id) from None
        pan, _, expiry = text.partition("|")
        if expiry:
            return Card(pan, expiry_month=int(expiry[2:]), expiry_year=2000 + int(expiry[:2]))
        return Card(pan)


async def _shielded(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` to the end even if the caller is cancelled (the write-ahead path must finish)."""
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_orphan_done)
        raise


def _orphan_done(task: asyncio.Future[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, OrderError):
        log.error("operation of a cancelled request failed", exc_info=exc)
