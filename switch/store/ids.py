"""Identifiers from blocks leased in the database: unique across every process and node.

Why a table (``id_blocks``) and not PostgreSQL sequences: a lease is one
autocommitted upsert (``next = next + block``), durable like any write with
``synchronous_commit`` on, needs no DDL for a new kind or block size, and
works the same on Postgres-compatible distributed engines, where sequences
are slow or emulated. Its cost (one row lock per lease) is paid once per
block, not per identifier. Leases are never returned: a process that stops
drops the rest of its blocks, so identifiers have gaps, never repeats.

The hot path never awaits: :meth:`LeasedSequence.take` hands out the next
value of the current block and, once half of it is used, starts a
background lease of a spare block, so the refill round trip overlaps with
the remaining half.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from datetime import UTC, datetime

import asyncpg

from switch.store.errors import SequenceExhausted
from switch.wire.cards import luhn_digit

__all__ = ["LeasedSequence", "DbIds"]

log = logging.getLogger("isoswitch.store")

_LEASE = """
INSERT INTO id_blocks AS b (kind, next) VALUES ($1, $2::bigint + $3::bigint)
ON CONFLICT (kind) DO UPDATE SET next = b.next + $3::bigint
RETURNING next - $3::bigint
"""


class LeasedSequence:
    """Values ``start, start+1, ...`` of one kind, leased ``block_size`` at a time.

    Values are unique across every allocator of the same kind on the same
    database; within one allocator they increase. ``take()`` raises
    :class:`SequenceExhausted` only when the current block and the spare are
    both used up (a burst faster than one lease round trip, or the database
    unreachable): ``await seq.refill()`` then take again, or use
    ``await seq.next()``, which does that.
    """

    __slots__ = ("_block", "_cur", "_end", "_half", "_kind", "_pool", "_refill_task", "_spare", "_start")

    def __init__(self, pool: asyncpg.Pool, kind: str, block_size: int = 1000, *, start: int = 1) -> None:
        if block_size < 2:
            raise ValueError("block_size must be at least 2")
        self._pool = pool
        self._kind = kind
        self._block = block_size
        self._start = start
        self._cur = 0
        self._end = 0  # current block is [_cur, _end)
        self._half = 0  # when _cur reaches this, lease the spare
        self._spare: int | None = None  # first value of the spare block
        self._refill_task: asyncio.Task[None] | None = None

    @property
    def kind(self) -> str:
        return self._kind

    async def start(self) -> None:
        """Lease the first block (and nothing else): ``take()`` works from here."""
        self._use(await self._lease())

    def take(self) -> int:
        """The next value; never awaits."""
        cur = self._cur
        if cur >= self._end:
            spare = self._spare
            if spare is None:
                self._schedule_refill()
                raise SequenceExhausted(f"{self._kind}: both identifier blocks used up; await refill()")
            self._spare = None
            self._use(spare)
            cur = self._cur
        self._cur = cur + 1
        if cur >= self._half and self._spare is None:
            self._schedule_refill()
        return cur

    async def next(self) -> int:
        """``take()``, waiting for a refill when both blocks are used up."""
        while True:
            try:
                return self.take()
            except SequenceExhausted:
                await self.refill()

    async def refill(self) -> None:
        """Make sure a spare block is leased (waits for the lease in flight, if any)."""
        if self._spare is not None:
            return
        task = self._refill_task
        if task is None:
            await self._refill()
        else:
            # Shielded: a cancelled caller must not cancel the lease others wait for.
            await asyncio.shield(task)
        if self._spare is None and self._cur >= self._end:
            # The background lease failed (it logged why); a caller that
            # asked explicitly gets the error.
            await self._refill()

    async def close(self, *, timeout: float | None = None) -> None:
        """Stop a lease in flight. The rest of the blocks is abandoned (a gap, not a repeat).

        ``timeout`` is there for the core's one ``close`` signature: a cancelled lease ends at once.
        """
        task = self._refill_task
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise  # we ourselves were cancelled

    def _use(self, first: int) -> None:
        self._cur = first
        self._end = first + self._block
        self._half = first + self._block // 2

    def _schedule_refill(self) -> None:
        if self._refill_task is None:
            self._refill_task = asyncio.get_running_loop().create_task(
                self._background_refill(), context=contextvars.Context()
            )

    async def _background_refill(self) -> None:
        try:
            await self._refill()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # Not fatal: the current block may still last, and the next take()
            # past the half schedules another attempt.
            log.warning("identifier block lease failed", extra={"kind": self._kind, "error": repr(e)})
        finally:
            self._refill_task = None

    async def _refill(self) -> None:
        first = await self._lease()
        if self._cur >= self._end:
            self._use(first)
        elif self._spare is None:
            self._spare = first
        # else: a concurrent explicit refill already stored a spare; this block is a gap.

    async def _lease(self) -> int:
        first = await self._pool.fetchval(_LEASE, self._kind, self._start, self._block)
        return int(first)


# Order ids are 17 digits that look unrelated to each other, like the doc's
# examples: a leased counter n goes through an affine bijection of the
# 17-digit range, so ids stay unique (distinct n, distinct id) without
# telling a merchant how many orders others made or inviting neighbours'
# ids to be guessed. (A disguise, not a secret: access control is what
# keeps another project's order a 404.)
_ORDER_SPAN = 9 * 10**16  # 17-digit numbers: 10**16 .. 10**17 - 1
_ORDER_MUL = 6_364_136_223_846_793  # coprime with 2, 3 and 5, hence with _ORDER_SPAN
_ORDER_ADD = 27_182_818_284_590_452

_RRN_SPAN = 1_000_000
_ARN_SPAN = 10**11


class DbIds:
    """Order ids, RRNs and ARNs from leased blocks; the getters are synchronous.

    - ``order_id()``: 17 digits, unique for the life of the database.
    - ``rrn(now)``: DE 37, ``YDDDHH`` (UTC) + the 6 low digits of a leased
      counter shared by every node. Unique as long as fewer than 1,000,000
      RRNs are issued system-wide per hour (and no process holds a block
      while the others use up a million): the 12-character format allows no
      more. Above that rate (e.g. a sustained 278 a second) the 6 digits
      repeat within the hour; the hour prefix itself repeats every 10 years.
    - ``arn(acquirer_bin, now)``: 23 digits: ``7`` + BIN (6) + ``YDDD`` (4)
      + 11 low digits of a leased counter + Luhn check digit; the counter
      wraps after 10**11 ARNs.

    Each getter raises :class:`SequenceExhausted` in the rare case both
    blocks are used up; ``await ids.refill()`` and call again.
    """

    __slots__ = ("_arn", "_hour_key", "_hour_prefix", "_order", "_rrn")

    def __init__(self, pool: asyncpg.Pool, *, block_size: int = 1000) -> None:
        self._order = LeasedSequence(pool, "order", block_size)
        self._rrn = LeasedSequence(pool, "rrn", block_size)
        self._arn = LeasedSequence(pool, "arn", block_size)
        self._hour_key = -1
        self._hour_prefix = ""

    async def start(self) -> None:
        await asyncio.gather(self._order.start(), self._rrn.start(), self._arn.start())

    async def close(self, *, timeout: float | None = None) -> None:
        """Stop every lease in flight (``timeout``: as :meth:`LeasedSequence.close`)."""
        await asyncio.gather(*(s.close(timeout=timeout) for s in (self._order, self._rrn, self._arn)))

    async def refill(self) -> None:
        """Wait until every sequence can hand out values again."""
        await asyncio.gather(self._order.refill(), self._rrn.refill(), self._arn.refill())

    def order_id(self) -> str:
        n = self._order.take()
        return str(10**16 + (n * _ORDER_MUL + _ORDER_ADD) % _ORDER_SPAN)

    def rrn(self, now: datetime | None = None) -> str:
        ts = time.time() if now is None else _aware(now).timestamp()
        seq = self._rrn.take() % _RRN_SPAN
        hour = int(ts // 3600)
        if hour != self._hour_key:
            # Formatting the prefix once an hour, not once an RRN.
            t = datetime.fromtimestamp(hour * 3600, UTC)
            self._hour_prefix = f"{t.year % 10}{t.timetuple().tm_yday:03d}{t.hour:02d}"
            self._hour_key = hour
        return f"{self._hour_prefix}{seq:06d}"

    def arn(self, acquirer_bin: str, now: datetime | None = None) -> str:
        if len(acquirer_bin) != 6 or not (acquirer_bin.isascii() and acquirer_bin.isdigit()):
            raise ValueError("acquirer BIN must be 6 digits")
        t = datetime.now(UTC) if now is None else _aware(now).astimezone(UTC)
        seq = self._arn.take() % _ARN_SPAN
        payload = f"7{acquirer_bin}{t.year % 10}{t.timetuple().tm_yday:03d}{seq:011d}"
        return payload + luhn_digit(payload)


def _aware(now: datetime) -> datetime:
    # A naive datetime would be read as local time: the hour/day in an RRN
    # or ARN is UTC, as in DE 7, so refuse rather than guess.
    if now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now
