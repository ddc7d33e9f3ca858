"""The store-and-forward worker: claims due reversals and sends them as 0420, then 0421, until answered.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and leased in the claiming
transaction (``next_attempt_at`` moves past the advice's timeout), so two
nodes never send one advice at once. The first advice is a 0420, the rest
0421 with the same DE 11 and DE 7 (the host dedupes them), backing off
``min(cap, base * 2**(n-1))`` between attempts. Any answer (0430, 0410,
whatever DE 39, ``25`` "unable to locate original" included) is a delivery:
``done``. After ``max_attempts`` advices the row is ``manual``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from switch.errors import TranslationError
from switch.saf.config import SafConfig
from switch.saf.entry import NOT_ANSWERED, Entry, Router, Tally, Vault, entry_of, reason, send, utcnow
from switch.store.errors import VaultError
from switch.store.saf import SafStore
from switch.translate import reversal_of
from switch.wire import messages
from switch.wire.codec import Message

__all__ = ["AdviceWorker"]

log = logging.getLogger("isoswitch.saf")

# close() lets a running round (a claim, its sends, their results) finish for this long.
CLOSE_TIMEOUT = 2.0


class AdviceWorker:
    """Sends due advices every ``poll_interval`` (or when kicked) and runs recovery every ``recovery_interval``."""

    def __init__(
        self,
        router: Router,
        store: SafStore,
        vault: Vault,
        *,
        config: SafConfig,
        hold: float,
        tally: Tally,
        recover: Callable[[], Awaitable[int]],
    ) -> None:
        self._router = router
        self._store = store
        self._vault = vault
        self.config = config
        self._hold = hold
        self._tally = tally
        self._recover = recover
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._stopping = False

    def start(self) -> None:
        """Run in the background until :meth:`close`."""
        if self._task is None:
            self._task = asyncio.ensure_future(self.run())

    def kick(self) -> None:
        """Wake the worker now (after queueing, or from tests)."""
        self._kick.set()

    async def close(self, *, timeout: float | None = None) -> None:
        """Stop the loop after its round (None: ``CLOSE_TIMEOUT``); a round still running then is cancelled.

        Not a cancel at once: a cancel landing between a transaction's BEGIN and its first statement
        hands the pool a connection with an open transaction. A cancelled round's leased rows are
        claimed again when the lease runs out.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._kick.set()
        await asyncio.wait({task}, timeout=CLOSE_TIMEOUT if timeout is None else timeout)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        next_recovery = loop.time() + cfg.recovery_interval
        while not self._stopping:
            try:
                claimed = await self.work_once()
            except Exception:
                log.warning("store-and-forward round failed", exc_info=True)
                claimed = 0
            if self._stopping:
                break
            if loop.time() >= next_recovery:
                next_recovery = loop.time() + cfg.recovery_interval
                try:
                    await self._recover()
                except Exception:
                    log.warning("recovery of pending operations failed", exc_info=True)
            if claimed >= cfg.batch:
                continue  # more may be due
            if self._stopping:  # close() set it during the recovery round: do not sleep past it
                break
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), cfg.poll_interval)

    async def work_once(self) -> int:
        """Claim the due advices, send them, record what happened; how many were claimed."""
        cfg = self.config
        lease = (cfg.timeout if cfg.timeout is not None else self._hold) + 5.0
        claimed: list[tuple[Entry, str]] = []
        async with self._store.transaction() as tx:
            leases = []
            for row in await tx.claim(cfg.batch):
                e = entry_of(row)
                mti = "0420" if e.attempts == 0 or e.advice_stan is None else "0421"
                stan, de7 = e.advice_stan, e.advice_time
                if stan is None or de7 is None:
                    stan, de7 = self._advice_stan(e), messages.de7()
                e = dataclasses.replace(e, advice_stan=stan, advice_time=de7)
                claimed.append((e, mti))
                leases.append((e.id, lease, stan, de7))
            if leases:
                await tx.lease(leases)
        if claimed:
            await asyncio.gather(*(self._advise(e, mti) for e, mti in claimed))
        return len(claimed)

    def _advice_stan(self, e: Entry) -> str | None:
        pools = getattr(self._router, "pools", {})
        pool = pools.get(e.destination) if e.destination is not None else None
        if pool is None:
            return None  # the link stamps one; recorded after the first send
        stan: str = pool.next_stan()
        return stan

    async def _advise(self, e: Entry, mti: str) -> None:
        try:
            msg = await self._advice(e, mti)
            if msg is None:
                return
            self._tally.sent(mti)
            try:
                resp = await send(self._router, e.destination, msg, self.config.timeout)
            except NOT_ANSWERED as err:
                await self._unanswered(e, mti, msg, err)
                return
            self._tally.delivered += 1
            await self._store.done(e.id, resp.get("39"))
            log.info("reversal advice delivered", extra={"saf_id": e.id, "iso_response_code": resp.get("39")})
        except Exception:
            # Recorded nothing: the lease runs out and the row is claimed again.
            log.warning("reversal advice could not be recorded", extra={"saf_id": e.id}, exc_info=True)

    async def _advice(self, e: Entry, mti: str) -> Message | None:
        """The 0420/0421 of ``e`` with the card opened from the vault, or None when the row went manual."""
        if e.original is None:
            await self._to_manual(e, "original not recorded completely")
            return None
        if e.card_key_id is None or e.card_blob is None:
            await self._to_manual(e, "order has no card")
            return None
        try:
            text = self._vault.open(e.card_key_id, bytes(e.card_blob), e.order_id.encode()).decode()
        except VaultError:
            await self._to_manual(e, "stored card cannot be read")
            return None
        pan = text.partition("|")[0]
        try:
            msg = reversal_of(
                e.original, pan=pan, terminal_id=e.terminal_id, merchant_id=e.merchant_id, now=utcnow(), mti=mti
            )
        except TranslationError as err:
            await self._to_manual(e, f"advice cannot be built: {err}")
            return None
        assert e.advice_time is not None
        msg["7"] = e.advice_time  # a 0421 repeats the 0420's DE 7 and DE 11: the host dedupes it
        if e.advice_stan is not None:
            msg["11"] = e.advice_stan
        return msg

    async def _unanswered(self, e: Entry, mti: str, msg: Message, err: BaseException) -> None:
        attempts = e.attempts + 1
        cfg = self.config
        state = await self._store.retry(e.id, cfg.backoff(attempts), cfg.max_attempts, f"{mti}: {reason(err)}")
        if e.advice_stan is None and "11" in msg:
            await self._store.record_advice_stan(e.id, msg["11"])
        if state == "manual":
            self._tally.manual += 1
            log.error("reversal advice left for manual action", extra={"saf_id": e.id, "attempts": attempts})

    async def _to_manual(self, e: Entry, why: str) -> None:
        self._tally.manual += 1
        log.error("reversal left for manual action", extra={"saf_id": e.id, "reason": why})
        await self._store.manual(e.id, why)
