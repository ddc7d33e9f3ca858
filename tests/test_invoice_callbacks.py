"""Invoice callbacks (seeds/002 ``callback_url``, ``callback_logs``) and the page's return URLs, end to end: the
front of tests/test_http_e2e.py with the webhook worker and its aiohttp sender, a merchant's receiver on
loopback, the real simulator. Callbacks are verified with the ``standardwebhooks`` library, as a merchant would,
with the project's callback secret.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from standardwebhooks import Webhook
from test_http_e2e import Front, basic
from test_invoices import body, create_invoice, pay
from waiting import wait_for

from acquirer_sim import SimServer
from http_front import FrontConfig, create_app
from http_front.orders.views import FULL_EXPAND, order_view
from http_front.outbound.webhooks import AiohttpSender
from switch.config import SwitchConfig
from switch.runtime import RuntimeConfig, open_runtime
from switch.store import DbConfig, ProjectSettings
from switch.webhooks import WebhookConfig

pytestmark = pytest.mark.timeout(90)

FAST = WebhookConfig(poll_interval=0.05, backoff_base=0.05, backoff_cap=0.2, refresh_interval=0.1)


@dataclass
class Receiver:
    """The merchant's callback URL: records each request (headers lower-cased), answers 200."""

    url: str = ""
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append(({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        return web.Response(text="ok")


@dataclass
class Rig:
    front: Front
    receiver: Receiver
    secret: str  # the project's callback secret

    def callbacks(self) -> list[dict[str, Any]]:
        """Every callback received, verified (a bad signature raises), in the order of the changes: deliveries
        run in parallel and are at least once, so arrival order is not the changes' order (their timestamp is)."""
        verified = [Webhook(self.secret).verify(b, h) for h, b in self.receiver.got]
        return sorted(verified, key=lambda doc: str(doc["timestamp"]))


@pytest.fixture
async def rig(sim: SimServer, fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Rig]:  # noqa: F811
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/callback"
    assert sim.address is not None
    host, port = sim.address
    switch = SwitchConfig.from_dict(
        {
            "destinations": [{"name": "sim", "host": host, "port": port, "links": 2, "echo_interval": 0.0}],
            "routing": {"default": "sim", "test": "sim"},
        }
    )
    runtime = await open_runtime(
        RuntimeConfig(
            db=DbConfig(url=fresh_dsn, data_dir=scratch_dir, min_size=1, max_size=5),
            switch=switch,
            request_timeout=2.0,
            close_timeout=2.0,
            id_block_size=50,
            env={"ISOSWITCH_PAN_KEY": base64.b64encode(secrets.token_bytes(32)).decode()},
            webhooks=FAST,
        ),
        webhook_sender=AiohttpSender(),
        webhook_render=lambda order: order_view(order, FULL_EXPAND),
    )
    try:
        shop = ProjectSettings(
            terminal_id="TERM0001", merchant_id="MERCHANT0000001", descriptor="TESTMERCH/TERM", fee_rate=Decimal(3)
        )
        project, password = await runtime.projects.create("project", shop)
        _, other = await runtime.projects.create("other", ProjectSettings.defaults(2, "other"))
        assert runtime.webhooks is not None
        secret = await runtime.webhooks.store.rotate_project_secret(project.id)
        async with TestClient(TestServer(create_app(runtime, FrontConfig(port=0)))) as http:
            front = Front(http, runtime, sim, basic("project", password), basic("other", other))
            yield Rig(front, receiver, secret)
    finally:
        await runtime.close()
        await runner.cleanup()


async def attributes(front: Front, invoice_id: str) -> dict[str, Any]:
    status, doc = await front.call("GET", f"/api/payment-invoices/{invoice_id}")
    assert status == 200, doc
    attrs: dict[str, Any] = doc["data"]["attributes"]
    return attrs


async def delivered_logs(front: Front, invoice_id: str) -> dict[str, Any]:
    """The invoice's callback_logs once each of its callbacks is answered (the log is written after the answer)."""

    async def done() -> dict[str, Any] | None:
        logs = (await attributes(front, invoice_id))["callback_logs"]
        return logs if logs and all(e["status"] == "done" for e in logs.values()) else None

    return await wait_for(done, what="callbacks delivered")


def statuses(logs: Any) -> list[tuple[str, str, int | None]]:
    return [(e["transaction_status"], e["status"], e["response_code"]) for e in (logs or {}).values()]


async def test_a_paid_invoice_calls_back_signed_when_created_and_when_processed_and_logs_both(rig: Rig) -> None:
    inv = await create_invoice(rig.front, callback_url=rig.receiver.url)
    resp = await pay(rig.front, inv)
    assert resp.status == 303
    got = await wait_for(lambda: rig.callbacks() if len(rig.receiver.got) >= 2 else None)
    assert [c["type"] for c in got] == ["invoice.process_pending", "invoice.processed"]
    done = got[1]["data"]
    assert (done["id"], done["type"], done["attributes"]["status"], done["attributes"]["resolution"]) == (
        inv["id"], "payment-invoices", "processed", "ok",
    )  # fmt: skip
    assert done["attributes"]["reference_id"] == inv["attributes"]["reference_id"]
    assert float(done["attributes"]["amount"]) == 100
    # One webhook-id per callback; the receiver's answer is in the invoice's callback_logs, keyed by unix time.
    assert len({h["webhook-id"] for h, _ in rig.receiver.got}) == 2
    logs = await delivered_logs(rig.front, inv["id"])
    assert all(re.fullmatch(r"[0-9]{10}(-[0-9]+)?", k) for k in logs)
    assert statuses(logs) == [("process_pending", "done", 200), ("processed", "done", 200)]
    assert all(isinstance(e["processed"], int) for e in logs.values())


async def test_a_declined_card_calls_back_process_failed_once(rig: Rig) -> None:
    inv = await create_invoice(rig.front, callback_url=rig.receiver.url, reference_id="declined-cb")
    await pay(rig.front, inv, pan="4276990011343663")
    await wait_for(lambda: len(rig.receiver.got) >= 2)
    got = rig.callbacks()
    assert [c["data"]["attributes"]["status"] for c in got] == ["process_pending", "process_failed"]
    assert got[1]["data"]["attributes"]["resolution"] == "declined"
    logs = await delivered_logs(rig.front, inv["id"])
    assert [s for s, _, _ in statuses(logs)] == ["process_pending", "process_failed"]


async def test_a_verify_invoice_calls_back_processed_once_though_its_order_changes_again(rig: Rig) -> None:
    inv = await create_invoice(rig.front, callback_url=rig.receiver.url, flow="verify", reference_id="verify-cb")
    await pay(rig.front, inv)
    order_id = (await attributes(rig.front, inv["id"]))["original_data"]["external_id"]
    status, doc = await rig.front.call("PUT", f"/orders/{order_id}/charge", {})
    assert status == 200, doc
    status, doc = await rig.front.call("GET", f"/orders/{order_id}")
    assert doc["orders"][0]["status"] == "charged"
    await wait_for(lambda: len(rig.receiver.got) >= 2)
    logs = await delivered_logs(rig.front, inv["id"])
    assert [s for s, _, _ in statuses(logs)] == ["process_pending", "processed"]


async def test_the_test_flow_calls_back_its_outcome_at_once(rig: Rig) -> None:
    status, doc = await rig.front.call(
        "POST",
        "/api/payment-invoices",
        body(service="test_usd_test", service_fields={"status": "success"}, callback_url=rig.receiver.url),
    )
    assert status == 201, doc
    (cb,) = await wait_for(lambda: rig.callbacks() or None)
    assert (cb["type"], cb["data"]["id"]) == ("invoice.processed", doc["data"]["id"])
    logs = await delivered_logs(rig.front, doc["data"]["id"])
    assert statuses(logs) == [("processed", "done", 200)]


async def test_an_invoice_without_callback_url_makes_no_callback(rig: Rig) -> None:
    inv = await create_invoice(rig.front, callback_url=None, reference_id="quiet")
    await pay(rig.front, inv)
    rows = await rig.front.runtime.db.pool.fetch("SELECT * FROM webhook_outbox WHERE invoice_id IS NOT NULL")
    assert rows == [] and (await attributes(rig.front, inv["id"]))["callback_logs"] == []


async def test_the_page_sends_the_cardholder_to_return_urls_fail_after_a_decline_and_success_when_paid(
    rig: Rig,
) -> None:
    declined = await create_invoice(rig.front, reference_id="ret-fail")
    resp = await pay(rig.front, declined, pan="4276990011343663")
    assert (resp.status, resp.headers.get("Location")) == (303, "https://example.com/3")  # return_urls.fail
    paid = await create_invoice(rig.front, reference_id="ret-ok")
    resp = await pay(rig.front, paid)
    assert (resp.status, resp.headers.get("Location")) == (303, "https://example.com/1")  # return_urls.success
    assert urlsplit(resp.headers["Location"]).netloc == "example.com"
