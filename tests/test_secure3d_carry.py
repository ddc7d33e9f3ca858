"""An authorization through 3-D Secure honours everything a direct one does, across the cardholder's wait.

The real front, the real runtime on PostgreSQL, the real simulator with its DS and ACS (tests/secure3d_rig.py);
the 0100s compared are the ones the simulator's issuer received. Also: the sweep that ends abandoned sessions,
the 3DS Method's 201 and the order it leaves, and `isoswitch up` with ``[simulator] admin_port = 0``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import secure3d_rig
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from secure3d_rig import BROWSER, Rig, Shopper, body, replace_secure3d
from sim_helpers import free_ports
from waiting import wait_for

from switch.secure3d import Secure3D
from switch.store.projects import Project
from switch.wire.codec import Message

pytestmark = pytest.mark.timeout(120)

VISA = "4111111111111111"
NO_METHOD = "4000000000003063"  # 3DS2: no method URL, frictionless unless a challenge is asked for
RETURN = "https://shop.example/return"
TRACE = "MCC8454300719"

# What may differ between the 0100 of a direct authorize and of the same body after 3-D Secure:
# the message's own ids and times, the RRN, and the 3-D Secure fields (ECI, CAVV, XID / dsTransID), so the
# bitmap ("1") that says which fields are there.
OWN_FIELDS = {"1", "7", "11", "12", "13", "37", "121", "122", "123"}


@pytest.fixture
async def rig(fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Rig]:  # noqa: F811
    async for r in secure3d_rig.open_rig(fresh_dsn, scratch_dir):
        yield r


@pytest.fixture
async def shopper() -> AsyncIterator[Shopper]:
    async with aiohttp.ClientSession() as session:
        yield Shopper(session)


async def _project(rig: Rig) -> Project:
    project = await rig.runtime.projects.by_login("project")
    assert project is not None
    return project


async def _with_terminals(rig: Rig) -> Project:
    project = await _project(rig)
    return await rig.runtime.projects.update_settings(project.id, terminals=["TERM0002"])


async def _order(rig: Rig, order_id: str) -> dict[str, Any]:
    status, doc = await rig.call("GET", f"/orders/{order_id}?expand=secure3d,operations,client,location,custom_fields")
    assert status == 200, doc
    order: dict[str, Any] = doc["orders"][0]
    return order


def _direct(doc: dict[str, Any]) -> dict[str, Any]:
    """The same body without 3-D Secure."""
    plain = copy.deepcopy(doc)
    plain["options"].pop("force3d", None)
    plain["options"].pop("return_url", None)
    plain.pop("secure3d", None)
    return plain


def _differences(a: Message, b: Message) -> set[str]:
    return {k for k in set(a) | set(b) if a.get(k) != b.get(k)}


async def _through_3ds1(rig: Rig, shopper: Shopper, doc: dict[str, Any]) -> str:
    status, answer = await rig.call("POST", "/orders/authorize", doc)
    assert status == 201, answer
    order = answer["orders"][0]
    status, _, headers = await shopper.through_acs(order["form3d"], "1234")
    assert status == 303 and headers["Location"] == RETURN
    order_id: str = order["id"]
    return order_id


def _rich(pan: str = VISA, **options: Any) -> dict[str, Any]:
    """A body that uses everything an authorize takes besides the card: terminal, DE 43, client, fields."""
    return body(
        pan,
        options={"return_url": RETURN, "terminal": "TERM0002", "recurring": 1, **options},
        extra_fields={"dynamic_descriptor": {"merchant": "BOOKSTORE LTD", "city": "Moscow", "country": "ru"}},
        client={"name": "John Smith", "email": "john@example.com", "phone": "+15555550100"},
        custom_fields={"basket": "42", "channel": "web"},
        description="two books",
        merchant_order_id="M-1001",
    )


# -- the 0100 after the wait is the direct one's -------------------------------------------------------------


async def test_the_3ds1_0100_after_a_passed_challenge_equals_the_direct_one_but_its_ids_and_3ds_fields(
    rig: Rig, shopper: Shopper
) -> None:
    await _with_terminals(rig)
    doc = _rich()
    status, direct = await rig.call("POST", "/orders/authorize", _direct(doc))
    assert status == 200, direct
    order_id = await _through_3ds1(rig, shopper, doc)
    first, second = rig.iso("0100")
    assert _differences(first, second) <= OWN_FIELDS, {
        k: (first.get(k), second.get(k)) for k in _differences(first, second)
    }
    assert second["41"] == "TERM0002" and second["43"].startswith("BOOKSTORE LTD") and second["43"].endswith("RU")
    assert second["124"] == first["124"] == "CF" and second["120"] == "123"
    assert second["121"] == "05" and "121" not in first
    # What the order keeps of the request survives the wait as the direct order has it.
    done, plain = await _order(rig, order_id), await _order(rig, direct["orders"][0]["id"])
    assert done["status"] == "authorized"
    for name in ("client", "location", "custom_fields", "description", "merchant_order_id", "descriptor"):
        assert done[name] == plain[name], name
    assert done["descriptor"] == "BOOKSTORE LTD>Moscow"


async def test_a_merchant_initiated_payment_through_3ds_keeps_de_124_and_its_parent_order(
    rig: Rig, shopper: Shopper
) -> None:
    await _with_terminals(rig)
    status, parent = await rig.call("POST", "/orders/authorize", _direct(_rich()))
    assert status == 200, parent
    parent_id = parent["orders"][0]["id"]
    doc = _rich(exemption_mit=1)
    doc["recurring_details"] = {"parent_order_id": parent_id}
    status, direct = await rig.call("POST", "/orders/authorize", _direct(doc))
    assert status == 200, direct
    order_id = await _through_3ds1(rig, shopper, doc)
    first_rrn = rig.iso("0100")[0]["37"]
    _, one, two = rig.iso("0100")
    assert _differences(one, two) <= OWN_FIELDS
    assert two["124"] == one["124"] == f"MR{first_rrn}"
    # With a network trace id instead of a parent order.
    doc = _rich(exemption_mit=1)
    doc["recurring_details"] = {"trace_id": TRACE}
    await rig.call("POST", "/orders/authorize", _direct(doc))
    await _through_3ds1(rig, shopper, doc)
    *_, three, four = rig.iso("0100")
    assert _differences(three, four) <= OWN_FIELDS and four["124"] == f"MR{TRACE}"
    async with rig.runtime.db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT parent_order_id, initial_rrn FROM orders WHERE id = ANY($1)", [order_id, direct["orders"][0]["id"]]
        )
    assert [tuple(r) for r in rows] == [(parent_id, first_rrn)] * 2


async def test_the_3ds2_0100_after_a_challenge_equals_the_direct_one_but_its_ids_and_3ds_fields(
    rig: Rig, shopper: Shopper
) -> None:
    await _with_terminals(rig)
    doc = _rich(NO_METHOD)
    doc["secure3d"] = {"browser_details": BROWSER, "force_challenge": 1}
    status, direct = await rig.call("POST", "/orders/authorize", _direct(doc))
    assert status == 200, direct
    status, answer = await rig.call("POST", "/orders/authorize", doc)
    assert status == 201, answer
    status, _, headers = await shopper.through_acs(answer["orders"][0]["form3d"], "1234")
    assert status == 303 and headers["Location"] == RETURN
    first, second = rig.iso("0100")
    assert _differences(first, second) <= OWN_FIELDS, _differences(first, second)
    assert second["41"] == "TERM0002" and second["124"] == "CF" and second["123"]


async def test_a_terminal_or_stored_credential_refused_directly_is_refused_before_3ds_starts(rig: Rig) -> None:
    for options, extra, where in (
        ({"terminal": "TERM0009"}, {}, "options/terminal"),
        ({"exemption_mit": 1}, {}, "options/exemption_mit"),
        ({}, {"recurring_details": {"parent_order_id": "12345678901234567"}}, "recurring_details/parent_order_id"),
    ):
        status, doc = await rig.call("POST", "/orders/authorize", body(VISA, options=options, **extra))
        assert status == 422, doc
        assert f"#/{where}" in orjson.dumps(doc["errors"]).decode(), doc
    async with rig.runtime.db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM secure3d_sessions") == 0
        assert await conn.fetchval("SELECT count(*) FROM orders") == 0
    assert rig.sent == []


async def test_the_session_keeps_no_card_data_and_the_database_refuses_any(rig: Rig) -> None:
    await _with_terminals(rig)
    status, answer = await rig.call("POST", "/orders/authorize", _rich())
    assert status == 201, answer
    async with rig.runtime.db.pool.acquire() as conn:
        extra = await conn.fetchval("SELECT extra::text FROM secure3d_sessions")
        assert VISA not in extra and '"123"' not in extra and "cvv" not in extra
        assert '"terminal": "TERM0002"' in extra and '"reason": "F"' in extra
        with pytest.raises(Exception, match="secure3d_sessions_extra_no_card_data"):
            await conn.execute("""UPDATE secure3d_sessions SET extra = extra || '{"cvv": "123"}'""")


# -- webhooks, oneclick, auto_charge -------------------------------------------------------------------------


async def test_the_notification_url_gets_order_prepared_and_order_authorized_of_a_3ds_order(
    rig: Rig, shopper: Shopper
) -> None:
    url = "https://merchant.example/hooks/order"
    order_id = await _through_3ds1(rig, shopper, body(VISA, options={"return_url": RETURN, "notification_url": url}))
    async with rig.runtime.db.pool.acquire() as conn:
        rows = await conn.fetch("SELECT event_type, url FROM webhook_outbox WHERE order_id = $1 ORDER BY id", order_id)
        assert await conn.fetchval("SELECT notification_url FROM orders WHERE id = $1", order_id) == url
    assert [(r["event_type"], r["url"]) for r in rows] == [("order.prepared", url), ("order.authorized", url)]


async def test_oneclick_binds_the_card_after_the_challenge_and_a_later_order_pays_with_it(
    rig: Rig, shopper: Shopper
) -> None:
    project = await _project(rig)
    doc = body(VISA, options={"return_url": RETURN}, extra_fields={"oneclick": {"customer_id": "cust42"}})
    order_id = await _through_3ds1(rig, shopper, doc)
    (kept,) = await rig.runtime.orders.oneclick_cards(project, "cust42")
    assert kept.order_id == order_id
    assert rig.iso("0100")[0]["124"] == "CF"  # the credential is stored now, as a direct authorize says
    status, paid = await rig.call(
        "POST",
        "/orders/authorize",
        {
            "amount": "5.00",
            "card": {"cvv": "123"},
            "location": {"ip": "6.6.6.6"},
            "extra_fields": {"oneclick": {"customer_id": "cust42"}},
        },
    )
    assert status == 200 and paid["orders"][0]["status"] == "authorized", paid
    assert rig.iso("0100")[-1]["124"] == "CU" and rig.iso("0100")[-1]["2"] == VISA


async def test_a_declined_challenge_binds_no_card(rig: Rig, shopper: Shopper) -> None:
    project = await _project(rig)
    doc = body(VISA, options={"return_url": RETURN}, extra_fields={"oneclick": {"customer_id": "cust43"}})
    status, answer = await rig.call("POST", "/orders/authorize", doc)
    assert status == 201
    await shopper.through_acs(answer["orders"][0]["form3d"], "0000")
    assert await rig.runtime.orders.oneclick_cards(project, "cust43") == []


async def test_auto_charge_charges_after_the_challenge(rig: Rig, shopper: Shopper) -> None:
    order_id = await _through_3ds1(rig, shopper, body(VISA, options={"return_url": RETURN, "auto_charge": 1}))
    done = await _order(rig, order_id)
    assert done["status"] == "charged" and done["amount_charged"] == "9.99"
    assert [op["type"] for op in done["operations"]] == ["authorize", "charge"]


# -- the 3DS Method step -------------------------------------------------------------------------------------


async def test_the_method_step_answers_the_seeds_201_and_the_order_reads_prepared_version_2(rig: Rig) -> None:
    doc = body(VISA, options={"return_url": RETURN}, secure3d={"browser_details": BROWSER})
    status, answer = await rig.call("POST", "/orders/authorize", doc)
    assert status == 201, answer
    assert set(answer) == {"method3d_params", "message", "order_id"}
    assert answer["message"] == "Method3d required"
    assert set(answer["method3d_params"]) == {"method_url", "method_data"}
    order = await _order(rig, answer["order_id"])
    assert order["status"] == "prepared" and order["secure3d"]["version"] == "2"
    assert "method3d_params" not in order and "form3d" not in order


# -- abandoned sessions --------------------------------------------------------------------------------------


@pytest.fixture
async def short_rig(fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Rig]:  # noqa: F811
    async for r in secure3d_rig.open_rig(fresh_dsn, scratch_dir, session_timeout=1.0):
        yield r


async def test_the_sweep_declines_an_abandoned_order_with_scenario_expired_and_its_event(short_rig: Rig) -> None:
    rig = short_rig
    replace_secure3d(rig, sweep_interval=0.1)
    rig.secure3d.start()
    url = "https://merchant.example/hooks/order"
    status, answer = await rig.call("POST", "/orders/authorize", body(VISA, options={"notification_url": url}))
    assert status == 201, answer
    order = answer["orders"][0]

    async def declined() -> bool:
        return bool((await _order(rig, order["id"]))["status"] == "declined")

    await wait_for(declined, 15, interval=0.1, what="the sweep declines the order")
    done = await _order(rig, order["id"])
    assert done["secure3d"]["scenario"] == "expired" and done["operations"] == []
    async with rig.runtime.db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT state FROM secure3d_sessions") == "expired"
        rows = await conn.fetch(
            "SELECT event_type, url FROM webhook_outbox WHERE order_id = $1 ORDER BY id", order["id"]
        )
    assert [(r["event_type"], r["url"]) for r in rows] == [("order.prepared", url), ("order.declined", url)]
    assert rig.iso("0100") == []


async def test_two_sweeping_processes_end_each_session_once(short_rig: Rig) -> None:
    rig = short_rig
    ids = []
    for _ in range(5):
        status, answer = await rig.call(
            "POST", "/orders/authorize", body(VISA, options={"notification_url": "https://merchant.example/h"})
        )
        assert status == 201
        ids.append(answer["orders"][0]["id"])
    async with rig.runtime.db.pool.acquire() as conn:
        await conn.execute("UPDATE secure3d_sessions SET expires_at = now() - interval '1 second'")
    replace_secure3d(rig, sweep_batch=2)
    one = rig.secure3d
    replace_secure3d(rig, sweep_batch=2)
    two = rig.secure3d
    assert isinstance(one, Secure3D) and one is not two

    async def drain(s: Secure3D) -> int:
        total = 0
        while n := await s.sweep.work_once():
            total += n
        return total

    ended = await asyncio.gather(drain(one), drain(two))
    assert sum(ended) == 5
    async with rig.runtime.db.pool.acquire() as conn:
        declined = await conn.fetchval(
            "SELECT count(*) FROM webhook_outbox WHERE event_type = 'order.declined' AND order_id = ANY($1)", ids
        )
        statuses = await conn.fetch("SELECT DISTINCT status FROM orders")
    assert declined == 5 and [r["status"] for r in statuses] == ["declined"]


# -- isoswitch up with [simulator] admin_port = 0 ------------------------------------------------------------


def test_up_with_admin_port_0_points_the_ds_at_the_port_the_simulator_bound(scratch_dir: Path) -> None:  # noqa: F811
    http, sim = free_ports(2)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    cmd = [sys.executable, "-m", "isoswitch", "up", "--data-dir", str(scratch_dir / "data"), "--http-port", str(http)]
    cmd += ["--sim-port", str(sim), "--sim-admin-port", "0", "--smtp-sink-port", "0", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any("--concurrency" in x for x in lines):
            line = proc.stdout.readline()
            assert line, lines
            lines.append(line)
        ledger = re.search(r"ledger: http://127\.0\.0\.1:(\d+)/ledger", "".join(lines))
        assert ledger is not None and int(ledger.group(1)) != 0, lines
        creds = next(orjson.loads(x.strip()) for x in lines if x.strip().startswith('{"login"'))
        auth = base64.b64encode(f"demo:{creds['password']}".encode()).decode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{http}/orders/authorize",
            data=orjson.dumps(body(VISA)),
            headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert resp.status == 201
            answer = orjson.loads(resp.read())
        assert answer["orders"][0]["form3d"]["action"] == f"http://127.0.0.1:{ledger.group(1)}/acs/3ds1"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
