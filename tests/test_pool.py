"""switch.pool: least-loaded link choice, fail-fast destinations, BIN routing, the router.

Pools and routers run against scripted hosts on real 127.0.0.1 sockets; each
host stamps its own name into DE 38 of every reply so a test can tell which
host answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from peer import Action, ScriptedHost

from switch.errors import DestinationUnavailable, NoRoute
from switch.link import Link, LinkConfig, LinkState
from switch.pool import Pool, Route, Router, RoutingTable
from switch.wire.codec import Message

pytestmark = pytest.mark.timeout(10)

HOLD = "000000009001"  # DE 4 amount: the host keeps the reply until release()

FAST: dict[str, Any] = {
    "timeout": 2.0,
    "sign_on_timeout": 1.0,
    "echo_interval": 0.0,
    "connect_timeout": 1.0,
    "reconnect_initial": 0.01,
    "reconnect_max": 0.05,
    "drain_timeout": 1.0,
}


def tagging(tag: str) -> Callable[[Message], Action]:
    """A host script: answer 00 with DE 38 = ``tag`` (6 characters); hold replies whose DE 4 is HOLD."""
    return lambda msg: Action(hold=msg.get("4") == HOLD, extra={"38": tag})


def auth(marker: int, pan: str = "4111111111111111", amount: str = "000000001000") -> Message:
    return {
        "t": "0100",
        "2": pan,
        "3": "000000",
        "4": amount,
        "37": f"{marker:012d}",
        "41": "TERM0001",
        "49": "840",
    }


async def until(cond: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        # Polling on purpose: the conditions are plain state (counters, lists), no event to wait on.
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    server = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


class Harness:
    """Hosts and pools for one test; closed in reverse order of creation (pools before hosts)."""

    def __init__(self, stack: contextlib.AsyncExitStack) -> None:
        self.stack = stack

    async def host(self, tag: str) -> ScriptedHost:
        host = ScriptedHost(tagging(tag))
        await host.start()
        self.stack.push_async_callback(host.stop)
        return host

    def pool(self, name: str, port: int, count: int = 2, **kw: Any) -> Pool:
        pool = Pool.connect(name, LinkConfig("127.0.0.1", port, **{**FAST, **kw}), count)
        self.stack.push_async_callback(self._close, pool)
        return pool

    @staticmethod
    async def _close(pool: Pool | Router) -> None:
        async with asyncio.timeout(5):
            await pool.close(timeout=1.0)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with contextlib.AsyncExitStack() as stack:
        yield Harness(stack)


async def test_pool_sends_each_request_to_the_least_loaded_ready_link(harness: Harness) -> None:
    host = await harness.host("HOSTA1")
    pool = harness.pool("sim", host.port, count=2)
    pool.start()
    await pool.wait_ready(5, all_links=True)
    first, second = pool.links
    held = [asyncio.ensure_future(first.request(auth(i, amount=HOLD))) for i in range(2)]
    try:
        await until(lambda: first.in_flight == 2)
        held.append(asyncio.ensure_future(pool.request(auth(10, amount=HOLD))))
        await until(lambda: second.in_flight == 1)
        held.append(asyncio.ensure_future(pool.request(auth(11, amount=HOLD))))
        await until(lambda: second.in_flight == 2)
        assert first.in_flight == 2
        held.append(asyncio.ensure_future(pool.request(auth(12, amount=HOLD))))
        await until(lambda: first.in_flight + second.in_flight == 5)
        assert {first.in_flight, second.in_flight} == {2, 3}
        await until(lambda: len(host.messages("0100")) == 5)
        host.release()
        resps = await asyncio.gather(*held)
    finally:
        for t in held:
            t.cancel()
    assert sorted(r["37"] for r in resps) == [f"{i:012d}" for i in (0, 1, 10, 11, 12)]
    assert first.stats.sent + second.stats.sent == 5 + 2  # + one sign-on each


async def test_pool_uses_only_ready_links(harness: Harness) -> None:
    host = await harness.host("HOSTA1")
    up = Link(LinkConfig("127.0.0.1", host.port, name="up", **FAST))
    down = Link(LinkConfig("127.0.0.1", await free_port(), name="down", **FAST))
    pool = Pool("sim", [down, up])
    harness.stack.push_async_callback(harness._close, pool)
    pool.start()
    await pool.wait_ready(5)
    assert pool.ready_links == 1
    for i in range(5):
        assert pool.pick() is up
        await pool.request(auth(i))
    assert up.stats.sent == 5 + 1
    assert down.state is not LinkState.READY


@pytest.mark.timeout(5)
async def test_destination_without_a_ready_link_fails_fast(harness: Harness) -> None:
    # 30 s request timeout, 5 s test timeout: passing means nothing waited for the timeout.
    pool = harness.pool("sim", await free_port(), count=2)
    with pytest.raises(DestinationUnavailable):
        await pool.request(auth(1), timeout=30.0)  # never started
    pool.start()
    await until(lambda: all(link.state is LinkState.CONNECTING for link in pool.links))
    with pytest.raises(DestinationUnavailable) as err:
        await pool.request(auth(2), timeout=30.0)
    assert isinstance(err.value, ConnectionError)
    assert "sim" in str(err.value)


@pytest.mark.timeout(5)
async def test_destination_fails_fast_once_its_host_goes_away(harness: Harness) -> None:
    host = await harness.host("HOSTA1")
    pool = harness.pool("sim", host.port, count=2)
    pool.start()
    await pool.wait_ready(5, all_links=True)
    await pool.request(auth(1))
    await host.stop()
    await until(lambda: pool.ready_links == 0)
    with pytest.raises(DestinationUnavailable):
        await pool.request(auth(2), timeout=30.0)


async def test_pool_wait_ready_times_out_when_no_link_can_connect(harness: Harness) -> None:
    pool = harness.pool("sim", await free_port(), count=2)
    pool.start()
    with pytest.raises(TimeoutError):
        await pool.wait_ready(0.2)


def test_pool_connect_labels_links_and_refuses_an_empty_pool() -> None:
    pool = Pool.connect("visa", LinkConfig("127.0.0.1", 1), 3)
    assert [link.label for link in pool.links] == ["visa#0", "visa#1", "visa#2"]
    assert all(link.config.port == 1 for link in pool.links)
    with pytest.raises(ValueError, match="visa"):
        Pool("visa", [])


# -- routing table ----------------------------------------------------------


def test_routing_table_picks_the_most_specific_range_then_the_default() -> None:
    table = RoutingTable(
        [
            Route("visa", "4", "4"),
            Route("visa-gold", "411111", "411111"),
            Route("amex", "34", "34"),
            Route("amex", "37", "37"),
            Route("mc", "510000", "559999"),
            Route("mc-promo", "5500", "5500"),
        ],
        default="sim",
    )
    assert table.destination("4111111111111111") == "visa-gold"
    assert table.destination("4012888888881881") == "visa"
    assert table.destination("371449635398431") == "amex"
    assert table.destination("341111111111111") == "amex"
    assert table.destination("351111111111111") == "sim"
    assert table.destination("5105105105105100") == "mc"
    assert table.destination("5500005555555559") == "mc-promo"
    assert table.destination("5600000000000000") == "sim"
    assert table.destination("6011000990139424") == "sim"
    # Asked twice (the second answer comes from the cache): the same.
    assert table.destination("4111111111111111") == "visa-gold"
    assert table.destination("4012888888881881") == "visa"


def test_routing_table_without_default_raises_no_route() -> None:
    table = RoutingTable([Route("visa", "400000", "499999")])
    assert table.destination("4111111111111111") == "visa"
    with pytest.raises(NoRoute) as err:
        table.destination("5555555555554444")
    assert isinstance(err.value, LookupError)
    assert "5555" not in str(err.value)  # no card data in error texts
    with pytest.raises(NoRoute):
        table.destination("")
    with pytest.raises(NoRoute):
        RoutingTable([]).destination("4111111111111111")
    assert RoutingTable([], default="sim").destination("4111111111111111") == "sim"


def test_test_mode_goes_to_the_test_destination_whatever_the_card_and_live_by_the_ranges() -> None:
    table = RoutingTable([Route("visa", "4", "4")], default="live", test="sim")
    assert table.destination("4111111111111111") == "visa"
    assert table.destination("4111111111111111", test_mode=True) == "sim"
    assert table.destination("6011000990139424", test_mode=True) == "sim"
    assert table.destination("4111111111111111") == "visa"  # the cache holds live answers only
    # Without a test destination a test payment is sent nowhere, never to the live default or ranges.
    with pytest.raises(NoRoute):
        RoutingTable([Route("visa", "4", "4")], default="live").destination("4111", test_mode=True)


@pytest.mark.parametrize(
    ("low", "high"),
    [("4", "45"), ("45", "44"), ("4a", "4b"), ("", ""), ("-1", "-1")],
)
def test_route_rejects_bad_bounds(low: str, high: str) -> None:
    with pytest.raises(ValueError):
        Route("visa", low, high)


_bins = st.text("0123456789", min_size=1, max_size=6)


@st.composite
def routes(draw: st.DrawFn) -> Route:
    low = draw(_bins)
    high = draw(st.text("0123456789", min_size=len(low), max_size=len(low)))
    low, high = min(low, high), max(low, high)
    return Route(draw(st.sampled_from(["a", "b", "c", "d"])), low, high)


@given(
    st.lists(routes(), max_size=8),
    st.lists(st.text("0123456789", min_size=12, max_size=19), min_size=1, max_size=10),
)
def test_routing_table_agrees_with_a_brute_force_search(table_routes: list[Route], pans: list[str]) -> None:
    table = RoutingTable(table_routes, default="default")
    for pan in pans + pans:  # twice: the cached answer must agree too
        covering = [r for r in table_routes if r.low <= pan[: len(r.low)] <= r.high]
        got = table.destination(pan)
        if not covering:
            assert got == "default"
        else:
            narrowest = min(r.width for r in covering)
            assert got in {r.destination for r in covering if r.width == narrowest}


# -- router -----------------------------------------------------------------


async def test_router_sends_each_request_to_the_pool_its_pan_routes_to(harness: Harness) -> None:
    visa_host = await harness.host("VISA01")
    other_host = await harness.host("OTHER1")
    router = Router(
        [harness.pool("visa", visa_host.port), harness.pool("other", other_host.port)],
        RoutingTable([Route("visa", "4", "4")], default="other"),
    )
    router.start()
    await router.wait_ready(5)
    visa = await router.request(auth(1, pan="4111111111111111"))
    other = await router.request(auth(2, pan="5555555555554444"))
    assert visa["38"] == "VISA01" and visa["37"] == f"{1:012d}"
    assert other["38"] == "OTHER1" and other["37"] == f"{2:012d}"
    assert [m["2"] for m in visa_host.messages("0100")] == ["4111111111111111"]
    assert [m["2"] for m in other_host.messages("0100")] == ["5555555555554444"]
    assert router.pool_for("4000000000000002").name == "visa"


async def test_router_raises_no_route_for_an_uncovered_pan_without_default(harness: Harness) -> None:
    host = await harness.host("VISA01")
    router = Router([harness.pool("visa", host.port, count=1)], RoutingTable([Route("visa", "4", "4")]))
    router.start()
    await router.wait_ready(5)
    with pytest.raises(NoRoute):
        await router.request(auth(1, pan="5555555555554444"))
    no_pan = auth(2)
    del no_pan["2"]
    with pytest.raises(NoRoute):
        await router.request(no_pan)
    assert host.messages("0100") == []


def test_router_refuses_routes_to_unknown_destinations() -> None:
    visa = Pool.connect("visa", LinkConfig("127.0.0.1", 1), 1)
    with pytest.raises(ValueError, match="amex"):
        Router([visa], RoutingTable([Route("amex", "34", "34")]))
    with pytest.raises(ValueError, match="sim"):
        Router([visa], RoutingTable([Route("visa", "4", "4")], default="sim"))
    with pytest.raises(ValueError, match="test route names unknown destination sandbox"):
        Router([visa], RoutingTable([], default="visa", test="sandbox"))


async def test_links_of_one_pool_never_hand_out_the_same_stan() -> None:
    # A host reads DE 41 + DE 11 + DE 7 as a transaction's identity: two links of one
    # destination giving one terminal the same STAN in one second looks like a resend.
    from switch.stan import StanSpace

    pool = Pool.connect("dest", LinkConfig("127.0.0.1", 1), 3, node_id=4)
    spaces = {id(link._busy) for link in pool.links}
    assert len(spaces) == 1
    space: StanSpace = pool.links[0]._busy
    stans = [space.next() for _ in range(1000)]
    assert len(set(stans)) == 1000
    assert all(int(s) % 10 == 4 for s in stans)  # node 4's residue class
