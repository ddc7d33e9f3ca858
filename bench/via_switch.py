"""Via-switch mode: requests through a real :class:`switch.pool.Pool` of :class:`switch.link.Link`.

What is measured is the switch's own path, so it is driven the way the
switch drives it: ``concurrency`` coroutines, each looping operation ->
:func:`switch.translate.build` -> ``await pool.request(msg)`` ->
:func:`switch.translate.interpret`. With a rate, each worker first waits
for a token from a 1 ms pacer, and ``concurrency`` caps what is in flight;
the token carries the request's intended time on the schedule, and latency
is measured from it (coordinated omission corrected: time spent waiting for
a free worker counts).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from bench.measure import BenchError, Pacer, Tally, Window, error_kind
from bench.workload import AuthBuilder, card_cycle
from switch.errors import SwitchError
from switch.link import LinkConfig
from switch.pool import Pool
from switch.translate import interpret
from switch.wire.codec import DecodeError, EncodeError, Message

if TYPE_CHECKING:
    from bench.iso import IsoBenchConfig

__all__ = ["run_via_switch"]

# The per-link in-flight cap must not be what limits the bench.
_MIN_IN_FLIGHT_CAP = 1024
# After these nothing was sent: the worker pauses instead of spinning on the loop.
_BACKOFF_KINDS = frozenset({"busy", "not_ready", "duplicate"})
_BACKOFF_S = 0.001
_PACE_S = 0.001
_CAUGHT = (SwitchError, DecodeError, EncodeError, TimeoutError, ConnectionError)


class _Tokens:
    """Hands pacer tokens (intended send times) to idle workers; a worker holding none cannot send."""

    def __init__(self, pacer: Pacer) -> None:
        self.pacer = pacer
        self.waiting: collections.deque[asyncio.Future[float | None]] = collections.deque()

    async def take(self) -> float | None:
        """The intended send time of the request to send now; None: the run is over."""
        fut: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        return await fut

    def release(self) -> None:
        pacer = self.pacer
        due = pacer.due(time.perf_counter())
        n = 0
        waiting = self.waiting
        while n < due and waiting:
            fut = waiting.popleft()
            if not fut.done():
                fut.set_result(pacer.next_intended())
                pacer.issued(1)
                n += 1
        pacer.issued(0, backlog=due - n)

    def stop(self) -> None:
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_result(None)


async def run_via_switch(cfg: IsoBenchConfig, tally: Tally, window: Window) -> dict[str, Any]:
    """Run the via-switch mode; figures go to ``tally``, the rest is returned for the report."""
    loop = asyncio.get_running_loop()
    link_cfg = LinkConfig(
        host=cfg.host,
        port=cfg.port,
        name="bench",
        dialect=cfg.dialect,
        framing=cfg.framing,
        timeout=cfg.timeout,
        max_in_flight=max(_MIN_IN_FLIGHT_CAP, cfg.concurrency),
    )
    pool = Pool.connect("bench", link_cfg, cfg.links)
    pool.start()
    workers: list[asyncio.Task[None]] = []
    timers: dict[str, asyncio.TimerHandle] = {}
    tokens: _Tokens | None = None
    try:
        try:
            await pool.wait_ready(timeout=cfg.timeout, all_links=True)
        except TimeoutError:
            raise BenchError(f"switch links to {cfg.host}:{cfg.port}: {pool.ready_links}/{cfg.links} ready") from None
        builder = AuthBuilder("BNCHSW01", cfg.amount, cfg.currency)
        cycle = card_cycle(cfg.mix)

        def worker(start: int) -> Coroutine[Any, Any, None]:
            return _worker(pool.request, builder, cycle, start, tally, lambda: tokens)

        if cfg.rate:
            tokens = _Tokens(Pacer(cfg.rate, time.perf_counter()))

            def pace() -> None:
                assert tokens is not None
                tokens.release()
                timers["pace"] = loop.call_later(_PACE_S, pace)

            timers["pace"] = loop.call_later(_PACE_S, pace)
        before = [link.stats.as_dict() for link in pool.links]
        if cfg.warmup:
            timers["open"] = loop.call_later(cfg.warmup, window.open, tally)
        else:
            window.open(tally)
        workers = [loop.create_task(worker(i * 7)) for i in range(cfg.concurrency)]
        everyone = asyncio.gather(*workers)
        # Workers end on their own only when the request budget is spent.
        await asyncio.wait([everyone], timeout=cfg.warmup + cfg.duration)
        window.close(tally)
        tally.sending = False
        if tokens is not None:
            tokens.stop()
        await asyncio.wait([everyone], timeout=cfg.timeout + 1.0)
        after = [link.stats.as_dict() for link in pool.links]
        links = {
            link.label: {k: v - b.get(k, 0) for k, v in a.items()}
            for link, a, b in zip(pool.links, after, before, strict=True)
        }
        decode_errors = sum(s["decode_errors"] for s in links.values())
        if decode_errors:  # the link drops an undecodable response; its caller then times out
            tally.errors["decode_error"] = tally.errors.get("decode_error", 0) + decode_errors
        out: dict[str, Any] = {"links": links, "unanswered_at_end": sum(link.in_flight for link in pool.links)}
        if tokens is not None:
            out["pacer_max_backlog"] = tokens.pacer.max_backlog
        return out
    finally:
        tally.sending = False
        for t in timers.values():
            t.cancel()
        if tokens is not None:
            tokens.stop()
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await pool.close(timeout=2.0)


_Request = Callable[[Message], Awaitable[Message]]


async def _worker(
    request: _Request,
    builder: AuthBuilder,
    cycle: Sequence[int],
    start: int,
    tally: Tally,
    tokens: Callable[[], _Tokens | None],
) -> None:
    """One closed-loop sender: a 0100 through the pool, its answer tallied, until the tally stops sending."""
    pos = start % len(cycle)
    while tally.sending:
        paced = tokens()
        intended: float | None = None
        if paced is not None:
            intended = await paced.take()
            if intended is None:
                return
        card = cycle[pos]
        pos = (pos + 1) % len(cycle)
        msg = builder.message(card)
        tally.take()
        sent_at = intended or time.perf_counter()
        try:
            resp = await request(msg)
        except _CAUGHT as e:
            kind = error_kind(e)
            tally.error(kind)
            if kind in _BACKOFF_KINDS:
                await asyncio.sleep(_BACKOFF_S)
            continue
        if tally.measuring:
            tally.hist.record_value(int((time.perf_counter() - sent_at) * 1_000_000))
            tally.responses += 1
            key = (card, resp.get("39", "--"))
            tally.codes[key] = tally.codes.get(key, 0) + 1
            outcome = interpret(resp).outcome.value
            tally.outcomes[outcome] = tally.outcomes.get(outcome, 0) + 1
        else:
            tally.responses_outside_window += 1
