"""Auto-capture (seeds/000 "Autocapture enabled" with "Capture time (in hours)"): a project's authorizations are
charged through the orders service once their capture time has passed, by a job whose clock the tests move (no
waiting hours); what a dead process had claimed is taken again when its lease runs out, and what fell due while
no job ran is charged by the next one. Real front, real PostgreSQL, real simulator (tests/test_http_e2e.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_http_e2e import REQUIRED, Front
from test_http_e2e import front as front  # fixture

from switch.orders.autocapture import _CLAIM, AutoCapture, AutoCaptureConfig
from switch.store import InvalidSettings

pytestmark = pytest.mark.timeout(60)


def _at(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


async def _status(front: Front, order_id: str, auth: dict[str, str] | None = None) -> str:
    status, doc = await front.call("GET", f"/orders/{order_id}", headers=auth)
    assert status == 200, doc
    return str(doc["orders"][0]["status"])


async def _enable(front: Front, login: str, hours: int) -> None:
    project = await front.runtime.projects.by_login(login)
    assert project is not None
    await front.runtime.projects.update_settings(project.id, auto_capture=True, capture_hours=hours)


def _job(front: Front, hours: float, **config: float) -> AutoCapture:
    """Another process's job (as after a restart), its clock ``hours`` from now."""
    rt = front.runtime
    job = AutoCapture(rt.db.pool, rt.orders.charge, rt.projects.get, lambda: _at(hours), AutoCaptureConfig(**config))
    return job


async def test_an_authorization_is_charged_once_its_capture_time_has_passed(front: Front) -> None:
    await _enable(front, "project", 2)
    order = await front.order()
    theirs = await front.call("POST", "/orders/authorize", {**REQUIRED, "amount": "5.00"}, headers=front.other)
    assert theirs[0] == 200
    job = front.runtime.autocapture
    assert job is not None
    job.clock = lambda: _at(1.5)
    assert await job.work_once() == 0 and await _status(front, order["id"]) == "authorized"
    job.clock = lambda: _at(2.5)
    assert await job.work_once() == 1
    assert await _status(front, order["id"]) == "charged"
    assert await job.work_once() == 0  # charged once, never again
    # The other project never asked for it: its authorization waits for its merchant.
    assert await _status(front, theirs[1]["orders"][0]["id"], front.other) == "authorized"
    row = await front.runtime.db.pool.fetchrow(
        "SELECT action, result, channel FROM audit_log WHERE order_id = $1", order["id"]
    )
    assert row is not None and dict(row) == {"action": "charge", "result": "success", "channel": "autocapture"}
    assert len(front.iso("0220")) == 1  # one capture advice on the wire


async def test_a_restart_loses_none_a_dead_claim_is_taken_again_after_its_lease(front: Front) -> None:
    await _enable(front, "project", 1)
    order = await front.order()
    # A process claims the order (its lease: 120 s) and dies before charging it.
    claimed = await front.runtime.db.pool.fetch(_CLAIM, _at(2), 10, 120.0)
    assert [r["order_id"] for r in claimed] == [order["id"]]
    # A new process (no memory of the old one) leaves it alone while the lease holds ...
    assert await _job(front, 2 + 60 / 3600).work_once() == 0
    assert await _status(front, order["id"]) == "authorized"
    # ... and charges it once the lease is over.
    later = _job(front, 2 + 121 / 3600)
    assert await later.work_once() == 1 and later.captured == 1
    assert await _status(front, order["id"]) == "charged"
    sql = "SELECT attempts FROM auto_captures WHERE order_id = $1"
    assert await front.runtime.db.pool.fetchval(sql, order["id"]) == 2


async def test_what_fell_due_while_no_job_ran_is_charged_by_the_next_and_a_refusal_is_final(front: Front) -> None:
    job = front.runtime.autocapture
    assert job is not None
    await job.close()  # no job in this process: as if the switch were down
    first, second = await front.order(), await front.order()
    await _enable(front, "project", 24)
    # The merchant reverses one by hand meanwhile.
    status, _ = await front.call("PUT", f"/orders/{second['id']}/reverse")
    assert status == 200
    fresh = _job(front, 48)
    assert await fresh.work_once() == 1  # the reversed one is no longer authorized: not even claimed
    assert await _status(front, first["id"]) == "charged"
    assert await _status(front, second["id"]) == "reversed"


async def test_the_capture_time_is_a_validated_setting(front: Front) -> None:
    project = await front.runtime.projects.by_login("project")
    assert project is not None and project.settings.auto_capture is False and project.settings.capture_hours == 24
    for bad in (0, 721, True, "5"):
        with pytest.raises(InvalidSettings, match="capture_hours"):
            await front.runtime.projects.update_settings(project.id, capture_hours=bad)


async def test_two_processes_looking_at_once_charge_a_due_order_once(front: Front) -> None:
    await _enable(front, "project", 1)
    orders = [await front.order() for _ in range(3)]
    one, two = _job(front, 2), _job(front, 2)
    counts = await asyncio.gather(one.work_once(), two.work_once())
    assert sum(counts) == 3 and one.captured + two.captured == 3
    assert [await _status(front, o["id"]) for o in orders] == ["charged"] * 3
    assert len(front.iso("0220")) == 3  # one capture each, never two
