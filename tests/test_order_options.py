"""No field silently ignored: options.terminal (DE 41 among the project's terminals), options.exemption_mit and
recurring_details (DE 124), the project's cvv/holder settings; what cannot apply is a 422 naming it. Real
PostgreSQL and simulator; the fields checked as the simulator received them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pg
import pytest
import test_orders_fixtures
from test_orders_fixtures import PAN, Rig, body
from wallet_helpers import Front, open_front

from acquirer_sim import SimServer
from switch.orders.errors import InvalidInput
from switch.store import ProjectSettings

database, fresh_dsn, pg_dsn, scratch_dir = pg.database, pg.fresh_dsn, pg.pg_dsn, pg.scratch_dir
rig = test_orders_fixtures.rig

pytestmark = pytest.mark.timeout(60)

TRACE = "MCC8454300719"  # the seed's trace_id


async def _invalid(call: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        await call
    return info.value


# -- options.terminal ----------------------------------------------------------------------


async def test_options_terminal_chooses_de_41_among_the_projects_terminals_and_follow_ups_keep_it(rig: Rig) -> None:
    shop = await rig.project_with("shop2", terminals=("TERM0002",))
    order = await rig.orders.authorize(shop, body(options={"terminal": "TERM0002"}))
    await rig.orders.charge(shop, order.id)
    assert [(m["t"], m["41"]) for m in rig.sent] == [("0100", "TERM0002"), ("0220", "TERM0002")]
    await rig.orders.authorize(shop, body(options={"terminal": ""}))  # the seed's example: the default terminal
    await rig.orders.rebill(shop, order.id, {"amount": "1.00", "options": {"terminal": "TERM0002"}})
    await rig.orders.credit(shop, None, {"amount": "1.00", "pan": PAN, "options": {"terminal": "TERM0002"}})
    assert [m["41"] for m in rig.sent[2:]] == [f"{shop.settings.terminal_id:<8}", "TERM0002", "TERM0002"]


async def test_a_terminal_that_is_not_the_projects_is_refused_and_nothing_is_sent(rig: Rig) -> None:
    other = await rig.project_with("other", terminals=("TERM0009",))
    assert other.settings.terminals == ("TERM0009",)
    err = await _invalid(rig.orders.authorize(rig.project, body(options={"terminal": "TERM0009"})))
    assert (err.problems[0].field, err.problems[0].message) == ("options/terminal", "Unknown terminal")
    assert rig.sent == []


# -- options.exemption_mit and recurring_details -> DE 124 -----------------------------------


async def test_exemption_mit_with_a_parent_order_is_a_merchant_initiated_payment_referring_to_its_first_rrn(
    rig: Rig,
) -> None:
    first = await rig.orders.authorize(rig.project, body(options={"recurring": 1}))
    mit = await rig.orders.authorize(
        rig.project,
        body(options={"exemption_mit": 1, "recurring": 1}, recurring_details={"parent_order_id": first.id}),
    )
    wire = rig.sent[1]
    assert (wire["22"], wire["124"]) == ("100", f"MR{first.rrn}")
    assert "120" not in wire  # a merchant-initiated payment carries no CVV
    assert mit.parent_order_id == first.id and mit.initial_rrn == first.rrn
    await rig.orders.rebill(rig.project, mit.id, {"amount": "1.00"})
    assert rig.sent[-1]["124"] == f"MR{first.rrn}"  # the series keeps its first transaction


async def test_a_trace_id_is_the_reference_and_the_indicator_names_initiator_and_reason(rig: Rig) -> None:
    await rig.orders.authorize(rig.project, body(options={"exemption_mit": "1"}, recurring_details={"trace_id": TRACE}))
    await rig.orders.authorize(rig.project, body(recurring_details={"indicator": "mi", "trace_id": TRACE}))
    await rig.orders.authorize(rig.project, body(recurring_details={"indicator": "CU"}))
    assert [m["124"] for m in rig.sent] == [f"MU{TRACE}", f"MI{TRACE}", "CU"]


async def test_the_networks_mit_and_cit_indicators_of_the_seeds_form_map_to_de124(rig: Rig) -> None:
    # seeds/003's example is "m101": Mastercard's MIT indicator (M101 unscheduled credential on file).
    for indicator in ("m101", "M103", "m104", "M206"):
        await rig.orders.authorize(rig.project, body(recurring_details={"indicator": indicator, "trace_id": TRACE}))
    for indicator in ("c101", "C103"):  # cardholder-initiated: no reference
        await rig.orders.authorize(rig.project, body(recurring_details={"indicator": indicator}))
    assert [m["124"][:2] for m in rig.sent] == ["MU", "MR", "MI", "MU", "CU", "CR"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"options": {"exemption_mit": 1}}, "options/exemption_mit"),
        ({"recurring_details": {"parent_order_id": "12345678901234567"}}, "recurring_details/parent_order_id"),
        ({"recurring_details": {"trace_id": TRACE}}, "recurring_details/trace_id"),
        ({"recurring_details": {"indicator": "m999", "trace_id": TRACE}}, "recurring_details/indicator"),
        ({"recurring_details": {"indicator": "c205"}}, "recurring_details/indicator"),
        ({"recurring_details": {"indicator": "MF", "trace_id": TRACE}}, "recurring_details/indicator"),
        ({"options": {"exemption_mit": 1}, "recurring_details": {"indicator": "CU"}}, "recurring_details/indicator"),
        ({"recurring_details": {"trace_id": "not a trace"}}, "recurring_details/trace_id"),
    ],
)
async def test_stored_credential_data_that_cannot_apply_is_refused_naming_it(
    rig: Rig, extra: dict[str, Any], field: str
) -> None:
    err = await _invalid(rig.orders.authorize(rig.project, body(**extra)))
    assert err.problems[0].field == field and rig.sent == []


async def test_a_parent_order_of_another_project_is_not_found(rig: Rig) -> None:
    other = await rig.project_with("other")
    theirs = await rig.orders.authorize(other, body())
    doc = body(options={"exemption_mit": 1}, recurring_details={"parent_order_id": theirs.id})
    err = await _invalid(rig.orders.authorize(rig.project, doc))
    assert (err.problems[0].field, err.problems[0].message) == ("recurring_details/parent_order_id", "Order not found")
    assert len(rig.sent) == 1


async def test_a_rebill_takes_trace_id_and_indicator_and_refuses_what_a_mit_cannot_have(rig: Rig) -> None:
    parent = await rig.orders.authorize(rig.project, body())
    await rig.orders.rebill(rig.project, parent.id, {"amount": "1.00", "recurring_details": {"trace_id": TRACE}})
    await rig.orders.rebill(rig.project, parent.id, {"amount": "1.00", "recurring_details": {"indicator": "MI"}})
    assert [m["124"] for m in rig.sent[1:]] == [f"MU{TRACE}", f"MI{parent.rrn}"]
    for doc, field in (
        ({"options": {"exemption_mit": 0}}, "options/exemption_mit"),
        ({"options": {"force3d": 1}}, "options/force3d"),
        ({"options": {"return_url": "http://shop.com"}}, "options/return_url"),
        ({"recurring_details": {"indicator": "CU"}}, "recurring_details/indicator"),
        ({"recurring_details": {"parent_order_id": "12345678901234567"}}, "recurring_details/parent_order_id"),
    ):
        err = await _invalid(rig.orders.rebill(rig.project, parent.id, {"amount": "1.00", **doc}))
        assert err.problems[0].field == field
    off = {"force3d": "0", "return_url": "", "exemption_mit": 1}  # what is off, empty or true of a MIT is no conflict
    await rig.orders.rebill(rig.project, parent.id, {"amount": "1.00", "options": off})
    assert len(rig.sent) == 4


async def test_a_credit_takes_the_terminal_and_refuses_the_rest(rig: Rig) -> None:
    for doc, field in (
        ({"options": {"auto_charge": 1}}, "options/auto_charge"),
        ({"options": {"exemption_mit": 1}}, "options/exemption_mit"),
        ({"recurring_details": {"trace_id": TRACE}}, "recurring_details/trace_id"),
        ({"card": {"cvv": "123"}}, "card/cvv"),
    ):
        err = await _invalid(rig.orders.credit(rig.project, None, {"amount": "1.00", "pan": PAN, **doc}))
        assert err.problems[0].field == field
    assert rig.sent == []


# -- cvv and holder, as the project says --------------------------------------------------


@pytest.fixture
async def front(sim: SimServer, fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Front]:
    lenient = ProjectSettings(terminal_id="TERM0001", merchant_id="MERCHANT0000001", cvv_required=False,
                              holder_required=False, terminals=("TERM0002",))  # fmt: skip
    async for f in open_front(sim, fresh_dsn, scratch_dir, lenient):
        yield f


def _bare() -> dict[str, Any]:
    doc = body()
    doc["card"] = {"expiration_month": 12, "expiration_year": doc["card"]["expiration_year"]}
    return doc


async def test_a_project_that_waives_cvv_and_holder_authorizes_without_them_and_others_require_both(
    front: Front,
) -> None:
    status, doc = await front.call("POST", "/orders/authorize", _bare())
    assert status == 200, doc
    assert "120" not in front.sent[0] and "holder" not in doc["orders"][0]["card"]
    status, doc = await front.call("POST", "/orders/authorize", _bare(), headers=front.other)
    assert status == 422
    assert [e["uri"] for e in doc["errors"]] == ["#/card/cvv", "#/card/holder"]
    assert len(front.sent) == 1
    # A merchant-initiated payment has no cardholder to give a CVV, even where the project requires one.
    status, doc = await front.call("POST", "/orders/authorize", body(), headers=front.other)
    mit = body(options={"exemption_mit": 1}, recurring_details={"parent_order_id": doc["orders"][0]["id"]})
    del mit["card"]["cvv"]
    status, doc = await front.call("POST", "/orders/authorize", mit, headers=front.other)
    assert status == 200, doc
    assert front.sent[-1]["124"].startswith("MU") and "120" not in front.sent[-1]


async def test_over_http_terminal_and_stored_credential_reach_the_wire_and_unknown_ones_get_the_seeds_422(
    front: Front,
) -> None:
    status, doc = await front.call("POST", "/orders/authorize", body(options={"terminal": "TERM0002"}))
    assert status == 200 and front.sent[-1]["41"] == "TERM0002"
    parent = doc["orders"][0]["id"]
    mit = body(options={"exemption_mit": 1}, recurring_details={"parent_order_id": parent, "trace_id": TRACE})
    status, doc = await front.call("POST", "/orders/authorize", mit)
    assert status == 200 and front.sent[-1]["124"] == f"MU{TRACE}"
    status, doc = await front.call("POST", "/orders/authorize", body(options={"terminal": "NOPE"}))
    assert (status, doc) == (
        422,
        {
            "errors": [{"message": "Unknown terminal", "uri": "#/options/terminal"}],
            "failure_type": "validation",
            "failure_message": "Validation failed",
            "order_id": None,
        },
    )
    assert len(front.sent) == 2
