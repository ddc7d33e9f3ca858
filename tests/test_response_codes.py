"""DE 39 → REST, end to end, against DESIGN.md's table written out here (not read from schemas/).

``schemas/response_codes.json`` is the code's table; a test that read it too
would agree with any mistake in it. Each row below is the design's
(``/work/shared/DESIGN.md``, "Response codes (DE 39) → REST"): the simulator
is given a card that answers that code, the REST front authorizes with it,
and the HTTP status, failure type, operation status and order status are
what the row says. Everything real: the front, the runtime, PostgreSQL, the
simulator over TCP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from sim_helpers import running_sim
from test_http_e2e import REQUIRED, Front, front  # noqa: F401  (fixture)

from acquirer_sim import SimServer
from acquirer_sim.rules import CardRule, default_rules
from switch.wire.cards import luhn_digit

pytestmark = pytest.mark.timeout(60)

ISSUER_DECLINES = ("05", "14", "51", "54", "55", "57", "61", "62", "65")
# DE 39 -> (operation status, order status, failure_type, HTTP): DESIGN.md's rows, literally.
DESIGN = {
    "00": ("success", "authorized", None, 200),  # approved; order status per operation
    **{code: ("failure", "declined", "declined", 402) for code in ISSUER_DECLINES},
    "A1": ("failure", "declined", "declined", 402),  # soft decline: SCA required
    "59": ("failure", "fraud", "fraud", 402),  # suspected fraud
    "63": ("failure", "fraud", "fraud", 402),
    "91": ("error", "error", "error", 500),  # error / unknown (a code came back: 500, not 504)
    "96": ("error", "error", "error", 500),
}


def card_for(code: str) -> str:
    """A Luhn-valid test PAN of its own per code (BIN 4, so the sim takes it as one of its cards)."""
    payload = "40000099" + f"{sorted(DESIGN).index(code):07d}"
    return payload + luhn_digit(payload)


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    base = default_rules()
    cards = tuple(CardRule(pan=card_for(code), response=code) for code in DESIGN)
    async with running_sim(rules=dataclasses.replace(base, cards=base.cards + cards)) as s:
        yield s


async def test_every_de39_row_of_the_design_reaches_the_merchant_as_the_design_says(front: Front) -> None:  # noqa: F811
    got = {}
    for code in DESIGN:
        status, doc = await front.call("POST", "/orders/authorize", {**REQUIRED, "pan": card_for(code)})
        if status == 200:
            order, failure_type = doc["orders"][0], None
        else:
            failure_type = doc["failure_type"]
            order_status, doc = await front.call("GET", f"/orders/{doc['order_id']}?expand=operations")
            assert order_status == 200, doc
            order = doc["orders"][0]
        (op,) = order["operations"]
        assert op["iso_response_code"] == code, (code, op)
        got[code] = (op["status"], order["status"], failure_type, status)
    assert got == DESIGN
