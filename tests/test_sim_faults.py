"""acquirer_sim fault injection: delay, no_reply, close, garbage, rate; the /faults API."""

from __future__ import annotations

import dataclasses
import time

import pytest
from sim_helpers import IsoClient, MessageFactory, admin_get, admin_put, running_sim

from acquirer_sim import FaultPlan, FaultRule, SimServer, default_rules
from switch.wire.codec import DecodeError, peek_mti

CARD = "4111111111111111"


SLOW = "4242424242424242"


async def test_delay_answers_late_and_others_overtake(sim: SimServer, client: IsoClient, mf: MessageFactory) -> None:
    sim.set_faults([{"action": "delay", "delay_ms": 300, "pan": SLOW}])
    slow = mf.auth(SLOW, 100)
    fast = mf.auth("4111111111111111", 100)
    start = time.monotonic()
    await client.send(slow)
    await client.send(fast)
    first = await client.recv()
    assert first["11"] == fast["11"]
    # The effect is immediate; only the answer waits.
    assert sim.ledger.account(SLOW).held == 100
    second = await client.recv()
    assert second["11"] == slow["11"] and second["39"] == "00"
    assert time.monotonic() - start >= 0.28
    assert sim.stats.faults == 1


async def test_no_reply_processes_nothing(sim: SimServer, client: IsoClient, mf: MessageFactory) -> None:
    sim.set_faults([FaultRule("no_reply", pan=SLOW, times=1)])
    lost = mf.auth(SLOW, 100)
    await client.send(lost)
    assert await client.nothing_within(0.3)
    assert SLOW not in sim.ledger.accounts
    # Its reversal finds no original; the resend (rule used up) is processed afresh.
    assert (await client.request(mf.reversal(lost)))["39"] == "25"
    assert (await client.request(lost))["39"] == "00"
    assert sim.ledger.account(SLOW).held == 100


async def test_close_drops_the_connection_and_processes_nothing(sim: SimServer, mf: MessageFactory) -> None:
    assert sim.address is not None
    sim.set_faults([{"action": "close", "mti": "0100", "amount": 4242}])
    victim = await IsoClient.connect(sim.address)
    bystander = await IsoClient.connect(sim.address)
    try:
        before = mf.auth(CARD, 1)
        await victim.send(before)
        await victim.send(mf.auth(SLOW, 4242))
        # Answers already due go out first, then the connection closes.
        assert (await victim.recv())["11"] == before["11"]
        assert await victim.is_closed()
        assert SLOW not in sim.ledger.accounts
        assert (await bystander.request(mf.auth(SLOW, 4241)))["39"] == "00"
    finally:
        await victim.close()
        await bystander.close()


async def test_garbage_is_a_framed_non_iso_reply(sim: SimServer, client: IsoClient, mf: MessageFactory) -> None:
    sim.set_faults([{"action": "garbage", "pan": SLOW, "times": 1}])
    req = mf.auth(SLOW, 100)
    await client.send(req)
    frame = await client.recv_frame()
    assert peek_mti(frame) is None
    with pytest.raises(DecodeError):
        client.dialect.codec.decode(frame)
    # Processed all the same: the resend gets the remembered answer.
    assert sim.ledger.account(SLOW).held == 100
    assert (await client.request(req))["39"] == "00"
    assert sim.ledger.account(SLOW).held == 100


async def test_rate_fires_on_about_that_share_of_matches(sim: SimServer, client: IsoClient, mf: MessageFactory) -> None:
    sim.set_faults([{"action": "no_reply", "mti": "0800", "rate": 0.5}])
    codec, framing = client.dialect.codec, client.dialect.framing
    echoes = [mf.network() for _ in range(200)]
    sentinel = mf.auth()
    await client.send_bytes(b"".join(framing.pack(codec.encode(m)) for m in [*echoes, sentinel]))
    answered = 0
    while (await client.recv())["t"] != "0110":
        answered += 1
    assert 60 <= answered <= 140
    assert sim.stats.faults == 200 - answered


def test_the_same_seed_gives_the_same_faults() -> None:
    rules = [FaultRule("no_reply", rate=0.3)]

    def pattern(seed: str) -> list[bool]:
        plan = FaultPlan(rules, seed=seed)
        return [plan.pick({"t": "0800"}) is not None for _ in range(100)]

    first = pattern("42:faults")
    assert first == pattern("42:faults")
    assert first != pattern("43:faults")
    assert 10 <= sum(first) <= 50


def test_a_fault_rule_matches_only_what_it_names() -> None:
    plan = FaultPlan([FaultRule("close", pan=SLOW, amount=4242, mti="0100")], seed=1)
    hit = {"t": "0100", "2": SLOW, "4": "000000004242"}
    assert plan.pick(hit) is not None
    assert plan.pick({**hit, "t": "0200"}) is None
    assert plan.pick({**hit, "2": "4111111111111111"}) is None
    assert plan.pick({**hit, "4": "000000004243"}) is None
    assert plan.pick({"t": "0800"}) is None


async def test_faults_api_replaces_and_lists_rules(sim: SimServer, client: IsoClient, mf: MessageFactory) -> None:
    status, body = await admin_put(sim, "/faults", [{"action": "no_reply", "pan": SLOW, "rate": 1}])
    assert status == 200
    assert body == [{"action": "no_reply", "pan": "424242****4242", "rate": 1.0}]
    assert await admin_get(sim, "/faults") == body
    await client.send(mf.auth(SLOW))
    assert await client.nothing_within(0.2)
    status, body = await admin_put(sim, "/faults", [])
    assert (status, body) == (200, [])
    assert (await client.request(mf.auth(SLOW)))["39"] == "00"


@pytest.mark.parametrize(
    "body",
    [[{"action": "explode"}], {"action": "delay"}, [{"action": "delay", "rate": 2}], [{"action": "delay", "x": 1}]],
)
async def test_faults_api_refuses_bad_rules_and_keeps_the_old_ones(sim: SimServer, body: object) -> None:
    sim.set_faults([{"action": "delay", "delay_ms": 5}])
    status, reply = await admin_put(sim, "/faults", body)
    assert status == 400 and "error" in reply
    assert await admin_get(sim, "/faults") == [{"action": "delay", "rate": 1.0, "delay_ms": 5}]


async def test_faults_from_the_rules_apply_from_the_start(mf: MessageFactory) -> None:
    rules = dataclasses.replace(default_rules(), faults=(FaultRule("no_reply", mti="0800"),))
    async with running_sim(rules=rules, admin_port=None) as sim:
        assert sim.address is not None
        c = await IsoClient.connect(sim.address)
        try:
            await c.send(mf.network())
            assert await c.nothing_within(0.2)
            assert (await c.request(mf.auth()))["39"] == "00"
        finally:
            await c.close()
