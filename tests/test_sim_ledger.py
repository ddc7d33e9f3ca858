"""acquirer_sim books over real sockets, read back through GET /ledger."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sim_helpers import IsoClient, MessageFactory, admin_get, running_sim

from acquirer_sim import CardRule, SimServer, default_rules
from switch.wire.codec import Message

PAN = "4242424242424242"
MASKED = "424242****4242"


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    base = default_rules()
    rules = dataclasses.replace(base, cards=(*base.cards, CardRule(PAN, balance=100_000)))
    async with running_sim(rules=rules) as s:
        yield s


async def card_books(sim: SimServer, masked: str = MASKED) -> dict[str, Any]:
    books = await admin_get(sim, "/ledger")
    (card,) = [c for c in books["cards"] if c["pan"] == masked]
    return card


async def approve(client: IsoClient, msg: Message) -> Message:
    resp = await client.request(msg)
    assert resp["39"] == "00", resp["39"]
    return resp


async def test_books_add_up_after_mixed_flows(sim: SimServer, client: IsoClient, mf: MessageFactory) -> None:
    # Full capture.
    a1 = mf.auth(PAN, 1_000)
    r1 = await approve(client, a1)
    cap = await client.request(mf.capture(a1, 1_000, r1["38"]))
    assert (cap["t"], cap["39"]) == ("0230", "00")
    # Partial capture: the rest of the hold is released.
    a2 = mf.auth(PAN, 2_000)
    await approve(client, a2)
    assert (await client.request(mf.capture(a2, 1_500)))["39"] == "00"
    # Reversed authorization.
    a3 = mf.auth(PAN, 3_000)
    await approve(client, a3)
    rev = await client.request(mf.reversal(a3))
    assert (rev["t"], rev["39"]) == ("0410", "00")
    # Capture beyond the hold is refused; the hold is then reversed by advice.
    a4 = mf.auth(PAN, 500)
    await approve(client, a4)
    assert (await client.request(mf.capture(a4, 600)))["39"] == "13"
    advice = await client.request(mf.reversal(a4, mti="0420"))
    assert (advice["t"], advice["39"]) == ("0430", "00")
    # A reversed sale, a sale that stays, a refund and an OCT credit.
    s1 = mf.sale(PAN, 700)
    assert (await approve(client, s1))["t"] == "0210"
    assert (await client.request(mf.reversal(s1)))["39"] == "00"
    await approve(client, mf.sale(PAN, 800))
    await approve(client, mf.refund(PAN, 300))
    await approve(client, mf.credit(PAN, 200))
    # A hold left open.
    a5 = mf.auth(PAN, 400)
    await approve(client, a5)
    # Unknown originals: answered 25, no effect.
    ghost = mf.auth(PAN, 50)
    assert (await client.request(mf.capture(ghost, 50)))["39"] == "25"
    assert (await client.request(mf.reversal(ghost)))["39"] == "25"

    card = await card_books(sim)
    assert card["opening_balance"] == 100_000
    assert card["totals"] == {"captured": 2_500, "sold": 800, "refunded": 300, "credited": 200, "reversals": 3}
    assert card["balance"] == 100_000 - 2_500 - 800 + 300 + 200
    assert card["held"] == 400
    assert card["available"] == card["balance"] - 400
    holds = {h["stan"]: h for h in card["holds"]}
    assert (holds[a1["11"]]["status"], holds[a1["11"]]["captured"]) == ("captured", 1_000)
    assert (holds[a2["11"]]["status"], holds[a2["11"]]["captured"]) == ("captured", 1_500)
    assert holds[a3["11"]]["status"] == "released"
    assert holds[a4["11"]]["status"] == "released"
    assert holds[a5["11"]]["status"] == "held"
    assert holds[a1["11"]]["auth_code"] == r1["38"]
    assert holds[a1["11"]]["rrn"] == a1["37"] and holds[a1["11"]]["currency"] == "840"
    assert [c["amount"] for c in card["captures"]] == [1_000, 1_500]
    assert [(s["amount"], s["reversed"]) for s in card["sales"]] == [(700, True), (800, False)]
    assert [r["amount"] for r in card["refunds"]] == [300]
    assert [c["amount"] for c in card["credits"]] == [200]
    assert sorted(r["original"]["stan"] for r in card["reversals"]) == sorted([a3["11"], a4["11"], s1["11"]])
    # Reconciliation identity, from the published numbers alone.
    t = card["totals"]
    assert card["balance"] == card["opening_balance"] - t["captured"] - t["sold"] + t["refunded"] + t["credited"]
    assert card["held"] == sum(h["amount"] for h in card["holds"] if h["status"] == "held")


async def test_ledger_never_shows_a_full_pan(sim: SimServer, client: IsoClient, mf: MessageFactory) -> None:
    await approve(client, mf.auth(PAN, 100))
    await approve(client, mf.auth("4111111111111111", 100))
    text = json.dumps(await admin_get(sim, "/ledger"))
    assert PAN not in text and "4111111111111111" not in text
    assert MASKED in text and "411111****1111" in text


async def test_a_resent_authorization_has_one_effect(sim: SimServer, client: IsoClient, mf: MessageFactory) -> None:
    req = mf.auth(PAN, 1_234)
    first = await approve(client, req)
    again = await approve(client, req)  # same DE 41, 11, 7, MTI class
    repeat = await approve(client, {**req, "t": "0101"})
    assert first["38"] == again["38"] == repeat["38"]
    assert repeat["t"] == "0110"
    card = await card_books(sim)
    assert card["held"] == 1_234 and len(card["holds"]) == 1
    assert (await admin_get(sim, "/stats"))["repeats"] == 2


async def test_reversal_advice_and_its_repeat_have_one_effect(
    sim: SimServer, client: IsoClient, mf: MessageFactory
) -> None:
    sale = mf.sale(PAN, 5_000)
    await approve(client, sale)
    advice = mf.reversal(sale, mti="0420")
    first = await client.request(advice)
    # The 0421 of a store-and-forward queue: same original, new DE 11 and DE 7.
    repeat = await client.request(mf.reversal(sale, mti="0421"))
    # And the very same 0420 sent again.
    resent = await client.request(advice)
    # A late 0400 for the same original.
    late = await client.request(mf.reversal(sale, mti="0400"))
    assert [r["39"] for r in (first, repeat, resent, late)] == ["00"] * 4
    assert [r["t"] for r in (first, repeat, resent, late)] == ["0430", "0430", "0430", "0410"]
    card = await card_books(sim)
    assert card["balance"] == 100_000 and card["totals"]["sold"] == 0
    assert len(card["reversals"]) == 1


async def test_reversing_an_authorization_after_capture_undoes_both(
    sim: SimServer, client: IsoClient, mf: MessageFactory
) -> None:
    auth = mf.auth(PAN, 900)
    await approve(client, auth)
    await approve(client, mf.capture(auth, 900))
    assert (await card_books(sim))["balance"] == 99_100
    await approve(client, mf.reversal(auth))
    card = await card_books(sim)
    assert (card["balance"], card["held"], card["totals"]["captured"]) == (100_000, 0, 0)
    assert card["holds"][0]["status"] == "released"
    assert card["captures"][0]["reversed"] is True
    # The capture cannot be reversed a second time, nor the hold captured again.
    assert (await client.request(mf.capture(auth, 100)))["39"] == "12"


async def test_reversing_a_capture_puts_the_hold_back(sim: SimServer, client: IsoClient, mf: MessageFactory) -> None:
    auth = mf.auth(PAN, 900)
    await approve(client, auth)
    cap = mf.capture(auth, 600)
    await approve(client, cap)
    await approve(client, mf.reversal(cap))
    card = await card_books(sim)
    assert (card["balance"], card["held"], card["holds"][0]["status"]) == (100_000, 900, "held")
    # Captured anew, once; a second completion is acknowledged without effect.
    await approve(client, mf.capture(auth, 900))
    await approve(client, mf.capture(auth, 900))
    card = await card_books(sim)
    assert (card["balance"], card["held"], card["totals"]["captured"]) == (99_100, 0, 900)


async def test_capture_of_a_released_hold_is_refused(sim: SimServer, client: IsoClient, mf: MessageFactory) -> None:
    auth = mf.auth(PAN, 100)
    await approve(client, auth)
    await approve(client, mf.reversal(auth))
    assert (await client.request(mf.capture(auth, 100)))["39"] == "12"
    sale = mf.sale(PAN, 100)
    await approve(client, sale)
    assert (await client.request(mf.capture(sale, 100)))["39"] == "12"  # not an authorization


async def test_a_refund_undone_by_reversal(sim: SimServer, client: IsoClient, mf: MessageFactory) -> None:
    refund = mf.refund(PAN, 250)
    await approve(client, refund)
    await approve(client, mf.reversal(refund))
    card = await card_books(sim)
    assert (card["balance"], card["totals"]["refunded"]) == (100_000, 0)
    assert card["refunds"][0]["reversed"] is True
    assert card["reversals"][0]["effect"] == "refund_undone"


async def test_the_ledger_in_process_matches_the_admin_view(
    sim: SimServer, client: IsoClient, mf: MessageFactory
) -> None:
    await approve(client, mf.auth(PAN, 321))
    acct = sim.ledger.account(PAN)
    assert (acct.held, acct.available) == (321, 100_000 - 321)
    assert sim.ledger.snapshot() == await admin_get(sim, "/ledger")
