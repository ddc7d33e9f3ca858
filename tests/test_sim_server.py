"""acquirer_sim over real sockets: cards, network management, dialects, bad frames."""

from __future__ import annotations

import asyncio

import pytest
from sim_helpers import IsoClient, MessageFactory, admin_get, running_sim

from acquirer_sim import SimConfig, SimServer
from switch.wire.dialect import Dialect

CARD = "4111111111111111"


@pytest.mark.parametrize(
    ("pan", "extra", "code"),
    [
        ("4111111111111111", {}, "00"),
        ("2222400060000007", {}, "00"),
        ("4276990011343663", {}, "05"),
        ("5555555555555599", {}, "96"),
        ("4000000000000002", {}, "59"),
        ("4276838748917319", {}, "00"),
        ("4000000000003220", {}, "A1"),
        ("4000000000003220", {"121": "05", "122": "AAABBBCCC"}, "00"),
        ("4012888888881881", {"120": "321"}, "N7"),
        ("4012888888881881", {"120": "123"}, "00"),
        ("4111111111111112", {}, "14"),
        ("6011000990139424", {}, "14"),
    ],
)
async def test_every_test_card_answers_as_documented(
    client: IsoClient, mf: MessageFactory, pan: str, extra: dict[str, str], code: str
) -> None:
    req = mf.auth(pan, **extra)
    resp = await client.request(req)
    assert resp["t"] == "0110"
    assert resp["39"] == code
    assert (resp["11"], resp["41"], resp["37"]) == (req["11"], req["41"], req["37"])
    assert ("38" in resp) == (code == "00")
    assert not {"120", "121", "122"} & resp.keys()


async def test_insufficient_funds_and_expired_card(client: IsoClient, mf: MessageFactory) -> None:
    assert (await client.request(mf.auth("5105105105105100", 10_001)))["39"] == "51"
    assert (await client.request(mf.auth("5105105105105100", 10_000)))["39"] == "00"
    assert (await client.request(mf.auth(expiry="2001")))["39"] == "54"


@pytest.mark.parametrize(("code", "rc"), [("001", "00"), ("002", "00"), ("301", "00")])
async def test_network_management_answers_0810(client: IsoClient, mf: MessageFactory, code: str, rc: str) -> None:
    req = mf.network(code)
    resp = await client.request(req)
    assert resp["t"] == "0810"
    assert (resp["11"], resp["70"], resp["39"]) == (req["11"], code, rc)


@pytest.mark.parametrize("dialect", ["ascii", "binary-bitmap"])
@pytest.mark.parametrize("framing", ["binary2", "ascii4"])
async def test_both_dialects_and_both_framings(dialect: str, framing: str, mf: MessageFactory) -> None:
    async with running_sim(dialect=dialect, framing=framing, admin_port=None) as sim:
        assert sim.address is not None
        c = await IsoClient.connect(sim.address, dialect, framing)
        try:
            assert (await c.request(mf.network("001")))["39"] == "00"
            resp = await c.request(mf.auth("4111111111111111", **{"121": "05"}))
            assert resp["39"] == "00" and resp["t"] == "0110"
            assert (await c.request(mf.auth("4276990011343663")))["39"] == "05"
        finally:
            await c.close()


async def test_many_requests_in_one_write_get_every_answer(client: IsoClient, mf: MessageFactory) -> None:
    framing = client.dialect.framing
    reqs = [mf.auth(CARD, i + 1) for i in range(100)]
    await client.send_bytes(b"".join(framing.pack(client.dialect.codec.encode(r)) for r in reqs))
    answers = [await client.recv() for _ in reqs]
    assert [a["11"] for a in answers] == [r["11"] for r in reqs]
    assert all(a["39"] == "00" for a in answers)


async def test_a_request_split_across_writes_is_reassembled(client: IsoClient, mf: MessageFactory) -> None:
    req = mf.auth()
    data = client.dialect.framing.pack(client.dialect.codec.encode(req))
    for i in range(0, len(data), 7):
        await client.send_bytes(data[i : i + 7])
        await asyncio.sleep(0)
    assert (await client.recv())["11"] == req["11"]


async def test_malformed_frame_with_readable_mti_answers_30(client: IsoClient, mf: MessageFactory) -> None:
    req = mf.auth()
    good = client.dialect.codec.encode(req)
    # Cut it off inside DE 43: DE 11 and DE 41 come before and are echoed.
    cut = good[: good.index(b"MERCHANT0000001") + 20]
    await client.send_raw(cut)
    resp = await client.recv()
    assert resp["t"] == "0110"
    assert resp["39"] == "30"
    assert (resp["11"], resp["41"]) == (req["11"], req["41"])
    # The connection carries on.
    assert (await client.request(mf.network()))["39"] == "00"


async def test_malformed_frame_without_salvageable_fields_still_answers_30(client: IsoClient) -> None:
    await client.send_raw(b"0200ZZZZ")
    resp = await client.recv()
    del resp["p"]
    assert resp == {"t": "0210", "39": "30"}


async def test_unreadable_frame_closes_only_that_connection(sim: SimServer, mf: MessageFactory) -> None:
    assert sim.address is not None
    bad = await IsoClient.connect(sim.address)
    good = await IsoClient.connect(sim.address)
    try:
        await bad.send_raw(b"\xff\xfe garbage")
        assert await bad.is_closed()
        assert (await good.request(mf.auth()))["39"] == "00"
        assert sim.stats.decode_errors == 1
    finally:
        await bad.close()
        await good.close()


async def test_framing_error_closes_only_that_connection(mf: MessageFactory) -> None:
    async with running_sim(framing="ascii4", admin_port=None) as sim:
        assert sim.address is not None
        bad = await IsoClient.connect(sim.address, framing="ascii4")
        good = await IsoClient.connect(sim.address, framing="ascii4")
        try:
            await bad.send_bytes(b"12x40800")
            assert await bad.is_closed()
            assert (await good.request(mf.network()))["39"] == "00"
            assert sim.stats.framing_errors == 1
        finally:
            await bad.close()
            await good.close()


async def test_a_garbled_response_class_message_is_ignored(client: IsoClient, mf: MessageFactory) -> None:
    await client.send_raw(b"0810ZZZZ")
    assert await client.nothing_within(0.2)
    assert (await client.request(mf.network()))["39"] == "00"


async def test_stats_count_connections_requests_and_answers(sim: SimServer, mf: MessageFactory) -> None:
    assert sim.address is not None
    c = await IsoClient.connect(sim.address)
    try:
        for _ in range(3):
            await c.request(mf.auth())
        stats = await admin_get(sim, "/stats")
        assert stats["connections"] == 1
        assert stats["requests"] == 3 and stats["responses"] == 3
        assert (await admin_get(sim, "/health"))["status"] == "ok"
    finally:
        await c.close()
    assert sim.stats.connections_total == 1


async def test_stop_closes_open_connections(mf: MessageFactory) -> None:
    sim = SimServer(SimConfig(port=0, seed=1))
    address = await sim.start()
    c = await IsoClient.connect(address)
    try:
        assert (await c.request(mf.network()))["39"] == "00"
        await sim.stop()
        assert await c.is_closed()
        assert sim.stats.connections == 0
        with pytest.raises(OSError):
            await IsoClient.connect(address)
    finally:
        await c.close()


def test_the_default_dialect_matches_the_switch_default() -> None:
    d = Dialect.named()
    cfg = SimConfig()
    assert (cfg.dialect, cfg.framing) == (d.name, d.framing.name)
