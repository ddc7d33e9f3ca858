"""The ISO listener: acquirer hosts and terminals over ISO 8583, recorded like REST orders.

Everything real: the simulator on 127.0.0.1 port 0, PostgreSQL (tests/pg.py),
the runtime with its router, orders service and store-and-forward, the
listener on an ephemeral port, and a raw ISO client (tests/sim_helpers.py).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pg
import pytest
from json_orders import JsonOrders
from sim_helpers import IsoClient, MessageFactory
from test_orders_fixtures import settings
from waiting import wait_for

from acquirer_sim import SimServer
from switch.config import SwitchConfig
from switch.listener import ListenerConfig
from switch.listener_mac import sign, verify
from switch.orders import OrderStatus, Source
from switch.runtime import Runtime, RuntimeConfig, open_runtime
from switch.saf import SafConfig, list_entries
from switch.store import DbConfig, Project
from switch.wire.codec import Message

fresh_dsn, pg_dsn = pg.fresh_dsn, pg.pg_dsn

pytestmark = pytest.mark.timeout(30)

KEY = base64.b64encode(secrets.token_bytes(32)).decode()
MAC_KEY = "000102030405060708090A0B0C0D0E0F"
FAST = SafConfig(poll_interval=0.02, backoff_base=0.02, backoff_cap=0.05, timeout=0.2, recovery_grace=60.0)


def runtime_config(dsn: str, data_dir: Path, host: str, port: int, **kw: Any) -> RuntimeConfig:
    switch = SwitchConfig.from_dict(
        {
            "destinations": [
                {"name": "sim", "host": host, "port": port, "links": 1, "echo_interval": 0.0, "timeout": 0.5}
            ],
            "routing": {"default": "sim", "test": "sim"},
        }
    )
    kw.setdefault("listener", ListenerConfig(port=0, peers={"TERM0009": MAC_KEY}, idle_timeout=5.0))
    return RuntimeConfig(
        db=DbConfig(url=dsn, data_dir=data_dir, min_size=1, max_size=6),
        switch=switch,
        request_timeout=0.3,
        close_timeout=1.0,
        id_block_size=20,
        env={"ISOSWITCH_PAN_KEY": KEY},
        saf=FAST,
        **kw,
    )


@pytest.fixture
async def rt(sim: SimServer, fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Runtime]:
    assert sim.address is not None
    runtime = await open_runtime(runtime_config(fresh_dsn, scratch_dir, *sim.address))
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest.fixture
async def shop(rt: Runtime) -> Project:
    """The project owning terminal TERM0001 / merchant MERCHANT0000001 (MessageFactory's defaults)."""
    project, _ = await rt.projects.create("iso-shop", settings(1))
    await rt.projects.create("mac-shop", settings(9, merchant_id="MERCHANT0000001"))
    return project


@pytest.fixture
async def peer(rt: Runtime) -> AsyncIterator[IsoClient]:
    assert rt.listener is not None and rt.listener.address is not None
    c = await IsoClient.connect(rt.listener.address)
    yield c
    await c.close()


async def in_flight(rt: Runtime) -> bool:
    """Whether an operation is pending: its intent written, the issuer's answer not yet in."""
    return bool(await rt.db.pool.fetchval("SELECT count(*) FROM operations WHERE status = 'pending'"))


async def orders_of(rt: Runtime, project: Project) -> list[Any]:
    return (await JsonOrders(rt.orders).list_orders(project, {})).items


def echoed(req: Message, resp: Message) -> None:
    for k in ("2", "3", "7", "11", "37", "41", "42", "49"):
        if k in req:
            assert resp[k] == req[k], k


# -- network management ------------------------------------------------------------------


async def test_an_0800_is_answered_by_the_listener_itself(rt: Runtime, peer: IsoClient, mf: MessageFactory) -> None:
    for code in ("001", "301", "002"):
        req = mf.network(code)
        resp = await peer.request(req)
        assert (resp["t"], resp["39"], resp["11"], resp["70"]) == ("0810", "00", req["11"], code)
    resp = await peer.request(mf.network("999"))
    assert resp["39"] == "12"


# -- new orders ------------------------------------------------------------------------


async def test_an_0100_is_approved_with_the_peers_own_stan_and_rrn_and_recorded_as_an_iso_order(
    rt: Runtime, shop: Project, peer: IsoClient, mf: MessageFactory
) -> None:
    req = mf.auth(**{"120": "123"})
    resp = await peer.request(req)
    assert (resp["t"], resp["39"]) == ("0110", "00")
    echoed(req, resp)
    assert len(resp["38"]) == 6 and "120" not in resp
    (order,) = await orders_of(rt, shop)
    assert (order.source, order.status, order.amount, order.merchant_order_id) == (
        Source.ISO,
        OrderStatus.AUTHORIZED,
        1000,
        req["37"],
    )
    assert order.auth_code == resp["38"]
    (op,) = order.operations
    # The host saw our identifiers, not the peer's.
    assert op.rrn == order.rrn != req["37"] and op.stan is not None


async def test_a_decline_is_mapped_back_and_the_order_is_declined(
    rt: Runtime, shop: Project, peer: IsoClient, mf: MessageFactory
) -> None:
    req = mf.auth("4276990011343663")
    resp = await peer.request(req)
    assert resp["t"] == "0110" and resp["39"] not in ("00", "91", "68")
    echoed(req, resp)
    (order,) = await orders_of(rt, shop)
    assert order.status is OrderStatus.DECLINED
    assert order.operations[0].iso_response_code == resp["39"]


async def test_an_0200_sale_is_approved_and_the_order_is_charged(
    rt: Runtime, shop: Project, peer: IsoClient, mf: MessageFactory
) -> None:
    req = mf.sale(amount=2500)
    resp = await peer.request(req)
    assert (resp["t"], resp["39"]) == ("0210", "00")
    echoed(req, resp)
    (order,) = await orders_of(rt, shop)
    assert (order.status, order.amount_charged, order.source) == (OrderStatus.CHARGED, 2500, Source.ISO)
    assert order.operations[0].arn is not None


async def test_a_repeated_0100_gets_the_same_answer_and_makes_no_second_order(
    rt: Runtime, shop: Project, peer: IsoClient, mf: MessageFactory
) -> None:
    req = mf.auth()
    first = await peer.request(req)
    again = await peer.request(req)
    assert (again["39"], again["38"], again["11"]) == (first["39"], first["38"], req["11"])
    assert len(await orders_of(rt, shop)) == 1


# -- follow-ups ---------------------------------------------------------------------------


async def test_an_0220_captures_an_0100_received_through_the_listener(
    rt: Runtime, shop: Project, peer: IsoClient, mf: MessageFactory
) -> None:
    auth = mf.auth("4111111111111111", 1000)
    approved = await peer.request(auth)
    assert approved["39"] == "00"
    cap = mf.capture(auth, 600, approved["38"])
    resp = await peer.request(cap)
    assert (resp["t"], resp["39"]) == ("0230", "00")
    echoed(cap, resp)
    assert resp["90"] == cap["90"]
    (order,) = await orders_of(rt, shop)
    assert (order.status, order.amount_charged) == (OrderStatus.CHARGED, 600)
    assert [op.type.value for op in order.operations] == ["authorize", "charge"]


async def test_an_0400_reverses_an_0100_found_by_de90_and_a_repeat_is_harmless(
    rt: Runtime, shop: Project, peer: IsoClient, mf: MessageFactory
) -> None:
    auth = mf.auth()
    assert (await peer.request(auth))["39"] == "00"
    rev = mf.reversal(auth)
    resp = await peer.request(rev)
    assert (resp["t"], resp["39"]) == ("0410", "00")
    echoed(rev, resp)
    (order,) = await orders_of(rt, shop)
    assert order.status is OrderStatus.REVERSED
    # The peer's store-and-forward repeat: answered, nothing sent again.
    advice = mf.reversal(auth, mti="0421")
    assert (await peer.request(advice))["39"] == "00"
    (order,) = await orders_of(rt, shop)
    assert [op.type.value for op in order.operations] == ["authorize", "reverse"]


async def test_a_repeat_of_an_0100_still_in_flight_gets_the_first_ones_answer_and_no_second_hold(
    rt: Runtime, sim: SimServer, shop: Project, peer: IsoClient, mf: MessageFactory
) -> None:
    sim.set_faults([{"action": "delay", "amount": 1234, "delay_ms": 150}])
    auth = mf.auth("4111111111111111", 1234)
    await peer.send(auth)
    await wait_for(lambda: in_flight(rt))  # the first copy is at the (slow) issuer
    await peer.send(dict(auth))  # the peer's repeat: same DE 41, MTI, DE 11, DE 7
    first, repeat = await peer.recv(), await peer.recv()
    assert (first["39"], repeat["39"]) == ("00", "00")
    assert first["38"] == repeat["38"] and repeat["11"] == auth["11"]
    (order,) = await orders_of(rt, shop)
    assert [op.type.value for op in order.operations] == ["authorize"]
    assert sim.ledger.records == 1, "the issuer saw one 0100"


async def test_a_reversal_arriving_while_its_0100_is_in_flight_waits_for_it_then_reverses(
    rt: Runtime, sim: SimServer, shop: Project, peer: IsoClient, mf: MessageFactory
) -> None:
    sim.set_faults([{"action": "delay", "amount": 4321, "delay_ms": 150}])
    auth = mf.auth("4111111111111111", 4321)
    await peer.send(auth)
    await wait_for(lambda: in_flight(rt))
    await peer.send(mf.reversal(auth))  # the peer gave up early on its side
    answers = {m["t"]: m for m in (await peer.recv(), await peer.recv())}
    assert (answers["0110"]["39"], answers["0410"]["39"]) == ("00", "00")
    (order,) = await orders_of(rt, shop)
    assert order.status is OrderStatus.REVERSED
    assert [op.type.value for op in order.operations] == ["authorize", "reverse"]


async def test_an_0400_without_de90_finds_its_original_by_rrn(
    rt: Runtime, shop: Project, peer: IsoClient, mf: MessageFactory
) -> None:
    auth = mf.auth()
    assert (await peer.request(auth))["39"] == "00"
    resp = await peer.request(mf.follow_up("0400", auth, use_de90=False))
    assert resp["39"] == "00"
    (order,) = await orders_of(rt, shop)
    assert order.status is OrderStatus.REVERSED


async def test_a_follow_up_of_an_unknown_original_is_answered_25(
    rt: Runtime, shop: Project, peer: IsoClient, mf: MessageFactory
) -> None:
    resp = await peer.request(mf.reversal(mf.auth()))
    assert (resp["t"], resp["39"]) == ("0410", "25")


# -- refusals -------------------------------------------------------------------------------


async def test_an_unknown_terminal_or_merchant_is_refused_and_nothing_is_recorded(
    rt: Runtime, shop: Project, peer: IsoClient
) -> None:
    stranger = MessageFactory(terminal="NOBODY01")
    resp = await peer.request(stranger.auth())
    assert (resp["t"], resp["39"]) == ("0110", "58")
    resp = await peer.request(stranger.auth(**{"42": "NOSUCHMERCHANT1"}))
    assert resp["39"] == "03"
    assert await orders_of(rt, shop) == []
    assert await rt.db.pool.fetchval("SELECT count(*) FROM orders") == 0


async def test_a_destination_that_is_down_is_answered_91_without_waiting_for_a_timeout(
    sim: SimServer, fresh_dsn: str, scratch_dir: Path, mf: MessageFactory
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runtime = await open_runtime(runtime_config(fresh_dsn, scratch_dir, "127.0.0.1", port, ready_timeout=0.1))
    try:
        await runtime.projects.create("iso-shop", settings(1))
        assert runtime.listener is not None and runtime.listener.address is not None
        c = await IsoClient.connect(runtime.listener.address)
        try:
            # 91 (nothing could be sent), not 68: the answer did not wait for a request timeout.
            resp = await c.request(mf.auth())
            assert (resp["t"], resp["39"]) == ("0110", "91")
        finally:
            await c.close()
    finally:
        await runtime.close()


async def test_a_timeout_is_answered_68_and_the_authorization_is_reversed(
    rt: Runtime, sim: SimServer, shop: Project, peer: IsoClient, mf: MessageFactory
) -> None:
    sim.set_faults([{"action": "no_reply", "mti": "0100"}])
    resp = await peer.request(mf.auth())
    assert (resp["t"], resp["39"]) == ("0110", "68")
    (order,) = await orders_of(rt, shop)
    assert order.status is OrderStatus.ERROR
    for _ in range(200):
        if await list_entries(rt.db.pool):
            break
        await asyncio.sleep(0.02)
    (row,) = await list_entries(rt.db.pool)
    assert row["order_id"] == order.id


# -- garbage ---------------------------------------------------------------------------------


async def test_garbage_closes_only_the_offending_connection(
    rt: Runtime, shop: Project, peer: IsoClient, mf: MessageFactory
) -> None:
    assert rt.listener is not None and rt.listener.address is not None
    bad = await IsoClient.connect(rt.listener.address)
    try:
        await bad.send_raw(b"\xff\xfe garbage \x00")
        assert await bad.is_closed()
    finally:
        await bad.close()
    empty = await IsoClient.connect(rt.listener.address)
    try:
        await empty.send_bytes(b"\x00\x00")  # a frame of nothing: not even an MTI
        assert await empty.is_closed()
    finally:
        await empty.close()
    assert (await peer.request(mf.auth()))["39"] == "00"


async def test_an_undecodable_request_with_a_readable_mti_is_answered_30_and_the_connection_stays(
    rt: Runtime, shop: Project, peer: IsoClient, mf: MessageFactory
) -> None:
    good = peer.dialect.codec.encode(mf.auth())
    await peer.send_raw(good[:-5])  # truncated DE 49
    resp = await peer.recv()
    assert (resp["t"], resp["39"]) == ("0110", "30")
    assert (await peer.request(mf.auth()))["39"] == "00"


# -- MAC ---------------------------------------------------------------------------------------


async def mac_request(peer: IsoClient, msg: Message, key: bytes) -> tuple[Message, bytes]:
    await peer.send_raw(sign(peer.dialect.codec, msg, key))
    frame = await peer.recv_frame()
    return peer.dialect.codec.decode(frame), frame


async def test_a_bad_mac_is_answered_63_and_nothing_is_forwarded(
    rt: Runtime, shop: Project, peer: IsoClient, sim: SimServer
) -> None:
    mf = MessageFactory(terminal="TERM0009")
    key = bytes.fromhex(MAC_KEY)
    requests = sim.stats.requests
    resp, frame = await mac_request(peer, mf.auth(), bytes(16))  # signed with the wrong key
    assert (resp["t"], resp["39"]) == ("0110", "63")
    assert verify(resp, frame, key)  # our answer is MACed all the same
    resp = await peer.request(mf.auth())  # no MAC at all
    assert resp["39"] == "63"
    assert sim.stats.requests == requests
    assert await rt.db.pool.fetchval("SELECT count(*) FROM orders") == 0


async def test_a_good_mac_is_approved_and_the_answer_carries_a_valid_mac(
    rt: Runtime, shop: Project, peer: IsoClient
) -> None:
    mf = MessageFactory(terminal="TERM0009")
    key = bytes.fromhex(MAC_KEY)
    resp, frame = await mac_request(peer, mf.auth(), key)
    assert (resp["t"], resp["39"]) == ("0110", "00")
    assert "64" in resp and verify(resp, frame, key)
    # A message with secondary-bitmap fields carries its MAC in DE 128.
    auth = mf.auth(**{"120": "123"})
    resp, frame = await mac_request(peer, auth, key)
    assert resp["39"] == "00" and verify(resp, frame, key)
    mac_shop = next(p for p in await rt.projects.list_all() if p.name == "mac-shop")
    assert len(await orders_of(rt, mac_shop)) == 2


class _NoProjects:
    async def list_all(self) -> list[Project]:
        return []


async def test_an_ascii4_listener_closes_a_connection_on_a_framing_error_and_caps_connections(
    mf: MessageFactory,
) -> None:
    from switch.listener import IsoListener

    listener = IsoListener(ListenerConfig(port=0, framing="ascii4", max_connections=2), None, _NoProjects())  # type: ignore[arg-type]
    address = await listener.start()
    try:
        bad = await IsoClient.connect(address, framing="ascii4")
        await bad.send_bytes(b"ZZZZ0800")
        assert await bad.is_closed()
        await bad.close()
        good = await IsoClient.connect(address, framing="ascii4")
        assert (await good.request(mf.network()))["39"] == "00"
        second = await IsoClient.connect(address, framing="ascii4")
        third = await IsoClient.connect(address, framing="ascii4")
        assert await third.is_closed()  # over max_connections
        assert (await good.request(mf.auth()))["39"] == "03"  # no project owns this terminal
        for c in (good, second, third):
            await c.close()
        assert listener.stats.refused == 1 and listener.stats.garbage_closes == 1
    finally:
        await listener.close()
