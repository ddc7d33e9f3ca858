"""An invoice's end without a payment (issue 12 items 5 and 6): the durable expiry sweep (switch/invoices/expiry.py)
closes the waiting order of an invoice past ``expires`` and writes its ``expired`` callback once, across a restart,
never for an invoice the cardholder paid at the same instant; and crash recovery's ``error`` calls the invoice
back too. The rig of tests/test_invoice_callbacks.py (real runtime, simulator, webhook worker, merchant's
receiver); the engine's clock is moved past the expiry (invoices live 14 minutes at least).
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_invoice_callbacks import FAST, Rig, attributes, delivered_logs, statuses
from test_invoice_callbacks import rig as rig  # fixture
from test_invoices import create_invoice, pay
from waiting import wait_for

from http_front.outbound.webhooks import AiohttpSender
from switch.invoices.expiry import ExpiryConfig, InvoiceExpiry
from switch.money import currency
from switch.orders.model import Operation, OperationStatus, OperationType
from switch.runtime import Runtime, RuntimeConfig, open_runtime
from switch.store import DbConfig
from switch.translate import Card

pytestmark = pytest.mark.timeout(120)

LATER = timedelta(days=1, minutes=1)  # past the default `expires` of tests/test_invoices.py's body (a day ahead)


def move_clock(runtime: Runtime, by: timedelta) -> None:
    engine = runtime.orders.engine
    clock = engine.clock
    engine.clock = lambda: clock() + by


async def order_of(rig: Rig, invoice_id: str) -> dict[str, Any]:
    order_id = (await attributes(rig.front, invoice_id))["original_data"]["external_id"]
    status, doc = await rig.front.call("GET", f"/orders/{order_id}?expand=operations")
    assert status == 200, doc
    order: dict[str, Any] = doc["orders"][0]
    return order


async def outbox_types(runtime: Runtime, invoice_id: str) -> list[str]:
    rows = await runtime.db.pool.fetch(
        "SELECT event_type FROM webhook_outbox WHERE invoice_id = $1 ORDER BY created, id", invoice_id
    )
    return [r["event_type"] for r in rows]


async def test_an_expired_invoice_closes_its_order_and_calls_back_expired_exactly_once(rig: Rig) -> None:
    runtime = rig.front.runtime
    inv = await create_invoice(rig.front, callback_url=rig.receiver.url, reference_id="expiring")
    await wait_for(lambda: len(rig.receiver.got) >= 1, what="the process_pending callback")
    move_clock(runtime, LATER)
    assert runtime.invoice_expiry is not None
    runtime.invoice_expiry.kick()
    got = await wait_for(lambda: rig.callbacks() if len(rig.receiver.got) >= 2 else None, what="the expired callback")
    assert [(c["data"]["attributes"]["status"], c["data"]["attributes"]["resolution"]) for c in got] == [
        ("process_pending", "ok"),
        ("process_failed", "expired"),
    ]
    # The order left `new` for a final status: rejected by the gateway, nothing sent to the issuer.
    order = await order_of(rig, inv["id"])
    assert (order["status"], order["operations"]) == ("rejected", [])
    attrs = await attributes(rig.front, inv["id"])
    assert (attrs["status"], attrs["resolution"]) == ("process_failed", "expired")
    logs = await delivered_logs(rig.front, inv["id"])
    assert statuses(logs) == [("process_pending", "done", 200), ("process_failed", "done", 200)]
    # Sweeping again (this process or another) closes nothing more and calls back nothing more.
    assert await runtime.invoice_expiry.work_once() == 0
    again = InvoiceExpiry(runtime.orders.engine.repo, runtime.orders.engine.clock, ExpiryConfig(batch=5))
    assert await again.work_once() == 0
    assert await outbox_types(runtime, inv["id"]) == ["invoice.process_pending", "invoice.process_failed"]
    # Its page says so and takes no payment: a card posted to it sends nothing.
    path = urlsplit(inv["attributes"]["hpp_url"]).path
    page = await rig.front.http.get(path)
    html = await page.text()
    assert 'data-state="expired"' in html
    assert 'id="back" href="https://example.com/3"' in html  # its way back: return_urls.fail, an expiry failed it
    card = {"number": "4111111111111111", "exp_month": "12", "exp_year": "30", "cvc": "123", "holder": "J S"}
    resp = await rig.front.http.post(path, data={**card, "nonce": "0.x"}, allow_redirects=False)
    assert resp.status == 303
    rows = await runtime.db.pool.fetch("SELECT id FROM operations WHERE order_id = $1", order["id"])
    assert rows == []


async def test_an_invoice_still_waiting_is_left_alone_by_the_sweep(rig: Rig) -> None:
    runtime = rig.front.runtime
    inv = await create_invoice(rig.front, callback_url=rig.receiver.url, reference_id="not-yet")
    assert runtime.invoice_expiry is not None
    assert await runtime.invoice_expiry.work_once() == 0
    assert (await order_of(rig, inv["id"]))["status"] == "new"
    assert (await attributes(rig.front, inv["id"]))["status"] == "process_pending"


async def test_an_expiry_that_passes_while_no_process_runs_is_swept_after_the_restart(
    rig: Rig,
    fresh_dsn: str,  # noqa: F811
    scratch_dir: Path,  # noqa: F811
) -> None:
    first = rig.front.runtime
    inv = await create_invoice(rig.front, callback_url=rig.receiver.url, reference_id="restart")
    switch = first.config.switch
    key = first.config.env
    await first.close()
    second = await open_runtime(
        RuntimeConfig(
            db=DbConfig(url=fresh_dsn, data_dir=scratch_dir, min_size=1, max_size=5),
            switch=switch,
            request_timeout=2.0,
            close_timeout=2.0,
            id_block_size=50,
            env=key,
            webhooks=FAST,
            invoice_expiry=ExpiryConfig(interval=0.1),
        ),
        webhook_sender=AiohttpSender(),
    )
    try:
        move_clock(second, LATER)  # the expiry passed while nothing ran
        got = await wait_for(
            lambda: rig.callbacks() if len(rig.receiver.got) >= 2 else None, what="both callbacks, after the restart"
        )
        assert [c["data"]["attributes"]["resolution"] for c in got] == ["ok", "expired"]
        assert await outbox_types(second, inv["id"]) == ["invoice.process_pending", "invoice.process_failed"]
        row = await second.db.pool.fetchrow(
            "SELECT o.status FROM orders o JOIN payment_invoices i ON i.order_id = o.id WHERE i.id = $1", inv["id"]
        )
        assert row is not None and row["status"] == "rejected"
    finally:
        await second.close()


async def test_paying_at_the_instant_of_expiry_is_either_paid_or_expired_never_both(rig: Rig) -> None:
    runtime = rig.front.runtime
    engine = runtime.orders.engine
    # A sweep that sees every invoice expired, racing the cardholders' payments (whose page still takes them).
    sweep = InvoiceExpiry(engine.repo, lambda: engine.clock() + LATER, ExpiryConfig(batch=1))
    invoices = []

    async def card_form(inv: dict[str, Any]) -> tuple[str, dict[str, str]]:
        """The page opened before the expiry: its path and the card form as the cardholder fills it."""
        path = urlsplit(inv["attributes"]["hpp_url"]).path
        html = await (await rig.front.http.get(path)).text()
        nonce = re.search(r'name="nonce" value="([^"]+)"', html)
        assert nonce, html
        card = {"number": "4111111111111111", "exp_month": "12", "exp_year": "30", "cvc": "123", "holder": "J S"}
        return path, {**card, "nonce": nonce.group(1)}

    async def submit(path: str, form: dict[str, str]) -> None:
        resp = await rig.front.http.post(path, data=form, allow_redirects=False)
        assert resp.status == 303  # paid (return_urls.success) or expired (the page, or return_urls.fail)

    async def sweep_after(turns: int) -> None:
        for _ in range(turns):  # jitter only: any interleaving must keep the rule
            await asyncio.sleep(0)
        while await sweep.work_once():
            pass

    for i in range(10):  # one at a time: the sweep would close every waiting invoice at once
        inv = await create_invoice(rig.front, callback_url=rig.receiver.url, reference_id=f"race-{i}")
        invoices.append(inv)
        path, form = await card_form(inv)
        await asyncio.gather(submit(path, form), sweep_after(500 + i * 60))
    outcomes = []
    for inv in invoices:
        types = await outbox_types(runtime, inv["id"])
        order = await order_of(rig, inv["id"])
        attrs = await attributes(rig.front, inv["id"])
        sent = [op for op in order["operations"] if op["type"] == "authorize"]
        if order["status"] == "rejected":
            assert sent == [] and types == ["invoice.process_pending", "invoice.process_failed"], (order, types)
            assert attrs["resolution"] == "expired"
            outcomes.append("expired")
        else:
            assert order["status"] == "charged" and len(sent) == 1, order
            assert types == ["invoice.process_pending", "invoice.processed"], types
            assert attrs["status"] == "processed"
            outcomes.append("paid")
    assert set(outcomes) <= {"paid", "expired"}
    # And a sweep that comes after the payment leaves the paid invoice alone.
    paid = await create_invoice(rig.front, callback_url=rig.receiver.url, reference_id="race-paid")
    await pay(rig.front, paid)
    assert await sweep.work_once() == 0
    assert await outbox_types(runtime, paid["id"]) == ["invoice.process_pending", "invoice.processed"]


async def test_an_attempt_abandoned_with_its_card_on_is_expired_and_can_never_be_paid_afterwards(rig: Rig) -> None:
    runtime = rig.front.runtime
    engine = runtime.orders.engine
    inv = await create_invoice(rig.front, callback_url=rig.receiver.url, reference_id="abandoned")
    order_id = (await attributes(rig.front, inv["id"]))["original_data"]["external_id"]
    project = await runtime.projects.by_login("project")
    assert project is not None
    # As a process stopped right after the page put the card on leaves it: the card on, nothing sent.
    order = await engine.repo.get(project.id, order_id)
    assert order is not None
    sealed = engine.cards.new_order(
        project,
        order_id,
        Card("4111111111111111", 12, 2030, "123"),
        10000,
        currency("USD"),
        engine.clock(),
        rrn="",
        recurring=False,
    )
    order.card_key_id, order.card_blob, order.pan_mask = sealed.card_key_id, sealed.card_blob, sealed.pan_mask
    assert await engine.repo.save_waiting(order, attach_card=True)
    assert (await attributes(rig.front, inv["id"]))["status"] == "process_pending"  # a payment under way
    # Past the expiry, but the attempt is younger than abandoned_after: left alone.
    expiry = InvoiceExpiry(engine.repo, lambda: engine.clock() + LATER, ExpiryConfig(abandoned_after=2 * 86400))
    assert await expiry.work_once() == 0
    # Older than that: closed, called back expired.
    expiry = InvoiceExpiry(engine.repo, lambda: engine.clock() + LATER, ExpiryConfig(abandoned_after=600))
    assert await expiry.work_once() == 1
    attrs = await attributes(rig.front, inv["id"])
    assert (attrs["status"], attrs["resolution"]) == ("process_failed", "expired")
    assert await outbox_types(runtime, inv["id"]) == ["invoice.process_pending", "invoice.process_failed"]
    # The stopped attempt waking up now cannot add its authorization: nothing is sent, the invoice stays expired.
    now = engine.clock()
    intent = Operation(
        order_id=order_id,
        id=1,
        type=OperationType.AUTHORIZE,
        status=OperationStatus.PENDING,
        amount=10000,
        currency="USD",
        created=now,
        updated=now,
    )
    order.operations = []
    assert not await engine.repo.add_operation(order, intent)
    rows = await runtime.db.pool.fetch("SELECT id FROM operations WHERE order_id = $1", order_id)
    assert rows == []


async def test_crash_recovery_turning_an_invoices_order_to_error_calls_the_invoice_back_failed_error(
    rig: Rig,
) -> None:
    runtime = rig.front.runtime
    inv = await create_invoice(rig.front, callback_url=None, reference_id="crashed")
    await pay(rig.front, inv)
    order = await order_of(rig, inv["id"])
    # As a process killed between the 0100 and its result leaves it (tests/test_webhooks.py): the intent pending,
    # the order waiting; the invoice's callback_url is set now so that only recovery's callback is made.
    async with runtime.db.pool.acquire() as conn:
        await conn.execute("DELETE FROM operations WHERE order_id = $1 AND id > 1", order["id"])
        await conn.execute(
            "UPDATE operations SET status = 'pending', owner = '9:dead-host:4242:0:abc',"
            " created = now() - interval '1 hour' WHERE order_id = $1",
            order["id"],
        )
        await conn.execute("UPDATE orders SET status = 'new' WHERE id = $1", order["id"])
        await conn.execute("UPDATE payment_invoices SET callback_url = $2 WHERE id = $1", inv["id"], rig.receiver.url)
    assert runtime.reversals is not None
    assert await runtime.reversals.recover() == 1
    (cb,) = await wait_for(lambda: rig.callbacks() or None, what="the error callback")
    assert (cb["type"], cb["data"]["id"]) == ("invoice.process_failed", inv["id"])
    assert (cb["data"]["attributes"]["status"], cb["data"]["attributes"]["resolution"]) == ("process_failed", "error")
    assert float(cb["data"]["attributes"]["amount"]) == 100
    attrs = await attributes(rig.front, inv["id"])
    assert (attrs["status"], attrs["resolution"]) == ("process_failed", "error")
    logs = await delivered_logs(rig.front, inv["id"])
    assert statuses(logs) == [("process_failed", "done", 200)]
    # Recovering again finds nothing and calls back nothing more.
    assert await runtime.reversals.recover() == 0
    assert await outbox_types(runtime, inv["id"]) == ["invoice.process_failed"]
