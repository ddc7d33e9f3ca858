"""The REST bench: its HTTP/1.1 client against small real servers, the CLI, the bare-server lifecycle.

The servers answer like the orders API (200 approved, 402 declined or
fraud, 500 error, chosen by the PAN), or misbehave on purpose (close after
each answer, chunked or unframed bodies, answers split into pieces,
garbage, silence). Speed is what the bench measures, never what a test
asserts: runs here are a fraction of a second and only their counting and
bookkeeping is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from waiting import wait_for

from bench.cli import main
from bench.http_load import HttpTarget, ProtocolError, basic_auth, chunked_end, parse_head
from bench.measure import BenchError
from bench.rest import RestBenchConfig, authorize_requests, bare_server, run_rest
from bench.workload import TEST_CARDS

pytestmark = pytest.mark.timeout(15)

LOGIN, PASSWORD = "bench-project", "s3cret-pw"
AUTH = basic_auth(LOGIN, PASSWORD)

RESULT_KEYS = {"benchmark", "command", "date", "machine", "parameters", "figures", "targets"}
FIGURE_KEYS = {
    "requests",
    "responses",
    "elapsed_s",
    "throughput_per_s",
    "latency_us",
    "errors",
    "errors_total",
    "status_codes",
    "unexpected_statuses",
    "cards",
    "cpu",
    "connections",
    "connections_opened",
    "connections_closed_by_server",
    "requests_per_connection",
    "unanswered_at_end",
}
LATENCY_KEYS = {"count", "min", "mean", "p50", "p90", "p99", "p99.9", "max", "hdr"}

# PAN -> (HTTP status, failure_type) as the orders API answers the test cards.
ANSWERS: dict[str, tuple[int, str | None]] = {
    "4111111111111111": (200, None),
    "2222400060000007": (200, None),
    "4276990011343663": (402, "declined"),
    "4000000000000002": (402, "fraud"),
    "5555555555555599": (500, "error"),
}


def answer_body(pan: str) -> tuple[int, bytes]:
    status, failure = ANSWERS[pan]
    if failure is None:
        doc: dict[str, Any] = {"orders": [{"id": "23014806643308174", "status": "authorized", "pan": "411111****1111"}]}
    else:
        doc = {"failure_type": failure, "failure_message": failure.title(), "order_id": "23014806643308175"}
    return status, orjson.dumps(doc)


@dataclass
class FakeApi:
    """An aiohttp app answering ``POST /orders/authorize`` like the orders API."""

    mode: str = "keep-alive"  # "keep-alive" | "close" (Connection: close on every answer) | "chunked"
    silent_pan: str | None = None  # never answer this card
    peers: set[Any] = field(default_factory=set)
    requests: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        self.peers.add(request.transport.get_extra_info("peername"))
        self.requests += 1
        if request.headers.get("Authorization") != AUTH:
            return web.json_response({"failure_type": "auth"}, status=401)
        doc = orjson.loads(await request.read())
        if len(self.bodies) < 50:
            self.bodies.append(doc)
        pan = doc["pan"]
        if pan == self.silent_pan:
            await asyncio.sleep(3600)
        status, body = answer_body(pan)
        if self.mode == "chunked":
            resp = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await resp.write(body[:10])
            await resp.write(body[10:])
            await resp.write_eof()
            return resp
        out = web.Response(status=status, body=body, content_type="application/json")
        if self.mode == "close":
            out.force_close()
        return out

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/orders/authorize", self.authorize)
        return app


@contextlib.asynccontextmanager
async def serving(api: FakeApi) -> AsyncIterator[str]:
    runner = web.AppRunner(api.app(), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


Script = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]


@contextlib.asynccontextmanager
async def raw_server(script: Script) -> AsyncIterator[str]:
    """A hand-written HTTP server: ``script(request body, writer)`` answers; False closes the connection."""

    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                if not await script(body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for w in list(writers):  # Python 3.11's wait_closed does not wait for handlers: close them here
            w.close()
        await server.wait_closed()
        await wait_for(lambda: not writers)  # every handler has ended (each discards its writer last)


def short(url: str, **kw: Any) -> RestBenchConfig:
    opts: dict[str, Any] = {
        "login": LOGIN,
        "password": PASSWORD,
        "concurrency": 4,
        "duration": 0.4,
        "warmup": 0.1,
        "timeout": 1.0,
    }
    opts.update(kw)
    return RestBenchConfig(url=url, **opts)


def check_clean(doc: dict[str, Any]) -> dict[str, Any]:
    assert RESULT_KEYS <= set(doc)
    assert doc["benchmark"] == "rest"
    f = doc["figures"]
    assert FIGURE_KEYS <= set(f)
    assert LATENCY_KEYS <= set(f["latency_us"])
    assert f["responses"] > 0
    assert f["latency_us"]["count"] == f["responses"]
    assert sum(f["status_codes"].values()) == f["responses"]
    assert f["errors"] == {} and f["errors_total"] == 0
    assert f["unexpected_statuses"] == 0
    assert set(f["status_codes"]) == {"200", "402", "500"}
    assert f["status_codes"]["200"] > f["responses"] // 2
    assert f["unanswered_at_end"] == 0
    assert f["cpu"]["bench_s"] >= 0 and f["cpu"]["bench_us_per_response"] >= 0
    json.dumps(doc)  # plain JSON
    return f


# -- the client against servers that behave ---------------------------------------------


async def test_a_short_run_answers_every_card_with_its_status() -> None:
    api = FakeApi()
    async with serving(api) as url:
        doc = await run_rest(short(url), command="test")
    f = check_clean(doc)
    cards = f["cards"]
    assert cards["411111****1111"] == {"expect": 200, "statuses": {"200": cards["411111****1111"]["statuses"]["200"]}}
    assert set(cards["400000****0002"]["statuses"]) == {"402"}
    assert set(cards["555555****5599"]["statuses"]) == {"500"}
    assert doc["parameters"]["endpoint"] == f"{url}/orders/authorize"
    assert "bare" not in doc and "ratio" not in doc


async def test_the_bodies_follow_the_documented_authorize_example() -> None:
    api = FakeApi()
    async with serving(api) as url:
        await run_rest(short(url, duration=0.2, warmup=0.0))
    doc = api.bodies[0]
    assert set(doc) == {"amount", "currency", "pan", "card", "location"}
    assert doc["currency"] == "USD" and doc["amount"] == 0.01
    assert set(doc["card"]) == {"cvv", "holder", "expiration_month", "expiration_year"}
    assert doc["card"]["expiration_year"] > 2024 and set(doc["location"]) == {"ip"}
    assert {b["pan"] for b in api.bodies} == {c.pan for c in TEST_CARDS}


async def test_connections_are_kept_alive_and_reused() -> None:
    api = FakeApi()
    async with serving(api) as url:
        doc = await run_rest(short(url, concurrency=3))
    f = doc["figures"]
    assert len(api.peers) == 3  # every request went over the first three connections
    assert f["connections_opened"] == 3 and f["connections_closed_by_server"] == 0
    assert f["requests_per_connection"] > 1


async def test_a_server_closing_after_each_answer_gets_new_connections_and_no_errors() -> None:
    api = FakeApi(mode="close")
    async with serving(api) as url:
        doc = await run_rest(short(url))
    f = check_clean(doc)
    assert f["connections_closed_by_server"] > 0
    assert f["connections_opened"] > f["connections"]
    assert len(api.peers) > 4


async def test_chunked_answers_are_read() -> None:
    async with serving(FakeApi(mode="chunked")) as url:
        doc = await run_rest(short(url))
    check_clean(doc)


async def test_answers_split_into_pieces_are_reassembled() -> None:
    async def script(body: bytes, w: asyncio.StreamWriter) -> bool:
        status, payload = answer_body(orjson.loads(body)["pan"])
        raw = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        data = raw.encode() + payload
        for piece in (data[:7], data[7:30], data[30:-5], data[-5:]):
            w.write(piece)
            await w.drain()
            await asyncio.sleep(0.001)
        return True

    async with raw_server(script) as url:
        doc = await run_rest(short(url))
    assert check_clean(doc)["connections_opened"] == 4


async def test_an_unframed_http_1_0_answer_ends_at_the_close() -> None:
    async def script(body: bytes, w: asyncio.StreamWriter) -> bool:
        status, payload = answer_body(orjson.loads(body)["pan"])
        w.write(f"HTTP/1.0 {status} X\r\nContent-Type: application/json\r\n\r\n".encode() + payload)
        await w.drain()
        return False  # no length: the close ends the body

    async with raw_server(script) as url:
        doc = await run_rest(short(url))
    f = check_clean(doc)
    assert f["connections_closed_by_server"] > 0


# -- ... and servers that do not ------------------------------------------------------------


async def test_garbage_is_a_protocol_error_and_the_connection_is_replaced() -> None:
    async def script(body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await w.drain()
        return True

    async with raw_server(script) as url:
        doc = await run_rest(short(url, duration=0.3))
    f = doc["figures"]
    assert f["responses"] == 0
    assert f["errors"]["protocol_error"] > 0
    assert f["connections_opened"] > 4


async def test_a_connection_dropped_mid_request_counts_as_closed() -> None:
    async def script(body: bytes, w: asyncio.StreamWriter) -> bool:
        if orjson.loads(body)["pan"] == TEST_CARDS[3].pan:
            return False  # hang up without an answer
        status, payload = answer_body(orjson.loads(body)["pan"])
        w.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
        await w.drain()
        return True

    async with raw_server(script) as url:
        doc = await run_rest(short(url))
    f = doc["figures"]
    assert f["errors"].get("connection_closed", 0) + f["errors"].get("connection_reset", 0) > 0
    assert f["status_codes"]["200"] > 0 and "500" not in f["status_codes"]


async def test_unanswered_requests_time_out_and_the_rest_carry_on() -> None:
    api = FakeApi(silent_pan=TEST_CARDS[4].pan)
    async with serving(api) as url:
        doc = await run_rest(short(url, timeout=0.15, duration=0.6))
    f = doc["figures"]
    assert f["errors"]["timeout"] > 0
    assert f["status_codes"]["200"] > 0
    assert f["connections_opened"] > 4  # a timed-out connection is dropped and replaced


async def test_a_wrong_password_shows_as_401s_not_the_cards_statuses() -> None:
    async with serving(FakeApi()) as url:
        doc = await run_rest(short(url, password="wrong", duration=0.2))
    f = doc["figures"]
    assert set(f["status_codes"]) == {"401"}
    assert f["unexpected_statuses"] == f["responses"] > 0


async def test_max_requests_ends_the_run_when_all_are_answered() -> None:
    # An hour's duration: only max_requests can end the run before the test's timeout fails it.
    async with serving(FakeApi()) as url:
        doc = await run_rest(short(url, duration=3600.0, warmup=0.0, max_requests=40))
    f = doc["figures"]
    assert f["requests"] == 40 and f["responses"] == 40


async def test_an_unreachable_target_is_a_bench_error() -> None:
    with pytest.raises(BenchError, match="cannot connect"):
        await run_rest(short(f"http://127.0.0.1:{closed_port()}"))


# -- requests, parsing, configuration ----------------------------------------------------------


def test_requests_are_built_once_with_auth_and_length() -> None:
    cfg = short("http://127.0.0.1:8080/api")
    reqs = authorize_requests(cfg)
    assert len(reqs) == 20 and [i for _, i in reqs].count(0) == 16
    raw, _ = reqs[0]
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /api/orders/authorize HTTP/1.1"
    assert f"Authorization: {AUTH}" in lines and "Host: 127.0.0.1:8080" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert orjson.loads(body)["pan"] == TEST_CARDS[0].pan


def test_credentials_can_come_from_the_url_and_never_reach_the_parameters() -> None:
    cfg = RestBenchConfig(url=f"http://{LOGIN}:{PASSWORD}@127.0.0.1:1")
    assert cfg.credentials() == (LOGIN, PASSWORD)
    params = json.dumps(cfg.parameters())
    assert PASSWORD not in params and LOGIN in params


def test_config_refuses_nonsense() -> None:
    for bad in (
        {"url": "ftp://h:1"},
        {"url": "http://h:1", "rates": (100.0, 0.0)},
        {"url": "http://h:1", "rates": (100.0,), "bare_sim": ("h", 1)},
        {"url": "h:1"},
        {"url": "http://h:1", "concurrency": 0},
        {"url": "http://h:1", "amount": "-1"},
        {"url": "http://h:1", "amount": "x"},
        {"url": "http://h:1", "mix": (1, 2)},
        {"url": "http://h:1", "login": "only-login"},
    ):
        with pytest.raises(ValueError):
            RestBenchConfig(**bad)


def test_response_heads_are_parsed_case_insensitively() -> None:
    assert parse_head(b"HTTP/1.1 200 OK\r\ncontent-LENGTH:  12 \r\nConnection: Keep-Alive") == (200, 12, False, False)
    assert parse_head(b"HTTP/1.0 500 E\r\nConnection: keep-alive") == (500, -1, False, False)
    assert parse_head(b"HTTP/1.1 402 P\r\nTransfer-Encoding: gzip, chunked") == (402, -1, True, False)
    for bad in (b"HTTP/2 200", b"ICY 200 OK", b"HTTP/1.1 2x0 OK", b"HTTP/1.1 200 OK\r\nContent-Length: -1"):
        with pytest.raises(ProtocolError):
            parse_head(bad)


def test_chunked_bodies_end_after_their_trailers() -> None:
    body = b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"
    assert chunked_end(body, 0) == len(body)
    assert all(chunked_end(body[:n], 0) == -1 for n in range(len(body)))
    with pytest.raises(ProtocolError):
        chunked_end(b"zz\r\n", 0)
    with pytest.raises(ProtocolError):
        chunked_end(b"3\r\nabcXY0\r\n\r\n", 0)


def test_targets_are_parsed_from_urls() -> None:
    t = HttpTarget.parse("http://a%40b:p%3Aw@localhost/v1/")
    assert (t.host, t.port, t.path, t.login, t.password) == ("localhost", 80, "/v1", "a@b", "p:w")
    assert t.redacted() == "http://localhost:80/v1"


# -- the command line -----------------------------------------------------------------------


@contextlib.contextmanager
def api_in_thread(api: FakeApi) -> Iterator[str]:
    """The fake API on a loop of its own (the CLI runs its own loop in this thread)."""
    loop = asyncio.new_event_loop()
    started: asyncio.Future[str] = loop.create_future()
    stop = asyncio.Event()

    async def serve() -> None:
        async with serving(api) as url:
            started.set_result(url)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(asyncio.wait_for(asyncio.shield(started), 5), loop).result(5)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        loop.close()


def test_bench_rest_cli_prints_the_figures_and_writes_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    with api_in_thread(FakeApi()) as url:
        argv = ["rest", "--url", url, "--login", LOGIN, "--password", PASSWORD, "--concurrency", "4"]
        assert main([*argv, "--duration", "0.4", "--warmup", "0.1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for word in ("responses", "p99.9", "status codes", "200=", "errors", "µs/response", str(out)):
        assert word in printed
    text = out.read_text()
    assert PASSWORD not in text and PASSWORD not in printed
    doc = json.loads(text)
    assert doc["command"].startswith("isoswitch bench rest --url")
    assert "--password '***'" in doc["command"]
    check_clean(doc)


def test_bench_rest_cli_refuses_bare_without_a_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rest", "--url", "http://127.0.0.1:1", "--bare"]) == 2
    assert "--sim" in capsys.readouterr().err


def test_bench_rest_cli_reports_an_unreachable_target(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["rest", "--url", f"http://127.0.0.1:{closed_port()}", "--duration", "0.3", "--timeout", "0.5"]
    assert main([*argv, "--out", str(tmp_path / "x.json")]) == 1
    assert "cannot connect" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


# -- the bare server ----------------------------------------------------------------------------


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_the_bare_server_process_is_stopped_when_the_block_ends(tmp_path: Path) -> None:
    fake = [sys.executable, "-c", "import time; print('listening on 127.0.0.1:9', flush=True); time.sleep(60)"]
    with pytest.raises(RuntimeError, match="boom"):
        async with bare_server(("127.0.0.1", 1), tmp_path / "bare.log", command=fake) as srv:
            assert (srv.host, srv.port) == ("127.0.0.1", 9)
            pid = srv.pid
            raise RuntimeError("boom")
    assert gone(pid)


async def test_a_bare_server_that_does_not_start_is_a_bench_error_with_its_log(tmp_path: Path) -> None:
    fake = [sys.executable, "-c", "import sys; print('no bare app here', file=sys.stderr); sys.exit(2)"]
    with pytest.raises(BenchError, match="no bare app here"):
        async with bare_server(("127.0.0.1", 1), tmp_path / "bare.log", command=fake):
            pass


async def test_a_bare_run_that_cannot_start_keeps_the_main_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    monkeypatch.setattr("bench.rest.bare_server_command", lambda sim, host="127.0.0.1": failing)
    async with serving(FakeApi()) as url:
        doc = await run_rest(
            short(url, duration=0.2, warmup=0.0, bare_sim=("127.0.0.1", 1)), bare_log=tmp_path / "b.log"
        )
    assert doc["figures"]["responses"] > 0
    assert "did not start" in doc["bare"]["error"] and "ratio" not in doc
    assert "share_of_bare" not in doc["targets"]


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens there now


HAVE_BARE = importlib.util.find_spec("http_front") is not None and (importlib.util.find_spec("bench.bare") is not None)


@pytest.mark.skipif(not HAVE_BARE, reason="bench.bare (the bare app) is not written yet")
@pytest.mark.timeout(30)
def test_bench_rest_bare_runs_the_bare_path_and_reports_the_ratio(
    sim_process: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    with api_in_thread(FakeApi()) as url:
        argv = ["rest", "--url", url, "--login", LOGIN, "--password", PASSWORD, "--concurrency", "4"]
        argv += ["--duration", "0.5", "--warmup", "0.1", "--bare", "--sim", sim_process, "--out", str(out)]
        assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "bare path" in printed and "full / bare" in printed
    doc = json.loads(out.read_text())
    bare = doc["bare"]
    assert bare["figures"]["responses"] > 0
    assert bare["figures"]["cpu"]["target_s"] is not None  # the bare server's CPU, read from /proc
    assert set(bare["figures"]["status_codes"]) <= {"200", "402", "500"}
    assert doc["ratio"]["throughput"] > 0
    assert gone(bare["server_pid"])
