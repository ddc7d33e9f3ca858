"""The write-ahead exchange engine: every operation of an order, durable at each step.

One operation, whatever its type and whoever asked (the REST front through
:mod:`switch.orders.service`, an acquirer host through
:mod:`switch.orders.iso`), runs the same path (:meth:`Engine.perform`):

1. the ISO request is built first, so bad input is refused and leaves no trace;
2. the order (when new) and a **pending** operation, holding the request's
   MTI, RRN, DE 7, DE 41, DE 32 and amount, are committed through the group
   writer (write-ahead intent) before the host sees anything;
3. the request goes to the router (a test-mode order's to the test destination,
   ``[routing] test``, whatever the card); DE 11 was reserved from the destination's
   STAN space before the intent (with reversals; else the link stamps it);
4. the outcome and the order's new state are committed in one statement,
   then the caller gets the outcome.

Steps 2-4 run shielded from the caller's cancellation: a client that hangs
up mid-way never leaves an operation pending in a live process.

What the outcome does is the table :data:`VERDICTS` (DESIGN.md's DE 39 table):

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
                                     once, then 0420/0421: switch.saf);
                                     the order allows nothing but rebill
nothing sent (no link  error         error if it made the order; else unchanged
route, busy)
=====================  ============  =========================================

A follow-up (charge, reverse, refund) that the host declines or that never
left leaves the order as it was, so it can be retried; only an unknown
outcome freezes it.

Concurrency. Within a process, operations on one order run one at a time
(:meth:`Engine.lock`, an ``asyncio.Lock`` per order id). Across processes,
the database decides: an operation's id is its position in the order and the
primary key ``(order_id, id)`` plus "one pending operation per order" make
the intent insert of a writer that read a stale order insert nothing (it is
then rejected), and CHECK constraints keep ``charged <= amount`` and
``refunded <= charged`` whatever happens. No row lock is held while the
host answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

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
from switch.orders import cashflow as cashflows
from switch.orders.audited import audited, current_note
from switch.orders.cards import OrderCards, Vault
from switch.orders.errors import InvalidInput, IssuerError, OrderError, Rejected
from switch.orders.model import Operation, OperationStatus, OperationType, Order, OrderStatus
from switch.orders.ports import Database, Ids, Router
from switch.orders.repo import OrderRepo, Writer
from switch.orders.status import allowed
from switch.orders.verdicts import (
    ISSUER_BUSY,
    ISSUER_UNAVAILABLE,
    LINK_LOST,
    MADE_BY,
    NOT_ENCODED,
    TIMED_OUT,
    VERDICTS,
    Exchanged,
    Sent,
    Verdict,
)
from switch.saf import REVERSIBLE, Reversals
from switch.store.audit import AuditLog, AuditNote
from switch.store.errors import SequenceExhausted
from switch.store.projects import Project, ProjectSettings
from switch.translate import IsoRequest, Merchant, build, interpret
from switch.wire.codec import EncodeError, Message

if TYPE_CHECKING:
    from switch.webhooks.events import Events

__all__ = [
    "VERDICTS",
    "Database",
    "Engine",
    "Exchanged",
    "Ids",
    "Router",
    "Sent",
    "Step",
    "Vault",
    "Verdict",
    "audited",
    "merchant_of",
]

log = logging.getLogger("isoswitch.orders")

T = TypeVar("T")


@dataclass(slots=True)
class Step:
    """One operation to carry out on ``order``: the request, and what success changes."""

    kind: OperationType
    amount: int
    msg: Message
    now: datetime
    creates: bool = False  # the operation makes the order (authorize, rebill, credit, ISO start)
    # Set by perform: the operation makes the order's status, either creating it or as the first
    # operation of an order that waited for the cardholder (new: hosted page; prepared: 3-D Secure).
    makes: bool = False
    on_success: Callable[[Operation], None] | None = None
    arn: bool = False  # an approval is given an ARN (charge, refund, sale)
    released: int = 0  # reserve released by a reversal, for the cash flow


# Orders that wait for the cardholder before their first operation.
_WAITING = frozenset({OrderStatus.NEW, OrderStatus.PREPARED})


def _utcnow() -> datetime:
    return datetime.now(UTC)


@functools.lru_cache(maxsize=1024)
def merchant_of(settings: ProjectSettings) -> Merchant:
    """The project's card acceptor (DE 41, 42, 43, 32 ...), made once per settings."""
    return settings.merchant()


def _acquirer_bin(settings: ProjectSettings) -> str:
    """The 6-digit acquirer BIN of the ARN, from DE 32."""
    return settings.acquirer_id.zfill(6)[:6]


class Engine:
    """Intent, exchange, result for every operation; the order's card, ids, locks and audit around it."""

    def __init__(
        self,
        router: Router,
        db: Database,
        writer: Writer,
        ids: Ids,
        vault: Vault,
        *,
        clock: Callable[[], datetime] | None = None,
        request_timeout: float | None = None,
        reversals: Reversals | None = None,
        audit: AuditLog | None = None,
        events: Events | None = None,
    ) -> None:
        """``request_timeout`` overrides the links' own timeout (seconds) for every request.

        With ``reversals`` (the runtime always gives one) each intent carries
        its reserved STAN, destination and owner, and an unknown outcome is
        reversed (:mod:`switch.saf`); without, DE 11 is the link's and nothing
        is reversed (unit tests of the bare path). With ``audit``, every
        back-office call (charge, reverse, refund, cancel, credit, rebill) is logged. With
        ``events``, an order's change of status or amounts is a webhook event, written with it.
        """
        self.router = router
        self.repo = OrderRepo(db.pool, writer, events)
        self.ids = ids
        self.clock = clock or _utcnow
        self.timeout = request_timeout
        self.reversals = reversals
        self.audit = audit
        self.cards = OrderCards(vault)  # new orders with their card sealed; the card of an order
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.in_progress: set[str] = set()  # orders with an exchange in progress in this process
        self.settle_events: dict[str, asyncio.Event] = {}  # set when that exchange ends; made by waiters

    # -- one operation ---------------------------------------------------------

    async def perform(self, project: Project, order: Order, step: Step) -> Exchanged:
        """Intent, exchange, result (module doc): the outcome, approved or not."""
        if not step.creates:
            self.require_idle(order)
        step.makes = step.creates or (not order.operations and order.status in _WAITING)
        msg = step.msg
        op = Operation(
            order_id=order.id,
            id=len(order.operations) + 1,
            type=step.kind,
            status=OperationStatus.PENDING,
            amount=step.amount,
            currency=order.currency,
            created=step.now,
            updated=step.now,
            rrn=msg.get("37"),
            mti=msg["t"],
            transmission_time=msg.get("7"),
            terminal_id=msg["41"].rstrip() if "41" in msg else None,
            acquirer_id=msg.get("32"),
            processing_code=msg.get("3"),
        )
        if self.reversals is not None:
            # DE 11 before the intent: a crash between send and result still knows what to reverse.
            op.stan, op.destination = self.reversals.prepare(msg, test_mode=order.test_mode)
            op.owner = self.reversals.owner
        note = current_note()
        if note is not None and not note.written and note.operation_id is None:
            # The first operation of the call is the one audited (a rebill's authorization, not its auto-charge).
            if step.creates:
                note.new_order_id = order.id
                note.order_id = note.order_id or order.id
            note.operation_id, note.amount, note.currency = op.id, step.amount, order.currency
        else:
            note = None
        exchange = self._exchange(project, order, op, step, note)
        if self.reversals is not None:
            exchange = self.reversals.working(op.order_id, op.id, exchange)
        return await _shielded(exchange)

    def approved(self, order: Order, outcome: Exchanged) -> None:
        """Raises the verdict's :class:`OrderError` unless ``outcome`` is an approval (the listener answers any)."""
        failure = self.failure(order, outcome)
        if failure is not None:
            raise failure

    @staticmethod
    def failure(order: Order, outcome: Exchanged) -> OrderError | None:
        """The error a merchant's call gets for ``outcome`` (None: approved)."""
        kind = VERDICTS[outcome.verdict].error
        if kind is None:
            return None
        result = outcome.result
        return kind(result.message if result is not None else outcome.reason, order_id=order.id)

    async def _exchange(
        self, project: Project, order: Order, op: Operation, step: Step, note: AuditNote | None
    ) -> Exchanged:
        # While it runs, an ISO repeat or follow-up of this order waiting in this process
        # (IsoTransactions.settled) is woken by its end rather than polling. Only the exchange that
        # marked the order ends the mark: a second one (a cancelled request's shielded exchange still
        # running) must not wake waiters early. No event is made unless somebody waits.
        mine = order.id not in self.in_progress
        if mine:
            self.in_progress.add(order.id)
        started = asyncio.get_running_loop().time()
        try:
            if step.creates:
                await self.repo.create(order, op)
            elif not await self.repo.add_operation(order, op):
                raise Rejected("Order was changed by another request, try again", order_id=order.id)
            order.operations.append(op)
            msg = step.msg
            debug = log.isEnabledFor(logging.DEBUG)  # the request id rides on each of these lines
            if debug:
                log.debug("intent written", extra={"order_id": order.id, "operation_id": op.id, "mti": msg["t"]})
            outcome = await self._send(msg, order.test_mode)
            if debug:
                resp = outcome.response or {}
                extra = {"order_id": order.id, "destination": op.destination, "mti": msg["t"], "stan": msg.get("11")}
                extra.update(rrn=msg.get("37"), response_mti=resp.get("t"), rc=resp.get("39"), sent=outcome.sent.value)
                log.debug("iso exchange", extra=extra)
            saf_id: int | None = None
            reversals = self.reversals
            if reversals is not None and outcome.sent is Sent.UNKNOWN and msg["t"] in REVERSIBLE:
                # Durable before the result: a crash between the two leaves a pending intent whose
                # reversal recovery finds already queued (one row per operation).
                saf_id = await reversals.queue(order.id, op.id, op.destination, msg, op.currency)
            before = (order.status, order.amount_charged, order.amount_refunded)
            await self._apply(project, order, op, step, outcome)
            changed = before != (order.status, order.amount_charged, order.amount_refunded)
            await self._write_result(order, op, outcome, note, changed)
            if reversals is not None and self._overrun(started, reversals):
                await self._check_not_overtaken(project, order, op)
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

    async def _apply(self, project: Project, order: Order, op: Operation, step: Step, outcome: Exchanged) -> None:
        """The outcome onto the operation and the order, by :data:`VERDICTS` (in memory; written next)."""
        now = self.clock()
        msg = step.msg
        op.stan = msg.get("11")  # stamped by the link as it sent (None if it never got that far)
        op.transmission_time = msg.get("7", op.transmission_time)
        result = outcome.result
        if result is not None:
            op.iso_response_code = result.response_code
            op.iso_message = result.message
            op.auth_code = result.auth_code
        else:
            op.iso_message = outcome.reason
        row = VERDICTS[outcome.verdict]
        op.status = row.operation
        if row.error is None:
            if step.arn:
                op.arn = await self.take(lambda: self.ids.arn(_acquirer_bin(project.settings), now))
            if step.makes:
                order.status = MADE_BY.get(op.type, OrderStatus.AUTHORIZED)
                order.auth_code = op.auth_code
            if step.on_success is not None:
                step.on_success(op)
        elif step.makes and row.made_order is not None:
            order.status = row.made_order
        elif row.other_order is not None:
            order.status = row.other_order
        s = project.settings
        rates = cashflows.Rates(s.fee_rate, s.fee_fixed, s.reserve_rate)
        op.cashflow = cashflows.for_operation(
            op.type, op.amount, op.currency, rates, status=op.status, released_reserve=step.released
        )
        op.updated = now
        order.updated = now
        order.version += 1

    @staticmethod
    def _overrun(started: float, reversals: Reversals) -> bool:
        """Whether this exchange lasted long enough for another node's recovery to take its intent.

        Half the grace: a margin for the clocks of two nodes. Never true on the normal path.
        """
        return asyncio.get_running_loop().time() - started > reversals.config.recovery_grace / 2

    async def _check_not_overtaken(self, project: Project, order: Order, op: Operation) -> None:
        """After a very long exchange: did our result land, or had recovery settled the intent first?

        The result write only lands on a still-pending operation (``repo._FINISH``). If recovery
        got there first, it marked the operation error and reversed it: the caller must not be
        told the outcome we saw.
        """
        stored = await self.repo.get(project.id, order.id)
        mine = None if stored is None else next((o for o in stored.operations if o.id == op.id), None)
        if mine is not None and mine.status is not op.status:
            log.warning("result overtaken by recovery", extra={"order_id": order.id, "operation_id": op.id})
            raise IssuerError("Outcome unknown: the operation was reversed", order_id=order.id)

    async def _write_result(
        self, order: Order, op: Operation, outcome: Exchanged, note: AuditNote | None, changed: bool
    ) -> None:
        if note is None:
            await self.repo.finish(order, op, changed=changed)
            return
        # Queued together: one batch, so the audit row commits with the result it describes.
        failure = self.failure(order, outcome)
        note.written = True
        entry = note.entry("success") if failure is None else note.entry(failure.failure_type, failure.message)
        await asyncio.gather(self.repo.finish(order, op, changed=changed), self.record(entry))

    async def _send(self, msg: Message, test_mode: bool = False) -> Exchanged:
        try:
            if test_mode:  # to the test destination whatever the card (switch.pool.RoutingTable)
                resp = await self.router.request(msg, timeout=self.timeout, test_mode=True)
            else:
                resp = await self.router.request(msg, timeout=self.timeout)
        except RequestTimeout:
            return Exchanged(Sent.UNKNOWN, reason=TIMED_OUT)
        except LinkClosed:
            return Exchanged(Sent.UNKNOWN, reason=LINK_LOST)
        except (DestinationUnavailable, NoRoute, LinkNotReady):
            return Exchanged(Sent.NOT_SENT, reason=ISSUER_UNAVAILABLE)
        except (LinkBusy, DuplicateRequest):
            return Exchanged(Sent.NOT_SENT, reason=ISSUER_BUSY)
        except EncodeError:
            # translate checks every field first; reaching this is our bug, not the merchant's input
            log.exception("request could not be encoded")
            return Exchanged(Sent.NOT_SENT, reason=NOT_ENCODED)
        return Exchanged(Sent.ANSWERED, interpret(resp), response=resp)

    def _settled(self, order_id: str) -> None:
        """The exchange in progress on ``order_id`` ended: wake whoever waits for it."""
        self.in_progress.discard(order_id)
        waiting = self.settle_events.pop(order_id, None)
        if waiting is not None:
            waiting.set()

    # -- around it ---------------------------------------------------------------

    async def record(self, entry: Any) -> None:
        """Write an audit entry; a failure is logged, never turned into the caller's error.

        The operation it describes has happened: failing the answer would
        make the merchant retry something already done.
        """
        if self.audit is None:
            return
        try:
            await asyncio.shield(self.audit.record(entry))
        except Exception:
            log.error("audit entry not written", extra={"action": entry.action, "order_id": entry.order_id})

    def lock(self, order_id: str) -> asyncio.Lock:
        """Operations on one order run one at a time in this process."""
        lock = self._locks.get(order_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[order_id] = lock
        return lock

    def require(self, order: Order, action: str) -> None:
        """``action`` is allowed in the order's status (the status table) and nothing else is pending."""
        if not allowed(order.status, action):
            raise Rejected(f"Operation {action} is not allowed in status {order.status.value}", order_id=order.id)
        self.require_idle(order)

    @staticmethod
    def require_idle(order: Order) -> None:
        if any(op.status is OperationStatus.PENDING for op in order.operations):
            raise Rejected("Another operation on this order is in progress", order_id=order.id)

    @staticmethod
    def translate(make: Callable[[], IsoRequest], now: datetime) -> Message:
        """Build the ISO request at ``now``; the translator's refusals are the caller's input (invalid)."""
        try:
            return build(make(), now)
        except TranslationError as e:
            raise InvalidInput.of_translation(e) from None

    async def take(self, make: Callable[[], str]) -> str:
        """An identifier; when both leased blocks are used up, wait for a refill and take again.

        A loop, not one retry: under a burst, other requests may empty the
        refilled block before this one runs again. A database that cannot
        lease raises from ``refill``.
        """
        while True:
            try:
                return make()
            except SequenceExhausted:
                await self.ids.refill()

    @staticmethod
    def merchant_on(project: Project, original: Operation) -> Merchant:
        """The project's acceptor, on the terminal the original went through (the host matches DE 41)."""
        merchant = merchant_of(project.settings)
        if original.terminal_id and original.terminal_id != merchant.terminal_id:
            merchant = dataclasses.replace(merchant, terminal_id=original.terminal_id)
        return merchant


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
