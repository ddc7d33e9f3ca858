"""Oneclick (extra_fields.oneclick): a card kept for the merchant's customer on success, paid with later
without the PAN; never another project's. Real PostgreSQL, the real simulator, the 0100 as it received it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pg
import pytest
import test_orders_fixtures
from test_orders_fixtures import NEXT_YEAR, PAN, Rig, body
from wallet_helpers import Front, open_front

from acquirer_sim import SimServer
from switch.orders.errors import InvalidInput, OrderError, OrderNotFound

database, fresh_dsn, pg_dsn, scratch_dir = pg.database, pg.fresh_dsn, pg.pg_dsn, pg.scratch_dir
rig = test_orders_fixtures.rig

pytestmark = pytest.mark.timeout(60)

OTHER_PAN = "2222400060000007"
DECLINED = "4276990011343663"


def keep(customer: str = "cust42", pan: str = PAN, **oneclick: Any) -> dict[str, Any]:
    return body(pan, extra_fields={"oneclick": {"customer_id": customer, **oneclick}})


def pay(customer: str = "cust42", cvv: str | None = "123", **oneclick: Any) -> dict[str, Any]:
    """An authorize with the customer's kept card: no pan, no expiry, no holder."""
    doc: dict[str, Any] = {
        "amount": "5.00",
        "location": {"ip": "6.6.6.6"},
        "extra_fields": {"oneclick": {"customer_id": customer, **oneclick}},
    }
    if cvv is not None:
        doc["card"] = {"cvv": cvv}
    return doc


async def _invalid(rig: Rig, project: Any, doc: dict[str, Any]) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        await rig.orders.authorize(project, doc)
    return info.value


async def test_an_authorization_with_oneclick_keeps_its_card_for_the_customer_and_says_cf(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, keep())
    assert rig.sent[0]["124"] == "CF"  # the credential is stored now
    rows = await rig.rows("SELECT * FROM oneclick_cards")
    (row,) = rows
    assert (row["project_id"], row["customer_id"], row["order_id"]) == (rig.project.id, "cust42", order.id)
    assert row["pan_mask"] == "411111****1111" and PAN not in str(row) and "123" not in str(row)


async def test_a_later_authorize_pays_with_the_kept_card_without_the_pan(rig: Rig) -> None:
    first = await rig.orders.authorize(rig.project, keep())
    order = await rig.orders.authorize(rig.project, pay())
    assert order.status.value == "authorized" and order.pan_mask == first.pan_mask
    assert order.card_holder == "John Smith"  # the kept card's holder
    wire = rig.sent[1]
    assert (wire["2"], wire["14"], wire["120"]) == (PAN, f"{NEXT_YEAR % 100:02d}12", "123")
    assert (wire["22"], wire["124"]) == ("100", "CU")  # credential on file, cardholder-initiated


async def test_a_merchant_initiated_payment_on_a_kept_card_refers_to_the_order_it_was_kept_from(rig: Rig) -> None:
    first = await rig.orders.authorize(rig.project, keep())
    order = await rig.orders.authorize(rig.project, {**pay(cvv=None), "options": {"exemption_mit": 1}})
    assert rig.sent[-1]["124"] == f"MU{first.rrn}" and "120" not in rig.sent[-1]
    assert order.parent_order_id == first.id


async def test_the_cvv_of_a_kept_card_is_required_unless_the_project_waives_it(rig: Rig) -> None:
    await rig.orders.authorize(rig.project, keep())
    err = await _invalid(rig, rig.project, pay(cvv=None))
    assert err.problems[0].field == "card/cvv"
    lenient = await rig.project_with("lenient", cvv_required=False)
    await rig.orders.authorize(lenient, keep())
    await rig.orders.authorize(lenient, pay(cvv=None))
    assert "120" not in rig.sent[-1]


async def test_a_customer_id_never_reaches_another_projects_cards(rig: Rig) -> None:
    await rig.orders.authorize(rig.project, keep())
    (kept,) = await rig.orders.service.oneclick_cards(rig.project, "cust42")
    other = await rig.project_with("other")
    sent = len(rig.sent)
    err = await _invalid(rig, other, pay())
    assert (err.problems[0].field, err.problems[0].message) == (
        "extra_fields/oneclick/customer_id", "No kept card for this customer"
    )  # fmt: skip
    err = await _invalid(rig, other, pay(card_id=kept.id))
    assert err.problems[0].field == "extra_fields/oneclick/card_id"
    assert len(rig.sent) == sent and await rig.orders.service.oneclick_cards(other, "cust42") == []


async def test_prechecked_0_or_a_declined_authorization_keeps_nothing(rig: Rig) -> None:
    await rig.orders.authorize(rig.project, keep(prechecked=0))
    assert "124" not in rig.sent[0]
    with pytest.raises(OrderError):
        await rig.orders.authorize(rig.project, keep(pan=DECLINED))
    assert await rig.rows("SELECT id FROM oneclick_cards") == []
    err = await _invalid(rig, rig.project, pay())
    assert err.problems[0].message == "No kept card for this customer"


async def test_the_most_recent_card_pays_unless_card_id_names_another_and_a_card_kept_twice_is_one(rig: Rig) -> None:
    await rig.orders.authorize(rig.project, keep())
    await rig.orders.authorize(rig.project, keep(pan=OTHER_PAN))
    await rig.orders.authorize(rig.project, keep())  # the first card again: moved to the top, not duplicated
    cards = await rig.orders.service.oneclick_cards(rig.project, "cust42")
    assert [c.pan_mask for c in cards] == ["411111****1111", "222240****0007"]
    await rig.orders.authorize(rig.project, pay())
    assert rig.sent[-1]["2"] == PAN
    await rig.orders.authorize(rig.project, pay(card_id=cards[1].id))
    assert rig.sent[-1]["2"] == OTHER_PAN


async def test_card_data_next_to_a_kept_card_is_refused(rig: Rig) -> None:
    await rig.orders.authorize(rig.project, keep())
    doc = pay()
    doc["card"]["expiration_month"] = 1
    err = await _invalid(rig, rig.project, doc)
    assert err.problems[0].field == "card/expiration_month"
    err = await _invalid(rig, rig.project, keep(card_id="1"))
    assert err.problems[0].field == "extra_fields/oneclick/card_id"


async def test_the_hosted_page_keeps_a_paid_orders_card_with_oneclick_bind(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, body())
    kept = await rig.orders.service.oneclick_bind(rig.project, order, "page7")
    assert kept.order_id == order.id and kept.pan_mask == "411111****1111"
    other = await rig.project_with("other")
    with pytest.raises(OrderNotFound):
        await rig.orders.service.oneclick_bind(other, order, "page7")
    with pytest.raises(InvalidInput):
        await rig.orders.service.oneclick_bind(rig.project, order, "not valid!")


# -- over HTTP ------------------------------------------------------------------------


@pytest.fixture
async def front(sim: SimServer, fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Front]:
    async for f in open_front(sim, fresh_dsn, scratch_dir):
        yield f


async def test_over_http_a_kept_card_pays_without_pan_and_lists_masked_for_its_project_only(front: Front) -> None:
    status, doc = await front.call("POST", "/orders/authorize", keep("c1"))
    assert status == 200, doc
    status, doc = await front.call("POST", "/orders/authorize", pay("c1"))
    assert status == 200, doc
    assert doc["orders"][0]["pan"] == "411111****1111" and front.sent[-1]["124"] == "CU"
    status, doc = await front.call("POST", "/orders/authorize", pay("c1", cvv=None))
    assert status == 422 and doc["errors"] == [
        {"attribute": "required", "details": ["(true)"], "message": "Required", "uri": "#/card/cvv"}
    ]
    status, doc = await front.call("GET", "/customers/c1/cards")
    assert status == 200
    (card,) = doc["cards"]
    assert (card["pan"], card["expiration"], card["type"]) == ("411111****1111", f"12/{NEXT_YEAR % 100:02d}", "visa")
    status, doc = await front.call("GET", "/customers/c1/cards", headers=front.other)
    assert (status, doc) == (200, {"cards": []})
    status, doc = await front.call("POST", "/orders/authorize", pay("c1"), headers=front.other)
    assert status == 422 and doc["errors"][0]["uri"] == "#/extra_fields/oneclick/customer_id"
