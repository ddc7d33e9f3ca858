"""Faults during a steady load of authorizations: nothing is lost, nothing hangs, the system recovers by itself.

Each case starts the real system as processes on 127.0.0.1: PostgreSQL
(an embedded server of this module's own, so it can be stopped), the
simulator (``python -m acquirer_sim``), the switch and REST front as
production runs them (``isoswitch serve``; a ``[saf]`` section in its config
file shortens the recovery grace where a case needs it). A client sends
``POST /orders/authorize`` at a steady rate, the fault is injected and
lifted, and then:

- every request got an answer: 200, or a non-2xx with the seed's failure
  body (``failure_type``, ``failure_message``); never a hang (connections
  refused or reset only while the switch process itself is dead);
- no operation stays pending and every reversal is delivered;
- every approval the merchant received (each 200's order id) is still
  ``authorized`` (``GET /orders/:id`` through the API) and its hold is
  ``held`` at the issuer (the simulator's ``GET /ledger``): an approval the
  switch took back afterwards is lost money for the merchant;
- ``reconcile`` finds no difference (``lost`` = its differences plus the
  approvals not kept: must be 0);
- the first success after the fault ends comes by itself (seconds measured).

The long cases are marked ``faults`` (``make faults``); the others (kill -9 of
the switch among them) also run in ``make test``.
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
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pg
import pytest
from proxy import TcpProxy
from results import RESULTS

from bench.reconcile import fetch_ledger, reconcile
from switch.store import DbConfig, Projects, dsn_with_database, embedded, open_database

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
RATE = 100.0  # authorizations per second
DURATION = 7.0  # seconds of load
FAULT_AT = 2.0  # seconds into the load
FAULT_FOR = 2.0  # seconds the fault lasts
LINK_TIMEOUT = 0.5  # seconds per ISO request (the delay fault answers after it)
CLIENT_TIMEOUT = 15.0  # a request with no answer by then is a hang
SETTLE = 60.0  # seconds for pending operations and reversals to drain after the load
KEY = base64.b64encode(secrets.token_bytes(32)).decode()
# The production command, as installed beside this interpreter (the venv's console script).
ISOSWITCH = shutil.which("isoswitch", path=str(Path(sys.executable).parent)) or "isoswitch"
NEXT_YEAR = datetime.now(UTC).year + 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def pg_server() -> Iterator[embedded.EmbeddedServer]:
    """An embedded PostgreSQL of this module only: the postgres case stops and starts it."""
    path = Path(tempfile.mkdtemp(prefix="isoswitch-faults-"))
    server = embedded.acquire(path / "pg")
    try:
        yield server
    finally:
        if not (server.pgdata / "postmaster.pid").exists():
            _pg_ctl(server, "start")  # a failed case may have left it stopped: release stops it cleanly
        server.release()
        shutil.rmtree(path, ignore_errors=True)


def _pg_ctl(server: embedded.EmbeddedServer, action: str) -> None:
    """``pg_ctl stop -m fast`` or ``start`` (where the clients look for its socket), whoever uses the server."""
    if action == "stop":
        server.stop_postmaster()
    else:
        server.start_postmaster()


@dataclass
class Tally:
    """What the load saw; times are ``time.monotonic()``."""

    requests: int = 0
    approved: int = 0
    failed: int = 0  # non-2xx with the documented body
    refused: int = 0  # connection refused or reset (only while the switch process is dead)
    hung: int = 0
    bad: list[str] = field(default_factory=list)  # non-2xx without the documented body
    successes: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered)
    acknowledged: list[tuple[float, str]] = field(default_factory=list)  # (sent, order id) of every 200


@dataclass
class System:
    """One case's processes and database."""

    dir: Path
    server: embedded.EmbeddedServer
    dsn: str
    pool: asyncpg.Pool
    login: str
    password: str
    sim_port: int = field(default_factory=_free_port)
    admin_port: int = field(default_factory=_free_port)
    http_port: int = field(default_factory=_free_port)
    sim: subprocess.Popen[str] | None = None
    switch: subprocess.Popen[bytes] | None = None
    proxy: TcpProxy | None = None

    @property
    def auth(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.login}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    @property
    def admin(self) -> str:
        return f"http://{HOST}:{self.admin_port}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": self.dsn, "ISOSWITCH_PAN_KEY": KEY, "PYTHONPATH": str(ROOT)}

    async def start_sim(self) -> None:
        cmd = [sys.executable, "-m", "acquirer_sim", "--host", HOST, "--port", str(self.sim_port)]
        cmd += ["--admin-port", str(self.admin_port), "--log-level", "ERROR"]
        self.sim = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=self.env, start_new_session=True)  # noqa: ASYNC220 (fork+exec)
        assert self.sim.stdout is not None
        line = await asyncio.to_thread(self.sim.stdout.readline)
        assert line.startswith("listening on "), line

    def kill_sim(self) -> None:
        assert self.sim is not None and self.sim.stdout is not None
        self.sim.send_signal(signal.SIGKILL)
        self.sim.wait(10)
        self.sim.stdout.close()

    async def start_switch(self, *, recovery_grace: float | None = None) -> None:
        """``isoswitch serve``; ``recovery_grace``: orphaned intents are reversed after that (s), not 60 s."""
        target = f"{HOST}:{self.proxy.address[1] if self.proxy else self.sim_port}"
        config = self.dir / "switch.toml"
        text = (
            "[[destinations]]\n"
            f'name = "sim"\nhost = "{HOST}"\nport = {self.sim_port}\nlinks = 2\ntimeout = {LINK_TIMEOUT}\n'
            "echo_interval = 0.0\nreconnect_max = 0.5\ndrain_timeout = 1.0\n"
            '[routing]\ndefault = "sim"\n'
        )
        if recovery_grace is not None:
            # A recovery scan every second, and advices retried within 2 s: the case settles in seconds.
            text += f"[saf]\nrecovery_grace = {recovery_grace}\nrecovery_interval = 1.0\nbackoff_cap = 2.0\n"
        config.write_text(text)
        cmd = [ISOSWITCH, "serve", "--target", target, "--http-port", str(self.http_port)]
        cmd += ["--data-dir", str(self.dir), "--config", str(config), "--log-level", "error", "--no-access-log"]
        self.switch = subprocess.Popen(cmd, env=self.env, start_new_session=True)  # noqa: ASYNC220
        await self.wait_http()

    async def wait_http(self, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                assert self.switch is not None and self.switch.poll() is None, "the switch exited"
                with contextlib.suppress(aiohttp.ClientError):
                    ping = f"http://{HOST}:{self.http_port}/ping"
                    async with s.get(ping, headers=self.auth) as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError("the REST front never answered /ping")

    def kill_switch(self) -> None:
        assert self.switch is not None
        self.switch.send_signal(signal.SIGKILL)
        self.switch.wait(10)

    async def put_faults(self, rules: list[dict[str, Any]]) -> None:
        async with aiohttp.ClientSession() as s, s.put(f"{self.admin}/faults", json=rules) as r:
            assert r.status == 200, await r.text()

    async def stop(self) -> None:
        for proc in (self.switch, self.sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(proc.wait, 15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if self.sim is not None and self.sim.stdout is not None:
            self.sim.stdout.close()
        if self.proxy is not None:
            await self.proxy.close()


@contextlib.asynccontextmanager
async def system(server: embedded.EmbeddedServer, *, proxy: bool = False) -> AsyncIterator[System]:
    name = await pg.create_database(server.dsn)
    dsn = dsn_with_database(server.dsn, name)
    path = Path(tempfile.mkdtemp(prefix="isoswitch-fault-case-"))
    db = await open_database(DbConfig(url=dsn, data_dir=path, min_size=1, max_size=3))
    project, password = await Projects(db.pool).create("faults")
    sysm = System(path, server, dsn, db.pool, project.login, password)
    try:
        await sysm.start_sim()
        if proxy:
            sysm.proxy = TcpProxy((HOST, sysm.sim_port))
            await sysm.proxy.start()
        yield sysm
    finally:
        await sysm.stop()
        await db.close()
        with contextlib.suppress(Exception):
            await pg.drop_database(server.dsn, name)
        shutil.rmtree(path, ignore_errors=True)


def _documented(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("failure_type"), str)
        and isinstance(body.get("failure_message"), str)
    )


async def load(
    sysm: System, fault: Callable[[], Awaitable[None]], restore: Callable[[], Awaitable[None]]
) -> tuple[Tally, float, float]:
    """Authorize at RATE for DURATION; the fault from FAULT_AT for FAULT_FOR. (tally, fault start, fault end)."""
    tally = Tally()
    url = f"http://{HOST}:{sysm.http_port}/orders/authorize"
    body = {
        "amount": "1.00",
        "currency": "USD",
        "pan": "4111111111111111",
        "card": {"cvv": "123", "holder": "John Smith", "expiration_month": "12", "expiration_year": str(NEXT_YEAR)},
        "location": {"ip": "8.8.8.8"},
    }
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)

    async def one(session: aiohttp.ClientSession) -> None:
        sent = time.monotonic()
        tally.requests += 1
        try:
            async with session.post(url, json=body, headers=sysm.auth) as r:
                data = await r.json(content_type=None)
                if r.status == 200:
                    tally.approved += 1
                    tally.successes.append((sent, time.monotonic()))
                    tally.acknowledged.append((sent, data["orders"][0]["id"]))
                elif _documented(data):
                    tally.failed += 1
                else:
                    tally.bad.append(f"{r.status} {data!r}"[:200])
        except TimeoutError:
            tally.hung += 1
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
            tally.refused += 1

    times: dict[str, float] = {}

    async def inject() -> None:
        await asyncio.sleep(FAULT_AT)
        times["start"] = time.monotonic()
        await fault()
        await asyncio.sleep(FAULT_FOR)
        # The fault ends when it is lifted: a restart's start-up time counts in the recovery.
        times["end"] = time.monotonic()
        await restore()

    # A connection per request: a killed switch must not leave the client a pool of dead sockets.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        injector = asyncio.ensure_future(inject())
        tasks = []
        start = time.monotonic()
        n = 0
        while (now := time.monotonic()) - start < DURATION or not injector.done():
            tasks.append(asyncio.ensure_future(one(session)))
            n += 1
            await asyncio.sleep(max(0.0, start + n / RATE - now))
        await injector
        await asyncio.gather(*tasks)
    return tally, times["start"], times["end"]


async def settle(pool: asyncpg.Pool) -> None:
    """Wait until no operation is pending and every reversal is delivered."""
    deadline = time.monotonic() + SETTLE
    while True:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            pending = await pool.fetchval("SELECT count(*) FROM operations WHERE status = 'pending'")
            owed = await pool.fetchval("SELECT count(*) FROM saf WHERE state <> 'done'")
            if pending == 0 and owed == 0:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled after {SETTLE} s: {pending} operations pending, {owed} reversals owed")
        await asyncio.sleep(0.25)


async def approvals_not_kept(sysm: System, tally: Tally, held_since: float) -> tuple[list[str], int]:
    """Each approval the merchant received that the system did not keep, and how many holds were checked.

    Kept: ``GET /orders/:id`` says ``authorized``, and (for requests sent at or after
    ``held_since``, a ``time.monotonic()``: a restarted simulator forgot the holds before) the
    issuer's ledger has the order's hold (its RRN) ``held`` for the amount.
    """
    ledger = await fetch_ledger(sysm.admin)
    holds = {h["rrn"]: h for card in ledger["cards"] for h in card["holds"]}
    lost: list[str] = []
    checked = 0
    connector = aiohttp.TCPConnector(limit=8)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as s:

        async def one(sent: float, oid: str) -> None:
            nonlocal checked
            async with s.get(f"http://{HOST}:{sysm.http_port}/orders/{oid}", headers=sysm.auth) as r:
                body = await r.json(content_type=None)
            order = body["orders"][0] if r.status == 200 else {}
            if order.get("status") != "authorized":
                lost.append(f"order {oid}: approved (200), now {r.status} {order.get('status')}")
                return
            if sent < held_since:
                return
            checked += 1
            hold = holds.get(order.get("rrn"))
            if hold is None or (hold["status"], hold["amount"]) != ("held", 100):
                got = None if hold is None else (hold["status"], hold["amount"])
                lost.append(f"order {oid} rrn {order.get('rrn')}: approved (200), issuer hold {got}")

        await asyncio.gather(*(one(sent, oid) for sent, oid in tally.acknowledged))
    return lost, checked


async def check(
    sysm: System,
    name: str,
    result: tuple[Tally, float, float],
    *,
    since: datetime | None = None,
    refusals_allowed: bool = False,
) -> None:
    """``since``: the simulator restarted then (its ledger holds only what came after)."""
    tally, fault_start, fault_end = result
    await settle(sysm.pool)
    not_kept, holds_checked = await approvals_not_kept(sysm, tally, fault_start if since else float("-inf"))
    report = await reconcile(sysm.pool, sysm.admin, since)
    reversed_ = await sysm.pool.fetchval("SELECT count(*) FROM saf WHERE state = 'done'")
    after = [answered for sent, answered in tally.successes if sent >= fault_end]
    recover = (min(after) - fault_end) if after else float("nan")
    RESULTS.append(
        {
            "fault": name,
            "requests": tally.requests,
            "approved": tally.approved,
            "failed": tally.failed,
            "refused": tally.refused,
            "reversed": reversed_,
            "holds": holds_checked,
            "lost": len(report.differences) + len(not_kept),
            "recover": max(recover, 0.0),
        }
    )
    assert not_kept == [], not_kept[:10]
    assert holds_checked > 0
    assert [str(d) for d in report.differences] == [], report.summary()
    assert tally.hung == 0 and tally.bad == []
    assert refusals_allowed or tally.refused == 0
    assert tally.requests == tally.approved + tally.failed + tally.refused
    assert after, "no success after the fault ended"
    assert tally.failed > 0 or refusals_allowed, "the fault did not show"


# -- the quick cases (also in `make test`) ---------------------------------------------------------


async def test_the_sim_sending_garbage_loses_nothing(pg_server: embedded.EmbeddedServer) -> None:
    async with system(pg_server) as sysm:
        await sysm.start_switch()
        result = await load(
            sysm,
            lambda: sysm.put_faults([{"action": "garbage", "mti": "0100"}]),
            lambda: sysm.put_faults([]),
        )
        await check(sysm, "sim sends garbage (every 0100, 2 s)", result)


async def test_a_network_cut_between_switch_and_sim_loses_nothing(pg_server: embedded.EmbeddedServer) -> None:
    async with system(pg_server, proxy=True) as sysm:
        await sysm.start_switch()
        proxy = sysm.proxy
        assert proxy is not None

        async def cut() -> None:
            proxy.cut()

        async def restore() -> None:
            proxy.restore()

        result = await load(sysm, cut, restore)
        await check(sysm, "network cut by a TCP proxy (2 s)", result)


# -- the long cases (`make faults`) ------------------------------------------------------------------


@pytest.mark.faults
async def test_the_sim_answering_after_the_timeout_loses_nothing(pg_server: embedded.EmbeddedServer) -> None:
    async with system(pg_server) as sysm:
        await sysm.start_switch()
        result = await load(
            sysm,
            lambda: sysm.put_faults([{"action": "delay", "delay_ms": 1500, "mti": "0100"}]),
            lambda: sysm.put_faults([]),
        )
        await check(sysm, f"sim answers after the timeout (1.5 s > {LINK_TIMEOUT} s, 2 s)", result)


@pytest.mark.faults
async def test_killing_the_sim_and_restarting_it_loses_nothing(pg_server: embedded.EmbeddedServer) -> None:
    async with system(pg_server) as sysm:
        await sysm.start_switch()
        since: list[datetime] = []

        async def kill() -> None:
            # The issuer's books die with it: what went before is reconciled no more.
            since.append(datetime.now(UTC))
            sysm.kill_sim()

        result = await load(sysm, kill, sysm.start_sim)
        await check(sysm, "kill -9 the sim, restart it (2 s down)", result, since=since[0])


# In `make test` too: about 700 requests in 7 s, a restart and a few seconds to settle (~20 s here).
@pytest.mark.timeout(90)
async def test_killing_the_switch_and_restarting_it_loses_nothing(pg_server: embedded.EmbeddedServer) -> None:
    async with system(pg_server) as sysm:
        await sysm.start_switch()

        async def kill() -> None:
            sysm.kill_switch()

        async def restart() -> None:
            # The killed process's intents are orphans: the new one reverses them after 1 s, not 60 s.
            await sysm.start_switch(recovery_grace=1.0)

        result = await load(sysm, kill, restart)
        await check(sysm, "kill -9 the switch, restart it", result, refusals_allowed=True)


@pytest.mark.faults
async def test_stopping_postgresql_and_starting_it_again_loses_nothing(pg_server: embedded.EmbeddedServer) -> None:
    async with system(pg_server) as sysm:
        # A result write that fails leaves its intent pending in this process: a short grace lets
        # the process's own recovery reverse it soon after the database is back.
        await sysm.start_switch(recovery_grace=1.0)
        result = await load(
            sysm,
            lambda: asyncio.to_thread(_pg_ctl, pg_server, "stop"),
            lambda: asyncio.to_thread(_pg_ctl, pg_server, "start"),
        )
        await check(sysm, "PostgreSQL stopped (pg_ctl stop -m fast), started again", result)
