"""Hostile clients at the front door: slowloris, oversized bodies, log flooding (THREAT_MODEL.md).

Real sockets on 127.0.0.1, the front started on an ephemeral port by ``start_app``.
The guard's timeouts and cap are server-wide, so most cases serve a tiny app
(``/ping``, ``/slow`` held by a gate, ``/echo`` reading its body); the 413 and the
client gone mid-body serve the real front (``create_app`` over the fake runtime).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from test_http_app import AUTH, FakeRuntime

from http_front import FrontConfig, RunningServer, create_app, start_app
from http_front.logs import ClientFailureLog

pytestmark = pytest.mark.timeout(60)

CLIENT = "isoswitch.http.client"
WAIT = 15.0  # seconds any condition below gets to come true (a loaded 2-core box)


# -- helpers --------------------------------------------------------------------------------


def tiny_app(gate: asyncio.Event | None = None) -> web.Application:
    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="pong")

    async def slow(_: web.Request) -> web.Response:
        assert gate is not None
        await gate.wait()
        return web.Response(text="slow")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_get("/ping", ping)
    app.router.add_get("/slow", slow)
    app.router.add_post("/echo", echo)
    return app


@asynccontextmanager
async def running(app: web.Application, **options: Any) -> AsyncIterator[RunningServer]:
    server = await start_app(app, FrontConfig(port=0, **options))
    try:
        yield server
    finally:
        await server.close()


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never: {what}")
        await asyncio.sleep(0.02)


async def connect(server: RunningServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = WAIT) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except ConnectionResetError:
        return b""


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), WAIT)
    return status, headers, body


def request_head(method: str, path: str, **headers: str) -> bytes:
    fields = [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == CLIENT and r.levelno == logging.WARNING]


def assert_no_error_nor_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info or r.exc_text]
    assert not bad, [f"{r.name} {r.levelname} {r.getMessage()}" for r in bad]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


# -- slowloris: header, body and idle timeouts ------------------------------------------------


async def test_a_stalled_half_request_is_closed_after_the_header_timeout(logs: pytest.LogCaptureFixture) -> None:
    async with running(tiny_app(), header_timeout=0.5, keepalive_timeout=60.0) as server:
        reader, writer = await connect(server)
        writer.write(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow")
        assert await closed_by_server(reader) == b""  # no answer: a slowloris is not reading one
        await until(lambda: server.guard.open == 0, "the connection is forgotten")
        writer.close()
    (line,) = warnings_of(logs)
    assert "request line and headers not received within 0.5 s" in line.getMessage()
    assert "127.0.0.1" in line.getMessage()
    assert_no_error_nor_traceback(logs)


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout_without_a_warning(
    logs: pytest.LogCaptureFixture,
) -> None:
    async with running(tiny_app(), header_timeout=0.5, keepalive_timeout=60.0) as server:
        reader, writer = await connect(server)
        assert await closed_by_server(reader) == b""
        assert server.guard.timed_out == 1
        writer.close()
    assert warnings_of(logs) == []  # a pre-opened pool connection is not a failure worth a line


async def test_a_body_that_stops_coming_is_closed_after_the_body_timeout_with_one_warning(
    logs: pytest.LogCaptureFixture,
) -> None:
    async with running(create_app(FakeRuntime()), body_timeout=0.5) as server:  # type: ignore[arg-type]
        reader, writer = await connect(server)
        head = request_head("POST", "/orders/authorize", Content_Type="application/json", Content_Length="100", **AUTH)
        writer.write(head + b'{"amount":')
        assert await closed_by_server(reader) == b""
        await until(lambda: any(r.name == "isoswitch.http.access" for r in logs.records), "the request ends")
        writer.close()
    (line,) = warnings_of(logs)  # the guard's line; the handler reading the body met SlowClient, not a new failure
    assert "request body not received within 0.5 s" in line.getMessage()
    assert_no_error_nor_traceback(logs)


async def test_a_handler_slower_than_the_header_timeout_is_not_cut() -> None:
    # Pins aiohttp's Server.request_factory hook: the head is complete once the request is handed over.
    gate = asyncio.Event()
    async with running(tiny_app(gate), header_timeout=0.3) as server, aiohttp.ClientSession() as session:
        asyncio.get_running_loop().call_later(1.5, gate.set)  # five header timeouts
        async with session.get(f"http://127.0.0.1:{server.port}/slow") as resp:
            assert resp.status == 200 and await resp.text() == "slow"
        assert server.guard.timed_out == 0


async def test_the_second_request_on_a_keep_alive_connection_stalled_midway_is_closed_after_the_header_timeout(
    logs: pytest.LogCaptureFixture,
) -> None:
    # Pins the access logger's hook: the header timer restarts with the next request's first byte.
    async with running(tiny_app(), header_timeout=0.5, keepalive_timeout=60.0) as server:
        reader, writer = await connect(server)
        writer.write(request_head("GET", "/ping"))
        status, headers, body = await read_response(reader)
        assert (status, body) == (200, b"pong") and headers.get("connection", "").lower() != "close"
        writer.write(b"GET /ping HTTP/1.1\r\nHo")
        assert await closed_by_server(reader) == b""  # long before the 60 s keep-alive
        writer.close()
    (line,) = warnings_of(logs)
    assert "request line and headers not received" in line.getMessage()


async def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(
    logs: pytest.LogCaptureFixture,
) -> None:
    async with running(tiny_app(), header_timeout=60.0, keepalive_timeout=0.5) as server:
        reader, writer = await connect(server)
        writer.write(request_head("GET", "/ping"))
        assert (await read_response(reader))[0] == 200
        assert await closed_by_server(reader) == b""
        assert server.guard.timed_out == 0  # aiohttp's keep-alive timer, not the guard's
        writer.close()
    assert warnings_of(logs) == []


async def test_a_pipelined_request_behind_a_slow_one_is_answered_and_not_cut_by_the_header_timeout() -> None:
    gate = asyncio.Event()
    async with running(tiny_app(gate), header_timeout=0.3) as server:
        reader, writer = await connect(server)
        writer.write(request_head("GET", "/slow") + request_head("GET", "/ping"))
        asyncio.get_running_loop().call_later(1.5, gate.set)
        assert (await read_response(reader))[2] == b"slow"
        assert (await read_response(reader))[2] == b"pong"
        assert server.guard.timed_out == 0
        writer.close()


async def test_many_stalled_connections_do_not_stop_a_well_behaved_client_and_are_all_closed() -> None:
    stalled = 300
    async with running(tiny_app(), header_timeout=6.0, max_connections=stalled + 50) as server:
        conns = await asyncio.gather(*(connect(server) for _ in range(stalled)))
        for _, writer in conns:
            writer.write(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        await until(lambda: server.guard.open == stalled, "every stalled connection is open")
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{server.port}/ping") as resp:
            assert resp.status == 200 and await resp.text() == "pong"
        assert server.guard.timed_out == 0  # served while every stalled connection was still held
        answers = await asyncio.gather(*(closed_by_server(reader) for reader, _ in conns))
        assert answers == [b""] * stalled
        await until(lambda: server.guard.open == 0, "every connection is forgotten")
        assert server.guard.timed_out >= stalled
        for _, writer in conns:
            writer.close()


async def test_the_connection_cap_answers_503_at_once_and_frees_a_place_when_one_closes(
    logs: pytest.LogCaptureFixture,
) -> None:
    cap = 5
    async with running(tiny_app(), header_timeout=60.0, max_connections=cap) as server:
        conns = [await connect(server) for _ in range(cap)]
        await until(lambda: server.guard.open == cap, "the cap is reached")
        reader, writer = await connect(server)
        answer = await closed_by_server(reader)  # long before the 60 s header timeout
        assert answer.startswith(b"HTTP/1.1 503 ") and b"Connection: close" in answer
        assert b'"failure_message":"Too many connections"' in answer
        assert server.guard.open == cap and server.guard.refused == 1
        writer.close()
        conns[0][1].close()
        await until(lambda: server.guard.open == cap - 1, "a place is free")
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{server.port}/ping") as resp:
            assert resp.status == 200
        for _, w in conns[1:]:
            w.close()
    (line,) = warnings_of(logs)
    assert "connection refused" in line.getMessage() and "max_connections" in line.getMessage()


def test_the_guard_works_on_uvloop_the_loop_production_runs() -> None:
    # uvloop's transports are not asyncio.Transport subclasses: the guard must not care.
    uvloop = pytest.importorskip("uvloop")
    errors: list[dict[str, Any]] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        async with running(tiny_app(), header_timeout=0.5, max_connections=2) as server:
            reader, writer = await connect(server)
            writer.write(b"GET /ping HTTP/1.1\r\nHo")
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{server.port}/ping") as resp:
                    assert resp.status == 200
                await until(lambda: server.guard.open == 2, "the stalled and the pooled connection are open")
                busy_reader, busy_writer = await connect(server)
                assert (await closed_by_server(busy_reader)).startswith(b"HTTP/1.1 503 ")
                busy_writer.close()
            assert await closed_by_server(reader) == b""
            writer.close()
            await until(lambda: server.guard.open == 0, "every connection is forgotten")

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            uvloop.run(asyncio.wait_for(scenario(), WAIT * 2))
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    # In a thread of its own: pytest-timeout's signal cannot interrupt a uvloop that is stuck.
    thread = threading.Thread(target=run, name="uvloop-scenario", daemon=True)
    thread.start()
    thread.join(WAIT * 3)
    assert outcome == [None], outcome or "the scenario hung"
    assert errors == []


# -- oversized bodies ------------------------------------------------------------------------


async def test_a_declared_body_over_client_max_size_gets_413_without_sending_it() -> None:
    runtime = FakeRuntime()
    async with running(create_app(runtime), body_timeout=60.0) as server:  # type: ignore[arg-type]
        reader, writer = await connect(server)
        head = request_head(
            "POST", "/orders/authorize", Content_Type="application/json", Content_Length="99999999999", **AUTH
        )
        writer.write(head)  # and not one byte of the body
        status, headers, body = await read_response(reader)
        assert status == 413 and headers["connection"].lower() == "close"
        assert b'"failure_type":"validation"' in body and b"65536" in body
        writer.close()
        # aiohttp drains an unread body for up to 10 s after the answer; a client that left ends it.
        assert server.runner.server is not None
        await until(lambda: not server.runner.server.connections, "the drain ends with the client", timeout=8.0)


# -- log flooding: client failures are one rate-limited WARNING line ---------------------------


@pytest.mark.parametrize("how", ["reset", "close"])
async def test_a_client_gone_mid_body_is_one_warning_line_without_a_traceback(
    how: str, logs: pytest.LogCaptureFixture
) -> None:
    async with running(create_app(FakeRuntime())) as server:  # type: ignore[arg-type]
        _, writer = await connect(server)
        head = request_head("POST", "/orders/authorize", Content_Type="application/json", Content_Length="1000", **AUTH)
        writer.write(head + b'{"amount":')
        await until(lambda: server.guard.in_flight == 1, "the handler waits for the body")
        if how == "reset":
            writer.transport.abort()
        else:
            writer.close()
        await until(lambda: any(r.name == "isoswitch.http.access" for r in logs.records), "the request ends")
        await until(lambda: server.guard.open == 0, "the connection is forgotten")
    (line,) = warnings_of(logs)
    assert "disconnected from 127.0.0.1" in line.getMessage()
    assert_no_error_nor_traceback(logs)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"a" * 10_000 + b"\r\n\r\n",
        b"GET /" + b"4111111111111111" * 700 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n",
    ],
    ids=["overlong-header", "overlong-request-line", "malformed-header"],
)
async def test_a_bad_request_head_is_one_warning_line_without_a_traceback(
    request_bytes: bytes, logs: pytest.LogCaptureFixture
) -> None:
    async with running(create_app(FakeRuntime())) as server:  # type: ignore[arg-type]
        reader, writer = await connect(server)
        writer.write(request_bytes)
        assert (await read_response(reader))[0] == 400
        await until(lambda: bool(warnings_of(logs)), "the line is written")
        writer.close()
    (line,) = warnings_of(logs)
    assert "bad request from 127.0.0.1" in line.getMessage()
    assert "4111" not in logs.text  # the request's bytes are not quoted
    assert_no_error_nor_traceback(logs)


async def test_client_failure_lines_are_rate_limited_and_the_rest_counted(logs: pytest.LogCaptureFixture) -> None:
    sent, rate = 30, 2.0
    async with running(tiny_app(), client_failure_log_rate=rate) as server:
        started = time.monotonic()
        for _ in range(sent):
            reader, writer = await connect(server)
            writer.write(b"GET /ping HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n")
            assert (await read_response(reader))[0] == 400
            writer.close()
        elapsed = time.monotonic() - started

        def counted() -> int:
            lines = warnings_of(logs)
            return sum(getattr(r, "suppressed", 1) for r in lines)

        await until(lambda: counted() == sent, "every failure is logged or counted")
    lines = [r for r in warnings_of(logs) if not hasattr(r, "suppressed")]
    summaries = [r for r in warnings_of(logs) if hasattr(r, "suppressed")]
    assert len(lines) <= 2 + rate * elapsed  # the burst, then the rate
    assert summaries and all(re.search(r"\d+ more not logged", r.getMessage()) for r in summaries)
    assert_no_error_nor_traceback(logs)


def test_the_client_failure_limiter_writes_at_most_its_rate_and_counts_the_rest() -> None:
    now = [0.0]
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("test.hostile.limiter")
    logger.propagate = False
    logger.addHandler(Collect())
    flog = ClientFailureLog(rate=3.0, logger=logger, clock=lambda: now[0])
    written = [flog.warn("bad request", "10.0.0.1", "LineTooLong") for _ in range(10)]
    assert written == [True] * 3 + [False] * 7 and flog.suppressed == 7
    now[0] = 1.0
    assert flog.warn("bad request", "10.0.0.1", "LineTooLong")  # the bucket refilled: the count goes first
    assert seen[3] == "client failures: 7 more not logged in the last 1.0 s (at most 3 lines/s)"
    assert seen[4] == "client failure: bad request from 10.0.0.1 (LineTooLong)"
    assert len(seen) == 5


@pytest.mark.parametrize(
    "option", ["header_timeout", "body_timeout", "keepalive_timeout", "max_connections", "client_failure_log_rate"]
)
def test_a_limit_of_zero_is_refused_at_start(option: str) -> None:
    with pytest.raises(ValueError, match=option):
        FrontConfig(**{option: 0})
