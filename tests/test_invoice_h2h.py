"""Test-mode routing and the host-to-host card services of invoices (issue 12 items 1 and 5), end to end: the
invoice API over HTTP -> the real runtime (PostgreSQL, vault, group writer, SAF) -> two real simulators over
TCP, one live and one for test mode, plus a destination nobody listens on.

Routing of the rig: ``[routing] default = "live"``, ``test = "test"``; ``[[routes]] bins = "37"`` go to
``down`` (a closed port). Test-mode invoices reach the test simulator whatever the card; live ones follow
the BIN table.
"""

from __future__ import annotations

import base64
import logging
import secrets
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from sim_helpers import running_sim
from test_http_e2e import Front, _Recorder, basic
from test_invoices import body, keys_of, pay
from waiting import wait_for

from acquirer_sim import SimServer
from http_front import FrontConfig, create_app
from switch.config import SwitchConfig
from switch.runtime import RuntimeConfig, open_runtime
from switch.store import DbConfig, ProjectSettings
from switch.wire.codec import Message

pytestmark = pytest.mark.timeout(90)

PAN, CVV = "4111111111111111", "987"
DECLINED_PAN = "4276990011343663"  # the simulator answers 05
ERROR_PAN = "5555555555555599"  # 96: system malfunction
DOWN_PAN = "378282246310005"  # routed to the destination nobody listens on
SERVICE = "payment_card_usd_h2h"


@dataclass
class Rig:
    front: Front  # its sim is the live one
    live: list[Message]  # what each simulator was asked
    test: list[Message]
    test_sim: SimServer


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def rig(sim: SimServer, fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Rig]:  # noqa: F811
    async with running_sim(admin_port=None) as test_sim:
        assert sim.address is not None and test_sim.address is not None
        dest = {"links": 1, "echo_interval": 0.0}
        switch = SwitchConfig.from_dict(
            {
                "destinations": [
                    {"name": "live", "host": sim.address[0], "port": sim.address[1], **dest},
                    {"name": "test", "host": test_sim.address[0], "port": test_sim.address[1], **dest},
                    {"name": "down", "host": "127.0.0.1", "port": closed_port(), **dest},
                ],
                "routing": {"default": "live", "test": "test"},
                "routes": [{"bins": "37", "destination": "down"}],
            }
        )
        runtime = await open_runtime(
            RuntimeConfig(
                db=DbConfig(url=fresh_dsn, data_dir=scratch_dir, min_size=1, max_size=5),
                switch=switch,
                request_timeout=1.0,
                close_timeout=2.0,
                ready_timeout=0.2,  # "down" never signs on: do not wait for it
                id_block_size=50,
                env={"ISOSWITCH_PAN_KEY": base64.b64encode(secrets.token_bytes(32)).decode()},
            )
        )
        try:
            pools = runtime.router.pools
            await pools["live"].wait_ready(10)
            await pools["test"].wait_ready(10)
            shop = ProjectSettings(terminal_id="TERM0001", merchant_id="MERCHANT0000001", descriptor="TESTMERCH/TERM")
            _, password = await runtime.projects.create("project", shop)
            _, other = await runtime.projects.create("other", ProjectSettings.defaults(2, "other"))
            live: list[Message] = []
            test: list[Message] = []
            sim.issuer = _Recorder(sim.issuer, live)  # type: ignore[assignment]
            test_sim.issuer = _Recorder(test_sim.issuer, test)  # type: ignore[assignment]
            async with TestClient(TestServer(create_app(runtime, FrontConfig(port=0)))) as http:
                yield Rig(
                    Front(http, runtime, sim, basic("project", password), basic("other", other)), live, test, test_sim
                )
        finally:
            await runtime.close()


def card_fields(pan: str = PAN, **changes: Any) -> dict[str, Any]:
    return {"card_number": pan, "card_expiry": "12/30", "card_cvv": CVV, "card_holder": "JOHN SMITH", **changes}


def h2h(pan: str = PAN, *, test_mode: bool = False, **changes: Any) -> dict[str, Any]:
    """The seed's create request for the h2h service, a new reference each time."""
    attrs = {"service": SERVICE, "test_mode": test_mode, "reference_id": str(uuid.uuid4())}
    return body(**{**attrs, "service_fields": card_fields(pan), **changes})


def mtis(sent: list[Message]) -> list[str]:
    return [m["t"] for m in sent]


async def read(front: Front, invoice_id: str) -> dict[str, Any]:
    status, doc = await front.call("GET", f"/api/payment-invoices/{invoice_id}")
    assert status == 200, doc
    attrs: dict[str, Any] = doc["data"]["attributes"]
    return attrs


async def by_reference(front: Front, reference_id: str) -> list[dict[str, Any]]:
    status, doc = await front.call("GET", f"/api/payment-invoices?filter[reference_id]={reference_id}")
    assert status == 200, doc
    return [d["attributes"] for d in doc["data"]]


async def order_row(front: Front, order_id: str) -> dict[str, Any]:
    async with front.runtime.db.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT to_jsonb(o) AS o FROM orders o WHERE id = $1", order_id)
    assert row is not None
    doc: dict[str, Any] = row["o"]
    return doc


# -- test mode -----------------------------------------------------------------------------


async def test_a_test_mode_invoice_is_paid_at_the_test_destination_and_a_live_one_by_the_bin_table(rig: Rig) -> None:
    status, doc = await rig.front.call("POST", "/api/payment-invoices", h2h(test_mode=True))
    assert status == 201, doc
    assert doc["data"]["attributes"]["status"] == "processed" and doc["data"]["attributes"]["test_mode"] is True
    assert mtis(rig.test) == ["0100", "0220"] and rig.live == []  # authorized and charged, both on the test host
    status, doc = await rig.front.call("POST", "/api/payment-invoices", h2h(test_mode=False))
    assert status == 201, doc
    assert doc["data"]["attributes"]["status"] == "processed" and doc["data"]["attributes"]["test_mode"] is False
    assert mtis(rig.live) == ["0100", "0220"] and len(rig.test) == 2


async def test_a_test_mode_invoice_paid_on_its_page_goes_to_the_test_destination_and_its_order_says_so(
    rig: Rig,
) -> None:
    status, doc = await rig.front.call("POST", "/api/payment-invoices", body(reference_id=str(uuid.uuid4())))
    assert status == 201, doc  # the seed's request: payment_card_usd_hpp, test_mode true
    resp = await pay(rig.front, doc["data"])
    assert resp.status == 303
    assert mtis(rig.test) == ["0100", "0220"] and rig.live == []
    order_id = doc["data"]["attributes"]["original_data"]["external_id"]
    assert (await order_row(rig.front, order_id))["test_mode"] is True
    # GET /orders/:id shows nothing new (seeds/003 has no test mode).
    status, shown = await rig.front.call("GET", f"/orders/{order_id}")
    assert status == 200 and "test_mode" not in shown["orders"][0]


async def test_a_live_invoice_routed_by_the_bin_table_to_a_destination_that_is_down_answers_503(rig: Rig) -> None:
    request = h2h(DOWN_PAN)
    status, doc = await rig.front.call("POST", "/api/payment-invoices", request)
    assert status == 503, doc
    error = doc["errors"][0]
    assert (error["status"], error["code"]) == ("Service Unavailable", "503") and "reference_id" in error["detail"]
    reference = request["data"]["attributes"]["reference_id"]
    assert doc["meta"]["reference_id"] == reference
    # Readable afterwards, by id and by reference, failed; nothing reached any host.
    attrs = await read(rig.front, doc["meta"]["id"])
    assert (attrs["status"], attrs["resolution"]) == ("process_failed", "error")
    assert [a["reference_id"] for a in await by_reference(rig.front, reference)] == [reference]
    assert rig.live == [] and rig.test == []


async def test_a_pk_test_key_makes_test_mode_orders_and_a_pk_live_key_live_ones(rig: Rig) -> None:
    test_key, live_key = await keys_of(rig.front, "project")
    for key, sim in ((test_key, rig.test), (live_key, rig.live)):
        request = {"public_key": key, "service": "payment_card_usd_hpp", "currency": "USD", "amount": 12.5}
        status, doc = await rig.front.call("POST", "/public-api/payment-invoices", request, headers={})
        assert status == 201, doc
        resp = await pay(rig.front, {"attributes": {"hpp_url": doc["data"]["hpp_url"]}})
        assert resp.status == 303 and mtis(sim) == ["0100", "0220"]  # flow charge (the default): charged
    assert len(rig.test) == len(rig.live) == 2


async def test_the_same_card_in_test_mode_never_reaches_the_destination_its_bin_names(rig: Rig) -> None:
    status, doc = await rig.front.call("POST", "/api/payment-invoices", h2h(DOWN_PAN, test_mode=True))
    assert status == 201, doc  # the BIN table says "down"; test mode says the test host
    assert mtis(rig.test)[:1] == ["0100"] and rig.live == []


# -- host to host ----------------------------------------------------------------------------


async def test_an_h2h_invoice_is_charged_at_create_and_keeps_no_card_data(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    request = h2h(callback_url=None)
    status, doc = await rig.front.call("POST", "/api/payment-invoices", request)
    assert status == 201, doc
    attrs = doc["data"]["attributes"]
    assert (attrs["status"], attrs["resolution"], attrs["flow"], attrs["hpp_url"]) == ("processed", "ok", "h2h", None)
    assert attrs["processed_amount"] == 100 and attrs["payload"]["payment_card"]["mask"] == "411111******1111"
    assert mtis(rig.live) == ["0100", "0220"] and rig.live[0]["120"] == CVV  # the CVV went to the issuer once
    order_id = attrs["original_data"]["external_id"]
    status, orders = await rig.front.call("GET", f"/orders/{order_id}")
    assert status == 200 and orders["orders"][0]["status"] == "charged"
    # Neither the PAN nor the CVV is anywhere in the invoice's or the order's row, or in the logs.
    async with rig.front.runtime.db.pool.acquire() as conn:
        invoice_row = await conn.fetchval(
            "SELECT to_jsonb(i)::text FROM payment_invoices i WHERE id = $1", doc["data"]["id"]
        )
        stored = await conn.fetchval("SELECT service_fields FROM payment_invoices WHERE id = $1", doc["data"]["id"])
    order_text = str(await order_row(rig.front, order_id))
    assert stored == {}
    for text in (invoice_row, order_text, caplog.text):
        assert PAN not in text and f'"{CVV}"' not in text and "card_cvv" not in text


async def test_an_h2h_verify_invoice_is_authorized_only(rig: Rig) -> None:
    status, doc = await rig.front.call("POST", "/api/payment-invoices", h2h(flow="verify"))
    assert status == 201, doc
    assert doc["data"]["attributes"]["status"] == "processed" and mtis(rig.live) == ["0100"]


async def test_a_declined_card_makes_a_failed_invoice_answered_201(rig: Rig) -> None:
    status, doc = await rig.front.call("POST", "/api/payment-invoices", h2h(DECLINED_PAN))
    assert status == 201, doc
    attrs = doc["data"]["attributes"]
    assert (attrs["status"], attrs["resolution"]) == ("process_failed", "declined") and mtis(rig.live) == ["0100"]


async def test_an_issuer_answer_that_cannot_be_used_answers_502_and_the_invoice_reads_failed(rig: Rig) -> None:
    status, doc = await rig.front.call("POST", "/api/payment-invoices", h2h(ERROR_PAN))
    assert status == 502, doc
    assert (doc["errors"][0]["status"], doc["errors"][0]["code"]) == ("Bad Gateway", "502")
    attrs = await read(rig.front, doc["meta"]["id"])
    assert (attrs["status"], attrs["resolution"]) == ("process_failed", "error")


async def test_an_issuer_that_times_out_answers_504_and_the_authorization_is_reversed_through_saf(rig: Rig) -> None:
    rig.front.sim.set_faults([{"action": "no_reply", "pan": PAN, "mti": "0100"}])
    request = h2h(PAN)
    status, doc = await rig.front.call("POST", "/api/payment-invoices", request)
    assert status == 504, doc
    assert (doc["errors"][0]["status"], doc["errors"][0]["code"]) == ("Gateway Timeout", "504")
    reference = request["data"]["attributes"]["reference_id"]
    found = await by_reference(rig.front, reference)
    assert [(a["status"], a["resolution"]) for a in found] == [("process_failed", "error")]
    # The unknown outcome is reversed: the 0400 reaches the (live) host, as for any order.
    await wait_for(lambda: "0400" in mtis(rig.live) or None, what="the reversal of the timed-out authorization")
    reversal = next(m for m in rig.live if m["t"] == "0400")
    assert reversal["2"] == PAN and rig.test == []
    # Creating it again with the same reference: the seed's 409 with the failed invoice, nothing sent again.
    asked = len(rig.live)
    status, again = await rig.front.call("POST", "/api/payment-invoices", request)
    assert status == 409 and again["data"]["id"] == doc["meta"]["id"]
    assert len(rig.live) == asked


async def test_a_connection_lost_before_the_answer_answers_502_and_queues_the_reversal(rig: Rig) -> None:
    rig.front.sim.set_faults([{"action": "close", "pan": PAN, "mti": "0100", "times": 1}])
    status, doc = await rig.front.call("POST", "/api/payment-invoices", h2h(PAN))
    assert status == 502, doc
    attrs = await read(rig.front, doc["meta"]["id"])
    assert (attrs["status"], attrs["resolution"]) == ("process_failed", "error")
    async with rig.front.runtime.db.pool.acquire() as conn:
        queued = await conn.fetchval(
            "SELECT count(*) FROM saf WHERE order_id = $1", attrs["original_data"]["external_id"]
        )
    assert queued == 1  # the outcome is unknown: reversed through store-and-forward


async def test_a_duplicate_reference_of_an_h2h_invoice_is_409_and_pays_nothing_more(rig: Rig) -> None:
    request = h2h()
    first = await rig.front.call("POST", "/api/payment-invoices", request)
    assert first[0] == 201, first
    status, doc = await rig.front.call("POST", "/api/payment-invoices", request)
    assert status == 409 and doc["data"]["id"] == first[1]["data"]["id"]
    assert mtis(rig.live) == ["0100", "0220"]


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        (card_fields("4111111111111112"), "service_fields.card_number"),  # Luhn
        (card_fields(card_expiry="13/30"), "service_fields.card_expiry"),
        (card_fields(card_cvv="12"), "service_fields.card_cvv"),
        ({k: v for k, v in card_fields().items() if k != "card_number"}, "service_fields.card_number"),
    ],
)
async def test_a_bad_card_field_is_422_naming_it_and_nothing_is_made(
    rig: Rig, fields: dict[str, Any], key: str
) -> None:
    request = h2h(service_fields=fields)
    status, doc = await rig.front.call("POST", "/api/payment-invoices", request)
    assert status == 422 and key in doc["errors"], doc
    assert PAN not in str(doc) and CVV not in str(doc)
    assert await by_reference(rig.front, request["data"]["attributes"]["reference_id"]) == []
    assert rig.live == []


async def test_h2h_services_are_refused_by_public_key_and_not_offered_by_the_prerequest(rig: Rig) -> None:
    test_key, _ = await keys_of(rig.front, "project")
    status, doc = await rig.front.call(
        "POST",
        "/public-api/payment-invoices",
        {"public_key": test_key, "service": SERVICE, "currency": "USD", "amount": 10, "service_fields": card_fields()},
        headers={},
    )
    assert status == 422 and "service" in doc["errors"], doc
    assert rig.live == [] and rig.test == []
    status, doc = await rig.front.call(
        "POST", "/public-api/payment-prerequest", {"public_key": test_key, "currency": "USD"}, headers={}
    )
    assert (
        status == 200 and SERVICE not in doc["data"]["services"] and "payment_card_usd_hpp" in doc["data"]["services"]
    )
    status, doc = await rig.front.call("GET", "/api/payment-services")
    assert SERVICE in {s["attributes"]["service"] for s in doc["data"]}  # the private API lists it


async def test_a_database_that_is_gone_answers_503_in_the_seeds_shape(rig: Rig) -> None:
    await rig.front.runtime.db.pool.close()  # every later query fails: the database is unavailable
    for request in (h2h(), body(reference_id=str(uuid.uuid4()))):
        status, doc = await rig.front.call("POST", "/api/payment-invoices", request)
        assert status == 503, doc
        assert doc == {
            "errors": [{"status": "Service Unavailable", "code": "503", "detail": doc["errors"][0]["detail"]}]
        }
    assert rig.live == []


async def test_an_h2h_invoice_queues_its_callback_with_its_final_status(rig: Rig) -> None:
    status, doc = await rig.front.call("POST", "/api/payment-invoices", h2h(callback_url="https://shop.example/cb"))
    assert status == 201, doc
    async with rig.front.runtime.db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT event_type, payload FROM webhook_outbox WHERE invoice_id = $1 ORDER BY created, id",
            doc["data"]["id"],
        )
    assert [r["event_type"] for r in rows][-1:] == ["invoice.processed"]
    assert all(PAN not in str(r["payload"]) for r in rows)


async def test_a_project_that_requires_3ds_or_the_holder_refuses_an_h2h_invoice_without_making_it(rig: Rig) -> None:
    projects = rig.front.runtime.projects
    project = await projects.by_login("project")
    assert project is not None
    await projects.update_settings(project.id, holder_required=True)
    request = h2h(service_fields={k: v for k, v in card_fields().items() if k != "card_holder"})
    status, doc = await rig.front.call("POST", "/api/payment-invoices", request)
    assert status == 422 and "service_fields.card_holder" in doc["errors"], doc
    await projects.update_settings(project.id, holder_required=False, require_3ds=True)
    request = h2h()
    status, doc = await rig.front.call("POST", "/api/payment-invoices", request)
    assert status == 422 and "3-D Secure" in doc["errors"]["service"], doc
    assert await by_reference(rig.front, request["data"]["attributes"]["reference_id"]) == []
    assert rig.live == [] and rig.test == []
