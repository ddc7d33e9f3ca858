"""Two switch nodes on one PostgreSQL: shared books, disjoint identifiers, one recovers the other.

The real system as processes on 127.0.0.1: the session's PostgreSQL (tests/pg.py; one fresh
database), the simulator (``python -m acquirer_sim``) and two ``isoswitch serve`` nodes with node
ids 1 and 2 (``ISOSWITCH_SWITCH__NODE_ID``), both on that database (``DATABASE_URL``) and the same
PAN key, each on its own HTTP port. Both are driven at once: authorizations on each, charges and
refunds of one node's orders through the other. Then node 1 is killed (SIGKILL) while it has
authorizations at the issuer and unanswered (the simulator delays the answer to amount 7.77), and:

- no order id, RRN, ARN or STAN was issued twice (order ids, RRNs and ARNs come from blocks leased
  in ``id_blocks``, switch/store/ids.py; STANs from the residue class node id mod 10,
  switch/stan.py): checked in the tables and in the issuer's ledger;
- every STAN a node sent (operations and the reversal advices of ``saf``) is its node id mod 10;
- node 2's crash recovery (switch/saf/recovery.py, ``recovery_grace`` a few seconds) marks what
  node 1 left pending ``error`` and reverses it (its 0420 carries node 2's STAN), the issuer
  releases those holds, and nothing stays pending or owed;
- every approval a merchant received is still approved, and ``reconcile`` against the simulator's
  ledger finds no difference.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pg
import pytest
from waiting import wait_for

from bench.reconcile import fetch_ledger, reconcile
from switch.store import DbConfig, Projects, dsn_with_database, open_database

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
KEY = base64.b64encode(secrets.token_bytes(32)).decode()  # one PAN key for every node: each opens the others' cards
ISOSWITCH = shutil.which("isoswitch", path=str(Path(sys.executable).parent)) or "isoswitch"
NEXT_YEAR = datetime.now(UTC).year + 1
PER_NODE = 100  # authorizations per node in the first round
CONCURRENCY = 8  # requests in flight per node
SLOW_AMOUNT = 777  # minor units: the simulator answers these 0100s after SLOW_MS
SLOW_MS = 5000
SLOW = 6  # authorizations node 1 has at the issuer, unanswered, when it is killed
LINK_TIMEOUT = 8.0  # longer than SLOW_MS: node 1 waits for the answer, it does not time out and reverse
# Node 2 takes a pending intent of another process as orphaned after this (s): longer than the slow
# answer, so node 2 can never reverse what a live node 1 would still have been answered (node 1 is
# killed before SLOW_MS, or the test fails saying node 1 answered).
GRACE = SLOW_MS / 1000 + 1.0
CARD = {"cvv": "123", "holder": "John Smith", "expiration_month": "12", "expiration_year": str(NEXT_YEAR)}
APPROVE, DECLINE = "4111111111111111", "4276990011343663"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Node:
    """One ``isoswitch serve`` process."""

    node_id: int
    dir: Path
    http_port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"


@dataclass
class Cluster:
    dir: Path
    dsn: str
    pool: asyncpg.Pool
    auth: dict[str, str]
    nodes: list[Node]
    sim_port: int = field(default_factory=_free_port)
    admin_port: int = field(default_factory=_free_port)
    sim: subprocess.Popen[str] | None = None

    @property
    def admin(self) -> str:
        return f"http://{HOST}:{self.admin_port}"

    def env(self, node_id: int) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.dsn,
            "ISOSWITCH_PAN_KEY": KEY,
            "ISOSWITCH_SWITCH__NODE_ID": str(node_id),
            "PYTHONPATH": str(ROOT),
        }

    async def start_sim(self) -> None:
        cmd = [sys.executable, "-m", "acquirer_sim", "--host", HOST, "--port", str(self.sim_port)]
        cmd += ["--admin-port", str(self.admin_port), "--log-level", "ERROR"]
        self.sim = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=self.env(0), start_new_session=True)  # noqa: ASYNC220 (fork+exec)
        assert self.sim.stdout is not None
        line = await asyncio.to_thread(self.sim.stdout.readline)
        assert line.startswith("listening on "), line

    async def start_node(self, node: Node, *, grace: float | None) -> None:
        text = (
            f'[[destinations]]\nname = "sim"\nhost = "{HOST}"\nport = {self.sim_port}\nlinks = 2\n'
            f"timeout = {LINK_TIMEOUT}\necho_interval = 0.0\nreconnect_max = 0.5\ndrain_timeout = 1.0\n"
            '[routing]\ndefault = "sim"\n'
        )
        if grace is not None:
            text += (
                f"[saf]\nrecovery_grace = {grace}\nrecovery_interval = 0.5\nbackoff_cap = 2.0\npoll_interval = 0.5\n"
            )
        config = node.dir / "switch.toml"
        config.write_text(text)
        cmd = [ISOSWITCH, "serve", "--http-port", str(node.http_port), "--data-dir", str(node.dir)]
        cmd += ["--config", str(config), "--log-level", "error", "--no-access-log"]
        node.proc = subprocess.Popen(cmd, env=self.env(node.node_id), start_new_session=True)  # noqa: ASYNC220

    async def wait_ready(self, node: Node) -> None:
        async with aiohttp.ClientSession() as s:

            async def ping() -> bool:
                assert node.proc is not None and node.proc.poll() is None, f"node {node.node_id} exited"
                with contextlib.suppress(aiohttp.ClientError):
                    async with s.get(f"{node.url}/ping", headers=self.auth) as r:
                        return r.status == 200
                return False

            await wait_for(ping, 30.0, interval=0.1, what=f"node {node.node_id} answering /ping")

    async def put_faults(self, rules: list[dict[str, Any]]) -> None:
        async with aiohttp.ClientSession() as s, s.put(f"{self.admin}/faults", json=rules) as r:
            assert r.status == 200, await r.text()

    async def stop(self) -> None:
        for proc in [n.proc for n in self.nodes] + [self.sim]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(proc.wait, 15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    await asyncio.to_thread(proc.wait, 5)
        if self.sim is not None and self.sim.stdout is not None:
            self.sim.stdout.close()


@contextlib.asynccontextmanager
async def cluster(admin_dsn: str) -> AsyncIterator[Cluster]:
    """The database (migrated once, before any node starts), a project, the simulator; nodes 1 and 2 not started."""
    name = await pg.create_database(admin_dsn)
    dsn = dsn_with_database(admin_dsn, name)
    path = Path(tempfile.mkdtemp(prefix="isoswitch-scaleout-"))
    db = await open_database(DbConfig(url=dsn, data_dir=path, min_size=1, max_size=4))
    project, password = await Projects(db.pool).create("scaleout")
    token = base64.b64encode(f"{project.login}:{password}".encode()).decode()
    nodes = []
    for k in (1, 2):
        (path / f"node{k}").mkdir()
        nodes.append(Node(k, path / f"node{k}"))
    c = Cluster(path, dsn, db.pool, {"Authorization": f"Basic {token}"}, nodes)
    try:
        await c.start_sim()
        yield c
    finally:
        await c.stop()
        await db.close()
        with contextlib.suppress(Exception):
            await pg.drop_database(admin_dsn, name)
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Tally:
    approved: dict[str, int] = field(default_factory=dict)  # order id -> node that answered 200
    declined: int = 0
    refused: int = 0  # connection refused or reset: only the killed node
    bad: list[str] = field(default_factory=list)


def _authorize_body(pan: str, amount: str = "1.00") -> dict[str, Any]:
    return {"amount": amount, "currency": "USD", "pan": pan, "card": CARD, "location": {"ip": "8.8.8.8"}}


async def _call(
    session: aiohttp.ClientSession, c: Cluster, node: Node, method: str, path: str, body: dict[str, Any]
) -> tuple[int, Any]:
    async with session.request(method, f"{node.url}{path}", json=body, headers=c.auth) as r:
        return r.status, await r.json(content_type=None)


async def _authorize(session: aiohttp.ClientSession, c: Cluster, node: Node, n: int, tally: Tally) -> None:
    """One authorization; every tenth card declines."""
    try:
        status, body = await _call(
            session, c, node, "POST", "/orders/authorize", _authorize_body(DECLINE if n % 10 == 9 else APPROVE)
        )
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        tally.refused += 1
        return
    if status == 200:
        tally.approved[body["orders"][0]["id"]] = node.node_id
    elif status == 402 and body.get("failure_type") == "declined":
        tally.declined += 1
    else:
        tally.bad.append(f"node {node.node_id}: {status} {body!r}"[:200])


async def _bounded(jobs: list[Callable[[], Awaitable[None]]], limit: int) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with sem:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


def _session() -> aiohttp.ClientSession:
    # A connection per request: a killed node must not leave the client a pool of dead sockets.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))


async def drive_both(c: Cluster, tally: Tally) -> None:
    """PER_NODE authorizations on each node at once, then charge on one node what the other authorized,
    and refund part of it on the first."""
    one, two = c.nodes
    async with _session() as s:
        await asyncio.gather(
            *(
                _bounded(
                    [lambda n=n, node=node: _authorize(s, c, node, n, tally) for n in range(PER_NODE)], CONCURRENCY
                )
                for node in (one, two)
            )
        )
        other = {1: two, 2: one}
        mine = {1: one, 2: two}
        picked = sorted(tally.approved.items())[::4]  # about a quarter of the approvals

        async def charge_then_refund(oid: str, by: int) -> None:
            status, body = await _call(s, c, other[by], "PUT", f"/orders/{oid}/charge", {"amount": "1.00"})
            assert status == 200, body
            status, body = await _call(s, c, mine[by], "PUT", f"/orders/{oid}/refund", {"amount": "0.40"})
            assert status == 200, body

        await _bounded([lambda o=o, b=b: charge_then_refund(o, b) for o, b in picked], 2 * CONCURRENCY)
        for oid, _ in picked:
            del tally.approved[oid]  # charged and partly refunded now; checked by reconcile


async def _slow_holds(c: Cluster) -> int:
    ledger = await fetch_ledger(c.admin)
    return sum(1 for card in ledger["cards"] for h in card["holds"] if h["amount"] == SLOW_AMOUNT)


async def kill_node_one_in_flight(c: Cluster, tally: Tally) -> set[tuple[str, int]]:
    """Node 1 gets SLOW authorizations the issuer holds but answers late, and load on both; it is killed
    once the issuer has them. Those slow operations, pending when it died, by (order id, operation id)."""
    one, two = c.nodes
    await c.put_faults([{"action": "delay", "delay_ms": SLOW_MS, "mti": "0100", "amount": SLOW_AMOUNT}])
    async with _session() as s:

        async def slow() -> None:
            try:
                await _call(s, c, one, "POST", "/orders/authorize", _authorize_body(APPROVE, "7.77"))
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
                tally.refused += 1  # the answer dies with node 1
            else:
                raise AssertionError("node 1 answered an authorization it should have died with")

        stop = asyncio.Event()

        async def steady(node: Node) -> None:
            n = 0
            while not stop.is_set():
                await _authorize(s, c, node, n, tally)
                n += 1

        slow_tasks = [asyncio.ensure_future(slow()) for _ in range(SLOW)]
        load = [asyncio.ensure_future(steady(node)) for node in (one, two) for _ in range(4)]
        before = len(tally.approved)
        await wait_for(lambda: _slow_holds_count_is(c, SLOW), 20.0, what=f"{SLOW} slow holds at the issuer")
        await wait_for(lambda: len(tally.approved) >= before + 10, 20.0, what="load on both nodes")
        # The slow ones only: a quick one pending now may still finish before the kill lands.
        pending = await c.pool.fetch(
            "SELECT order_id, id FROM operations WHERE status = 'pending' AND owner LIKE '1:%' AND amount = $1",
            SLOW_AMOUNT,
        )
        assert one.proc is not None
        one.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(one.proc.wait, 10)
        stop.set()
        await asyncio.gather(*slow_tasks, *load)
        await c.put_faults([])
        # After the kill: node 2 alone, while its recovery reverses node 1's orphans.
        await _bounded([lambda n=n: _authorize(s, c, two, n, tally) for n in range(40)], CONCURRENCY)
    return {(r["order_id"], r["id"]) for r in pending}


async def _slow_holds_count_is(c: Cluster, n: int) -> bool:
    return await _slow_holds(c) >= n


async def settled(pool: asyncpg.Pool) -> bool:
    pending = await pool.fetchval("SELECT count(*) FROM operations WHERE status = 'pending'")
    owed = await pool.fetchval("SELECT count(*) FROM saf WHERE state <> 'done'")
    return pending == 0 and owed == 0


def _duplicates(values: list[Any]) -> list[Any]:
    return [v for v, k in Counter(values).items() if k > 1]


async def check_identifiers(pool: asyncpg.Pool) -> None:
    """No order id, RRN, ARN or STAN issued twice; every STAN is its sender's node id mod 10.

    The primary keys and ``operations_arn`` would refuse a repeated order id or ARN: the node would
    answer an error body, which the load counts as bad. The RRN and the STAN have no such guard.
    """
    orders = await pool.fetch("SELECT id, rrn FROM orders")
    ops = await pool.fetch("SELECT order_id, id, type, rrn, arn, stan, owner FROM operations")
    assert len({o["id"] for o in orders}) == len(orders)
    assert _duplicates([o["rrn"] for o in orders if o["rrn"]]) == []
    # A charge (0220) and a reversal repeat their authorization's DE 37; an RRN never spans two orders,
    # and every message that starts a transaction (0100, the refund's 0200) has its own.
    rrn_orders: dict[str, set[str]] = {}
    for op in ops:
        if op["rrn"]:
            rrn_orders.setdefault(op["rrn"], set()).add(op["order_id"])
    assert [r for r, o in rrn_orders.items() if len(o) > 1] == []
    assert _duplicates([op["rrn"] for op in ops if op["type"] in ("authorize", "refund") and op["rrn"]]) == []
    arns = [op["arn"] for op in ops if op["arn"]]
    assert arns and _duplicates(arns) == []
    stans = [(op["stan"], int(op["owner"].split(":")[0])) for op in ops if op["stan"]]
    assert {node for _, node in stans} == {1, 2}
    assert _duplicates([s for s, _ in stans]) == []
    assert [(s, node) for s, node in stans if int(s) % 10 != node] == []
    advices = await pool.fetch("SELECT advice_stan FROM saf WHERE advice_stan IS NOT NULL")
    # Only node 2 is alive to send the advices (node 1 is killed before any is due).
    assert [a["advice_stan"] for a in advices if int(a["advice_stan"]) % 10 != 2] == []


async def check_ledger(c: Cluster) -> None:
    """At the issuer too: each record's STAN is node 1's or node 2's, none seen twice for one message class,
    and every hold and refund has an RRN of its own."""
    ledger = await fetch_ledger(c.admin)
    seen: list[tuple[str, str]] = []
    rrns: list[str] = []
    for card in ledger["cards"]:
        for name in ("holds", "captures", "refunds", "reversals"):
            seen += [(name, rec["stan"]) for rec in card[name]]
        rrns += [rec["rrn"] for name in ("holds", "refunds") for rec in card[name]]
    assert seen and [s for _, s in seen if int(s) % 10 not in (1, 2)] == []
    assert _duplicates(seen) == []
    assert rrns and _duplicates(rrns) == []


async def test_two_nodes_on_one_database_share_the_books_and_one_recovers_the_other(pg_dsn: str) -> None:
    async with cluster(pg_dsn) as c:
        one, two = c.nodes
        await c.start_node(one, grace=None)  # the default grace (60 s): node 1 never takes node 2's intents
        await c.start_node(two, grace=GRACE)
        await asyncio.gather(c.wait_ready(one), c.wait_ready(two))
        tally = Tally()

        await drive_both(c, tally)
        assert tally.bad == [] and tally.refused == 0
        assert set(tally.approved.values()) == {1, 2}

        orphans = await kill_node_one_in_flight(c, tally)
        assert tally.bad == []
        assert len(orphans) == SLOW

        await wait_for(lambda: settled(c.pool), 40.0, interval=0.25, what="nothing pending, every reversal delivered")
        # Node 2 reversed what node 1 left: the operations are error, each with a delivered reversal.
        rows = await c.pool.fetch(
            "SELECT p.status, s.state FROM operations p"
            " LEFT JOIN saf s ON (s.order_id, s.operation_id) = (p.order_id, p.id)"
            " WHERE (p.order_id, p.id) IN (SELECT * FROM unnest($1::text[], $2::integer[]))",
            [o for o, _ in orphans],
            [i for _, i in orphans],
        )
        assert len(rows) == len(orphans) and {(r["status"], r["state"]) for r in rows} == {("error", "done")}
        ledger = await fetch_ledger(c.admin)
        slow_holds = [h for card in ledger["cards"] for h in card["holds"] if h["amount"] == SLOW_AMOUNT]
        assert [h["status"] for h in slow_holds] == ["released"] * SLOW

        await check_identifiers(c.pool)
        await check_ledger(c)
        # Every approval a merchant received is still an approval.
        kept = await c.pool.fetch("SELECT id, status FROM orders WHERE id = ANY($1::text[])", list(tally.approved))
        assert len(kept) == len(tally.approved) and {r["status"] for r in kept} == {"authorized"}
        report = await reconcile(c.pool, c.admin)
        assert [str(d) for d in report.differences] == [], report.summary()
        assert report.matched > 0
