"""Direct mode: 0100s straight at a host from a load generator that must cost little.

A bare asyncio ``Protocol`` per connection (no streams, no task or future per
request). Each connection holds one pre-encoded 0100 per test card and
patches DE 7, DE 11 and the RRN tail into a copy per request; responses are
matched on DE 11 after a fast-codec decode. In the closed loop (no rate)
the next request is written from the same ``data_received`` call that
consumed an answer, so ``concurrency`` stay in flight; with a rate, a 1 ms
pacer sends what is due into free slots instead, and latency is measured
from each request's intended time on the schedule (:meth:`Pacer.next_intended`),
so time spent waiting for a free slot counts (coordinated omission corrected).
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from typing import TYPE_CHECKING, Any

from bench.measure import BenchError, Pacer, Tally, Window, error_kind, run_then_drain
from bench.rrn import RrnGenerator
from bench.workload import Template, card_cycle, templates
from switch.errors import LinkClosed
from switch.wire.codec import DecodeError, Message
from switch.wire.dialect import Dialect
from switch.wire.framing import Deframer, FramingError
from switch.wire.messages import NM_SIGN_OFF, NM_SIGN_ON, de7, network_response

if TYPE_CHECKING:
    from bench.iso import IsoBenchConfig

__all__ = ["run_direct", "spread"]

_TICK_S = 0.05  # timeout sweep and DE 7 refresh
_PACE_S = 0.001  # pacer period in rate mode
_RESPONSE_MTI = "0110"

Out = list[bytes | bytearray]


def spread(total: int, parts: int) -> list[int]:
    """``total`` split into at most ``parts`` near-equal positive shares.

    >>> spread(10, 4), spread(2, 4)
    ([3, 3, 2, 2], [1, 1])
    """
    parts = min(parts, total)
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class _Conn(asyncio.Protocol):
    """One TCP connection with up to ``slots`` requests in flight."""

    def __init__(self, run: _DirectRun, slots: int, tpls: list[Template], cycle: list[int], start: int) -> None:
        self.run = run
        self.tally = run.tally
        self.slots = slots
        self.codec = run.dialect.codec
        self.framing = run.dialect.framing
        self.deframer = Deframer(run.dialect.framing)
        # The card cycle flattened into templates, so picking the next request is one index.
        self.cycle = [tpls[i] for i in cycle]
        self.pos = start % len(self.cycle)
        # STAN -> (sent at, card index, intended at); in send order. The sending time is for the timeout,
        # the intended time for the latency (the same in the closed loop).
        self.pending: dict[str, tuple[float, int, float]] = {}
        self.control: dict[str, asyncio.Future[Message]] = {}  # STAN -> our 0800's answer
        self.stan = int.from_bytes(os.urandom(3), "big") % 999_999
        self.transport: asyncio.Transport | None = None
        self.lost = False

    # -- asyncio.Protocol ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.pending:
            self.tally.error("link_closed", len(self.pending))
            self.pending.clear()
        for fut in self.control.values():
            if not fut.done():
                fut.set_exception(LinkClosed("connection lost"))
        self.run.check_done()

    def data_received(self, data: bytes) -> None:
        tally = self.tally
        try:
            frames = self.deframer.feed(data)
        except FramingError:
            tally.error("framing_error")
            assert self.transport is not None
            self.transport.close()  # out of sync: nothing after this can be trusted
            return
        now = time.perf_counter()
        decode = self.codec.decode
        pending = self.pending
        refill = self.run.closed_loop
        out: Out = []
        for frame in frames:
            try:
                msg = decode(frame)
            except DecodeError:
                tally.error("decode_error")  # its request times out later
                continue
            entry = pending.pop(msg.get("11", ""), None) if msg["t"] == _RESPONSE_MTI else None
            if entry is None:
                self._other(msg, out)
                continue
            if tally.measuring:
                _, card, intended = entry
                tally.responses += 1
                tally.hist.record_value(int((now - intended) * 1_000_000))
                key = (card, msg.get("39", "--"))
                codes = tally.codes
                codes[key] = codes.get(key, 0) + 1
            else:
                tally.responses_outside_window += 1
            if refill and tally.sending:
                self._queue(out, now)
        if out:
            assert self.transport is not None
            self.transport.write(b"".join(out))
        if not tally.sending and not pending:
            self.run.check_done()

    # -- sending -----------------------------------------------------------------
    def _queue(self, out: Out, now: float, intended: float = 0.0) -> None:
        self.tally.take()
        pending = self.pending
        n = self.stan
        while True:
            n = n % 999_999 + 1
            stan = f"{n:06d}"
            if stan not in pending and stan not in self.control:
                break
        self.stan = n
        tpl = self.cycle[self.pos]
        self.pos = (self.pos + 1) % len(self.cycle)
        buf = bytearray(tpl.frame)
        raw = stan.encode("ascii")
        buf[tpl.stan : tpl.stan + 6] = raw
        buf[tpl.rrn_tail : tpl.rrn_tail + 6] = raw
        buf[tpl.de7 : tpl.de7 + 10] = self.run.de7
        out.append(buf)
        pending[stan] = (now, tpl.card, intended or now)

    def send(self, n: int, now: float, pacer: Pacer | None = None) -> int:
        """Send up to ``n`` requests (no more than free slots); how many went. With ``pacer``, each takes
        the next intended time of its schedule."""
        if self.lost or self.transport is None:
            return 0
        n = min(n, self.slots - len(self.pending))
        out: Out = []
        tally = self.tally
        for _ in range(n):
            if not tally.sending:
                break
            if pacer is not None:
                intended = pacer.next_intended()
                pacer.issued(1)
                self._queue(out, now, intended)
            else:
                self._queue(out, now)
        if out:
            self.transport.write(b"".join(out))
        return len(out)

    def sweep(self, now: float, timeout: float) -> None:
        """Expire requests older than ``timeout``; in the closed loop a fresh request takes the slot."""
        pending = self.pending
        limit = now - timeout
        expired = []
        for stan, (sent_at, _, _) in pending.items():
            if sent_at > limit:
                break  # send order: the rest are younger
            expired.append(stan)
        for stan in expired:
            del pending[stan]
        if expired:
            self.tally.error("timeout", len(expired))
            if self.run.closed_loop:
                self.send(len(expired), now)

    # -- network management ------------------------------------------------------
    def _other(self, msg: Message, out: Out) -> None:
        mti = msg["t"]
        if mti == "0800":  # the host's echo: answer it, as a link would
            out.append(self.framing.pack(self.codec.encode(network_response(msg))))
            return
        fut = self.control.pop(msg.get("11", ""), None) if mti == "0810" else None
        if fut is not None:
            if not fut.done():
                fut.set_result(msg)
            return
        self.tally.error("unmatched")  # late (after its timeout) or never asked for

    async def network(self, code: str, timeout: float) -> Message:
        """Send an 0800 with DE 70 ``code`` and wait for its 0810."""
        if self.transport is None or self.lost:
            raise LinkClosed("connection lost")
        self.stan = self.stan % 999_999 + 1
        stan = f"{self.stan:06d}"
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.control[stan] = fut
        msg = {"t": "0800", "7": de7(), "11": stan, "70": code}
        self.transport.write(self.framing.pack(self.codec.encode(msg)))
        try:
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self.control.pop(stan, None)


class _DirectRun:
    def __init__(self, cfg: IsoBenchConfig, tally: Tally) -> None:
        self.cfg = cfg
        self.tally = tally
        self.dialect = Dialect.named(cfg.dialect, cfg.framing)
        self.closed_loop = cfg.rate == 0
        self.de7 = de7().encode("ascii")  # refreshed by tick(), not formatted per request
        self.conns: list[_Conn] = []
        self.done = asyncio.Event()
        self.pacer: Pacer | None = None
        self._rr = 0

    def check_done(self) -> None:
        if all(c.lost for c in self.conns) or (not self.tally.sending and not self.in_flight()):
            self.done.set()

    def in_flight(self) -> int:
        return sum(len(c.pending) for c in self.conns)

    def tick(self) -> None:
        self.de7 = de7().encode("ascii")
        now = time.perf_counter()
        for c in self.conns:
            if c.pending:
                c.sweep(now, self.cfg.timeout)
        self.check_done()

    def pace(self) -> None:
        pacer = self.pacer
        assert pacer is not None
        now = time.perf_counter()
        due = pacer.due(now)
        if due <= 0 or not self.tally.sending:
            return
        sent = 0
        conns = self.conns
        self._rr = (self._rr + 1) % len(conns)
        for i in range(len(conns)):
            sent += conns[(self._rr + i) % len(conns)].send(due - sent, now, pacer)
            if sent >= due:
                break
        pacer.issued(0, backlog=due - sent)

    async def connect(self) -> None:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        cycle = card_cycle(cfg.mix)
        rrn_prefix = RrnGenerator(node_id=9).next()[:6]  # YDDDHH; the STAN fills the tail
        for i, slots in enumerate(spread(cfg.concurrency, cfg.connections)):
            tpls = templates(self.dialect, f"BNCHD{i:03d}", rrn_prefix, cfg.amount, cfg.currency)
            factory = functools.partial(_Conn, self, slots, tpls, cycle, i * 7)
            try:
                async with asyncio.timeout(cfg.timeout):
                    _, proto = await loop.create_connection(factory, cfg.host, cfg.port)
            except (OSError, TimeoutError) as e:
                raise BenchError(f"cannot connect to {cfg.host}:{cfg.port}: {e!r}") from None
            self.conns.append(proto)
        if cfg.sign_on:
            for c in self.conns:
                try:
                    resp = await c.network(NM_SIGN_ON, cfg.timeout)
                except (TimeoutError, LinkClosed) as e:
                    raise BenchError(f"sign-on to {cfg.host}:{cfg.port} failed: {error_kind(e)}") from None
                if resp.get("39") != "00":
                    raise BenchError(f"sign-on to {cfg.host}:{cfg.port} refused: DE 39 {resp.get('39')}")

    async def close(self) -> None:
        if self.cfg.sign_on:
            # Best effort: a host that is going away does not fail the run.
            await asyncio.gather(
                *(c.network(NM_SIGN_OFF, 1.0) for c in self.conns if not c.lost), return_exceptions=True
            )
        for c in self.conns:
            if c.transport is not None:
                c.transport.close()


async def run_direct(cfg: IsoBenchConfig, tally: Tally, window: Window) -> dict[str, Any]:
    """Run the direct mode; figures go to ``tally``, the rest is returned for the report."""
    loop = asyncio.get_running_loop()
    run = _DirectRun(cfg, tally)
    timers: dict[str, asyncio.TimerHandle] = {}

    def tick() -> None:
        run.tick()
        timers["tick"] = loop.call_later(_TICK_S, tick)

    def pace() -> None:
        run.pace()
        timers["pace"] = loop.call_later(_PACE_S, pace)

    try:
        await run.connect()
        timers["tick"] = loop.call_later(_TICK_S, tick)
        if cfg.warmup:
            timers["open"] = loop.call_later(cfg.warmup, window.open, tally)
        else:
            window.open(tally)
        if run.closed_loop:
            now = time.perf_counter()
            for c in run.conns:
                c.send(c.slots, now)
        else:
            run.pacer = Pacer(cfg.rate, time.perf_counter())
            pace()
        await run_then_drain(
            run.done,
            tally,
            window,
            cfg.warmup + cfg.duration,
            cfg.timeout,
            lambda: bool(run.in_flight()) and not all(c.lost for c in run.conns),
        )
        out: dict[str, Any] = {
            "connections": len(run.conns),
            "connections_lost": sum(1 for c in run.conns if c.lost),
            "unanswered_at_end": run.in_flight(),
        }
        if run.pacer is not None:
            out["pacer_max_backlog"] = run.pacer.max_backlog
        return out
    finally:
        tally.sending = False
        for t in timers.values():
            t.cancel()
        await run.close()
