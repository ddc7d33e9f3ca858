"""One TOML file, environment overrides, flags; `isoswitch config show`; `isoswitch switch --iso-port`;
the orderly shutdown of `isoswitch serve` on SIGTERM. Real processes, PostgreSQL and sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import tomllib
import typing
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pg
import pytest
from sim_helpers import IsoClient, MessageFactory, free_ports, running_sim
from test_orders_fixtures import settings as project_settings

from acquirer_sim import SimServer
from isoswitch import config
from isoswitch.config import HTTP_SECTION
from switch.settings import DEFAULT_CONFIG, SECTIONS, ConfigError, Section, load_settings, shown
from switch.store import DbConfig, Projects, open_database

fresh_dsn, pg_dsn = pg.fresh_dsn, pg.pg_dsn

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parent.parent
ALL: dict[str, Section] = {**SECTIONS, **config.SECTIONS}
KEY = base64.b64encode(secrets.token_bytes(32)).decode()


# -- the file documents every option ---------------------------------------------------


def _commented_keys(text: str) -> dict[str, set[str]]:
    """``# key = value`` lines by section: options whose default is "unset"."""
    out: dict[str, set[str]] = {}
    section = ""
    for line in text.splitlines():
        m = re.match(r"^\[([a-z0-9_]+)\]", line)
        if m:
            section = m.group(1)
        m = re.match(r"^#\s*([a-z_]+)\s*=", line)
        if m and section:
            out.setdefault(section, set()).add(m.group(1))
    return out


@pytest.mark.parametrize("name", sorted(ALL))
def test_the_default_file_documents_every_option_with_its_default(name: str) -> None:
    text = DEFAULT_CONFIG.read_text()
    doc = tomllib.loads(text)
    commented = _commented_keys(text).get(name, set())
    sec = ALL[name]
    table = doc.get(name, {})
    defaults = {f.name: _default(f) for f in dataclasses.fields(sec.cls) if f.name not in sec.skip}
    defaults.update(sec.extra)
    for key, default in defaults.items():
        if default is None:
            assert key in commented, f"[{name}] {key}: an unset option is shown commented out"
            continue
        assert key in table, f"[{name}] {key} is not documented in {DEFAULT_CONFIG.name}"
        value = table[key]
        if isinstance(default, Path):
            value = Path(value)
        assert value == default, f"[{name}] {key}: file says {value!r}, the code's default is {default!r}"
    assert set(table) <= set(defaults), f"[{name}] documents options the code does not have"


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    assert f.default_factory is not dataclasses.MISSING
    return f.default_factory()


def test_the_default_file_builds_the_code_defaults() -> None:
    s = load_settings(env={}, sections=config.SECTIONS)
    for name, sec in ALL.items():
        obj = s.sections[name]
        skipped = {f.name for f in dataclasses.fields(obj) if f.name in sec.skip}
        assert dataclasses.replace(sec.cls(), **{k: getattr(obj, k) for k in skipped}) == obj, name
    assert s.listener is None and s.database.url is None


# -- precedence: file, then environment, then flags ------------------------------------------


def test_the_environment_overrides_the_file_and_flags_override_both(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[http]\nport = 9001\nhost = "10.0.0.1"\n[saf]\nmax_attempts = 3\n')
    env = {"ISOSWITCH_HTTP__PORT": "9002", "ISOSWITCH_LOGGING__LEVELS": '{ "isoswitch.link" = "debug" }'}
    s = load_settings(path, env=env, sections={"http": HTTP_SECTION})
    assert (s.sections["http"].port, s.sections["http"].host, s.saf.max_attempts) == (9002, "10.0.0.1", 3)
    assert s.logging.levels == {"isoswitch.link": "debug"}
    s = load_settings(path, env=env, overrides={"http": {"port": 9003}}, sections={"http": HTTP_SECTION})
    assert s.sections["http"].port == 9003


def test_isoswitch_config_names_the_file_to_read(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[process]\nworkers = 3\n")
    s = load_settings(env={"ISOSWITCH_CONFIG": str(path)})
    assert (s.source, s.process.workers) == (str(path), 3)


def test_database_url_from_the_environment_and_a_listener_when_enabled() -> None:
    env = {"DATABASE_URL": "postgresql://u:pw@db/x", "ISOSWITCH_ISO_LISTENER__ENABLED": "true"}
    s = load_settings(env=env)
    assert s.database.url == "postgresql://u:pw@db/x" and s.runtime.db.url == s.database.url
    assert s.listener is not None and s.runtime.listener == s.listener and s.listener.port == 8585


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ISOSWITCH_HTTPS__PORT": "1"}, "unknown section [https]"),
        ({"ISOSWITCH_SAF__MAX_ATTEMPT": "1"}, "[saf]: unknown keys ['ISOSWITCH_SAF__MAX_ATTEMPT']"),
        ({"ISOSWITCH_SAF__MAX_ATTEMPTS": "many"}, "ISOSWITCH_SAF__MAX_ATTEMPTS ([saf] max_attempts) must be an int"),
        ({"ISOSWITCH_METRICS__ENABLED": "perhaps"}, "([metrics] enabled) must be a bool"),
        ({"ISOSWITCH_HTTP__HOST": ""}, "ISOSWITCH_HTTP__HOST ([http] host) must not be empty"),
        ({"ISOSWITCH_DATABASE__DATA_DIR": " "}, "([database] data_dir) must not be empty"),
        ({"ISOSWITCH_PROCESS__SHUTDOWN_TIMEOUT": "nan"}, "must be a finite float, got 'nan'"),
        ({"ISOSWITCH_ROUTING__DEFAULT": "nowhere"}, "routing.default names unknown destination 'nowhere'"),
        ({"ISOSWITCH_PROCESS__WORKERS": "12"}, "[process]: workers must be 1..9"),
        ({"ISOSWITCH_LOGGING__LEVEL": "loud"}, "unknown level 'loud'"),
        ({"ISOSWITCH_ISO_LISTENER__DIALECT": "ebcdic"}, "listener dialect must be one of"),
    ],
)
def test_a_wrong_setting_fails_the_start_naming_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(env=env, sections={"http": HTTP_SECTION})
    assert message in str(exc.value)


def test_a_number_is_not_a_boolean_and_an_empty_optional_unsets_it(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[metrics]\nenabled = 1\n")
    with pytest.raises(ConfigError, match=r"\[metrics\] enabled must be a bool, got 1"):
        load_settings(path, env={})
    env = {"ISOSWITCH_RUNTIME__REQUEST_TIMEOUT": "2.5"}
    assert load_settings(env=env).runtime.request_timeout == 2.5
    assert load_settings(env={**env, "ISOSWITCH_RUNTIME__REQUEST_TIMEOUT": ""}).runtime.request_timeout is None


def test_the_switch_tables_can_be_set_from_the_environment_too() -> None:
    s = load_settings(env={"ISOSWITCH_SWITCH__NODE_ID": "4", "ISOSWITCH_ROUTING__DEFAULT": "sim"})
    assert (s.switch.node_id, s.switch.default_route) == (4, "sim")
    assert load_settings(env={"ISOSWITCH_ROUTING__DEFAULT": ""}).switch.default_route is None
    with pytest.raises(ConfigError, match=r"with ISOSWITCH_SWITCH__NODE_ID: switch\.node_id must be 0\.\.9"):
        load_settings(env={"ISOSWITCH_SWITCH__NODE_ID": "12"})


def test_an_unknown_section_in_the_file_fails_the_start(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[htpp]\nport = 1\n")
    with pytest.raises(ConfigError, match=r"unknown sections \['htpp'\]"):
        load_settings(path, env={})


def test_the_simulator_section_is_registered_by_the_command_not_the_core(tmp_path: Path) -> None:
    assert "simulator" not in SECTIONS and "http" not in SECTIONS
    path = tmp_path / "c.toml"
    path.write_text("[simulator]\nport = 9583\n[http]\nport = 9080\n")
    core = load_settings(path, env={"ISOSWITCH_SIMULATOR__ADMIN_PORT": "9584"})
    assert "simulator" not in core.sections  # one file for every process: accepted, not built
    s = config.load(path, env={"ISOSWITCH_SIMULATOR__ADMIN_PORT": "9584"})
    assert (config.simulator(s).port, config.simulator(s).admin_port, config.front(s).port) == (9583, 9584, 9080)
    with pytest.raises(ConfigError, match=r"ISOSWITCH_SIMULATOR__PORT \(\[simulator\] port\) must be an int"):
        config.load(path, env={"ISOSWITCH_SIMULATOR__PORT": "many"})


def test_shown_hides_secrets_and_leaves_out_unset_options() -> None:
    peers = '{ T1 = "000102030405060708090A0B0C0D0E0F" }'
    env = {"DATABASE_URL": "postgresql://u:s3cret@db/x", "ISOSWITCH_ISO_LISTENER__PEERS": peers}
    s = load_settings(env=env)
    doc = shown(s)
    assert doc["database"]["url"] == "postgresql://u:***@db/x"
    in_query = load_settings(env={"DATABASE_URL": "postgresql://u@db/x?sslmode=require&password=s3cret"})
    assert shown(in_query)["database"]["url"] == "postgresql://u@db/x?sslmode=require&password=***"
    assert doc["iso_listener"]["peers"] == {"T1": "<hidden>"}
    assert "request_timeout" not in doc["runtime"]
    assert doc["destinations"][0]["name"] == "sim"
    assert doc["routing"] == {"default": "sim", "test": "sim"}  # the default file names the simulator for test mode
    assert shown(load_settings(env={"ISOSWITCH_ROUTING__TEST": "sim"}))["routing"] == {"default": "sim", "test": "sim"}


def test_config_show_prints_toml_that_loads_back_without_secrets(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://u:s3cret@db/x", "ISOSWITCH_HTTP__PORT": "9100"}
    peers = '{ TERM0001 = "000102030405060708090A0B0C0D0E0F" }'
    env["ISOSWITCH_ISO_LISTENER__PEERS"] = peers
    out = subprocess.run(
        [sys.executable, "-m", "isoswitch", "config", "show", "--workers", "2", "--iso-port", "9200"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=True,
    ).stdout
    assert "s3cret" not in out and "000102030405060708090A0B0C0D0E0F" not in out
    doc = tomllib.loads(out)
    assert (doc["http"]["port"], doc["process"]["workers"]) == (9100, 2)
    assert (doc["iso_listener"]["enabled"], doc["iso_listener"]["port"]) == (True, 9200)
    assert typing.cast(dict[str, Any], doc["saf"])["max_attempts"] == 50


# -- isoswitch switch: the core and the ISO listener, no REST front ---------------------------


@pytest.fixture
async def shop(fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[str]:
    """A database with the project of terminal TERM0001 (MessageFactory's default)."""
    db = await open_database(DbConfig(url=fresh_dsn, data_dir=scratch_dir, min_size=1, max_size=2))
    try:
        await Projects(db.pool).create("iso-shop", project_settings(1))
    finally:
        await db.close()
    yield fresh_dsn


async def _wait_line(proc: asyncio.subprocess.Process, prefix: str, seconds: float = 45.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = (await asyncio.wait_for(proc.stdout.readline(), deadline - time.monotonic())).decode()
        if not line:
            break
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"no line starting {prefix!r}")


async def test_isoswitch_switch_runs_the_iso_listener_on_the_database_and_stops_on_sigterm(
    sim: SimServer, shop: str, scratch_dir: Path, mf: MessageFactory
) -> None:
    assert sim.address is not None
    port = free_ports()[0]
    env = {**os.environ, "DATABASE_URL": shop, "ISOSWITCH_PAN_KEY": KEY, "ISOSWITCH_LOGGING__LEVEL": "warning"}
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "isoswitch", "switch", "--target", f"{sim.address[0]}:{sim.address[1]}"),
        *("--iso-port", str(port), "--data-dir", str(scratch_dir)),
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    try:
        assert await _wait_line(proc, "ISO listener on ") == f"ISO listener on 127.0.0.1:{port}"
        peer = await IsoClient.connect(("127.0.0.1", port))
        try:
            echo = await peer.request(mf.network("301"))
            assert (echo["t"], echo["39"]) == ("0810", "00")
            resp = await peer.request(mf.auth())
            assert (resp["t"], resp["39"]) == ("0110", "00") and len(resp["38"]) == 6
        finally:
            await peer.close()
        assert sim.ledger.records >= 1, "the 0100 reached the issuer"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# -- isoswitch serve: SIGTERM drains what is in flight, then stops in order ------------------


@pytest.fixture
async def slow_sim() -> AsyncIterator[SimServer]:
    """Answers amount 7.77 after 1.5 s: a request that is in flight when SIGTERM comes."""
    async with running_sim() as s:
        s.set_faults([{"action": "delay", "amount": 777, "delay_ms": 1500}])
        yield s


async def test_sigterm_lets_a_request_in_flight_finish_then_signs_off_and_exits(
    slow_sim: SimServer, fresh_dsn: str, scratch_dir: Path
) -> None:
    assert slow_sim.address is not None
    db = await open_database(DbConfig(url=fresh_dsn, data_dir=scratch_dir, min_size=1, max_size=2))
    try:
        _, password = await Projects(db.pool).create("shop", project_settings(1))
    finally:
        await db.close()
    port = free_ports()[0]
    env = {**os.environ, "DATABASE_URL": fresh_dsn, "ISOSWITCH_PAN_KEY": KEY, "ISOSWITCH_HTTP__ACCESS_LOG": "false"}
    cmd = [sys.executable, "-m", "isoswitch", "serve", "--target", f"{slow_sim.address[0]}:{slow_sim.address[1]}"]
    cmd += ["--http-port", str(port), "--data-dir", str(scratch_dir)]
    proc = await asyncio.create_subprocess_exec(*cmd, stderr=asyncio.subprocess.PIPE, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Basic " + base64.b64encode(f"shop:{password}".encode()).decode()}
    body = {
        "amount": "7.77",
        "currency": "USD",
        "pan": "4111111111111111",
        "card": {"cvv": "123", "holder": "John Smith", "expiration_month": "12", "expiration_year": "2031"},
        "location": {"ip": "8.8.8.8"},
    }
    try:
        async with aiohttp.ClientSession(headers=auth) as s:
            deadline = time.monotonic() + 45
            while True:
                try:
                    async with s.get(f"{base}/ping") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline and proc.returncode is None, "serve did not start"
                await asyncio.sleep(0.1)
            in_flight = asyncio.ensure_future(s.post(f"{base}/orders/authorize", json=body))
            await asyncio.sleep(0.5)  # the 0100 is at the (slow) issuer now
            proc.send_signal(signal.SIGTERM)
            resp = await in_flight
            assert resp.status == 200 and (await resp.json())["orders"][0]["status"] == "authorized"
            assert resp.headers["X-Request-Id"]
            rid = resp.headers["X-Request-Id"]
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert proc.stderr is not None
        lines = [orjson.loads(line) for line in (await proc.stderr.read()).splitlines() if line.startswith(b"{")]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    msgs = [line["msg"] for line in lines]
    assert msgs.index("shutdown step front done") < msgs.index("shutdown step core done") < msgs.index("shut down")
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    assert not any("4111111111111111" in str(line) for line in lines)
    assert rid  # every line of that request carries it (checked in tests/test_logs.py)
    assert any(m.startswith("link ") and m.endswith("signed off") for m in msgs), "0800/002 before the exit"


def test_metrics_enabled_false_takes_metrics_off_the_front() -> None:
    from http_front.app import create_app

    s = config.load(env={"ISOSWITCH_METRICS__ENABLED": "false"})
    front = config.front(s)
    assert front.metrics is False
    names = {r.name for r in create_app(typing.cast(Any, object()), front).router.routes()}
    assert "public:metrics" not in names and "public:health" in names
    on = config.front(config.load(env={}))
    assert "public:metrics" in {r.name for r in create_app(typing.cast(Any, object()), on).router.routes()}


async def test_a_shutdown_step_past_its_deadline_is_cancelled_and_abandoned_after_its_grace() -> None:
    from switch.runtime import bounded

    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await release.wait()  # a cleanup that takes far longer than the grace (released below)

    async def quick() -> None:
        await asyncio.sleep(0.01)

    assert await bounded("quick", quick(), 1.0) is True
    started = time.monotonic()
    assert await bounded("stubborn", stubborn(), 0.2, grace=0.2) is False
    assert time.monotonic() - started < 1.0, "the deadline holds even when the step's cleanup drags on"
    release.set()
    await asyncio.sleep(0.05)
