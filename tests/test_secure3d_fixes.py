"""3-D Secure after the review (issue 11, second batch): no RRN and no rebill for an order that never reached the
issuer; a completion that fails after its session was taken ends the order; complete3d20 without a CRes;
3-D Secure 2's data on an authorization without 3-D Secure; the hosted page's terminal through 3-D Secure.

The real front, runtime on PostgreSQL, simulator with its DS and ACS (tests/secure3d_rig.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import secure3d_rig
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from secure3d_rig import BROWSER, NEXT_YEAR, Rig, Shopper, body, forms_of, replace_secure3d
from waiting import wait_for

from switch.orders.errors import IssuerError
from switch.orders.requests import CreateRequest, PageOptions
from switch.secure3d import Callbacks
from switch.store import ProjectSettings
from switch.translate import Card
from switch.wire.threeds import Signer

pytestmark = pytest.mark.timeout(60)

VISA = "4111111111111111"
REJECTED = "4000000000009235"  # 3DS2: frictionless N
RETURN = "https://shop.example/return"


@pytest.fixture
async def rig(fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Rig]:  # noqa: F811
    async for r in secure3d_rig.open_rig(fresh_dsn, scratch_dir):
        yield r


@pytest.fixture
async def shopper() -> AsyncIterator[Shopper]:
    async with aiohttp.ClientSession() as session:
        yield Shopper(session)


async def _order(rig: Rig, order_id: str) -> dict[str, Any]:
    status, doc = await rig.call("GET", f"/orders/{order_id}?expand=secure3d,operations")
    assert status == 200, doc
    order: dict[str, Any] = doc["orders"][0]
    return order


def _v2(pan: str, **secure: Any) -> dict[str, Any]:
    return body(pan, options={"return_url": RETURN}, secure3d={"browser_details": BROWSER, **secure})


async def _challenge_v2(rig: Rig, shopper: Shopper) -> dict[str, Any]:
    """3DS2 with a forced challenge, through the method: the prepared order with its form3d (creq)."""
    status, doc = await rig.call("POST", "/orders/authorize", _v2(VISA, force_challenge=1))
    assert status == 201, doc
    await shopper.method(doc["method3d_params"]["method_url"], doc["method3d_params"]["method_data"])
    status, doc = await rig.call("POST", f"/orders/{doc['order_id']}/resume")
    assert status == 201, doc
    order: dict[str, Any] = doc["orders"][0]
    return order


# -- item 2: no RRN, no rebill, for an order that never reached the issuer ---------------------------------


async def _refused_rebill(rig: Rig, order_id: str) -> None:
    status, doc = await rig.call("POST", f"/orders/{order_id}/rebill", {"amount": "1.00", "cvv": "123"})
    assert status == 402, doc
    assert doc["failure_type"] == "rejected" and doc["failure_message"] == "Order has no transaction to repeat"
    assert doc["order_id"] == order_id
    mit = body(
        VISA,
        options={"exemption_mit": 1, "force3d": 0},
        recurring_details={"parent_order_id": order_id},
    )
    status, doc = await rig.call("POST", "/orders/authorize", mit)
    assert status == 422 and [e["uri"] for e in doc["errors"]] == ["#/recurring_details/parent_order_id"], doc
    assert rig.iso("0100") == []


async def test_a_failed_3ds1_challenge_leaves_no_rrn_and_its_order_cannot_be_rebilled(
    rig: Rig, shopper: Shopper
) -> None:
    status, doc = await rig.call("POST", "/orders/authorize", body(VISA, options={"return_url": RETURN}))
    assert status == 201, doc
    order = doc["orders"][0]
    assert order.get("rrn") is None  # nothing was sent: no RRN yet
    await shopper.through_acs(order["form3d"], "9999")
    done = await _order(rig, order["id"])
    assert done["status"] == "declined" and done.get("rrn") is None and done["operations"] == []
    await _refused_rebill(rig, order["id"])


async def test_a_frictionless_rejection_leaves_no_rrn_and_its_order_cannot_be_rebilled(
    rig: Rig, shopper: Shopper
) -> None:
    status, doc = await rig.call("POST", "/orders/authorize", _v2(REJECTED))
    if status == 201:  # the card's 3DS Method first
        await shopper.method(doc["method3d_params"]["method_url"], doc["method3d_params"]["method_data"])
        status, doc = await rig.call("POST", f"/orders/{doc['order_id']}/resume")
    assert status == 402, doc
    done = await _order(rig, doc["order_id"])
    assert done["status"] == "declined" and done["secure3d"]["scenario"] == "rejected" and done.get("rrn") is None
    await _refused_rebill(rig, doc["order_id"])


async def test_a_3ds_order_authorized_after_its_challenge_has_the_0100s_rrn_and_can_be_rebilled(
    rig: Rig, shopper: Shopper
) -> None:
    status, doc = await rig.call("POST", "/orders/authorize", body(VISA, options={"return_url": RETURN}))
    order = doc["orders"][0]
    await shopper.through_acs(order["form3d"], "1234")
    done = await _order(rig, order["id"])
    (first,) = rig.iso("0100")
    assert done["status"] == "authorized" and done["rrn"] == first["37"]
    status, doc = await rig.call("POST", f"/orders/{order['id']}/rebill", {"amount": "1.00", "cvv": "123"})
    assert status == 200, doc
    assert rig.iso("0100")[1]["124"].endswith(first["37"])  # DE 124 names the first transaction's RRN


# -- item 3: a completion that fails after the session is taken ends the order ----------------------------


async def test_a_completion_the_translator_refuses_ends_the_order_error_instead_of_leaving_it_prepared(
    rig: Rig,
) -> None:
    status, doc = await rig.call("POST", "/orders/authorize", body(VISA, options={"return_url": RETURN}))
    order = doc["orders"][0]
    signer = Signer.load(rig.key_dir / "acs_signing.pem")  # the ACS's own key: a PaRes with a 3-digit ECI
    pares = signer.sign(
        {
            "messageType": "PaRes",
            "xid": order["secure3d"]["xid"],
            "status": "Y",
            "eci": "123",
            "cavv": "AAABBZEEBgAAAAAAAAQGAAAAAAA=",
            "amount": "9.99",
            "currency": "USD",
        }
    )
    status, doc = await rig.call("POST", f"/orders/{order['id']}/complete", {"PaRes": pares})
    assert status == 422 and doc["order_id"] == order["id"], doc
    assert "ECI" in doc["errors"][0]["message"], doc
    done = await _order(rig, order["id"])
    assert done["status"] == "error" and done["operations"] == [] and done.get("rrn") is None
    assert rig.iso("0100") == []
    status, doc = await rig.call("POST", f"/orders/{order['id']}/complete", {"PaRes": pares})
    assert status == 402 and doc["failure_message"] == "Order already completed"


# -- item 4: complete3d20 without a CRes ------------------------------------------------------------------


async def test_complete3d20_without_a_cres_completes_from_the_rreq_and_before_one_answers_422(
    rig: Rig, shopper: Shopper
) -> None:
    order = await _challenge_v2(rig, shopper)
    status, doc = await rig.call("POST", f"/orders/{order['id']}/complete3d20")  # the seed's example: no body
    assert status == 422 and doc["errors"][0]["message"] == "No RReq result for this order yet", doc
    assert doc["order_id"] == order["id"]
    assert (await _order(rig, order["id"]))["status"] == "prepared" and rig.iso("0100") == []

    form = order["form3d"]  # the cardholder passes the challenge: the ACS sends its RReq; the CRes is not posted
    _, text, _ = await shopper.post(form["action"], {k: form[k] for k in ("creq", "threeDSSessionData")})
    (challenge,) = forms_of(text)
    await shopper.submit(challenge, form["action"], code="1234")
    status, doc = await rig.call("POST", f"/orders/{order['id']}/complete3d20", {})
    assert status == 200 and doc["orders"][0]["status"] == "authorized", doc
    (msg,) = rig.iso("0100")
    assert msg["121"] == "05" and msg["123"] == doc["orders"][0]["secure3d"]["ds_trans_id"]


# -- item 5: 3-D Secure 2's data where 3-D Secure does not run ----------------------------------------------


@pytest.mark.parametrize(
    ("secure", "fields"),
    [
        ({"browser_details": BROWSER}, ["#/secure3d/browser_details"]),
        ({"force_challenge": 1}, ["#/secure3d/force_challenge"]),
        (
            {"browser_details": BROWSER, "force_challenge": 1},
            ["#/secure3d/browser_details", "#/secure3d/force_challenge"],
        ),
    ],
)
async def test_browser_details_or_force_challenge_without_force3d_is_a_422_naming_them(
    rig: Rig, secure: dict[str, Any], fields: list[str]
) -> None:
    status, doc = await rig.call("POST", "/orders/authorize", body(VISA, options={"force3d": 0}, secure3d=secure))
    assert status == 422 and doc["failure_type"] == "validation", doc
    assert [e["uri"] for e in doc["errors"]] == fields
    assert "force3d" in doc["errors"][0]["message"] and rig.iso("0100") == []


def _links(rig: Rig) -> Callbacks:
    return Callbacks(
        term_url=f"{rig.base}/complete/secure3d",
        notification_url=f"{rig.base}/complete/secure3d20",
        rreq_url=f"{rig.base}/secure3d/rreq",
        method_done_url=f"{rig.base}/secure3d/method-done",
    )


# -- item 1: a page's attempt that fails before anything is sent ----------------------------------------------


async def test_a_page_payment_failing_before_anything_is_sent_takes_its_card_off_so_the_cardholder_may_retry(
    rig: Rig,
) -> None:
    project = await rig.runtime.projects.by_login("project")
    assert project is not None
    pages = rig.runtime.pages
    _, token = await pages.create(project, CreateRequest(amount=Decimal("9.99"), page=PageOptions(force3d=True)))
    card = Card(VISA, expiry_month=12, expiry_year=NEXT_YEAR, cvv="123", holder="John Smith")
    working = rig.runtime.secure3d
    replace_secure3d(rig, ds_url="http://127.0.0.1:9/ds")  # the directory server down: nothing listens there
    with pytest.raises(IssuerError):
        await pages.pay(token, card, links=_links(rig))
    view = await pages.view(token)
    assert view.closed is None and view.order.pan_mask is None and view.order.status.value == "new"
    down = rig.runtime.secure3d
    assert down is not None
    await down.close()  # its own DS client
    rig.runtime.secure3d = working
    view = await pages.pay(token, card, links=_links(rig))
    assert view.closed == "pending" and view.challenge is not None and view.order.pan_mask == "411111****1111"


# -- item 6: the hosted page's terminal, through 3-D Secure ---------------------------------------------------


async def test_a_pages_terminal_is_the_0100s_de_41_after_3ds(rig: Rig, shopper: Shopper) -> None:
    shop = ProjectSettings(terminal_id="TERM0001", merchant_id="MERCHANT0000002", terminals=("TERM0002",))
    project, _ = await rig.runtime.projects.create("shop2", shop)
    pages = rig.runtime.pages
    req = CreateRequest(amount=Decimal("9.99"), page=PageOptions(force3d=True, terminal="TERM0002"))
    _, token = await pages.create(project, req)
    card = Card(VISA, expiry_month=12, expiry_year=NEXT_YEAR, cvv="123", holder="John Smith")
    view = await pages.pay(token, card, links=_links(rig))
    assert view.closed == "pending" and view.challenge is not None
    form = {k: str(v) for k, v in view.challenge.form3d.items()}
    await shopper.through_acs(form, "1234")
    msg = await wait_for(lambda: rig.iso("0100") or None)
    assert msg[0]["41"] == "TERM0002" and msg[0]["121"] == "05"
