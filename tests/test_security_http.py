"""The REST front under abuse: rate limits (429 + Retry-After), body and header size caps,
password checks that cost the same for every wrong answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pg import database, fresh_dsn, pg_dsn  # noqa: F401  (fixtures)
from test_http_app import AUTH, AUTHORIZE, OTHER, FakeRuntime, basic

from http_front import FrontConfig, create_app, start_front
from http_front.ratelimit import TokenBuckets
from switch.store import Database, Projects
from switch.store import projects as projects_module

pytestmark = pytest.mark.timeout(30)

Http = TestClient[web.Request, web.Application]
TOO_MANY = {"failure_type": "rejected", "failure_message": "Too many requests", "order_id": None}


class CountingRuntime(FakeRuntime):
    """Counts password checks, to show a refused address never reaches one."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0
        real = self.projects.authenticate

        async def counted(login: str, password: str) -> Any:
            self.checks += 1
            return await real(login, password)

        self.projects.authenticate = counted  # type: ignore[method-assign]


@pytest.fixture
def runtime() -> CountingRuntime:
    return CountingRuntime()


async def _client(runtime: FakeRuntime, config: FrontConfig) -> AsyncIterator[Http]:
    async with TestClient(TestServer(create_app(runtime, config))) as client:  # type: ignore[arg-type]
        yield client


# -- rate limits -----------------------------------------------------------------


async def test_a_project_past_its_burst_gets_429_with_retry_after_and_others_do_not(runtime: CountingRuntime) -> None:
    config = FrontConfig(rate_limit=0.5, rate_burst=3)
    async for http in _client(runtime, config):
        for _ in range(3):
            assert (await http.get("/ping", headers=AUTH)).status == 200
        resp = await http.get("/ping", headers=AUTH)
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "2"  # half a token a second: 2 s to the next
        assert resp.content_type == "application/json"
        assert await resp.json() == TOO_MANY
        # Operations are limited too, before their body is read.
        resp = await http.post("/orders/authorize", json=AUTHORIZE, headers=AUTH)
        assert resp.status == 429
        # Another project has its own bucket.
        assert (await http.get("/ping", headers=OTHER)).status == 200


async def test_failed_logins_from_one_address_get_429_before_any_password_check(runtime: CountingRuntime) -> None:
    config = FrontConfig(auth_failure_rate=0.1, auth_failure_burst=3)
    async for http in _client(runtime, config):
        wrong = basic("project", "guess")
        for _ in range(3):
            assert (await http.get("/ping", headers=wrong)).status == 401
        checks = runtime.checks
        resp = await http.get("/ping", headers=wrong)
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert await resp.json() == TOO_MANY
        # Even the right password waits: the address is what is slowed, not the login.
        assert (await http.get("/ping", headers=AUTH)).status == 429
        assert runtime.checks == checks
        # Missing credentials count as failures too (no check needed to know).
    config = FrontConfig(auth_failure_rate=0.1, auth_failure_burst=2)
    async for http in _client(CountingRuntime(), config):
        assert (await http.get("/ping")).status == 401
        assert (await http.get("/ping")).status == 401
        assert (await http.get("/ping")).status == 429


async def test_successful_logins_spend_nothing_of_the_failure_budget(runtime: CountingRuntime) -> None:
    config = FrontConfig(auth_failure_rate=0.1, auth_failure_burst=1)
    async for http in _client(runtime, config):
        for _ in range(20):
            assert (await http.get("/ping", headers=AUTH)).status == 200


async def test_zero_rates_switch_the_limits_off(runtime: CountingRuntime) -> None:
    config = FrontConfig(rate_limit=0, rate_burst=1, auth_failure_rate=0, auth_failure_burst=1)
    async for http in _client(runtime, config):
        for _ in range(5):
            assert (await http.get("/ping", headers=AUTH)).status == 200
            assert (await http.get("/ping", headers=basic("x", "y"))).status == 401


def test_token_buckets_refill_at_the_rate_and_keep_a_bounded_number_of_keys() -> None:
    now = [0.0]
    b = TokenBuckets(rate=2.0, burst=2, max_keys=3, clock=lambda: now[0])
    assert b.take("a") == 0.0 and b.take("a") == 0.0
    assert b.take("a") == pytest.approx(0.5)
    now[0] = 0.5
    assert b.take("a") == 0.0
    for key in "bcdef":
        b.take(key)
    assert len(b) == 3


def test_defaults_are_generous() -> None:
    c = FrontConfig()
    assert (c.rate_limit, c.rate_burst) == (1000.0, 2000)
    assert (c.auth_failure_rate, c.auth_failure_burst) == (5.0, 20)


# -- size limits -------------------------------------------------------------------


async def test_a_body_over_client_max_size_is_413_in_the_failure_shape(runtime: CountingRuntime) -> None:
    async for http in _client(runtime, FrontConfig(client_max_size=1024)):
        big = {**AUTHORIZE, "description": "x" * 2000}
        resp = await http.post("/orders/authorize", json=big, headers=AUTH)
        assert resp.status == 413
        doc = await resp.json()
        assert doc["failure_type"] == "validation"
        assert doc["failure_message"].startswith("Request body is")
        assert "4111" not in await resp.text()


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()


async def test_oversized_headers_are_refused_by_the_parser() -> None:
    config = FrontConfig(port=0, max_field_size=2048, max_line_size=2048, max_headers=16)
    server = await start_front(FakeRuntime(), config)  # type: ignore[arg-type]
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{server.port}/ping"
            async with session.get(url, headers=AUTH) as resp:
                assert resp.status == 200
            async with session.get(url, headers={**AUTH, "X-Big": "a" * 4096}) as resp:
                assert resp.status in (400, 431)
            many = {f"X-H{i}": "v" for i in range(40)}
            async with session.get(url, headers={**AUTH, **many}) as resp:
                assert resp.status in (400, 431)
        line = b"GET /ping?" + b"a" * 4096 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert (await _raw(server.port, line)).split(b"\r\n")[0].endswith(b" 400 Bad Request")
    finally:
        await server.close()


# -- password checks -------------------------------------------------------------------


async def test_a_wrong_password_and_an_unknown_login_both_run_scrypt_and_compare_in_constant_time(
    database: Database,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    projects = Projects(database.pool)
    _, password = await projects.create("shop")
    runs: list[int] = []
    compares: list[int] = []
    real_scrypt, real_compare = projects_module._scrypt, projects_module.hmac.compare_digest

    def scrypt(*args: Any, **kw: Any) -> bytes:
        runs.append(1)
        return real_scrypt(*args, **kw)

    def compare(a: Any, b: Any) -> bool:
        compares.append(1)
        return real_compare(a, b)

    monkeypatch.setattr(projects_module, "_scrypt", scrypt)
    monkeypatch.setattr(projects_module.hmac, "compare_digest", compare)
    assert await projects.authenticate("shop", "wrong") is None
    assert (len(runs), len(compares)) == (1, 1)
    assert await projects.authenticate("nobody", "wrong") is None
    assert (len(runs), len(compares)) == (2, 2)
    # Wrong answers are never cached: the same guess costs a scrypt again.
    assert await projects.authenticate("shop", "wrong") is None
    assert len(runs) == 3
    assert (await projects.authenticate("shop", password)) is not None
    assert len(runs) == 4
