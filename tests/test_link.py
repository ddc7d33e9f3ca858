"""switch.link against a scripted host on real 127.0.0.1 sockets.

The host's reply to each request is chosen by the request's DE 4 (see
``behaviour``); DE 37 carries a per-request marker that the host also copies
into DE 38, so a caller can tell its own answer from anybody else's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from peer import Action, ScriptedHost

from switch.errors import DuplicateRequest, LinkBusy, LinkClosed, LinkNotReady, RequestTimeout
from switch.link import Link, LinkConfig, LinkState
from switch.stan import StanAllocator
from switch.wire.codec import Message
from switch.wire.dialect import Dialect

pytestmark = pytest.mark.timeout(10)

# DE 4 amounts that choose the host's behaviour; any other amount is answered 00 at once.
HOLD = "000000009001"  # reply kept until host.release()
LATE = "000000009002"  # reply after 0.3 s
GARBAGE = "000000009003"  # an undecodable reply
CLOSE = "000000009004"  # the host closes the connection
DROP = "000000009005"  # never answered
LATER = "000000009006"  # reply after 0.6 s

_ACTIONS = {
    HOLD: Action(hold=True),
    LATE: Action(delay=0.3),
    GARBAGE: Action(garbage=True),
    CLOSE: Action(close=True),
    DROP: Action(drop=True),
    LATER: Action(delay=0.6),
}


def behaviour(msg: Message) -> Action:
    act = _ACTIONS.get(msg.get("4", ""), Action())
    # A fresh Action per reply: the marker in DE 38 is this request's own.
    return Action(
        act.rc, act.delay, act.drop, act.hold, act.close, act.garbage, extra={"38": msg.get("37", "000000")[-6:]}
    )


def auth(marker: int, amount: str = "000000001000", **fields: str) -> Message:
    """An 0100 whose DE 37 is ``marker``; the link stamps DE 7 and DE 11."""
    msg = {
        "t": "0100",
        "2": "4111111111111111",
        "3": "000000",
        "4": amount,
        "37": f"{marker:012d}",
        "41": "TERM0001",
        "49": "840",
    }
    msg.update(fields)
    return msg


def is_ours(resp: Message, req: Message) -> bool:
    return resp["t"] == "0110" and resp["37"] == req["37"] and resp["38"] == req["37"][-6:]


def network(host: ScriptedHost, code: str) -> list[Message]:
    """The 0800s with DE 70 ``code`` the host received (001 sign-on, 002 sign-off, 301 echo)."""
    return [m for m in host.messages("0800") if m.get("70") == code]


async def until(cond: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll ``cond`` until true (the test's own timeout is the backstop)."""
    async with asyncio.timeout(timeout):
        # Polling on purpose: the conditions are plain state (counters, lists), no event to wait on.
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


# Fast timings for tests; each test overrides what it exercises.
FAST: dict[str, Any] = {
    "timeout": 2.0,
    "sign_on_timeout": 1.0,
    "echo_interval": 0.0,
    "connect_timeout": 1.0,
    "reconnect_initial": 0.01,
    "reconnect_max": 0.05,
    "drain_timeout": 2.0,
}

HostFactory = Callable[..., Awaitable[ScriptedHost]]
LinkFactory = Callable[..., Awaitable[Link]]


@pytest.fixture
async def hosts() -> AsyncIterator[HostFactory]:
    started: list[ScriptedHost] = []

    async def make(script: Callable[[Message], Action] | None = behaviour, *, port: int = 0, **kw: Any) -> ScriptedHost:
        host = ScriptedHost(script, **kw)
        await host.start(port)
        started.append(host)
        return host

    try:
        yield make
    finally:
        for host in started:
            await host.stop()


@pytest.fixture
async def links(hosts: HostFactory) -> AsyncIterator[LinkFactory]:
    """Links closed before their hosts stop (this fixture depends on ``hosts``)."""
    made: list[Link] = []

    async def make(port: int, *, ready: bool = True, on_unmatched: Any = None, **kw: Any) -> Link:
        link = Link(LinkConfig("127.0.0.1", port, **{**FAST, **kw}), on_unmatched=on_unmatched)
        made.append(link)
        link.start()
        if ready:
            await link.wait_ready(5)
        return link

    try:
        yield make
    finally:
        for link in made:
            async with asyncio.timeout(5):  # a close() that hangs fails the test instead of hanging it
                await link.close(timeout=1.0)


async def test_a_thousand_concurrent_requests_answered_in_shuffled_order_each_get_their_own_response(
    hosts: HostFactory, links: LinkFactory
) -> None:
    host = await hosts()
    link = await links(host.port, timeout=8.0)
    reqs = [auth(i, HOLD) for i in range(1000)]
    tasks = [asyncio.ensure_future(link.request(r)) for r in reqs]
    try:
        await until(lambda: len(host.messages("0100")) == 1000)
        assert link.in_flight == 1000
        host.release(shuffle=True)
        resps = await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
    assert all(is_ours(resp, req) for req, resp in zip(reqs, resps, strict=True))
    assert all(resp["11"] == req["11"] for req, resp in zip(reqs, resps, strict=True))
    assert len({r["11"] for r in reqs}) == 1000
    assert link.in_flight == 0
    assert link.stats.unmatched == 0


async def test_request_stamps_stan_and_transmission_time_into_the_callers_message(
    hosts: HostFactory, links: LinkFactory
) -> None:
    host = await hosts()
    link = await links(host.port)
    req = auth(1)
    resp = await link.request(req)
    assert len(req["11"]) == 6 and req["11"].isdigit() and req["11"] != "000000"
    assert len(req["7"]) == 10 and req["7"].isdigit()
    assert host.messages("0100")[0]["11"] == req["11"] == resp["11"]
    explicit = auth(2, **{"11": "004242", "7": "0101000000"})
    await link.request(explicit)
    assert host.messages("0100")[1]["11"] == "004242"
    assert host.messages("0100")[1]["7"] == "0101000000"


async def test_timeout_raises_request_timeout_and_the_late_reply_goes_to_on_unmatched(
    hosts: HostFactory, links: LinkFactory
) -> None:
    unmatched: list[Message] = []
    host = await hosts()
    link = await links(host.port, on_unmatched=unmatched.append)
    late = auth(1, LATE, **{"11": "000777"})
    with pytest.raises(RequestTimeout) as err:
        await link.request(late, timeout=0.1)
    assert isinstance(err.value, TimeoutError)
    assert link.stats.timeouts == 1
    # Same DE 41 + DE 11 as the timed-out request, answered after its late
    # reply arrives: the late reply must not be taken for this one's.
    again = auth(2, LATER, **{"11": "000777"})
    resp = await link.request(again, timeout=2.0)
    assert is_ours(resp, again)
    assert [m["37"] for m in unmatched] == [late["37"]]
    assert link.stats.unmatched == 1
    assert link.ready


async def test_late_reply_is_not_delivered_to_a_request_made_meanwhile(hosts: HostFactory, links: LinkFactory) -> None:
    unmatched: list[Message] = []
    host = await hosts()
    link = await links(host.port, on_unmatched=unmatched.append)
    late = auth(1, LATE)
    with pytest.raises(RequestTimeout):
        await link.request(late, timeout=0.05)
    pending = asyncio.ensure_future(link.request(auth(2, HOLD)))
    try:
        await until(lambda: len(unmatched) == 1)
        assert not pending.done()
        assert pending_stan(link) != late["11"]
        host.release()
        resp = await pending
    finally:
        pending.cancel()
    assert resp["37"] == f"{2:012d}"
    assert unmatched[0]["11"] == late["11"]
    assert link.stats.unmatched == 1


def pending_stan(link: Link) -> str:
    ((_, _, stan),) = link._pending  # white-box: the one request in flight
    return stan


async def test_pending_requests_fail_with_link_closed_when_host_closes(hosts: HostFactory, links: LinkFactory) -> None:
    host = await hosts()
    link = await links(host.port)
    tasks = [asyncio.ensure_future(link.request(auth(i, HOLD))) for i in range(5)]
    await until(lambda: len(host.messages("0100")) == 5)
    host.drop_connections()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, LinkClosed) for r in results), results
    assert link.in_flight == 0
    assert link.stats.disconnects == 1


async def test_a_request_that_makes_the_host_close_fails_every_pending_request(
    hosts: HostFactory, links: LinkFactory
) -> None:
    host = await hosts()
    link = await links(host.port)
    held = [asyncio.ensure_future(link.request(auth(i, HOLD))) for i in range(3)]
    await until(lambda: len(host.messages("0100")) == 3)
    with pytest.raises(LinkClosed):
        await link.request(auth(9, CLOSE))
    results = await asyncio.gather(*held, return_exceptions=True)
    assert all(isinstance(r, LinkClosed) for r in results), results


async def test_link_reconnects_and_signs_on_again_after_host_restarts_on_the_same_port(
    hosts: HostFactory, links: LinkFactory
) -> None:
    first = await hosts()
    port = first.port
    link = await links(port)
    assert len(network(first, "001")) == 1
    await first.stop()
    await until(lambda: not link.ready)
    with pytest.raises(LinkNotReady):
        await link.request(auth(1))
    second = await hosts(port=port)
    await link.wait_ready(5)
    assert len(network(second, "001")) == 1
    assert is_ours(await link.request(req := auth(2)), req)
    assert link.stats.connects == 2
    assert link.stats.disconnects == 1


async def test_no_request_is_accepted_before_the_sign_on_is_answered(hosts: HostFactory, links: LinkFactory) -> None:
    host = await hosts(network=lambda m: Action(hold=m.get("70") == "001"))
    link = await links(host.port, ready=False, sign_on_timeout=5.0)
    await until(lambda: len(host.received) == 1)
    assert link.state is LinkState.SIGNING_ON
    sign_on = host.received[0]
    assert sign_on["t"] == "0800" and sign_on["70"] == "001"
    assert len(sign_on["11"]) == 6 and len(sign_on["7"]) == 10
    with pytest.raises(LinkNotReady):
        await link.request(auth(1))
    host.release()
    await link.wait_ready(2)
    assert is_ours(await link.request(req := auth(2)), req)
    assert [m["t"] for m in host.received] == ["0800", "0100"]


async def test_link_stays_not_ready_and_retries_while_host_refuses_sign_on(
    hosts: HostFactory, links: LinkFactory
) -> None:
    refuse = True

    def net(msg: Message) -> Action:
        return Action(rc="91" if refuse and msg.get("70") == "001" else "00")

    host = await hosts(network=net)
    link = await links(host.port, ready=False)
    await until(lambda: len(network(host, "001")) >= 3)
    assert not link.ready
    with pytest.raises(LinkNotReady):
        await link.request(auth(1))
    assert link.stats.connects >= 3
    refuse = False
    await link.wait_ready(2)
    assert is_ours(await link.request(req := auth(2)), req)
    assert [m["37"] for m in host.messages("0100")] == [req["37"]]


async def test_link_sends_an_echo_when_idle(hosts: HostFactory, links: LinkFactory) -> None:
    host = await hosts()
    link = await links(host.port, echo_interval=0.2)
    await until(lambda: len(network(host, "301")) >= 1, timeout=3)
    assert link.stats.echoes >= 1
    assert link.ready
    assert len(network(host, "001")) == 1  # the echo was answered: no reconnect


async def test_link_sends_no_echo_while_responses_keep_arriving(hosts: HostFactory, links: LinkFactory) -> None:
    host = await hosts()
    link = await links(host.port, echo_interval=0.5)
    end = time.monotonic() + 1.0
    i = 0
    while time.monotonic() < end:
        await link.request(auth(i))
        i += 1
        await asyncio.sleep(0.05)
    assert network(host, "301") == []
    assert link.stats.echoes == 0


async def test_unanswered_echo_drops_the_connection_and_the_link_reconnects(
    hosts: HostFactory, links: LinkFactory
) -> None:
    host = await hosts(network=lambda m: Action(drop=m.get("70") == "301"))
    link = await links(host.port, echo_interval=0.2, sign_on_timeout=0.3)
    await until(lambda: len(network(host, "001")) >= 2, timeout=4)
    await link.wait_ready(2)
    assert len(network(host, "301")) >= 1
    assert link.stats.disconnects >= 1
    assert link.stats.timeouts >= 1


async def test_link_answers_an_echo_from_the_host(hosts: HostFactory, links: LinkFactory) -> None:
    host = await hosts()
    link = await links(host.port)
    d = Dialect.named("ascii")
    echo = {"t": "0800", "7": "0101000000", "11": "123456", "70": "301"}
    host.transports[0].write(d.framing.pack(d.codec.encode(echo)))
    await until(lambda: host.messages("0810"))
    (reply,) = host.messages("0810")
    assert reply["39"] == "00" and reply["11"] == "123456" and reply["70"] == "301"
    assert link.stats.unmatched == 0


async def test_duplicate_in_flight_key_is_refused_and_nothing_is_sent(hosts: HostFactory, links: LinkFactory) -> None:
    host = await hosts()
    link = await links(host.port)
    first = asyncio.ensure_future(link.request(auth(1, HOLD, **{"11": "000123"})))
    try:
        await until(lambda: len(host.messages("0100")) == 1)
        with pytest.raises(DuplicateRequest):
            await link.request(auth(2, HOLD, **{"11": "000123"}))
        # Another terminal may use the same STAN: the key is MTI class + DE 41 + DE 11.
        other = asyncio.ensure_future(link.request(auth(3, HOLD, **{"11": "000123", "41": "TERM0002"})))
        await until(lambda: len(host.messages("0100")) == 2)
        assert [m["37"] for m in host.messages("0100")] == [f"{1:012d}", f"{3:012d}"]
        host.release()
        assert (await first)["37"] == f"{1:012d}"
        assert (await other)["37"] == f"{3:012d}"
    finally:
        first.cancel()
    assert link.stats.unmatched == 0


async def test_request_beyond_max_in_flight_raises_link_busy_at_once(hosts: HostFactory, links: LinkFactory) -> None:
    host = await hosts()
    link = await links(host.port, max_in_flight=3)
    held = [asyncio.ensure_future(link.request(auth(i, HOLD))) for i in range(3)]
    try:
        await until(lambda: len(host.messages("0100")) == 3)
        with pytest.raises(LinkBusy):
            await link.request(auth(9))
        assert link.stats.busy == 1
        assert len(host.messages("0100")) == 3
        host.release()
        assert len(await asyncio.gather(*held)) == 3
    finally:
        for t in held:
            t.cancel()
    assert is_ours(await link.request(req := auth(10)), req)


async def test_graceful_close_drains_in_flight_refuses_new_requests_and_signs_off(
    hosts: HostFactory, links: LinkFactory
) -> None:
    host = await hosts()
    link = await links(host.port)
    reqs = [auth(i, HOLD) for i in range(3)]
    held = [asyncio.ensure_future(link.request(r)) for r in reqs]
    await until(lambda: len(host.messages("0100")) == 3)
    closing = asyncio.ensure_future(link.close(timeout=5.0))
    try:
        await until(lambda: link.state is LinkState.CLOSING)
        with pytest.raises(LinkNotReady):
            await link.request(auth(9))
        await asyncio.sleep(0.05)
        assert not closing.done()
        assert network(host, "002") == []  # no sign-off while requests are in flight
        host.release()
        await closing
    finally:
        closing.cancel()
    resps = await asyncio.gather(*held)
    assert all(is_ours(resp, req) for req, resp in zip(reqs, resps, strict=True))
    assert len(network(host, "002")) == 1
    assert link.state is LinkState.CLOSED
    with pytest.raises(LinkNotReady):
        await link.request(auth(10))


async def test_close_fails_requests_still_in_flight_after_the_drain_timeout(
    hosts: HostFactory, links: LinkFactory
) -> None:
    host = await hosts()
    link = await links(host.port)
    held = asyncio.ensure_future(link.request(auth(1, DROP), timeout=5.0))
    await until(lambda: host.messages("0100"))
    await link.close(timeout=0.1)
    with pytest.raises(LinkClosed):
        await held
    assert len(network(host, "002")) == 1
    assert link.state is LinkState.CLOSED


async def test_close_is_idempotent_and_works_on_a_link_never_started() -> None:
    link = Link(LinkConfig("127.0.0.1", 1, **FAST))
    await link.close()
    await link.close()
    assert link.state is LinkState.CLOSED
    with pytest.raises(LinkNotReady):
        await link.request(auth(1))


async def test_close_while_the_host_is_down_returns_promptly(hosts: HostFactory, links: LinkFactory) -> None:
    host = await hosts()
    port = host.port
    await host.stop()
    link = await links(port, ready=False)
    await until(lambda: link.state is LinkState.CONNECTING)
    async with asyncio.timeout(2):
        await link.close()
    assert link.state is LinkState.CLOSED


async def test_an_undecodable_reply_keeps_the_link_and_the_next_request_succeeds(
    hosts: HostFactory, links: LinkFactory
) -> None:
    host = await hosts()
    link = await links(host.port)
    # The garbage reply cannot be matched, so its request can only time out.
    with pytest.raises(RequestTimeout):
        await link.request(auth(1, GARBAGE), timeout=0.2)
    assert link.stats.decode_errors == 1
    assert link.ready
    assert is_ours(await link.request(req := auth(2)), req)
    assert link.stats.disconnects == 0


async def test_an_out_of_sync_stream_closes_the_connection_and_the_link_reconnects(
    hosts: HostFactory, links: LinkFactory
) -> None:
    host = await hosts(framing="ascii4")
    link = await links(host.port, framing="ascii4")
    held = asyncio.ensure_future(link.request(auth(1, HOLD)))
    await until(lambda: host.messages("0100"))
    host.transports[0].write(b"XYZW0000")  # not a 4-digit length header
    with pytest.raises(LinkClosed):
        await held
    await until(lambda: len(network(host, "001")) == 2)
    await link.wait_ready(2)
    assert is_ours(await link.request(req := auth(2)), req)


async def test_a_reset_connection_fails_pending_requests_and_the_link_reconnects(
    hosts: HostFactory, links: LinkFactory
) -> None:
    host = await hosts()
    link = await links(host.port)
    held = asyncio.ensure_future(link.request(auth(1, HOLD)))
    await until(lambda: host.messages("0100"))
    host.transports[0].abort()
    with pytest.raises(LinkClosed):
        await held
    await until(lambda: len(network(host, "001")) == 2)
    await link.wait_ready(2)
    assert is_ours(await link.request(req := auth(2)), req)


async def test_concurrent_requests_are_coalesced_into_few_writes(hosts: HostFactory, links: LinkFactory) -> None:
    host = await hosts()
    link = await links(host.port)
    flush = link._flush
    flushes = 0

    def counting_flush() -> None:
        nonlocal flushes
        flushes += 1
        flush()

    link._flush = counting_flush  # type: ignore[method-assign]  # white-box: count socket writes
    reqs = [auth(i) for i in range(200)]
    resps = await asyncio.gather(*(link.request(r) for r in reqs))
    assert all(is_ours(resp, req) for req, resp in zip(reqs, resps, strict=True))
    assert flushes < 20, flushes


async def test_stan_wraps_past_999999_and_skips_in_flight_and_quarantined_stans(
    hosts: HostFactory, links: LinkFactory
) -> None:
    host = await hosts()
    link = await links(host.port)
    # White-box: put the link's allocator just before the wrap.
    link._busy._alloc = StanAllocator(start=999_997)
    timed_out = auth(1, DROP)
    with pytest.raises(RequestTimeout):
        await link.request(timed_out, timeout=0.05)
    assert timed_out["11"] == "999998"
    held = asyncio.ensure_future(link.request(first := auth(2, HOLD)))
    try:
        await until(lambda: len(host.messages("0100")) == 2)
        assert first["11"] == "999999"
        assert (await link.request(req := auth(3)))["11"] == "000001" == req["11"]
        # Rewind: the next two STANs would be the quarantined and the in-flight one.
        link._busy._alloc = StanAllocator(start=999_997)
        assert (await link.request(req := auth(4)))["11"] == "000001" == req["11"]
        host.release()
        await held
    finally:
        held.cancel()
    link._busy._alloc = StanAllocator(start=999_997)
    await link.request(req := auth(5))
    assert req["11"] == "999999"  # free again once answered; 999998 stays quarantined


def test_reconnect_backoff_is_capped_and_jittered() -> None:
    link = Link(LinkConfig("127.0.0.1", 1, reconnect_initial=0.05, reconnect_max=2.0))
    for failures in range(1, 40):
        cap = min(2.0, 0.05 * 2 ** (failures - 1))
        for _ in range(20):
            assert cap / 2 <= link._backoff(failures) <= cap
    assert link._backoff(10_000) <= 2.0
    draws = {link._backoff(30) for _ in range(50)}
    assert len(draws) > 10  # jittered: reconnecting links do not hit the host in lockstep


async def test_close_while_sign_on_is_unanswered_does_not_wait_for_it(hosts: HostFactory, links: LinkFactory) -> None:
    # The sign-on is not a caller's request: there is nothing to drain.
    host = await hosts(network=lambda m: Action(hold=m.get("70") == "001"))
    link = await links(host.port, ready=False, sign_on_timeout=5.0, drain_timeout=5.0)
    await until(lambda: host.received)
    assert link.state is LinkState.SIGNING_ON
    async with asyncio.timeout(1.0):
        await link.close()
    assert link.state is LinkState.CLOSED
    assert network(host, "002") == []


async def test_a_cancelled_request_quarantines_its_stan_like_a_timed_out_one(
    hosts: HostFactory, links: LinkFactory
) -> None:
    # The request went out: its answer may still come, so its STAN must not be reused at once.
    host = await hosts()
    link = await links(host.port)
    link._busy._alloc = StanAllocator(start=41)  # white-box: known STANs
    task = asyncio.ensure_future(link.request(req := auth(1, DROP)))
    await until(lambda: host.messages("0100"))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert req["11"] == "000042"
    assert link.in_flight == 0
    link._busy._alloc = StanAllocator(start=41)
    await link.request(again := auth(2))
    assert again["11"] == "000043"


async def test_a_cancelled_close_still_closes_the_link_and_a_later_close_returns(
    hosts: HostFactory, links: LinkFactory
) -> None:
    host = await hosts()
    link = await links(host.port)
    held = asyncio.ensure_future(link.request(auth(1, HOLD)))
    await until(lambda: host.messages("0100"))
    closing = asyncio.ensure_future(link.close(timeout=5.0))
    await until(lambda: link.state is LinkState.CLOSING)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert link.state is LinkState.CLOSED
    with pytest.raises(LinkClosed):
        await held
    async with asyncio.timeout(1.0):
        await link.close()


def test_link_matches_times_out_and_reconnects_on_uvloop() -> None:
    """The switch runs on uvloop when present: the same protocol code on its transports."""
    uvloop = pytest.importorskip("uvloop")
    errors: list[dict[str, Any]] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        unmatched: list[Message] = []
        host = ScriptedHost(behaviour)
        await host.start()
        link = Link(LinkConfig("127.0.0.1", host.port, **FAST), on_unmatched=unmatched.append)
        try:
            link.start()
            await link.wait_ready(5)
            reqs = [auth(i, HOLD) for i in range(300)]
            tasks = [asyncio.ensure_future(link.request(r)) for r in reqs]
            await until(lambda: len(host.messages("0100")) == 300)
            host.release(shuffle=True)
            resps = await asyncio.gather(*tasks)
            assert all(is_ours(resp, req) for req, resp in zip(reqs, resps, strict=True))
            with pytest.raises(RequestTimeout):
                await link.request(late := auth(1000, LATE), timeout=0.05)
            await until(lambda: unmatched)
            assert unmatched[0]["37"] == late["37"]
            held = asyncio.ensure_future(link.request(auth(1001, HOLD)))
            await until(lambda: len(host.messages("0100")) == 302)
            host.drop_connections()
            with pytest.raises(LinkClosed):
                await held
            await until(lambda: len(network(host, "001")) == 2)
            await link.wait_ready(2)
            assert is_ours(await link.request(req := auth(1002)), req)
        finally:
            await link.close(timeout=1.0)
            await host.stop()
        assert len(network(host, "002")) == 1
        await asyncio.sleep(0)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(scenario(), 8))
    assert not errors, [e.get("message") or repr(e.get("exception")) for e in errors]


# -- against the real simulator (acquirer_sim) ------------------------------------

try:
    from acquirer_sim import SimConfig, SimServer
except ImportError:  # the simulator is optional for these link tests
    SimServer = None  # type: ignore[assignment,misc]

needs_sim = pytest.mark.skipif(SimServer is None, reason="acquirer_sim is not importable")


def full_auth(marker: int, pan: str = "4111111111111111") -> Message:
    """An 0100 with every field MESSAGES.md lists for it."""
    return {
        "t": "0100",
        "2": pan,
        "3": "000000",
        "4": "000000001000",
        "12": "120000",
        "13": "0101",
        "14": "3012",
        "18": "5999",
        "22": "010",
        "25": "59",
        "32": "12345678901",
        "37": f"{marker:012d}",
        "41": "TERM0001",
        "42": "MERCHANT0000001",
        "43": "EXAMPLE.COM/12345".ljust(40),
        "49": "840",
    }


@pytest.fixture
async def sims() -> AsyncIterator[Callable[[int], Awaitable[SimServer]]]:
    started: list[SimServer] = []

    async def make(port: int = 0) -> SimServer:
        sim = SimServer(SimConfig(port=port, seed=1))
        await sim.start()
        started.append(sim)
        return sim

    try:
        yield make
    finally:
        for sim in started:
            await sim.stop()


@needs_sim
async def test_link_signs_on_to_the_simulator_and_an_authorization_is_approved(
    sims: Callable[[int], Awaitable[SimServer]], links: LinkFactory
) -> None:
    sim = await sims(0)
    assert sim.address is not None
    link = await links(sim.address[1])
    assert link.state is LinkState.READY  # the simulator answered the sign-on 00
    approved = await link.request(req := full_auth(1))
    assert approved["t"] == "0110" and approved["39"] == "00"
    assert approved["11"] == req["11"] and approved["37"] == req["37"]
    assert approved.get("38")
    declined = await link.request(full_auth(2, pan="4276990011343663"))
    assert declined["39"] == "05"


@needs_sim
async def test_link_reconnects_by_itself_when_the_simulator_restarts_on_the_same_port(
    sims: Callable[[int], Awaitable[SimServer]], links: LinkFactory
) -> None:
    first = await sims(0)
    assert first.address is not None
    port = first.address[1]
    link = await links(port)
    assert (await link.request(full_auth(1)))["39"] == "00"
    await first.stop()
    await until(lambda: not link.ready)
    with pytest.raises(LinkNotReady):
        await link.request(full_auth(2))
    await sims(port)
    await link.wait_ready(5)
    assert (await link.request(full_auth(3)))["39"] == "00"
    assert link.stats.connects == 2
