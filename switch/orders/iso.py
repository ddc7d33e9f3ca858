"""ISO 8583 requests from acquirer hosts (the listener) carried out as orders with source ``iso``.

A peer's 0100/0200 starts an order; its 0220, 0400/0420/0421 and 0200/20
follow up an order it started, found by the peer's own references. Each runs
the same write-ahead path as the merchant's operations
(:mod:`switch.orders.engine`); what comes back is an :class:`IsoResult`, the
host's answer to pass on or the DE 39 to answer with.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from switch.errors import TranslationError
from switch.money import currency
from switch.orders.engine import Engine, Step
from switch.orders.model import Operation, OperationStatus, OperationType, Order, OrderStatus, Source
from switch.orders.status import allowed
from switch.orders.verdicts import Exchanged, Sent
from switch.store.projects import Project
from switch.translate import Capture, Card, Refund, Reversal
from switch.wire import messages
from switch.wire.codec import Message

__all__ = ["ISO_RESTAMPED", "IsoResult", "IsoTransactions"]


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
_DROPPED = frozenset({"p", "1", "64", "128"})
# Beyond a request's timeout, the time its result takes to be written (ISO repeats and follow-ups wait both).
_SETTLE_MARGIN = 2.0


def _longest_timeout(router: Any) -> float:
    """The longest per-request timeout of the router's links (5 s, the links' default, without any)."""
    pools = getattr(router, "pools", {})
    return max((link.config.timeout for p in pools.values() for link in p.links), default=5.0)


_NOTHING_HELD = frozenset({OrderStatus.REVERSED, OrderStatus.DECLINED, OrderStatus.FRAUD, OrderStatus.ERROR})


def _peer_key(msg: Mapping[str, str]) -> tuple[str, str, str, str]:
    """The peer's name for its request: DE 41 (right-trimmed), MTI, DE 11, DE 7."""
    return (msg.get("41", "").rstrip(), msg["t"], msg.get("11", ""), msg.get("7", ""))


def _identity_ok(msg: Mapping[str, str]) -> bool:
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


def _card_of(msg: Mapping[str, str]) -> Card:
    expiry = msg.get("14")
    if expiry is not None and len(expiry) == 4 and expiry.isdigit():
        return Card(msg.get("2", ""), expiry_month=int(expiry[2:]), expiry_year=2000 + int(expiry[:2]))
    return Card(msg.get("2", ""))


def _amount_of(msg: Mapping[str, str]) -> int | None:
    raw = msg.get("4", "")
    return int(raw) if len(raw) == 12 and raw.isascii() and raw.isdigit() else None


class IsoTransactions:
    """ISO 8583 requests from acquirer hosts (switch.listener) as orders with source ``iso``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # An ISO repeat or follow-up waits this long for the operation it depends on: the
        # longest a request of ours can take, plus the time to write its result.
        self._settle_wait = (engine.timeout or _longest_timeout(engine.router)) + _SETTLE_MARGIN

    async def start(self, project: Project, msg: Message) -> IsoResult:
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
        if not _identity_ok(msg):
            return IsoResult(None, "30")  # a follow-up could not refer to it (DE 90, DE 32, DE 3)
        try:
            card = _card_of(msg)
        except TranslationError:
            return IsoResult(None, "14")
        amount = _amount_of(msg)
        if amount is None:
            return IsoResult(None, "13")
        try:
            cur = currency(msg.get("49", ""))
        except TranslationError:
            return IsoResult(None, "30")
        now = self.engine.clock()
        order_id = await self.engine.take(self.engine.ids.order_id)
        rrn = await self.engine.take(lambda: self.engine.ids.rrn(now))
        repeat = await self._claim(project, msg, order_id, 1)
        if repeat is not None:
            return repeat
        out = {k: v for k, v in msg.items() if k not in _DROPPED}
        out["7"] = messages.de7(now.timestamp())
        out["37"] = rrn
        out.pop("11", None)  # reserved from the destination (or stamped by the link)
        order = self.engine.cards.new_order(
            project, order_id, card, amount, cur, now, rrn=rrn, recurring=False, source=Source.ISO
        )
        order.initial_rrn = rrn
        order.merchant_order_id = msg.get("37")
        order.descriptor = msg.get("43", "").strip() or project.settings.descriptor

        def sold(op: Operation) -> None:
            order.amount_charged = amount
            order.status = OrderStatus.CHARGED

        step = Step(
            kind,
            amount,
            out,
            now,
            creates=True,
            on_success=sold if kind is OperationType.CHARGE else None,
            arn=kind is OperationType.CHARGE,
        )
        outcome = await self.engine.perform(project, order, step)
        return self._result(order.id, outcome)

    async def follow_up(self, project: Project, msg: Message) -> IsoResult:
        """A peer's 0220 (capture), 0400/0420/0421 (reversal) or 0200/200000 (refund) of an order it started.

        The original is found by DE 41 + DE 90 (the peer's original MTI,
        STAN, DE 7) or, without DE 90, DE 41 + DE 37. The host gets our own
        message about our own original (our DE 90, RRN, auth code).
        """
        terminal = msg.get("41", "").rstrip()
        de90 = msg.get("90", "")
        found = None
        if len(de90) >= 20:
            found = await self.engine.repo.peer_ref(project.id, (terminal, de90[:4], de90[4:10], de90[10:20]))
        elif msg.get("37"):
            found = await self.engine.repo.peer_ref_by_rrn(project.id, terminal, msg["37"])
        if found is None:
            return IsoResult(None, "25")
        order_id, original_id = found
        # A peer reverses after its own timeout, which may be shorter than ours: the original
        # (or an earlier follow-up) may still be in flight here. Wait for it, then act on its outcome.
        if not await self.settled(project, order_id, None):
            return IsoResult(order_id, "91")  # still in flight after our own timeout: the peer repeats later
        async with self.engine.lock(order_id):
            order = await self.engine.repo.get(project.id, order_id)
            original = None if order is None else next((o for o in order.operations if o.id == original_id), None)
            if order is None or original is None:
                return IsoResult(None, "25")
            if any(op.status is OperationStatus.PENDING for op in order.operations):
                return IsoResult(order.id, "91")  # another follow-up started meanwhile: the peer repeats later
            plan = _plan(msg, order, original)
            if isinstance(plan, IsoResult):
                return plan
            original, kind, op_amount, make = plan
            repeat = await self._claim(project, msg, order.id, len(order.operations) + 1)
            if repeat is not None:
                return repeat
            card = self.engine.cards.card(order)
            merchant = self.engine.merchant_on(project, original)
            now = self.engine.clock()
            ref = original.original_ref()
            if make == "capture":
                out = self.engine.translate(
                    lambda: Capture(merchant=merchant, card=card, original=ref, amount=op_amount), now
                )
            elif make == "reverse":
                out = self.engine.translate(lambda: Reversal(merchant=merchant, card=card, original=ref), now)
            else:
                rrn = await self.engine.take(lambda: self.engine.ids.rrn(now))
                cur = currency(order.currency)
                out = self.engine.translate(
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
            step = Step(kind, op_amount, out, now, on_success=done, arn=make != "reverse", released=released)
            outcome = await self.engine.perform(project, order, step)
            return self._result(order.id, outcome)

    async def _claim(self, project: Project, msg: Message, order_id: str, operation_id: int) -> IsoResult | None:
        """None for a new request; for a repeat, the answer the first one got (94 while it is in flight)."""
        key = _peer_key(msg)
        if await self.engine.repo.add_peer_ref(project.id, key, msg.get("37"), order_id, operation_id):
            return None
        found = await self.engine.repo.peer_ref(project.id, key)
        if found is not None:
            # The first copy may still be in flight: answer the repeat with its outcome once it has one.
            await self.settled(project, found[0], found[1])
        order = None if found is None else await self.engine.repo.get(project.id, found[0])
        op = None if order is None else next((o for o in order.operations if o.id == found[1]), None)  # type: ignore[index]
        if order is None or op is None or op.status is OperationStatus.PENDING:
            return IsoResult(None if order is None else order.id, "94")
        if op.iso_response_code is None:
            return IsoResult(order.id, "68" if op.status is OperationStatus.ERROR else "96")
        response: Message = {"39": op.iso_response_code}
        if op.auth_code:
            response["38"] = op.auth_code
        return IsoResult(order.id, None, response)

    async def settled(self, project: Project, order_id: str, operation_id: int | None) -> bool:
        """Wait until operation ``operation_id`` (None: every operation) of the order is no longer pending.

        False if it still is after our longest request timeout plus the time to write a result.
        In flight in this process: woken when it ends. Elsewhere (another worker or node): the
        database is asked again after 50 ms, doubling to 500 ms, so waiters add little load.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settle_wait
        delay = 0.05
        while True:
            order = await self.engine.repo.get(project.id, order_id)
            if order is None:
                return True
            ops = [o for o in order.operations if operation_id is None or o.id == operation_id]
            if not any(o.status is OperationStatus.PENDING for o in ops):
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            if order_id in self.engine.in_progress:
                ended = self.engine.settle_events.setdefault(order_id, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), left)
            else:
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, 0.5)

    @staticmethod
    def _result(order_id: str, outcome: Exchanged) -> IsoResult:
        if outcome.response is not None:
            return IsoResult(order_id, None, outcome.response)
        return IsoResult(order_id, "68" if outcome.sent is Sent.UNKNOWN else "91")


def _plan(msg: Message, order: Order, original: Operation) -> IsoResult | tuple[Operation, OperationType, int, str]:
    """What a peer's follow-up does to ``order``: (original, kind, amount, make), or the code refusing it."""
    mti = msg["t"]
    amount = _amount_of(msg)
    if mti in ("0400", "0420", "0421"):
        if order.status in _NOTHING_HELD:
            return IsoResult(order.id, "00")
        if original.status is not OperationStatus.SUCCESS or not (
            (original.type is OperationType.AUTHORIZE and order.status is OrderStatus.AUTHORIZED)
            or (original.type is OperationType.CHARGE and order.amount_refunded == 0)
        ):
            return IsoResult(order.id, "12")
        return original, OperationType.REVERSE, original.amount, "reverse"
    if mti == "0220":
        if not allowed(order.status, "charge") or original.type is not OperationType.AUTHORIZE:
            return IsoResult(order.id, "12")
        if amount is None or not 0 < amount <= order.amount - order.amount_charged:
            return IsoResult(order.id, "13")
        return original, OperationType.CHARGE, amount, "capture"
    capture = order.last(OperationType.CHARGE)
    if capture is None or not allowed(order.status, "refund"):
        return IsoResult(order.id, "12")
    if amount is None or not 0 < amount <= order.amount_charged - order.amount_refunded:
        return IsoResult(order.id, "13")
    return capture, OperationType.REFUND, amount, "refund"
