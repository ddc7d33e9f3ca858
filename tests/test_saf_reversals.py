"""Unknown outcomes are reversed: 0400 at once, then 0420/0421 store-and-forward, recovery and late answers.

Everything real: PostgreSQL (tests/pg.py), the simulator on 127.0.0.1 port
0, the runtime with its router, worker and recovery. Timeouts are short
(0.2 s) and the worker polls every 20 ms.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pg
import pytest
from json_orders import JsonOrders, http_status
from test_orders_fixtures import PAN, body, settings

from acquirer_sim import SimServer
from switch.config import SwitchConfig
from switch.orders import OperationStatus, OrderError, OrderStatus
from switch.runtime import Runtime, RuntimeConfig, open_runtime
from switch.saf import SafConfig, list_entries
from switch.store import DbConfig, Project
from switch.wire.codec import Message

# The PostgreSQL fixtures (tests/pg.py), made visible to this module's tests.
fresh_dsn, pg_dsn = pg.fresh_dsn, pg.pg_dsn

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent
KEY = base64.b64encode(secrets.token_bytes(32)).decode()
FAST = SafConfig(
    poll_interval=0.02, backoff_base=0.02, backoff_cap=0.05, timeout=0.2, max_attempts=50, recovery_grace=60.0
)


class _Arrivals:
    """Wraps the sim's fault plan to see every request that arrives, faulted (no reply) or not."""

    def __init__(self, plan: Any, seen: list[Message]) -> None:
        self._plan = plan
        self._seen = seen

    def __bool__(self) -> bool:
        return True  # the server asks the plan about every message

    def pick(self, msg: Message) -> Any:
        self._seen.append(dict(msg))
        return self._plan.pick(msg) if self._plan else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._plan, name)


def arrivals(sim: SimServer) -> list[Message]:
    seen: list[Message] = []
    sim.faults = _Arrivals(sim.faults, seen)  # type: ignore[assignment]
    return seen


def of(seen: list[Message], *mtis: str) -> list[Message]:
    return [m for m in seen if m["t"] in mtis]


def runtime_config(dsn: str, data_dir: Path, sim: SimServer, saf: SafConfig = FAST, **kw: Any) -> RuntimeConfig:
    assert sim.address is not None
    host, port = sim.address
    switch = SwitchConfig.from_dict(
        {
            "destinations": [
                {"name": "sim", "host": host, "port": port, "links": 2, "echo_interval": 0.0, "timeout": 0.5}
            ],
            "routing": {"default": "sim", "test": "sim"},
        }
    )
    return RuntimeConfig(
        db=DbConfig(url=dsn, data_dir=data_dir, min_size=1, max_size=6),
        switch=switch,
        request_timeout=0.2,
        close_timeout=1.0,
        id_block_size=20,
        env={"ISOSWITCH_PAN_KEY": KEY},
        saf=saf,
        **kw,
    )


@pytest.fixture
async def rt(sim: SimServer, fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(runtime_config(fresh_dsn, scratch_dir, sim))
    try:
        yield runtime
    finally:
        await runtime.close()


async def shop(rt: Runtime) -> Project:
    project, _ = await rt.projects.create("shop-" + secrets.token_hex(3), settings(1))
    return project


async def eventually(check: Callable[[], Any], seconds: float = 4.0) -> Any:
    for _ in range(int(seconds / 0.02)):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("never happened")


async def saf_rows(rt: Runtime, state: str | None = None) -> list[dict[str, Any]]:
    return await list_entries(rt.db.pool, state)


async def failing(coro: Any) -> OrderError:
    with pytest.raises(OrderError) as e:
        await coro
    return e.value


# -- 1: the 0400 at once ---------------------------------------------------------------


async def test_a_timed_out_authorization_is_an_error_and_its_reversal_is_answered_at_once(
    rt: Runtime, sim: SimServer
) -> None:
    seen = arrivals(sim)
    sim.set_faults([{"action": "no_reply", "mti": "0100"}])
    project = await shop(rt)
    err = await failing(JsonOrders(rt.orders).authorize(project, body()))
    assert (err.failure_type, err.message, http_status(err)) == ("error", "Request timed out", 500)
    assert err.order_id is not None
    order = await rt.orders.get_order(project, err.order_id)
    assert order.status is OrderStatus.ERROR
    (op,) = order.operations
    assert op.status is OperationStatus.ERROR
    (sent,) = of(seen, "0100")
    assert op.stan == sent["11"]  # reserved before the intent, kept by the link

    (row,) = await eventually(lambda: saf_rows(rt, "done"))
    # The host processed nothing (no_reply), so the reversal finds no original: 25, delivered all the same.
    assert (row["order_id"], row["operation_id"], row["response_code"], row["attempts"]) == (order.id, 1, "25", 0)
    (rev,) = of(seen, "0400")
    assert rev["90"][:20] == "0100" + sent["11"] + sent["7"] and rev["37"] == sent["37"]
    assert of(seen, "0420", "0421") == []
    counts = await rt.saf_counts()
    assert (counts.pending, counts.manual, counts.done) == (0, 0, 1)


async def test_a_lost_link_on_a_refund_reverses_the_refund(rt: Runtime, sim: SimServer) -> None:
    seen = arrivals(sim)
    project = await shop(rt)
    order = await JsonOrders(rt.orders).authorize(project, body(options={"auto_charge": 1}))
    sim.set_faults([{"action": "close", "mti": "0200", "times": 1}])
    err = await failing(JsonOrders(rt.orders).refund(project, order.id, {"amount": "1.00"}))
    assert (err.failure_type, err.message) == ("error", "Connection to the issuer lost")
    (row,) = await eventually(lambda: saf_rows(rt, "done"))
    (refund,) = of(seen, "0200")
    assert (row["mti"], row["stan"], row["processing_code"], row["amount"]) == ("0200", refund["11"], "200000", 100)
    assert (await rt.orders.get_order(project, order.id)).status is OrderStatus.ERROR


# -- 2: store-and-forward ---------------------------------------------------------------------


async def test_an_unanswered_reversal_is_repeated_as_0420_then_0421_until_the_host_answers(
    rt: Runtime, sim: SimServer
) -> None:
    seen = arrivals(sim)
    sim.set_faults(
        [
            {"action": "no_reply", "mti": "0100"},
            {"action": "no_reply", "mti": "0400", "times": 1},
            {"action": "no_reply", "mti": "0420", "times": 1},
            {"action": "no_reply", "mti": "0421", "times": 1},
        ]
    )
    project = await shop(rt)
    err = await failing(JsonOrders(rt.orders).authorize(project, body()))
    (row,) = await eventually(lambda: saf_rows(rt, "done"))
    assert (row["order_id"], row["attempts"], row["response_code"]) == (err.order_id, 3, "25")
    assert [m["t"] for m in of(seen, "0400", "0420", "0421")] == ["0400", "0420", "0421", "0421"]
    advices = of(seen, "0420", "0421")
    # One advice and its repeats: the same DE 11 and DE 7, so the host dedupes them.
    assert {(m["11"], m["7"]) for m in advices} == {(row["advice_stan"], row["advice_time"])}
    assert {m["90"] for m in advices} == {of(seen, "0400")[0]["90"]}
    assert all(m["2"] == PAN for m in advices)  # DE 2 opened from the vault


async def test_after_the_attempt_limit_the_reversal_is_left_for_manual_action_and_listed(
    sim: SimServer, fresh_dsn: str, scratch_dir: Path
) -> None:
    cfg = runtime_config(fresh_dsn, scratch_dir, sim, saf=SafConfig(**{**_fields(FAST), "max_attempts": 3}))
    rt = await open_runtime(cfg)
    try:
        seen = arrivals(sim)
        sim.set_faults([{"action": "no_reply"}])  # the host hears nothing any more
        project = await shop(rt)
        await failing(JsonOrders(rt.orders).authorize(project, body()))
        (row,) = await eventually(lambda: saf_rows(rt, "manual"))
        assert row["attempts"] == 3 and "timed out" in row["last_error"]
        assert [m["t"] for m in of(seen, "0400", "0420", "0421")] == ["0400", "0420", "0421", "0421"]
        await asyncio.sleep(0.2)
        assert len(of(seen, "0420", "0421")) == 3  # manual: no more advices
        assert (await rt.saf_counts()).manual == 1
    finally:
        sim.set_faults([])  # let the links sign off at once
        await rt.close()
    # isoswitch saf list, as a person would run it: one JSON line per entry, no card data.
    env = {**os.environ, "DATABASE_URL": fresh_dsn}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "isoswitch", "saf", "list", "--state", "manual", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, errout = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, errout
    lines = out.decode().splitlines()
    assert len(lines) == 1 and '"state":"manual"' in lines[0] and '"attempts":3' in lines[0]
    assert PAN not in out.decode() and PAN[-4:] + '"' not in out.decode()


async def test_two_workers_on_one_database_never_send_the_same_advice_twice(
    sim: SimServer, fresh_dsn: str, scratch_dir: Path
) -> None:
    saf = SafConfig(**{**_fields(FAST), "batch": 3, "poll_interval": 0.01})
    a = await open_runtime(runtime_config(fresh_dsn, scratch_dir, sim, saf=saf, node_id=1))
    b = await open_runtime(runtime_config(fresh_dsn, scratch_dir, sim, saf=saf, node_id=2))
    try:
        project = await shop(a)
        orders = [await JsonOrders(a.orders).authorize(project, body(amount="1.00")) for _ in range(24)]
        seen = arrivals(sim)
        # 24 reversals due at once (their authorizations were approved: the host releases each hold).
        await a.db.pool.execute(
            "INSERT INTO saf (order_id, operation_id, destination, mti, stan, transmission_time, rrn, auth_code,"
            " amount, currency, acquirer_id, terminal_id, merchant_id, processing_code, next_attempt_at)"
            " SELECT p.order_id, p.id, 'sim', p.mti, p.stan, p.transmission_time, p.rrn, p.auth_code, p.amount,"
            " p.currency, p.acquirer_id, p.terminal_id, 'MERCHANT0000001', p.processing_code, now()"
            " FROM operations p WHERE p.order_id = ANY($1::text[])",
            [o.id for o in orders],
        )
        await eventually(lambda: _all_done(a, 24))
        advices = of(seen, "0420", "0421")
        assert sorted(m["90"][4:10] for m in advices) == sorted(o.operations[0].stan or "" for o in orders)
        assert {m["t"] for m in advices} == {"0420"}  # each sent once, none repeated
        assert a.reversals is not None and b.reversals is not None
        assert a.reversals.advices_sent > 0 and b.reversals.advices_sent > 0  # both took part
        assert {h["status"] for c in sim.ledger.snapshot()["cards"] for h in c["holds"]} == {"released"}
    finally:
        await b.close()
        await a.close()


# -- 3: crash recovery ---------------------------------------------------------------------


async def test_an_intent_left_pending_by_a_dead_process_is_reversed_at_start(
    sim: SimServer, fresh_dsn: str, scratch_dir: Path
) -> None:
    first = await open_runtime(runtime_config(fresh_dsn, scratch_dir, sim))
    try:
        project = await shop(first)
        order = await JsonOrders(first.orders).authorize(project, body())
        young = await JsonOrders(first.orders).authorize(project, body())
    finally:
        await first.close()
    # As a process killed between the send and the result leaves them: the host holds both authorizations.
    await _make_pending(fresh_dsn, order.id, "9:dead-host:4242:0:abc", "1 hour")
    await _make_pending(fresh_dsn, young.id, "9:dead-host:4242:0:abc", "1 second")  # within the grace period
    seen = arrivals(sim)
    second = await open_runtime(runtime_config(fresh_dsn, scratch_dir, sim))
    try:
        (row,) = await eventually(lambda: saf_rows(second, "done"))
        assert (row["order_id"], row["response_code"], row["stan"]) == (order.id, "00", order.operations[0].stan)
        (advice,) = of(seen, "0420")
        assert advice["90"][:10] == "0100" + (order.operations[0].stan or "")
        stored = await second.orders.get_order(project, order.id)
        assert stored.status is OrderStatus.ERROR
        assert [(op.status, op.iso_message) for op in stored.operations] == [
            (OperationStatus.ERROR, "Outcome unknown: the process sending it stopped")
        ]
        holds = {h["rrn"]: h["status"] for c in sim.ledger.snapshot()["cards"] for h in c["holds"]}
        assert holds[order.rrn] == "released" and holds[young.rrn] == "held"
        # The young one is left to its owner until the grace period ends; its own row is untouched.
        status = await second.db.pool.fetchval("SELECT status FROM operations WHERE order_id = $1", young.id)
        assert status == "pending"
        assert second.reversals is not None
        assert await second.reversals.recover(grace=0.0) == 1  # later scans take it
        assert await second.reversals.recover(grace=0.0) == 0  # and only once
        await eventually(lambda: _all_done(second, 2))
    finally:
        await second.close()


async def test_recovery_never_takes_this_process_own_pending_intents(rt: Runtime, sim: SimServer) -> None:
    sim.set_faults([{"action": "delay", "delay_ms": 150, "mti": "0100"}])
    project = await shop(rt)
    task = asyncio.create_task(JsonOrders(rt.orders).authorize(project, body()))
    intent = await eventually(
        lambda: rt.db.pool.fetchrow("SELECT stan, owner, destination FROM operations WHERE status = 'pending'")
    )
    assert rt.reversals is not None
    # The intent knows DE 11 before the host sees it, and who works on it.
    assert intent["stan"] is not None and (intent["owner"], intent["destination"]) == (rt.reversals.owner, "sim")
    assert await rt.reversals.recover(grace=0.0) == 0
    order = await task
    assert order.status is OrderStatus.AUTHORIZED and order.operations[0].stan == intent["stan"]
    assert await saf_rows(rt) == []
    # One of its own that no task works on any more (its result write failed) is recovered, though.
    await _make_pending(rt.db.dsn, order.id, rt.reversals.owner, "1 hour")
    assert await rt.reversals.recover() == 1
    (row,) = await eventually(lambda: saf_rows(rt, "done"))
    assert row["order_id"] == order.id


# -- 4: late answers --------------------------------------------------------------------------


async def test_a_late_0110_is_counted_and_never_applied(rt: Runtime, sim: SimServer) -> None:
    sim.set_faults([{"action": "delay", "delay_ms": 600, "mti": "0100"}])
    project = await shop(rt)
    err = await failing(JsonOrders(rt.orders).authorize(project, body()))
    assert err.failure_type == "error" and err.order_id is not None
    # The host did hold it (delay processes at once): the 0400 finds and releases it.
    (row,) = await eventually(lambda: saf_rows(rt, "done"))
    assert row["response_code"] == "00"

    async def late() -> bool:
        return rt.late_responses == 1

    await eventually(late)
    order = await rt.orders.get_order(project, err.order_id)
    assert order.status is OrderStatus.ERROR and order.auth_code is None
    assert [op.status for op in order.operations] == [OperationStatus.ERROR]
    holds = [h for c in sim.ledger.snapshot()["cards"] for h in c["holds"]]
    assert [h["status"] for h in holds] == ["released"]


# -- helpers ------------------------------------------------------------------------------------


def _fields(cfg: SafConfig) -> dict[str, Any]:
    return {f: getattr(cfg, f) for f in cfg.__slots__}  # type: ignore[attr-defined]


async def _all_done(rt: Runtime, n: int) -> bool:
    rows = await saf_rows(rt)
    return len(rows) == n and all(r["state"] == "done" for r in rows)


async def _make_pending(dsn: str, order_id: str, owner: str, age: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE operations SET status = 'pending', owner = $2, iso_response_code = NULL, auth_code = NULL,"
            f" created = now() - interval '{age}' WHERE order_id = $1",
            order_id,
            owner,
        )
        await conn.execute("UPDATE orders SET status = 'new', auth_code = NULL WHERE id = $1", order_id)
    finally:
        await conn.close()


# -- a result held up past another node's recovery ---------------------------------------


async def test_a_result_written_after_recovery_settled_its_intent_changes_nothing_and_is_not_reported_as_approved(
    sim: SimServer, fresh_dsn: str, scratch_dir: Path
) -> None:
    # The 0100 is answered after 1.5 s; the recovery grace is 1 s, so an exchange this long may have
    # been taken over by another node's recovery (here done by hand, as that node would).
    cfg = dataclasses.replace(
        runtime_config(fresh_dsn, scratch_dir, sim, dataclasses.replace(FAST, recovery_grace=1.0)),
        request_timeout=3.0,
    )
    rt = await open_runtime(cfg)
    try:
        project = await shop(rt)
        sim.set_faults([{"action": "delay", "delay_ms": 1500, "mti": "0100"}])
        task = asyncio.create_task(JsonOrders(rt.orders).authorize(project, body()))
        pending = "SELECT order_id FROM operations WHERE status = 'pending'"
        (row,) = await eventually(lambda: rt.db.pool.fetch(pending))
        order_id = row["order_id"]
        async with rt.db.pool.acquire() as conn:  # what another node's recovery writes for an orphaned intent
            await conn.execute("UPDATE operations SET status = 'error' WHERE order_id = $1", order_id)
            await conn.execute("UPDATE orders SET status = 'error' WHERE id = $1", order_id)
        err = await failing(task)
        assert (err.failure_type, err.order_id) == ("error", order_id)
        assert http_status(err) == 500 and "reversed" in err.message
        order = await rt.orders.get_order(project, order_id)
        assert order.status is OrderStatus.ERROR  # the late approval did not turn it back
        assert [op.status for op in order.operations] == [OperationStatus.ERROR]
    finally:
        await rt.close()
