"""Webhooks end to end: the REST front over the real runtime (PostgreSQL, writer, router over TCP,
the real simulator), its delivery worker with the aiohttp sender, and a merchant's endpoint: a small
aiohttp server on 127.0.0.1 that records what it gets and fails, or holds, as a test asks.
Signatures are checked with the ``standardwebhooks`` library, as a merchant would.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from standardwebhooks import Webhook
from waiting import wait_for

from acquirer_sim import SimServer
from http_front import FrontConfig, create_app
from http_front.orders.views import FULL_EXPAND, order_view
from http_front.outbound.webhooks import AiohttpSender
from switch.config import SwitchConfig
from switch.money import currency
from switch.orders import OrderStatus
from switch.orders.engine import Step, merchant_of
from switch.orders.model import OperationType
from switch.runtime import Runtime, RuntimeConfig, open_runtime
from switch.store import DbConfig, ProjectSettings
from switch.translate import Authorize, Card
from switch.webhooks import UrlRefused, WebhookConfig, WebhookWorker, check_url
from switch.webhooks import worker as worker_module

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
PAN = "4111111111111111"
BODY = {
    "amount": "9.99",
    "card": {"cvv": "333", "expiration_month": 12, "expiration_year": 2030, "holder": "John Smith"},
    "location": {"ip": "6.6.6.6"},
    "pan": PAN,
}
# Small backoff so retries come in a fraction of a second; a timeout longer than the slow endpoint's hold.
FAST = WebhookConfig(poll_interval=0.05, backoff_base=0.05, backoff_cap=0.2, refresh_interval=0.1, timeout=10.0)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Endpoint:
    """The merchant's side: records every request; ``fail_first`` answers 500 to the first n of each event."""

    url: str = ""
    got: list[Received] = field(default_factory=list)
    fail_first: int = 0
    hold: asyncio.Event | None = None  # set: answers; unset: the request waits (a slow endpoint)
    holding: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen = sum(1 for r in self.got if r.headers.get("webhook-id") == headers.get("webhook-id"))
        status = 500 if seen < self.fail_first else 200
        self.got.append(Received(request.path, headers, body, status))
        if self.hold is not None and not self.hold.is_set():
            self.holding += 1
            try:
                await asyncio.wait_for(self.hold.wait(), 5.0)  # "sleeps 5 s" at most
            finally:
                self.holding -= 1
        return web.Response(status=status)

    def ok(self, path: str | None = None) -> list[Received]:
        return [r for r in self.got if r.status == 200 and (path is None or r.path == path)]


@dataclass
class Hooks:
    http: TestClient[web.Request, web.Application]
    runtime: Runtime
    endpoint: Endpoint
    auth: dict[str, str]
    other_auth: dict[str, str]
    dsn: str
    pan_key: str

    async def call(self, method: str, path: str, body: Any = None, auth: dict[str, str] | None = None) -> Any:
        hdrs = {"Content-Type": "application/json", **(auth or self.auth)}
        resp = await self.http.request(
            method, path, data=orjson.dumps(body) if body is not None else None, headers=hdrs
        )
        doc = orjson.loads(await resp.read())
        assert resp.status == 200, doc
        return doc

    async def authorize(self, auth: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
        order: dict[str, Any] = (await self.call("POST", "/orders/authorize", {**BODY, **extra}, auth))["orders"][0]
        return order

    @property
    def worker(self) -> WebhookWorker:
        assert self.runtime.webhooks is not None
        return self.runtime.webhooks

    async def add(self, login: str, name: str, path: str) -> tuple[int, str]:
        project = await self.runtime.projects.by_login(login)
        assert project is not None
        endpoint, secret = await self.worker.store.add_endpoint(project.id, name, self.endpoint.url + path)
        await self.worker.refresh()
        return endpoint["id"], secret

    async def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.runtime.db.pool.fetch(sql, *args)]


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


@pytest.fixture
async def hooks(sim: SimServer, fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Hooks]:  # noqa: F811
    endpoint = Endpoint()
    app = web.Application()
    app.router.add_post("/{tail:.*}", endpoint.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    endpoint.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    assert sim.address is not None
    host, port = sim.address
    switch = SwitchConfig.from_dict(
        {
            "destinations": [{"name": "sim", "host": host, "port": port, "links": 2, "echo_interval": 0.0}],
            "routing": {"default": "sim", "test": "sim"},
        }
    )
    pan_key = base64.b64encode(secrets.token_bytes(32)).decode()
    runtime = await open_runtime(
        RuntimeConfig(
            db=DbConfig(url=fresh_dsn, data_dir=scratch_dir, min_size=1, max_size=6),
            switch=switch,
            request_timeout=2.0,
            close_timeout=2.0,
            id_block_size=50,
            env={"ISOSWITCH_PAN_KEY": pan_key},
            webhooks=FAST,
        ),
        webhook_sender=AiohttpSender(),
        webhook_render=lambda order: order_view(order, FULL_EXPAND),
    )
    try:
        _, password = await runtime.projects.create("shop", ProjectSettings.defaults(1, "shop"))
        _, other = await runtime.projects.create("other", ProjectSettings.defaults(2, "other"))
        async with TestClient(TestServer(create_app(runtime, FrontConfig(port=0)))) as http:
            yield Hooks(http, runtime, endpoint, basic("shop", password), basic("other", other), fresh_dsn, pan_key)
    finally:
        if endpoint.hold is not None:
            endpoint.hold.set()
        await runtime.close()
        await runner.cleanup()


async def _count(hooks: Hooks, sql: str, n: int) -> bool:
    return len(await hooks.rows(sql)) == n


def verified(secret: str, r: Received) -> dict[str, Any]:
    doc: dict[str, Any] = Webhook(secret).verify(r.body, r.headers)
    return doc


# -- signing and payload -----------------------------------------------------------------------


async def test_an_authorization_reaches_the_endpoint_signed_the_standard_webhooks_way(hooks: Hooks) -> None:
    _, secret = await hooks.add("shop", "main", "/main")
    assert secret.startswith("whsec_")
    order = await hooks.authorize()
    (got,) = await wait_for(lambda: hooks.endpoint.ok(), what="the delivery")
    doc = verified(secret, got)
    assert doc["type"] == "order.authorized"
    assert doc["data"] == {"orders": [order]}  # the order exactly as the API answered it
    (stored,) = await hooks.rows("SELECT version FROM orders")
    assert got.headers["webhook-id"] == f"evt_{order['id']}_{stored['version']}"
    assert got.headers["content-type"] == "application/json"
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()).verify(got.body, got.headers)
    (row,) = await wait_for(
        lambda: hooks.rows("SELECT attempts, last_status FROM webhook_outbox WHERE state = 'delivered'")
    )
    assert row == {"attempts": 1, "last_status": 200}


async def test_each_status_change_is_one_event_named_after_the_new_status(hooks: Hooks) -> None:
    _, secret = await hooks.add("shop", "main", "/main")
    order = await hooks.authorize()
    await hooks.call("PUT", f"/orders/{order['id']}/charge")
    await hooks.call("PUT", f"/orders/{order['id']}/refund", {"amount": "1.00"})
    await hooks.call("PUT", f"/orders/{order['id']}/refund", {"amount": "1.00"})
    got = await wait_for(lambda: len(hooks.endpoint.ok()) == 4 and hooks.endpoint.ok(), what="four events")
    docs = sorted((verified(secret, r) for r in got), key=lambda d: str(d["timestamp"]))
    assert [d["type"] for d in docs] == ["order.authorized", "order.charged", "order.refunded", "order.refunded"]
    assert [d["data"]["orders"][0]["amount_refunded"] for d in docs] == ["0.00", "0.00", "1.00", "2.00"]
    assert len({r.headers["webhook-id"] for r in got}) == 4


async def test_a_project_without_endpoints_or_notification_url_writes_no_outbox_row(hooks: Hooks) -> None:
    await hooks.add("other", "main", "/other")
    await hooks.authorize()
    assert (
        await hooks.rows(
            "SELECT id FROM webhook_outbox WHERE project_id = (SELECT id FROM projects WHERE login = 'shop')"
        )
        == []
    )


async def test_recovery_turning_an_orphaned_order_to_error_is_an_event_rendered_when_sent(hooks: Hooks) -> None:
    _, secret = await hooks.add("shop", "main", "/main")
    order = await hooks.authorize()
    await wait_for(lambda: hooks.endpoint.ok())
    # As a process killed between the send and the result leaves it (tests/test_saf_reversals.py).
    async with hooks.runtime.db.pool.acquire() as conn:
        await conn.execute(
            "UPDATE operations SET status = 'pending', owner = '9:dead-host:4242:0:abc',"
            " created = now() - interval '1 hour' WHERE order_id = $1",
            order["id"],
        )
        await conn.execute("UPDATE orders SET status = 'new' WHERE id = $1", order["id"])
    assert hooks.runtime.reversals is not None
    assert await hooks.runtime.reversals.recover() == 1
    got = await wait_for(lambda: len(hooks.endpoint.ok()) == 2 and hooks.endpoint.ok()[1], what="the error event")
    doc = verified(secret, got)
    assert doc["type"] == "order.error"
    (shown,) = doc["data"]["orders"]
    assert shown["id"] == order["id"] and shown["status"] == "error"
    assert shown["operations"][0]["iso_message"] == "Outcome unknown: the process sending it stopped"


async def test_an_order_waiting_for_the_cardholder_makes_events_as_it_is_created_prepared_and_paid(
    hooks: Hooks,
) -> None:
    _, secret = await hooks.add("shop", "main", "/main")
    project = await hooks.runtime.projects.by_login("shop")
    assert project is not None
    engine = hooks.runtime.orders.engine
    now = engine.clock()
    card = Card(PAN, expiry_month=12, expiry_year=2030, cvv="333")
    order = engine.cards.new_order(
        project, await engine.take(engine.ids.order_id), card, 999, currency("USD"), now, rrn="", recurring=False
    )
    order.rrn = None
    await engine.repo.create_waiting(order)
    order.status = OrderStatus.PREPARED
    assert await engine.repo.save_waiting(order)
    assert await engine.repo.save_waiting(order)  # no change of status: no event
    rrn = await engine.take(lambda: engine.ids.rrn(now))
    merchant = merchant_of(project.settings)
    msg = engine.translate(
        lambda: Authorize(merchant=merchant, card=card, amount=999, currency=currency("USD"), rrn=rrn), now
    )
    await engine.perform(project, order, Step(OperationType.AUTHORIZE, 999, msg, now))
    got = await wait_for(lambda: len(hooks.endpoint.ok()) == 3 and hooks.endpoint.ok(), what="three events")
    assert sorted(verified(secret, r)["type"] for r in got) == ["order.authorized", "order.new", "order.prepared"]
    stored = await engine.repo.get(project.id, order.id)
    assert stored is not None
    ids = sorted(r.headers["webhook-id"] for r in got)
    assert ids == sorted(f"evt_{order.id}_{v}" for v in (0, 1, stored.version))


# -- retries and restarts --------------------------------------------------------------------------


async def test_an_endpoint_that_fails_twice_then_answers_gets_exactly_one_success_per_event(hooks: Hooks) -> None:
    hooks.endpoint.fail_first = 2
    await hooks.add("shop", "main", "/main")
    order = await hooks.authorize()
    await hooks.call("PUT", f"/orders/{order['id']}/charge")
    await wait_for(lambda: len(hooks.endpoint.ok()) == 2, what="both events delivered")
    delivered = "SELECT id FROM webhook_outbox WHERE state = 'delivered'"
    await wait_for(lambda: len(hooks.endpoint.ok()) == 2, what="both events delivered")
    await wait_for(lambda: _count(hooks, delivered, 2), what="the log says delivered")
    per_event = Counter(r.headers["webhook-id"] for r in hooks.endpoint.ok())
    assert sorted(per_event.values()) == [1, 1]
    assert len(hooks.endpoint.got) == 6  # two failures, then the success, per event
    rows = await hooks.rows("SELECT state, attempts, last_status FROM webhook_outbox ORDER BY id")
    assert rows == [{"state": "delivered", "attempts": 3, "last_status": 200}] * 2


async def test_a_worker_stopped_mid_retry_and_a_new_one_lose_no_event_and_repeat_none(hooks: Hooks) -> None:
    hooks.endpoint.fail_first = 2
    await hooks.add("shop", "main", "/main")
    await hooks.authorize()
    await wait_for(lambda: hooks.endpoint.got, what="the first (failed) attempt")
    await hooks.worker.close()  # the process stops between two attempts
    assert not hooks.endpoint.ok()
    (row,) = await hooks.rows("SELECT state FROM webhook_outbox")
    assert row["state"] == "pending"
    fresh = WebhookWorker(hooks.worker.store, hooks.worker.events, FAST, AiohttpSender())
    fresh.start()
    try:
        await wait_for(lambda: hooks.endpoint.ok(), what="the delivery by the new worker")
        await wait_for(lambda: hooks.rows("SELECT id FROM webhook_outbox WHERE state = 'delivered'"))
    finally:
        await fresh.close()
    assert len(hooks.endpoint.ok()) == 1


async def test_a_delivery_cut_off_mid_request_is_sent_again_by_the_next_worker(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At least once: the request reached the endpoint, the process died before the answer; the lease
    # (shortened here) runs out and another worker sends it again with the same webhook-id.
    monkeypatch.setattr(worker_module, "_LEASE_MARGIN", 0.5 - FAST.timeout)
    hooks.endpoint.hold = asyncio.Event()
    _, secret = await hooks.add("shop", "main", "/main")
    await hooks.authorize()
    await wait_for(lambda: hooks.endpoint.holding, what="the request held by the endpoint")
    await hooks.worker.close(timeout=0.1)
    hooks.endpoint.hold.set()
    fresh = WebhookWorker(hooks.worker.store, hooks.worker.events, FAST, AiohttpSender())
    fresh.start()
    try:
        await wait_for(lambda: hooks.rows("SELECT id FROM webhook_outbox WHERE state = 'delivered'"))
    finally:
        await fresh.close()
    ids = {r.headers["webhook-id"] for r in hooks.endpoint.got}
    assert len(ids) == 1 and len(hooks.endpoint.got) == 2
    for r in hooks.endpoint.got:
        verified(secret, r)


async def test_a_slow_endpoint_does_not_hold_up_authorizations_or_other_deliveries(hooks: Hooks) -> None:
    hooks.endpoint.hold = asyncio.Event()
    await hooks.add("shop", "main", "/main")
    await hooks.authorize()
    await wait_for(lambda: hooks.endpoint.holding == 1, what="the first delivery held")
    second = await hooks.authorize()
    third = await hooks.authorize()
    # Both answered while the first delivery is still held, and their deliveries went out beside it.
    assert second["status"] == third["status"] == "authorized"
    await wait_for(lambda: hooks.endpoint.holding == 3, what="the later deliveries sent beside the held one")
    hooks.endpoint.hold.set()
    await wait_for(lambda: len(hooks.endpoint.ok()) == 3)


# -- who gets what ------------------------------------------------------------------------------


async def test_another_projects_endpoint_never_receives_this_projects_events(hooks: Hooks) -> None:
    _, secret = await hooks.add("shop", "main", "/shop")
    await hooks.add("other", "main", "/other")
    mine = await hooks.authorize()
    theirs = await hooks.authorize(hooks.other_auth)
    await wait_for(lambda: len(hooks.endpoint.ok()) == 2)
    (to_shop,) = hooks.endpoint.ok("/shop")
    (to_other,) = hooks.endpoint.ok("/other")
    assert verified(secret, to_shop)["data"]["orders"][0]["id"] == mine["id"]
    assert orjson.loads(to_other.body)["data"]["orders"][0]["id"] == theirs["id"]
    with pytest.raises(Exception, match="signature"):
        verified(secret, to_other)


async def test_a_notification_url_gets_its_orders_events_signed_with_the_projects_callback_secret(
    hooks: Hooks,
) -> None:
    project = await hooks.runtime.projects.by_login("shop")
    assert project is not None
    secret = await hooks.worker.store.rotate_project_secret(project.id)
    order = await hooks.authorize(options={"notification_url": hooks.endpoint.url + "/order"})
    (got,) = await wait_for(lambda: hooks.endpoint.ok("/order"))
    assert verified(secret, got)["data"]["orders"][0]["id"] == order["id"]
    (row,) = await hooks.rows("SELECT notification_url FROM orders")
    assert row["notification_url"] == hooks.endpoint.url + "/order"


async def test_a_notification_url_that_is_not_http_is_refused_in_the_seeds_shape(hooks: Hooks) -> None:
    resp = await hooks.http.post(
        "/orders/authorize",
        data=orjson.dumps({**BODY, "options": {"notification_url": "ftp://shop.example/x"}}),
        headers={"Content-Type": "application/json", **hooks.auth},
    )
    assert resp.status == 422
    doc = await resp.json()
    assert doc["failure_type"] == "validation"
    assert "notification_url" in orjson.dumps(doc).decode()


async def test_a_delivery_whose_endpoint_secret_cannot_be_opened_is_recorded_failed_and_stops_at_its_max_age(
    hooks: Hooks,
) -> None:
    endpoint_id, _ = await hooks.add("shop", "main", "/main")
    # The sealed secret no longer opens (a vault key gone, a damaged row): the delivery fails before sending.
    await hooks.runtime.db.pool.execute(
        "UPDATE webhook_endpoints SET secret_blob = $2 WHERE id = $1", endpoint_id, secrets.token_bytes(40)
    )
    await hooks.worker.close()
    short = WebhookWorker(
        hooks.worker.store,
        hooks.worker.events,
        WebhookConfig(poll_interval=0.05, backoff_base=0.05, backoff_cap=0.1, max_age=0.5),
        AiohttpSender(),
    )
    short.start()
    try:
        await hooks.authorize()
        (row,) = await wait_for(
            lambda: hooks.rows("SELECT state, attempts, last_error FROM webhook_outbox WHERE state = 'failed'"),
            what="the delivery left failed after its retry window",
        )
    finally:
        await short.close()
    assert row["last_error"].startswith("not sent: ") and row["attempts"] >= 1
    assert hooks.endpoint.got == []


async def test_a_pending_delivery_past_its_max_age_is_failed_at_the_claim_and_never_sent(hooks: Hooks) -> None:
    await hooks.add("shop", "main", "/main")
    await hooks.worker.close()  # the event waits in the outbox (a worker that could not record it, a long outage)
    await hooks.authorize()
    await hooks.runtime.db.pool.execute("UPDATE webhook_outbox SET retry_from = now() - interval '4 days'")
    fresh = WebhookWorker(hooks.worker.store, hooks.worker.events, FAST, AiohttpSender())
    fresh.start()
    try:
        (row,) = await wait_for(
            lambda: hooks.rows("SELECT attempts, last_error FROM webhook_outbox WHERE state = 'failed'"),
            what="the expired delivery failed",
        )
    finally:
        await fresh.close()
    assert row == {"attempts": 0, "last_error": "retry window over"} and hooks.endpoint.got == []


# -- the address policy -------------------------------------------------------------------------


async def test_private_and_link_local_addresses_are_refused_by_default_and_loopback_in_production() -> None:
    default = WebhookConfig()
    for url in ("http://10.1.2.3/hook", "http://192.168.0.1/", "http://169.254.169.254/latest", "http://[fd00::1]/"):
        with pytest.raises(UrlRefused):
            await check_url(url, allow_private=default.allow_private, allow_loopback=default.allow_loopback)
    await check_url("http://127.0.0.1:9/hook", allow_private=False, allow_loopback=True)
    with pytest.raises(UrlRefused, match="loopback"):
        await check_url("http://127.0.0.1:9/hook", allow_private=False, allow_loopback=False)
    await check_url("http://10.1.2.3/hook", allow_private=True, allow_loopback=False)


async def test_a_worker_that_refuses_loopback_never_sends_to_it_and_logs_why(hooks: Hooks) -> None:
    await hooks.add("shop", "main", "/main")
    await hooks.worker.close()
    strict = WebhookWorker(
        hooks.worker.store,
        hooks.worker.events,
        WebhookConfig(poll_interval=0.05, allow_loopback=False),
        AiohttpSender(),
    )
    strict.start()
    try:
        await hooks.authorize()
        (row,) = await wait_for(
            lambda: hooks.rows("SELECT state, last_error FROM webhook_outbox WHERE last_error IS NOT NULL")
        )
    finally:
        await strict.close()
    assert row["state"] == "pending" and "loopback address" in row["last_error"]
    assert hooks.endpoint.got == []


# -- the commands -------------------------------------------------------------------------------


async def _isoswitch(hooks: Hooks, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("ISOSWITCH_")}
    env.update(DATABASE_URL=hooks.dsn, ISOSWITCH_PAN_KEY=hooks.pan_key)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "isoswitch", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_commands_add_list_and_remove_endpoints_show_the_log_and_redeliver(hooks: Hooks) -> None:
    code, out, err = await _isoswitch(hooks, "project", "webhook", "add", "shop", "main", hooks.endpoint.url + "/cli")
    assert code == 0, err
    added = orjson.loads(out)
    assert added["secret"].startswith("whsec_") and added["name"] == "main" and isinstance(added["id"], int)
    code, out, _ = await _isoswitch(hooks, "project", "webhook", "list", "shop")
    (listed,) = [orjson.loads(line) for line in out.splitlines()]
    assert listed["id"] == added["id"] and "secret" not in listed
    code, _, err = await _isoswitch(hooks, "project", "webhook", "add", "shop", "lan", "http://10.0.0.7/hook")
    assert code == 1 and "private address" in err

    await hooks.worker.refresh()
    order = await hooks.authorize()
    (first,) = await wait_for(lambda: hooks.endpoint.ok("/cli"))
    verified(added["secret"], first)  # sealed by the command, opened by the serving process
    await wait_for(lambda: hooks.rows("SELECT id FROM webhook_outbox WHERE state = 'delivered'"))

    code, out, _ = await _isoswitch(hooks, "webhook", "list", "--project", "shop", "--endpoint", "main")
    (log,) = [orjson.loads(line) for line in out.splitlines()]
    assert (
        log["event_id"] == first.headers["webhook-id"]
        and log["order_id"] == order["id"]
        and log["state"] == "delivered"
        and log["last_status"] == 200
    )
    assert log["event_type"] == "order.authorized" and log["endpoint"] == "main"
    code, out, _ = await _isoswitch(hooks, "webhook", "list", "--state", "failed")
    assert out == ""

    code, out, _ = await _isoswitch(hooks, "webhook", "redeliver", log["event_id"])
    assert code == 0 and orjson.loads(out) == {"event_id": log["event_id"], "deliveries": 1}
    again = await wait_for(lambda: len(hooks.endpoint.ok("/cli")) == 2 and hooks.endpoint.ok("/cli")[1])
    assert again.headers["webhook-id"] == first.headers["webhook-id"] and again.body == first.body

    code, _, _ = await _isoswitch(hooks, "project", "webhook", "remove", "shop", "main")
    assert code == 0
    code, out, _ = await _isoswitch(hooks, "project", "webhook", "list", "shop")
    assert out == ""
    code, out, _ = await _isoswitch(hooks, "project", "webhook", "secret", "shop")
    assert code == 0 and orjson.loads(out)["secret"].startswith("whsec_")
    code, _, err = await _isoswitch(hooks, "webhook", "redeliver", "evt_nothing_1")
    assert code == 1 and "no event" in err


# -- metrics -----------------------------------------------------------------------------------


async def _scrape(hooks: Hooks) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    resp = await hooks.http.get("/metrics")
    assert resp.status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(await resp.text())
        for s in fam.samples
    }


def _sample(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_deliveries_by_outcome_time_the_posts_and_read_the_outbox_depth(hooks: Hooks) -> None:
    await hooks.add("shop", "main", "/main")
    hooks.endpoint.fail_first = 2
    before = await _scrape(hooks)
    await hooks.authorize()
    await wait_for(lambda: hooks.endpoint.ok(), what="the delivery after two failures")
    await wait_for(lambda: _count(hooks, "SELECT id FROM webhook_outbox WHERE state = 'delivered'", 1))

    after = await _scrape(hooks)

    def grew(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert grew("isoswitch_webhook_deliveries_total", outcome="delivered") == 1
    assert grew("isoswitch_webhook_deliveries_total", outcome="retried") == 2
    assert grew("isoswitch_webhook_deliveries_total", outcome="failed") == 0
    assert grew("isoswitch_webhook_delivery_duration_seconds_count") == 3
    assert _sample(after, "isoswitch_webhook_outbox_depth", state="pending") == 0
    assert _sample(after, "isoswitch_webhook_outbox_depth", state="failed") == 0

    # The depth is read from the database at each scrape, whoever changed the rows.
    await hooks.runtime.db.pool.execute("UPDATE webhook_outbox SET state = 'failed'")
    assert _sample(await _scrape(hooks), "isoswitch_webhook_outbox_depth", state="failed") == 1
    await hooks.runtime.db.pool.execute("UPDATE webhook_outbox SET state = 'pending', next_attempt_at = now() + '1h'")
    now = await _scrape(hooks)
    assert _sample(now, "isoswitch_webhook_outbox_depth", state="pending") == 1
    assert _sample(now, "isoswitch_webhook_outbox_depth", state="failed") == 0
