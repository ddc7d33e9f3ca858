"""Reconciliation of the switch's books with the simulator's ledger (bench/reconcile.py).

First :func:`compare` alone, one row per kind of difference it reports (and
a few agreements it must not report), on books and ledgers written by hand.
Then the real runtime (PostgreSQL, router, reversals) against the real
simulator on 127.0.0.1 port 0 with its admin API; the doctored cases break
one side by hand and expect the difference to be reported and the exit
status 1.
"""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pg
import pytest
from json_orders import JsonOrders
from sim_helpers import IsoClient, MessageFactory
from test_orders_fixtures import PAN, body
from test_saf_reversals import eventually, failing, runtime_config, saf_rows, shop

from acquirer_sim import SimServer
from bench.reconcile import Books, compare, reconcile
from isoswitch.cli import main
from switch.orders import OrderStatus
from switch.runtime import Runtime, open_runtime

fresh_dsn, pg_dsn = pg.fresh_dsn, pg.pg_dsn

pytestmark = pytest.mark.timeout(40)

DECLINED = "4276990011343663"


# -- compare(), one row per kind of difference --------------------------------------------------------

TERM = "TERM0001"
TX = "0101120000"


def _op(
    op_id: int, typ: str, status: str, stan: str, *, mti: str, amount: int = 1000, pc: str = "000000", order: str = "7"
) -> dict[str, Any]:
    """An ``operations`` row as load_books returns it."""
    return {
        "order_id": order,
        "id": op_id,
        "type": typ,
        "status": status,
        "amount": amount,
        "currency": "USD",
        "rrn": f"RRN{stan}",
        "mti": mti,
        "stan": stan,
        "transmission_time": TX,
        "terminal_id": TERM + "    ",  # DE 41 is padded in the books, not in the ledger
        "processing_code": pc,
    }


def auth(status: str = "success", **kw: Any) -> dict[str, Any]:
    return _op(1, "authorize", status, "000001", mti="0100", **kw)


def charge(status: str = "success", **kw: Any) -> dict[str, Any]:
    return _op(2, "charge", status, "000002", mti="0220", **kw)


def reverse(status: str = "success") -> dict[str, Any]:
    return _op(2, "reverse", status, "000003", mti="0400")


def sale(status: str = "success") -> dict[str, Any]:
    return _op(1, "authorize", status, "000001", mti="0200")


def _rec(stan: str, amount: int = 1000, **extra: Any) -> dict[str, Any]:
    """A ledger record as the simulator's ``GET /ledger`` shows it."""
    rec = {"rrn": f"RRN{stan}", "stan": stan, "terminal": TERM, "transmitted": TX, "amount": amount, "currency": "840"}
    return rec | extra


def hold(status: str = "held", captured: int = 0, **kw: Any) -> dict[str, Any]:
    return _rec("000001", status=status, captured=captured, **kw)


def capture(amount: int = 1000, reversed_: bool = False) -> dict[str, Any]:
    return _rec("000002", amount, reversed=reversed_, hold_stan="000001")


def reversal_of(stan: str, mti_class: str = "010") -> dict[str, Any]:
    return _rec("000009", 1000, mti="0400", original={"stan": stan, "rrn": f"RRN{stan}", "mti_class": mti_class})


@dataclass(frozen=True)
class Row:
    ops: list[dict[str, Any]]
    ledger: dict[str, list[dict[str, Any]]]  # one card's lists: holds, captures, sales, reversals, ...
    saf: dict[int, str] = field(default_factory=dict)  # operation id (of order "7") -> saf state
    want: list[tuple[str | None, int | None, str, str]] = field(default_factory=list)  # order, op, what, text


ROWS = {
    # Agreements: nothing to report.
    "an authorization held at the issuer agrees": Row([auth()], {"holds": [hold()]}),
    "a charge captured for its amount agrees": Row(
        [auth(), charge(amount=600)], {"holds": [hold("captured", 600)], "captures": [capture(600)]}
    ),
    "a hold the issuer let expire is accepted": Row([auth()], {"holds": [hold("expired")]}),
    "a timed-out authorization whose reversal released the hold agrees": Row(
        [auth("error")], {"holds": [hold("released")], "reversals": [reversal_of("000001")]}, saf={1: "done"}
    ),
    "an ISO peer's sale it reversed agrees": Row(
        [_op(1, "charge", "success", "000001", mti="0200"), reverse()],
        {"sales": [_rec("000001", reversed=True)], "reversals": [reversal_of("000001", "020")]},
    ),
    # One row per kind of difference.
    "an operation still pending": Row([auth("pending")], {}, want=[("7", 1, "authorize", "still pending")]),
    "a decline in the switch approved at the issuer": Row(
        [auth("failure")],
        {"holds": [hold()]},
        want=[("7", 1, "authorize", "failure in the switch, approved at the issuer")],
    ),
    "a failed operation whose reversal is still owed": Row(
        [auth("error")],
        {"holds": [hold()]},
        saf={1: "manual"},
        want=[("7", 1, "authorize", "reversal not delivered yet (saf manual); the issuer's hold is in effect")],
    ),
    "a failed operation whose delivered reversal left the issuer's record in effect": Row(
        [auth("error")],
        {"holds": [hold()]},
        saf={1: "done"},
        want=[("7", 1, "authorize", "reversal delivered, the issuer's hold still in effect")],
    ),
    "an approval with no record at the issuer": Row(
        [auth()], {}, want=[("7", 1, "authorize", "approved by the switch (stan 000001), no hold at the issuer")]
    ),
    "a one-stage sale with no sale at the issuer": Row(
        [sale()], {"holds": [hold()]}, want=[("7", 1, "authorize", "no sale at the issuer"), (None, None, "hold", "")]
    ),
    "an amount that differs": Row(
        [auth()], {"holds": [hold(amount=999)]}, want=[("7", 1, "authorize", "amount 1000 in the switch, 999 at")]
    ),
    "a currency that differs": Row(
        [auth()], {"holds": [hold(currency="978")]}, want=[("7", 1, "authorize", "currency 840 in the switch, 978 at")]
    ),
    "a merchant reverse not delivered yet, the hold still held": Row(
        [auth(), reverse("error")],
        {"holds": [hold()]},
        saf={2: "pending"},
        want=[("7", 1, "authorize", "reversal not delivered yet (saf pending); the issuer's hold is held")],
    ),
    "a merchant reverse approved, the hold still held": Row(
        [auth(), reverse()],
        {"holds": [hold()]},
        want=[("7", 1, "authorize", "hold is held at the issuer, released in the switch's books")],
    ),
    "a charge whose hold is not captured at the issuer": Row(
        [auth(), charge()],
        {"holds": [hold()], "captures": [capture()]},
        want=[("7", 1, "authorize", "hold is held at the issuer, captured in the switch's books")],
    ),
    "a charge captured for another amount": Row(
        [auth(), charge(amount=600)],
        {"holds": [hold("captured", 500)], "captures": [capture(600)]},
        want=[("7", 1, "authorize", "charged 600 in the switch, captured 500 at the issuer")],
    ),
    "a capture reversed at the issuer, in effect in the switch": Row(
        [auth(), charge()],
        {"holds": [hold("captured", 1000)], "captures": [capture(reversed_=True)]},
        want=[("7", 2, "charge", "reversed at the issuer, in effect in the switch")],
    ),
    "a capture in effect at the issuer though the switch owes its reversal": Row(
        [auth(), charge()],
        {"holds": [hold("captured", 1000)], "captures": [capture()]},
        saf={2: "pending"},
        want=[
            ("7", 1, "authorize", "hold is captured at the issuer, held in the switch's books"),
            ("7", 2, "charge", "reversal owed (saf pending), the issuer's capture is in effect"),
            ("7", 2, "charge", "approved in the switch's books, yet the switch reversed it (saf pending)"),
        ],
    ),
    "an issuer record the switch does not know": Row(
        [auth()],
        {"holds": [hold(), _rec("000005", 1234, status="held", captured=0)]},
        want=[(None, None, "hold", "stan 000005 rrn RRN000005 amount 1234 (in effect): no operation in the switch")],
    ),
    "an undone issuer record the switch does not know": Row(
        [], {"holds": [hold("released")]}, want=[(None, None, "hold", "(undone): no operation in the switch")]
    ),
    "an issuer reversal of nothing the switch reversed": Row(
        [auth()],
        {"holds": [hold()], "reversals": [reversal_of("000077")]},
        want=[(None, None, "reversal", "of stan 000077 rrn RRN000077 (None): the switch reversed no such operation")],
    ),
    # The fault suite's blind spot: the merchant was told "approved", then the switch reversed it.
    "an approval the switch reversed": Row(
        [auth()],
        {"holds": [hold("released")], "reversals": [reversal_of("000001")]},
        saf={1: "done"},
        want=[("7", 1, "authorize", "approved in the switch's books, yet the switch reversed it (saf done)")],
    ),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_compare_reports_each_kind_of_difference_once_and_nothing_else(row: Row) -> None:
    books = Books(row.ops, {("7", op_id): state for op_id, state in row.saf.items()})
    report = compare(books, {"cards": [{"pan": "411111****1111", **row.ledger}]})
    got = [(d.order_id, d.operation_id, d.what, d.detail) for d in report.differences]
    assert len(got) == len(row.want), got
    for (order, op_id, what, detail), want in zip(got, row.want, strict=True):
        assert (order, op_id, what) == want[:3], got
        assert want[3] in detail, got
    assert report.operations == len(row.ops)


def _templates() -> list[str]:
    """Every difference text bench/reconcile.py can write, as a regex (its f-strings' placeholders: ``.*``)."""
    tree = ast.parse((Path(__file__).resolve().parents[1] / "bench" / "reconcile.py").read_text())
    out = []
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in ("diff", "Difference"):
            for node in (n for arg in call.args for n in ast.walk(arg) if isinstance(n, ast.JoinedStr)):
                parts = [re.escape(v.value) if isinstance(v, ast.Constant) else ".*" for v in node.values]
                out.append("".join(parts))
    return out


def test_every_kind_of_difference_the_code_can_write_has_a_row() -> None:
    templates = _templates()
    assert len(templates) >= 15  # the parse found them (15 when this was written)
    details = []
    for row in ROWS.values():
        books = Books(row.ops, {("7", op_id): state for op_id, state in row.saf.items()})
        details += [d.detail for d in compare(books, {"cards": [row.ledger]}).differences]
    missing = [t for t in templates if not any(re.fullmatch(t, d) for d in details)]
    assert missing == []


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
