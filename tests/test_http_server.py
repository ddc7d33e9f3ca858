"""Running the front on real sockets: serve/stop, graceful shutdown, SO_REUSEPORT, access log; the bare path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from sim_helpers import free_ports, running_sim
from test_http_app import AUTH, AUTHORIZE, FakeRuntime

from bench.bare import create_bare_app
from http_front import FrontConfig, serve, start_app, start_front
from switch.link import LinkConfig
from switch.pool import Pool, Router, RoutingTable
from switch.store.projects import Project

pytestmark = pytest.mark.timeout(30)

LOCAL = FrontConfig(port=0, shutdown_timeout=5.0)


class SlowRuntime(FakeRuntime):
    """authorize waits for ``gate``: a request that is in flight when the server stops."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        real = self.orders.authorize

        async def slow(project: Project, body: Mapping[str, Any]) -> Any:
            self.entered.set()
            await self.gate.wait()
            return await real(project, body)

        self.orders.authorize = slow  # type: ignore[method-assign]


async def test_serve_listens_until_stop_is_set() -> None:
    port = free_ports()[0]
    stop = asyncio.Event()
    task = asyncio.create_task(serve(FakeRuntime(), FrontConfig(port=port), stop))  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(f"http://127.0.0.1:{port}/ping", headers=AUTH) as resp:
                    assert resp.status == 200
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.02)
        else:
            pytest.fail("the front never answered")
        stop.set()
        await asyncio.wait_for(task, 10)
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://127.0.0.1:{port}/ping", headers=AUTH)


async def test_a_request_in_flight_at_shutdown_still_gets_its_answer() -> None:
    runtime = SlowRuntime()
    server = await start_front(runtime, LOCAL)  # type: ignore[arg-type]
    url = f"http://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession() as session:
        pending = asyncio.create_task(session.post(f"{url}/orders/authorize", json=AUTHORIZE, headers=AUTH))
        await asyncio.wait_for(runtime.entered.wait(), 5)
        closing = asyncio.create_task(server.close())
        await asyncio.sleep(0.1)
        assert not closing.done()  # waiting for the request in flight
        runtime.gate.set()
        resp = await asyncio.wait_for(pending, 5)
        assert resp.status == 200 and (await resp.json())["orders"][0]["status"] == "authorized"
        await asyncio.wait_for(closing, 5)


async def test_a_request_still_running_at_the_deadline_is_cut_off() -> None:
    runtime = SlowRuntime()
    server = await start_front(runtime, FrontConfig(port=0, shutdown_timeout=0.2))  # type: ignore[arg-type]
    url = f"http://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession() as session:
        pending = asyncio.create_task(session.post(f"{url}/orders/authorize", json=AUTHORIZE, headers=AUTH))
        await asyncio.wait_for(runtime.entered.wait(), 5)
        await asyncio.wait_for(server.close(), 5)
        with pytest.raises(aiohttp.ClientError):
            await asyncio.wait_for(pending, 5)


async def test_worker_processes_can_share_one_port() -> None:
    port = free_ports()[0]
    config = FrontConfig(port=port)
    first = await start_front(FakeRuntime(), config)  # type: ignore[arg-type]
    try:
        second = await start_front(FakeRuntime(), config)  # type: ignore[arg-type]
        await second.close()
    finally:
        await first.close()


async def test_the_access_log_has_the_path_but_never_the_query(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="isoswitch.http.access")
    server = await start_front(FakeRuntime(), LOCAL)  # type: ignore[arg-type]
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{server.port}/orders/?client.email=someone@example.com"
            async with session.get(url, headers=AUTH) as resp:
                assert resp.status == 200
    finally:
        await server.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "isoswitch.http.access"]
    assert len(lines) == 1 and lines[0].startswith("GET /orders/ 200 ")
    assert "someone" not in caplog.text


# -- the bare path ---------------------------------------------------------------


@pytest.fixture
async def router() -> AsyncIterator[Router]:
    async with running_sim() as sim:
        assert sim.address is not None
        host, port = sim.address
        pool = Pool.connect("sim", LinkConfig(host, port, reconnect_initial=0.02, reconnect_max=0.2), 1)
        r = Router([pool], RoutingTable([], default="sim"))
        r.start()
        try:
            await r.wait_ready(5)
            yield r
        finally:
            await r.close(timeout=1)


@pytest.mark.parametrize(
    ("pan", "status", "failure_type"),
    [
        ("4111111111111111", 200, None),
        ("4276990011343663", 402, "declined"),
        ("4000000000000002", 402, "fraud"),
        ("5555555555555599", 500, "error"),
    ],
)
async def test_the_bare_path_authorizes_through_the_router_with_nothing_else(
    router: Router, pan: str, status: int, failure_type: str | None
) -> None:
    server = await start_app(create_bare_app(router, LOCAL), LOCAL)
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{server.port}/orders/authorize"
            async with session.post(url, json={**AUTHORIZE, "pan": pan}) as resp:  # no credentials at all
                doc = await resp.json()
                assert resp.status == status
    finally:
        await server.close()
    if failure_type is None:
        (order,) = doc["orders"]
        assert order["status"] == "authorized" and order["iso_response_code"] == "00"
        assert order["amount"] == "9.99" and order["pan"] == "411111****1111" and len(order["auth_code"]) == 6
    else:
        assert doc["failure_type"] == failure_type and doc["order_id"] is None


async def test_the_bare_path_refuses_what_cannot_become_a_message(router: Router) -> None:
    app = create_bare_app(router, LOCAL)
    assert {r.resource.canonical for r in app.router.routes() if r.resource is not None} == {"/orders/authorize"}
    server = await start_app(create_bare_app(router, LOCAL), LOCAL)
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{server.port}/orders/authorize"
            for body in (b"{", b"{}", b'{"amount": 1, "pan": "12"}'):
                async with session.post(url, data=body) as resp:
                    assert resp.status == 422
                    assert (await resp.json())["failure_type"] == "validation"
    finally:
        await server.close()


async def test_the_normal_app_has_no_bare_route() -> None:
    server = await start_front(FakeRuntime(), LOCAL)  # type: ignore[arg-type]
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{server.port}/orders/authorize"
            async with session.post(url, json=AUTHORIZE) as resp:
                assert resp.status == 401  # the full path: credentials first
    finally:
        await server.close()
