"""The switch path end to end: operations -> translate -> pool/links -> the real
simulator over TCP on 127.0.0.1 -> results, with the simulator's ledger
(read over its admin HTTP API) checked after each flow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import pytest
from waiting import wait_for

from acquirer_sim import SimConfig, SimServer
from bench.rrn import RrnGenerator
from switch.errors import LinkClosed, RequestTimeout
from switch.link import LinkConfig, LinkState
from switch.money import currency
from switch.pool import Pool
from switch.translate import (
    Authorize,
    Capture,
    Card,
    Credit,
    IsoRequest,
    Merchant,
    OriginalRef,
    Outcome,
    Refund,
    Result,
    Reversal,
    Sale,
    ThreeDSecure,
    build,
    interpret,
)

pytestmark = pytest.mark.timeout(30)

SHOP = Merchant(
    terminal_id="TERM0001",
    merchant_id="MERCHANT0000001",
    mcc="5999",
    name="BOOKSTORE LTD",
    city="MOSCOW",
    country="RU",
    acquirer_id="412345",
)
USD = currency("USD")
NEXT_YEAR = datetime.now(UTC).year + 1


def card(pan: str, **kw: object) -> Card:
    kw.setdefault("expiry_month", 12)
    kw.setdefault("expiry_year", NEXT_YEAR)
    return Card(pan, **kw)  # type: ignore[arg-type]


@dataclass
class Rig:
    sim: SimServer
    pool: Pool
    admin: str
    rrns: RrnGenerator

    async def send(self, op: IsoRequest, *, timeout: float = 2.0) -> tuple[Result, OriginalRef]:
        msg = build(op, now=datetime.now(UTC))
        resp = await self.pool.request(msg, timeout=timeout)
        return interpret(resp), OriginalRef.from_exchange(msg, resp)

    async def authorize(self, pan: str, amount: int, **kw: object) -> tuple[Result, OriginalRef]:
        op = Authorize(merchant=SHOP, card=card(pan), amount=amount, currency=USD, rrn=self.rrns.next(), **kw)  # type: ignore[arg-type]
        return await self.send(op)

    async def ledger(self, pan: str) -> dict[str, object]:
        async with aiohttp.ClientSession() as s, s.get(f"{self.admin}/ledger") as r:
            assert r.status == 200
            doc = await r.json()
        masked = pan[:6] + "****" + pan[-4:]
        found = [c for c in doc["cards"] if c["pan"] == masked]
        assert len(found) == 1, f"{masked} not in ledger"
        return found[0]  # type: ignore[no-any-return]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    sim = SimServer(SimConfig(port=0, admin_port=0, seed=7))
    host, port = await sim.start()
    assert sim.admin_address is not None
    ahost, aport = sim.admin_address
    pool = Pool.connect("sim", LinkConfig(host, port, reconnect_initial=0.02, reconnect_max=0.2), 2)
    pool.start()
    try:
        await pool.wait_ready(5, all_links=True)
        yield Rig(sim, pool, f"http://{ahost}:{aport}", RrnGenerator(node_id=1))
    finally:
        async with asyncio.timeout(5):
            await pool.close(timeout=1)
        await sim.stop()


async def test_test_cards_map_to_the_documented_outcomes_through_the_switch(rig: Rig) -> None:
    cases = {
        "4111111111111111": (Outcome.APPROVED, "00"),
        "2222400060000007": (Outcome.APPROVED, "00"),
        "4276838748917319": (Outcome.APPROVED, "00"),
        "4276990011343663": (Outcome.DECLINED, "05"),
        "5555555555555599": (Outcome.ERROR, "96"),
        "4000000000000002": (Outcome.FRAUD, "59"),
        "4000000000003220": (Outcome.DECLINED, "A1"),
        "4111111111111112": (Outcome.DECLINED, "14"),  # not Luhn
        "6011000990139424": (Outcome.DECLINED, "14"),  # not this issuer's BIN
    }
    results = await asyncio.gather(*(rig.authorize(pan, 100) for pan in cases))
    for (pan, (outcome, code)), (res, _) in zip(cases.items(), results, strict=True):
        assert (res.outcome, res.response_code) == (outcome, code), pan[:6]
        assert (res.auth_code is not None) == (outcome is Outcome.APPROVED)


async def test_soft_decline_approves_with_3ds_data_and_other_rules_apply(rig: Rig) -> None:
    res, _ = await rig.authorize("4000000000003220", 100, three_ds=ThreeDSecure(eci="05", cavv="AAABBBCCC"))
    assert res.response_code == "00"
    res, _ = await rig.authorize("5105105105105100", 10_001)  # balance 100.00
    assert (res.outcome, res.response_code) == (Outcome.DECLINED, "51")
    op = Authorize(merchant=SHOP, card=card("4012888888881881", cvv="999"), amount=1, currency=USD, rrn=rig.rrns.next())
    assert (await rig.send(op))[0].response_code == "N7"
    expired = Card("4111111111111111", expiry_month=1, expiry_year=2020)
    op = Authorize(merchant=SHOP, card=expired, amount=1, currency=USD, rrn=rig.rrns.next())
    assert (await rig.send(op))[0].response_code == "54"


async def test_ledger_adds_up_after_authorize_capture_reverse_sale_and_refund(rig: Rig) -> None:
    pan = "2222400060000007"
    auth, ref = await rig.authorize(pan, 1000)
    assert auth.approved and auth.rrn == ref.rrn
    acct = await rig.ledger(pan)
    opening = int(acct["opening_balance"])  # type: ignore[call-overload]
    assert acct["held"] == 1000 and acct["available"] == opening - 1000

    # Partial capture: 6.00 of 10.00 is debited, the other 4.00 released.
    cap, cap_ref = await rig.send(Capture(merchant=SHOP, card=card(pan), original=ref, amount=600))
    assert cap.approved
    # A second authorization, reversed: its hold goes away.
    auth2, ref2 = await rig.authorize(pan, 500)
    assert auth2.approved
    rev, _ = await rig.send(Reversal(merchant=SHOP, card=card(pan), original=ref2))
    assert rev.approved
    # A sale debits at once; a refund of part of the capture credits back; an OCT credits.
    sale, _ = await rig.send(Sale(merchant=SHOP, card=card(pan), amount=300, currency=USD, rrn=rig.rrns.next()))
    assert sale.approved
    refund, _ = await rig.send(
        Refund(merchant=SHOP, card=card(pan), amount=200, currency=USD, rrn=rig.rrns.next(), original=cap_ref)
    )
    assert refund.approved
    credit, _ = await rig.send(Credit(merchant=SHOP, card=card(pan), amount=50, currency=USD, rrn=rig.rrns.next()))
    assert credit.approved

    acct = await rig.ledger(pan)
    assert acct["held"] == 0
    assert acct["balance"] == opening - 600 - 300 + 200 + 50
    assert acct["available"] == acct["balance"]
    holds = {h["rrn"]: h for h in acct["holds"]}  # type: ignore[attr-defined]
    assert holds[ref.rrn]["status"] == "captured" and holds[ref.rrn]["captured"] == 600
    assert holds[ref.rrn]["auth_code"] == auth.auth_code and holds[ref.rrn]["stan"] == ref.stan
    assert holds[ref2.rrn]["status"] == "released"

    # The reversal repeated as an advice (0420) and its repeat (0421) change nothing.
    for mti in ("0420", "0421"):
        again, _ = await rig.send(Reversal(merchant=SHOP, card=card(pan), original=ref2, mti=mti))
        assert again.response_code == "00"
    assert (await rig.ledger(pan))["balance"] == acct["balance"]


async def test_a_delayed_reply_times_out_and_the_late_answer_reaches_nobody(rig: Rig) -> None:
    rig.sim.set_faults([{"action": "delay", "delay_ms": 400, "pan": "4111111111111111", "times": 1}])
    with pytest.raises(RequestTimeout):
        await rig.send(
            Authorize(merchant=SHOP, card=card("4111111111111111"), amount=1, currency=USD, rrn=rig.rrns.next()),
            timeout=0.1,
        )
    res, _ = await rig.authorize("4276990011343663", 1)  # meanwhile, others get their own answers
    assert res.response_code == "05"
    # The late answer (400 ms) goes to the unmatched-message handler.
    await wait_for(lambda: sum(link.stats.unmatched for link in rig.pool.links) == 1)


async def test_no_reply_close_and_garbage_faults_end_in_typed_errors_and_a_working_link(rig: Rig) -> None:
    rig.sim.set_faults([{"action": "no_reply", "amount": 7001, "times": 1}])
    with pytest.raises(RequestTimeout):
        await rig.send(
            Authorize(merchant=SHOP, card=card("4111111111111111"), amount=7001, currency=USD, rrn=rig.rrns.next()),
            timeout=0.2,
        )
    rig.sim.set_faults([{"action": "garbage", "amount": 7002, "times": 1}])
    with pytest.raises(RequestTimeout):
        await rig.send(
            Authorize(merchant=SHOP, card=card("4111111111111111"), amount=7002, currency=USD, rrn=rig.rrns.next()),
            timeout=0.2,
        )
    assert sum(link.stats.decode_errors for link in rig.pool.links) == 1
    assert all(link.state is LinkState.READY for link in rig.pool.links)  # garbage keeps the link

    rig.sim.set_faults([{"action": "close", "amount": 7003, "times": 1}])
    with pytest.raises(LinkClosed):
        await rig.send(
            Authorize(merchant=SHOP, card=card("4111111111111111"), amount=7003, currency=USD, rrn=rig.rrns.next())
        )
    await rig.pool.wait_ready(5, all_links=True)  # reconnected by itself
    res, _ = await rig.authorize("4111111111111111", 7004)
    assert res.approved


async def test_1000_concurrent_authorizations_through_the_pool_all_get_their_own_answers(rig: Rig) -> None:
    # Random delays reorder the replies; every caller must still get the answer for its card.
    rig.sim.set_faults([{"action": "delay", "delay_ms": 30, "rate": 0.3}])
    pans = ["4111111111111111", "4276990011343663", "4000000000000002", "5555555555555599"] * 250
    expected = {"4111111111111111": "00", "4276990011343663": "05", "4000000000000002": "59", "5555555555555599": "96"}
    results = await asyncio.gather(*(rig.authorize(pan, 1) for pan in pans))
    assert [r.response_code for r, _ in results] == [expected[p] for p in pans]
    assert len({ref.rrn for _, ref in results}) == 1000
