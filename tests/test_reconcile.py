"""Reconciliation of the switch's books with the simulator's ledger (bench/reconcile.py).

The real runtime (PostgreSQL, router, reversals) against the real simulator
on 127.0.0.1 port 0 with its admin API; the doctored cases break one side
by hand and expect the difference to be reported and the exit status 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pg
import pytest
from json_orders import JsonOrders
from sim_helpers import IsoClient, MessageFactory
from test_orders_fixtures import PAN, body
from test_saf_reversals import eventually, failing, runtime_config, saf_rows, shop

from acquirer_sim import SimServer
from bench.reconcile import reconcile
from isoswitch.cli import main
from switch.orders import OrderStatus
from switch.runtime import Runtime, open_runtime

fresh_dsn, pg_dsn = pg.fresh_dsn, pg.pg_dsn

pytestmark = pytest.mark.timeout(40)

DECLINED = "4276990011343663"


@pytest.fixture
async def rt(sim: SimServer, fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(runtime_config(fresh_dsn, scratch_dir, sim))
    try:
        yield runtime
    finally:
        await runtime.close()


def admin(sim: SimServer) -> str:
    assert sim.admin_address is not None
    host, port = sim.admin_address
    return f"http://{host}:{port}"


async def mixed_flow(rt: Runtime, sim: SimServer) -> dict[str, str]:
    """Authorize, partial charge, refund, reverse, decline, 1-stage, credit and a timed-out authorization."""
    project = await shop(rt)
    o = JsonOrders(rt.orders)
    held = await o.authorize(project, body(amount="5.00"))
    charged = await o.authorize(project, body(amount="10.00"))
    await o.charge(project, charged.id, {"amount": "6.00"})
    await o.refund(project, charged.id, {"amount": "2.00"})
    rev = await o.authorize(project, body(amount="3.00"))
    await o.reverse(project, rev.id)
    declined = await failing(o.authorize(project, body(pan=DECLINED)))
    one_stage = await o.authorize(project, body(amount="7.00", options={"auto_charge": 1}))
    credit = await o.credit(project, None, {"amount": "1.50", "pan": PAN})
    # Approved by the issuer but answered too late: error, then the 0400 releases the hold.
    sim.set_faults([{"action": "delay", "delay_ms": 500, "mti": "0100", "amount": 444, "times": 1}])
    late = await failing(o.authorize(project, body(amount="4.44")))
    await eventually(lambda: saf_rows(rt, "done"))
    assert declined.order_id is not None and late.order_id is not None
    return {
        "held": held.id,
        "charged": charged.id,
        "reversed": rev.id,
        "declined": declined.order_id,
        "one_stage": one_stage.id,
        "credit": credit.id,
        "late": late.order_id,
    }


async def test_a_clean_mixed_flow_reconciles_with_no_difference(rt: Runtime, sim: SimServer) -> None:
    ids = await mixed_flow(rt, sim)
    report = await reconcile(rt.db.pool, admin(sim))
    assert report.differences == []
    assert report.orders == len(ids)
    # holds: held, charged, reversed, one_stage, late (released); captures 2; refund 1; credit 1; reversals 2
    assert (report.matched, report.issuer_records) == (9, 11)
    assert "0 differences" in report.summary()


async def test_a_deleted_operation_row_is_a_difference(rt: Runtime, sim: SimServer) -> None:
    ids = await mixed_flow(rt, sim)
    # The refund (operation 3 of the charged order) vanishes from the switch's books.
    await rt.db.pool.execute("DELETE FROM operations WHERE order_id = $1 AND id = 3", ids["charged"])
    report = await reconcile(rt.db.pool, admin(sim))
    (diff,) = report.differences
    assert diff.order_id is None and diff.what == "refund" and "no operation in the switch" in str(diff)
    assert PAN not in str(diff) and PAN[-4:] not in str(diff)


async def test_an_approved_operation_missing_at_the_issuer_is_a_difference(rt: Runtime, sim: SimServer) -> None:
    ids = await mixed_flow(rt, sim)
    await rt.db.pool.execute(
        "UPDATE orders SET status = 'authorized' WHERE id = $1; ", ids["declined"]
    )  # the order's status is not what is compared: the operation is
    await rt.db.pool.execute(
        "UPDATE operations SET status = 'success', iso_response_code = '00' WHERE order_id = $1", ids["declined"]
    )
    report = await reconcile(rt.db.pool, admin(sim))
    (diff,) = report.differences
    assert (diff.order_id, diff.operation_id, diff.what) == (ids["declined"], 1, "authorize")
    assert "no hold at the issuer" in diff.detail


async def test_a_hold_sent_straight_to_the_issuer_is_a_difference_and_main_exits_1(
    rt: Runtime, sim: SimServer, fresh_dsn: str, scratch_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    await mixed_flow(rt, sim)
    assert sim.address is not None
    client = await IsoClient.connect(sim.address)
    try:
        resp = await client.request(MessageFactory(terminal="ROGUE001").auth(PAN, 1234))
    finally:
        await client.close()
    assert resp["39"] == "00"
    report = await reconcile(rt.db.pool, admin(sim))
    (diff,) = report.differences
    assert diff.what == "hold" and "amount 1234" in diff.detail and "in effect" in diff.detail

    monkeypatch.setenv("DATABASE_URL", fresh_dsn)
    status = await asyncio.to_thread(main, ["reconcile", "--sim-admin", admin(sim), "--data-dir", str(scratch_dir)])
    out = capsys.readouterr().out.splitlines()
    assert status == 1
    assert out[0].startswith("issuer hold: ") and out[-1].endswith("1 differences")
    assert not any(PAN in line or "411111" in line for line in out)


async def test_main_exits_0_when_the_books_agree(
    rt: Runtime, sim: SimServer, fresh_dsn: str, scratch_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    project = await shop(rt)
    order = await JsonOrders(rt.orders).authorize(project, body())
    assert order.status is OrderStatus.AUTHORIZED
    monkeypatch.setenv("DATABASE_URL", fresh_dsn)
    status = await asyncio.to_thread(main, ["reconcile", "--sim-admin", admin(sim), "--data-dir", str(scratch_dir)])
    assert status == 0
    assert capsys.readouterr().out.strip().endswith("0 differences")
