"""Reversals of unknown outcomes: the 0400 at once, then store-and-forward (0420/0421) until a host answers.

When a 0100, 0200 or 0220 (or a merchant's 0400) times out or its link is
lost, nobody knows whether the host acted on it. :class:`Reversals` makes
that safe, in this order:

1. :meth:`Reversals.queue` writes a ``saf`` row (003_saf.sql) for the
   operation **before** its result is written: a crash after the row is
   durable leaves a pending reversal, a crash before it leaves a pending
   intent that recovery (below) turns into one. The row holds the
   original's identity as it went out (MTI, DE 11, DE 7, RRN, amount, DE 32,
   DE 41, DE 42, processing code) and the destination, never the PAN: DE 2
   is opened from the order's vault-sealed card when an advice is built.
2. :meth:`Reversals.reverse_soon` sends the 0400 in the background (the
   merchant does not wait for it). Any answer marks the row ``done``; no
   answer makes it due for the worker.
3. The worker (:meth:`Reversals.run`, started by the runtime) claims due
   rows with ``FOR UPDATE SKIP LOCKED`` and leases them (``next_attempt_at``
   moves past the advice's timeout in the claiming transaction), so two
   nodes never send one advice at once; it sends the first as 0420 and the
   rest as 0421 with the same DE 11 and DE 7 (the host dedupes them), backing
   off ``min(cap, base * 2**(n-1))`` between attempts. Any answer (0430,
   0410, whatever DE 39, ``25`` "unable to locate original" included) is a
   delivery: ``done``. After ``max_attempts`` advices the row is ``manual``.
4. :meth:`Reversals.recover` (at start, then every ``recovery_interval``)
   takes operations left ``pending`` for longer than ``recovery_grace`` by
   another process (``owner`` differs), or by this one when no task of it
   works on them any more (its result write failed), queues their reversal (the STAN was
   reserved and written with the intent) and marks operation and order
   ``error``, all in one transaction with the rows locked (SKIP LOCKED, and
   the unique ``(order_id, operation_id)`` of ``saf``), so two recovering
   nodes do not both queue it.

The order keeps status ``error`` and no ``reverse`` operation is added: the
orders model only reverses ``authorized`` orders, and GET views must not
change. The reversal's life is the ``saf`` row (``isoswitch saf list``).

Late responses (an 0110 arriving after its request timed out) reach
:class:`LateResponses` through the links' unmatched-message handler: logged
masked and counted, never applied.

Metrics (:mod:`switch.metrics`): ``isoswitch_reversals{mti}`` counts the
0400s and 0420/0421s sent here; :meth:`Reversals.counts` feeds the
``isoswitch_saf_*`` gauges when the REST front's ``/metrics`` is scraped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import asyncpg

from switch import metrics
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
from switch.money import currency
from switch.store.errors import VaultError
from switch.translate import OriginalRef, reversal_of
from switch.wire import messages
from switch.wire.cards import loggable
from switch.wire.codec import Message
from switch.wire.messages import is_response

__all__ = [
    "REVERSIBLE",
    "LateResponses",
    "Reversals",
    "SafConfig",
    "SafCounts",
    "counts",
    "list_entries",
    "new_owner",
    "original_fields",
]

log = logging.getLogger("isoswitch.saf")

T = TypeVar("T")

# MTIs whose unknown outcome is reversed (a 0400 that got no answer is repeated as the advice).
REVERSIBLE = frozenset({"0100", "0200", "0220", "0400"})

_NOT_ANSWERED = (
    RequestTimeout,
    LinkClosed,
    DestinationUnavailable,
    NoRoute,
    LinkNotReady,
    LinkBusy,
    DuplicateRequest,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SafConfig:
    """Store-and-forward settings; each default is what ``isoswitch up`` uses."""

    poll_interval: float = 1.0  # seconds between the worker's claims of due advices
    batch: int = 32  # advices claimed (and sent concurrently) per round
    max_attempts: int = 50  # advices (0420 + 0421s) before the row is left `manual`
    backoff_base: float = 1.0  # seconds after the first unanswered advice; doubles per attempt
    backoff_cap: float = 300.0  # longest wait between two advices
    timeout: float | None = None  # seconds per 0400/0420/0421; None: the link's own timeout
    recovery_grace: float = 60.0  # a pending intent of another process this old (s) is orphaned
    recovery_interval: float = 30.0  # seconds between recovery scans after the one at start

    def __post_init__(self) -> None:
        if self.poll_interval <= 0 or self.batch < 1 or self.max_attempts < 1:
            raise ValueError("saf: poll_interval must be > 0, batch and max_attempts >= 1")
        if self.backoff_base <= 0 or self.backoff_cap < self.backoff_base:
            raise ValueError("saf: backoff_base must be > 0 and backoff_cap >= backoff_base")

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th unanswered advice.

        >>> c = SafConfig(backoff_base=0.5, backoff_cap=3.0)
        >>> [c.backoff(n) for n in (1, 2, 3, 4, 5)]
        [0.5, 1.0, 2.0, 3.0, 3.0]
        """
        return min(self.backoff_cap, self.backoff_base * 2 ** min(max(attempts - 1, 0), 30))


@dataclass(frozen=True, slots=True)
class SafCounts:
    """What the metrics show: rows by state and the age (s) of the oldest pending one."""

    pending: int
    manual: int
    done: int
    oldest_pending_seconds: float


def new_owner(node_id: int) -> str:
    """This process's owner id for intents: node, host, pid, start time and a nonce (two runtimes in one process)."""
    return f"{node_id}:{socket.gethostname()}:{os.getpid()}:{int(time.time())}:{secrets.token_hex(3)}"


class _Router(Protocol):
    def pool_for(self, pan: str) -> Any: ...

    async def request_to(self, destination: str, msg: Message, *, timeout: float | None = None) -> Message: ...


class _Vault(Protocol):
    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes: ...


class LateResponses:
    """The links' unmatched-message handler: a response nobody waits for is logged (masked) and counted."""

    __slots__ = ("count", "other")

    def __init__(self) -> None:
        self.count = 0  # late responses to financial requests (0110, 0210, 0230, 0410, 0430)
        self.other = 0  # anything else unmatched (late 0810s, host-initiated requests)

    def __call__(self, msg: Message) -> None:
        mti = msg.get("t", "")
        if is_response(mti) and not mti.startswith("08"):
            self.count += 1
            # Never applied: its request timed out, so its operation is error and being reversed.
            log.warning("late response ignored", extra={"late_message": loggable(msg)})
        else:
            self.other += 1
            log.info("unmatched message", extra={"unmatched_message": loggable(msg)})


_COLUMNS = (
    "id, order_id, operation_id, destination, mti, stan, transmission_time, rrn, auth_code, amount, currency,"
    " acquirer_id, terminal_id, merchant_id, processing_code, advice_stan, advice_time, state, attempts,"
    " next_attempt_at, response_code, last_error, created, updated"
)

_QUEUE = """
INSERT INTO saf (order_id, operation_id, destination, mti, stan, transmission_time, rrn, auth_code, amount,
    currency, acquirer_id, terminal_id, merchant_id, processing_code, state, next_attempt_at, last_error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, now() + $16 * interval '1 second', $17)
ON CONFLICT (order_id, operation_id) DO NOTHING
RETURNING id
"""

_CLAIM = f"""
SELECT {", ".join("s." + c.strip() for c in _COLUMNS.split(","))}, o.card_key_id, o.card_blob
FROM saf s JOIN orders o ON o.id = s.order_id
WHERE s.state = 'pending' AND s.next_attempt_at <= now()
ORDER BY s.next_attempt_at
LIMIT $1
FOR UPDATE OF s SKIP LOCKED
"""

_LEASE = """
UPDATE saf SET attempts = attempts + 1, next_attempt_at = now() + $2 * interval '1 second',
    advice_stan = $3, advice_time = $4, updated = now()
WHERE id = $1
"""

_DONE = """
UPDATE saf SET state = 'done', response_code = $2, last_error = NULL, updated = now()
WHERE id = $1 AND state = 'pending'
"""

_RETRY = """
UPDATE saf SET state = CASE WHEN attempts >= $3 THEN 'manual' ELSE 'pending' END,
    next_attempt_at = now() + $2 * interval '1 second', last_error = $4, updated = now()
WHERE id = $1 AND state = 'pending'
RETURNING state
"""

# The immediate 0400 got no answer: due for the worker's first 0420 now.
_FIRST_UNANSWERED = """
UPDATE saf SET next_attempt_at = now(), last_error = $2, updated = now()
WHERE id = $1 AND state = 'pending' AND attempts = 0
"""

_MANUAL = "UPDATE saf SET state = 'manual', last_error = $2, updated = now() WHERE id = $1 AND state = 'pending'"

_ORPHANS = """
SELECT p.order_id, p.id, p.type, p.mti, p.stan, p.transmission_time, p.rrn, p.amount, p.currency,
       p.terminal_id, p.acquirer_id, p.processing_code, p.destination, o.project_id
FROM operations p JOIN orders o ON o.id = p.order_id
WHERE p.status = 'pending' AND p.created < now() - $2 * interval '1 second'
  -- Ours only when no task of this process works on it any more (a result write that failed).
  AND (p.owner IS DISTINCT FROM $1 OR NOT EXISTS (
      SELECT 1 FROM unnest($4::text[], $5::integer[]) AS w (order_id, id)
      WHERE w.order_id = p.order_id AND w.id = p.id))
ORDER BY p.created
LIMIT $3
FOR UPDATE OF p, o SKIP LOCKED
"""

_ORPHAN_DONE = """
WITH op AS (
    UPDATE operations SET status = 'error', iso_message = $3, cashflow = $4, updated = now()
    WHERE order_id = $1 AND id = $2 AND status = 'pending'
)
UPDATE orders SET status = 'error', updated = now(), version = version + 1 WHERE id = $1
"""

_RECOVERED_MESSAGE = "Outcome unknown: the process sending it stopped"


@dataclass(frozen=True, slots=True)
class _Entry:
    """A saf row, with the order's sealed card (never the PAN itself)."""

    id: int
    order_id: str
    destination: str | None
    original: OriginalRef | None  # None: not enough of the original was recorded to reverse it
    terminal_id: str
    merchant_id: str
    attempts: int
    advice_stan: str | None
    advice_time: str | None
    card_key_id: str | None
    card_blob: bytes | None


def original_fields(msg: Mapping[str, str], currency_alpha: str) -> dict[str, Any]:
    """What a reversal needs of the message that went out (for a 0400: of the original its DE 90 names)."""
    mti = msg["t"]
    if mti in ("0400", "0420", "0421"):
        f90 = msg.get("90", "")
        orig_mti, stan, de7 = f90[:4] or None, f90[4:10] or None, f90[10:20] or None
    else:
        orig_mti, stan, de7 = mti, msg.get("11"), msg.get("7")
    auth = msg.get("38")
    return {
        "mti": orig_mti or mti,
        "stan": stan,
        "transmission_time": de7,
        "rrn": msg.get("37"),
        "auth_code": auth if auth and auth.strip() else None,
        "amount": int(msg.get("4", "0")),
        "currency": currency_alpha,
        "acquirer_id": msg.get("32"),
        "terminal_id": msg.get("41", "").rstrip() or None,
        "merchant_id": msg.get("42", "").rstrip() or None,
        "processing_code": msg.get("3"),
    }


def _entry(row: Mapping[str, Any]) -> _Entry:
    try:
        original: OriginalRef | None = OriginalRef(
            mti=row["mti"],
            stan=row["stan"],
            transmission_time=row["transmission_time"],
            rrn=row["rrn"],
            auth_code=row["auth_code"],
            amount=row["amount"],
            currency=currency(row["currency"]),
            acquirer_id=row["acquirer_id"] or "0",
            processing_code=row["processing_code"] or "000000",
        )
    except (TranslationError, ValueError, TypeError, KeyError):
        original = None
    return _Entry(
        id=row["id"],
        order_id=row["order_id"],
        destination=row["destination"],
        original=original,
        terminal_id=row["terminal_id"] or "",
        merchant_id=row["merchant_id"] or "",
        attempts=row["attempts"],
        advice_stan=row["advice_stan"],
        advice_time=row["advice_time"],
        card_key_id=row.get("card_key_id"),
        card_blob=row.get("card_blob"),
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Reversals:
    """The reversal path of the orders service and the store-and-forward worker (module doc)."""

    def __init__(
        self,
        router: _Router,
        pool: asyncpg.Pool,
        vault: _Vault,
        *,
        owner: str,
        config: SafConfig | None = None,
        projects: Any = None,
        hold: float = 15.0,
    ) -> None:
        """``hold``: seconds the worker leaves a new row alone while its 0400 is in flight (> that timeout).

        ``projects`` (``switch.store.Projects``) gives recovery the DE 42 of an orphan's project.
        """
        self._router = router
        self._pool = pool
        self._vault = vault
        self.owner = owner
        self.config = config or SafConfig()
        self._projects = projects
        self._hold = hold
        self._tasks: set[asyncio.Task[None]] = set()
        self._working: set[tuple[str, int]] = set()  # (order id, operation id) this process is exchanging
        self._worker: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._closing = False
        # Counters (the metrics issue reads them): 0400s sent at once, advices sent, deliveries, manual.
        self.reversals_sent = 0
        self.advices_sent = 0
        self.delivered = 0
        self.manual = 0
        self.recovered = 0
        # isoswitch_reversals by MTI; the depth and age gauges come from counts() at each scrape.
        self._sent = {mti: metrics.counter("isoswitch_reversals", mti) for mti in ("0400", "0420", "0421")}

    # -- the orders service's side ------------------------------------------------

    def prepare(self, msg: Message) -> tuple[str | None, str | None]:
        """Reserve DE 11 in ``msg`` from its destination's STAN space; (STAN, destination) for the intent.

        (None, None) when the PAN routes nowhere: the send then fails fast and nothing needs reversing.
        """
        try:
            pool = self._router.pool_for(msg.get("2", ""))
        except NoRoute:
            return None, None
        stan: str = pool.next_stan()
        msg["11"] = stan
        return stan, pool.name

    async def working(self, order_id: str, operation_id: int, exchange: Awaitable[T]) -> T:
        """Await ``exchange`` with the operation marked as this process's: recovery leaves it alone meanwhile."""
        key = (order_id, operation_id)
        self._working.add(key)
        try:
            return await exchange
        finally:
            self._working.discard(key)

    async def queue(self, order_id: str, operation_id: int, destination: str | None, msg: Message, cur: str) -> int:
        """The reversal of an unknown outcome, durable when this returns; the row's id.

        The worker leaves it alone for ``hold`` seconds (the 0400 goes first).
        """
        f = original_fields(msg, cur)
        row_id = await self._pool.fetchval(
            _QUEUE,
            order_id,
            operation_id,
            destination,
            f["mti"],
            f["stan"],
            f["transmission_time"],
            f["rrn"],
            f["auth_code"],
            f["amount"],
            f["currency"],
            f["acquirer_id"],
            f["terminal_id"],
            f["merchant_id"],
            f["processing_code"],
            "pending",
            self._hold,
            None,
        )
        if row_id is None:  # queued already (a recovering node was first)
            row_id = await self._pool.fetchval(
                "SELECT id FROM saf WHERE order_id = $1 AND operation_id = $2", order_id, operation_id
            )
        return int(row_id)

    def reverse_soon(self, row_id: int, destination: str | None, msg: Message, cur: str) -> None:
        """Send the 0400 in the background; the row stays for the worker if it is not answered."""
        if self._closing:
            return  # the row is durable: the worker of this or another node sends it
        task = asyncio.ensure_future(self._reverse_now(row_id, destination, msg, cur))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reverse_now(self, row_id: int, destination: str | None, sent: Message, cur: str) -> None:
        f = original_fields(sent, cur)
        entry = _entry({**f, "id": row_id, "order_id": "", "destination": destination, "attempts": 0,
                        "advice_stan": None, "advice_time": None})  # fmt: skip
        try:
            if entry.original is None:
                await self._pool.execute(_MANUAL, row_id, "original not recorded completely")
                return
            msg = reversal_of(
                entry.original,
                pan=sent["2"],
                terminal_id=entry.terminal_id,
                merchant_id=entry.merchant_id,
                now=_utcnow(),
            )
            self.reversals_sent += 1
            self._sent["0400"].inc()
            try:
                resp = await self._send(destination, msg)
            except _NOT_ANSWERED as e:
                await self._pool.execute(_FIRST_UNANSWERED, row_id, f"0400 not answered: {_reason(e)}")
                self._kick.set()
                return
            self.delivered += 1
            await self._pool.execute(_DONE, row_id, resp.get("39"))
            log.info("reversal answered", extra={"saf_id": row_id, "iso_response_code": resp.get("39")})
        except (TranslationError, KeyError) as e:
            with contextlib.suppress(Exception):
                await self._pool.execute(_MANUAL, row_id, f"reversal cannot be built: {e}")
        except Exception:
            # The database may be down: the row is durable and becomes due after its hold.
            log.warning("immediate reversal could not be recorded", extra={"saf_id": row_id}, exc_info=True)

    async def _send(self, destination: str | None, msg: Message) -> Message:
        if destination is None:
            dest = self._router.pool_for(msg.get("2", "")).name
        else:
            dest = destination
        return await self._router.request_to(dest, msg, timeout=self.config.timeout)

    # -- the worker ------------------------------------------------------------------

    def start(self) -> None:
        """Run the worker (and periodic recovery) in the background until :meth:`close`."""
        if self._worker is None:
            self._worker = asyncio.ensure_future(self.run())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        next_recovery = loop.time() + cfg.recovery_interval
        while True:
            try:
                claimed = await self.work_once()
            except Exception:
                log.warning("store-and-forward round failed", exc_info=True)
                claimed = 0
            if loop.time() >= next_recovery:
                next_recovery = loop.time() + cfg.recovery_interval
                try:
                    await self.recover()
                except Exception:
                    log.warning("recovery of pending operations failed", exc_info=True)
            if claimed >= cfg.batch:
                continue  # more may be due
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), cfg.poll_interval)

    async def work_once(self) -> int:
        """Claim the due advices, send them, record what happened; how many were claimed."""
        cfg = self.config
        lease = (cfg.timeout if cfg.timeout is not None else self._hold) + 5.0
        claimed: list[tuple[_Entry, str]] = []
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, cfg.batch)
            leases = []
            for row in rows:
                e = _entry(row)
                mti = "0420" if e.attempts == 0 or e.advice_stan is None else "0421"
                stan, de7 = e.advice_stan, e.advice_time
                if stan is None or de7 is None:
                    stan, de7 = self._advice_stan(e), messages.de7()
                e = dataclasses.replace(e, advice_stan=stan, advice_time=de7)
                claimed.append((e, mti))
                leases.append((e.id, lease, stan, de7))
            if leases:
                await conn.executemany(_LEASE, leases)
        if claimed:
            await asyncio.gather(*(self._advise(e, mti) for e, mti in claimed))
        return len(claimed)

    def _advice_stan(self, e: _Entry) -> str | None:
        pools = getattr(self._router, "pools", {})
        pool = pools.get(e.destination) if e.destination is not None else None
        if pool is None:
            return None  # the link stamps one; recorded after the first send
        stan: str = pool.next_stan()
        return stan

    async def _advise(self, e: _Entry, mti: str) -> None:
        attempts = e.attempts + 1
        try:
            if e.original is None:
                await self._to_manual(e, "original not recorded completely")
                return
            if e.card_key_id is None or e.card_blob is None:
                await self._to_manual(e, "order has no card")
                return
            try:
                text = self._vault.open(e.card_key_id, bytes(e.card_blob), e.order_id.encode()).decode()
            except VaultError:
                await self._to_manual(e, "stored card cannot be read")
                return
            pan = text.partition("|")[0]
            try:
                msg = reversal_of(
                    e.original, pan=pan, terminal_id=e.terminal_id, merchant_id=e.merchant_id, now=_utcnow(), mti=mti
                )
            except TranslationError as err:
                await self._to_manual(e, f"advice cannot be built: {err}")
                return
            assert e.advice_time is not None
            msg["7"] = e.advice_time  # a 0421 repeats the 0420's DE 7 and DE 11: the host dedupes it
            if e.advice_stan is not None:
                msg["11"] = e.advice_stan
            self.advices_sent += 1
            self._sent[mti].inc()
            try:
                resp = await self._send(e.destination, msg)
            except _NOT_ANSWERED as err:
                state = await self._pool.fetchval(
                    _RETRY, e.id, self.config.backoff(attempts), self.config.max_attempts, f"{mti}: {_reason(err)}"
                )
                if e.advice_stan is None and "11" in msg:
                    await self._pool.execute("UPDATE saf SET advice_stan = $2 WHERE id = $1", e.id, msg["11"])
                if state == "manual":
                    self.manual += 1
                    log.error("reversal advice left for manual action", extra={"saf_id": e.id, "attempts": attempts})
                return
            self.delivered += 1
            await self._pool.execute(_DONE, e.id, resp.get("39"))
            log.info("reversal advice delivered", extra={"saf_id": e.id, "iso_response_code": resp.get("39")})
        except Exception:
            # Recorded nothing: the lease runs out and the row is claimed again.
            log.warning("reversal advice could not be recorded", extra={"saf_id": e.id}, exc_info=True)

    async def _to_manual(self, e: _Entry, why: str) -> None:
        self.manual += 1
        log.error("reversal left for manual action", extra={"saf_id": e.id, "reason": why})
        await self._pool.execute(_MANUAL, e.id, why)

    # -- recovery ------------------------------------------------------------------

    async def recover(self, *, grace: float | None = None, limit: int = 500) -> int:
        """Queue the reversal of every orphaned pending operation and mark it and its order error; how many."""
        grace = self.config.recovery_grace if grace is None else grace
        total = 0
        while True:
            n = await self._recover_batch(grace, limit)
            total += n
            if n < limit:
                break
        if total:
            self.recovered += total
            log.warning("pending operations of a stopped process reversed", extra={"operations": total})
            self._kick.set()
        return total

    async def _recover_batch(self, grace: float, limit: int) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            busy = list(self._working)
            rows = await conn.fetch(_ORPHANS, self.owner, grace, limit, [k[0] for k in busy], [k[1] for k in busy])
            for r in rows:
                original = dict(r)
                if r["type"] == "reverse" or r["mti"] == "0400":
                    # A merchant's reversal: its advice reverses the authorization it named.
                    auth = await conn.fetchrow(
                        "SELECT mti, stan, transmission_time, rrn, auth_code, amount, acquirer_id, processing_code"
                        " FROM operations WHERE order_id = $1 AND type = 'authorize' AND status = 'success'"
                        " ORDER BY id DESC LIMIT 1",
                        r["order_id"],
                    )
                    if auth is not None:
                        original.update(dict(auth))
                elif r["mti"] == "0220":
                    code = await conn.fetchval(
                        "SELECT auth_code FROM operations WHERE order_id = $1 AND type = 'authorize'"
                        " AND status = 'success' ORDER BY id DESC LIMIT 1",
                        r["order_id"],
                    )
                    original["auth_code"] = code
                merchant_id = await self._merchant_id(r["project_id"])
                complete = original.get("stan") is not None and original.get("transmission_time") is not None
                await conn.execute(
                    _QUEUE,
                    r["order_id"],
                    r["id"],
                    r["destination"],
                    original["mti"] or "0100",
                    original.get("stan"),
                    original.get("transmission_time"),
                    original.get("rrn"),
                    original.get("auth_code"),
                    original["amount"],
                    r["currency"],
                    original.get("acquirer_id"),
                    r["terminal_id"],
                    merchant_id,
                    original.get("processing_code"),
                    "pending" if complete else "manual",
                    0.0,
                    None if complete else "original STAN/DE 7 not recorded: reverse by hand",
                )
                await conn.execute(
                    _ORPHAN_DONE, r["order_id"], r["id"], _RECOVERED_MESSAGE, _zero_cashflow(r["currency"])
                )
        return len(rows)

    async def _merchant_id(self, project_id: int) -> str | None:
        if self._projects is None:
            return None
        project = await self._projects.get(project_id)
        return None if project is None else str(project.settings.merchant_id)

    # -- views ----------------------------------------------------------------------

    async def counts(self) -> SafCounts:
        """Rows by state and the oldest pending row's age: what the metrics issue exports."""
        return await counts(self._pool)

    def kick(self) -> None:
        """Wake the worker now (tests, or after queueing)."""
        self._kick.set()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the worker; give in-flight 0400s ``timeout`` seconds (their rows stay pending otherwise)."""
        self._closing = True
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        tasks = list(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for t in late:
                t.cancel()
            if late:
                await asyncio.wait(late)


async def counts(pool: asyncpg.Pool) -> SafCounts:
    row = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE state = 'pending') AS pending,"
        " count(*) FILTER (WHERE state = 'manual') AS manual,"
        " count(*) FILTER (WHERE state = 'done') AS done,"
        " coalesce(extract(epoch FROM now() - min(created) FILTER (WHERE state = 'pending')), 0) AS oldest"
        " FROM saf"
    )
    return SafCounts(int(row["pending"]), int(row["manual"]), int(row["done"]), float(row["oldest"]))


async def list_entries(pool: asyncpg.Pool, state: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """The queue's rows (oldest first) as JSON-ready dicts; no card data is stored, so none is shown."""
    if state is not None and state not in ("pending", "manual", "done"):
        raise ValueError("state must be pending, manual or done")
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM saf WHERE ($1::text IS NULL OR state = $1) ORDER BY id LIMIT $2", state, limit
    )
    out = []
    for r in rows:
        d = dict(r)
        for k in ("next_attempt_at", "created", "updated"):
            d[k] = d[k].isoformat()
        out.append(d)
    return out


def _zero_cashflow(cur: str) -> dict[str, Any]:
    return {"amount": 0, "fee": 0, "incoming": 0, "reserve": 0, "receivable": 0, "currency": cur}


def _reason(e: BaseException) -> str:
    if isinstance(e, RequestTimeout):
        return "timed out"
    if isinstance(e, LinkClosed):
        return "connection lost"
    return "destination unavailable"
