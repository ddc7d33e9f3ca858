"""The bench's instruments of issue 10: thresholds, the open loop, CPU by process, HTTPS.

The open loop is checked against servers that stall once on purpose: a
latency measured from each request's intended send time must show the
stall in the requests queued behind it, where a closed loop shows only the
stalled one. CPU by process is read from real child processes that burn
CPU. Speed is never asserted: only what the stall adds, which is the point.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hdrh.histogram import HdrHistogram
from test_bench_rest import LOGIN, PASSWORD, FakeApi, answer_body, api_in_thread, check_clean, raw_server, short
from waiting import wait_for

from acquirer_sim import SimServer
from acquirer_sim.config import SimConfig
from bench.cli import PASSWORD_ENV, main
from bench.iso import IsoBenchConfig, run_iso
from bench.measure import Tally, Window
from bench.procs import ProcSpec, ProcWatch, children, postmaster_pid
from bench.rest import run_rest
from bench.thresholds import THRESHOLDS_MISSED, apply_thresholds, judge, parse_threshold

pytestmark = pytest.mark.timeout(30)

STALL_S = 0.2


def slow_count(figures: dict[str, Any], at_least_us: int) -> int:
    """How many recorded latencies are at least ``at_least_us`` (from the result's encoded histogram)."""
    hist = HdrHistogram.decode(figures["latency_us"]["hdr"])
    return sum(
        item.count_at_value_iterated_to
        for item in hist.get_recorded_iterator()
        if item.value_iterated_to >= at_least_us
    )


# -- thresholds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "metric", "op", "limit"),
    [
        ("p99<25ms", "p99", "<", 25_000),
        ("p99.9<=1.5s", "p99.9", "<=", 1_500_000),
        ("p50 < 800us", "p50", "<", 800),
        ("max<2000µs", "max", "<", 2_000),
        ("p90<10", "p90", "<", 10_000),  # ms when no unit
        ("p999<30ms", "p99.9", "<", 30_000),
        ("mean<5ms", "mean", "<", 5_000),
        ("rate>5000", "rate", ">", 5_000),
        ("throughput>=1_000/s", "rate", ">=", 1_000),
        ("errors<1", "errors", "<", 1),
        ("slo_rate>=600", "slo_rate", ">=", 600),
        ("P99<25MS", "p99", "<", 25_000),
    ],
)
def test_thresholds_are_parsed_into_metric_operator_and_limit(text: str, metric: str, op: str, limit: float) -> None:
    t = parse_threshold(text)
    assert (t.metric, t.op, t.limit) == (metric, op, limit)


@pytest.mark.parametrize(
    "text", ["p99", "p99=25ms", "p98<25ms", "p99<25min", "rate>5000ms", "errors<1ms", "<25ms", "p99<fast", ""]
)
def test_a_malformed_threshold_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_threshold(text)


@pytest.mark.parametrize(
    ("text", "passes"),
    [
        ("p99<25ms", False),  # 25 ms is not below 25 ms
        ("p99<=25ms", True),
        ("p50<1ms", True),
        ("max<100ms", False),
        ("rate>5000", True),
        ("rate>6000", False),
        ("errors<1", False),
        ("errors<=2", True),
        ("slo_rate>=600", True),
        ("slo_rate>600", False),
    ],
)
def test_thresholds_judge_a_result(text: str, passes: bool) -> None:
    figures = {
        "latency_us": {"p50": 900, "p90": 5_000, "p99": 25_000, "p99.9": 40_000, "max": 120_000, "mean": 2_000},
        "throughput_per_s": 5_500.0,
        "errors_total": 2,
    }
    (verdict,) = judge([parse_threshold(text)], figures, slo_rate=600.0)
    assert verdict["pass"] is passes


def test_slo_rate_without_a_curve_fails_rather_than_passing_unjudged() -> None:
    doc: dict[str, Any] = {"figures": {"latency_us": {}, "throughput_per_s": 1.0, "errors_total": 0}}
    assert not apply_thresholds(doc, [parse_threshold("slo_rate>1")])
    assert doc["thresholds"][0]["value"] is None


def test_bench_rest_exits_99_when_a_threshold_is_missed_and_0_when_all_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with api_in_thread(FakeApi()) as url:
        base = ["rest", "--url", url, "--login", LOGIN, "--password", PASSWORD, "--concurrency", "2"]
        base += ["--duration", "0.3", "--warmup", "0", "--out", str(tmp_path / "r.json")]
        assert main([*base, "--threshold", "errors<1", "--threshold", "rate>0"]) == 0
        passed = capsys.readouterr().out
        assert main([*base, "--threshold", "errors<1", "--threshold", "rate>1000000000"]) == THRESHOLDS_MISSED
        missed = capsys.readouterr().out
    assert "errors<1" in passed and "pass" in passed and "FAIL" not in passed
    assert "rate>1000000000" in missed and "FAIL" in missed
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [v["pass"] for v in doc["thresholds"]] == [True, False]


def test_a_malformed_threshold_on_the_command_line_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rest", "--url", "http://127.0.0.1:1", "--threshold", "p99<fast"]) == 2
    assert "p99<fast" in capsys.readouterr().err


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    server = SimServer(SimConfig(port=0))
    await server.start()
    yield server
    await server.stop()


def test_bench_iso_exits_99_on_a_missed_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "acquirer_sim", "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        target = proc.stdout.readline().strip().removeprefix("listening on ")
        base = ["iso", "--target", target, "--concurrency", "2", "--duration", "0.3", "--warmup", "0"]
        base += ["--out", str(tmp_path / "i.json")]
        assert main([*base, "--threshold", "errors<1"]) == 0
        assert main([*base, "--threshold", "errors>5"]) == THRESHOLDS_MISSED
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        proc.stdout.close()
    out = capsys.readouterr().out
    assert "errors>5" in out and "FAIL" in out


# -- the open loop ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def stalling_server(after: int) -> AsyncIterator[str]:
    """Answers like the orders API, but the ``after``-th request waits STALL_S first (once)."""
    seen = [0]

    async def script(body: bytes, writer: asyncio.StreamWriter) -> bool:
        seen[0] += 1
        if seen[0] == after:
            await asyncio.sleep(STALL_S)
        status, payload = answer_body(json.loads(body)["pan"])
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        return True

    async with raw_server(script) as url:
        yield url


async def test_open_loop_latency_counts_the_wait_of_the_requests_queued_behind_a_stall() -> None:
    # One connection at 200/s: while the stalled request is out, about 40 more fall due and wait;
    # each one's latency runs from when it was meant to go, so many show a good part of the stall.
    async with stalling_server(after=30) as url:
        doc = await run_rest(short(url, concurrency=1, rate=200.0, duration=1.0, warmup=0.0))
    f = check_clean(doc)
    assert doc["parameters"]["loop"] == "open"
    assert f["latency_us"]["max"] >= STALL_S * 1e6
    assert slow_count(f, int(STALL_S * 1e6 / 2)) >= 10
    assert f["pacer_max_backlog"] >= 10
    assert doc["targets"] == {}  # the targets judge the closed loop


async def test_a_closed_loop_shows_the_same_stall_in_one_request_only() -> None:
    async with stalling_server(after=30) as url:
        doc = await run_rest(short(url, concurrency=1, duration=0.6, warmup=0.0))
    f = check_clean(doc)
    assert f["latency_us"]["max"] >= STALL_S * 1e6
    assert slow_count(f, int(STALL_S * 1e6 / 2)) == 1


async def test_the_open_loop_never_sends_ahead_of_its_schedule() -> None:
    async with raw_server(_answer) as url:
        doc = await run_rest(short(url, concurrency=8, rate=300.0, duration=0.5, warmup=0.0))
    f = check_clean(doc)
    assert f["requests"] <= 300 * 0.5 + 1  # due requests only: request i goes at t0 + (i + 1) / rate, not before
    assert f["offered_rate_per_s"] == 300.0


async def _answer(body: bytes, writer: asyncio.StreamWriter) -> bool:
    status, payload = answer_body(json.loads(body)["pan"])
    writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
    await writer.drain()
    return True


async def test_a_rate_curve_runs_each_rate_and_names_the_highest_within_the_slo() -> None:
    async with raw_server(_answer) as url:
        doc = await run_rest(short(url, concurrency=4, rates=(150.0, 50.0), duration=0.3, warmup=0.0))
    curve = doc["curve"]
    assert [p["rate"] for p in curve["points"]] == [50.0, 150.0]
    for p in curve["points"]:
        assert p["figures"]["responses"] > 0 and p["figures"]["errors_total"] == 0
    # Against a server answering at once both meet a 25 ms p99 on any box; the verdict follows the p99s.
    met = [p["rate"] for p in curve["points"] if p["figures"]["latency_us"]["p99"] <= curve["slo_p99_us"]]
    assert curve["slo_rate"] == (max(met) if met else None)
    assert doc["figures"] is next(p["figures"] for p in curve["points"] if p["rate"] == (curve["slo_rate"] or 50.0))


def test_bench_rest_rates_prints_the_curve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with api_in_thread(FakeApi()) as url:
        argv = ["rest", "--url", url, "--login", LOGIN, "--password", PASSWORD, "--rates", "40,80"]
        argv += ["--duration", "0.3", "--warmup", "0", "--slo-p99", "1s", "--out", str(tmp_path / "c.json")]
        assert main([*argv, "--threshold", "slo_rate>=40"]) == 0
    printed = capsys.readouterr().out
    assert "highest rate with p99 <= 1.00 s: 80/s" in printed
    assert "offered" in printed and "backlog" in printed
    assert json.loads((tmp_path / "c.json").read_text())["curve"]["slo_rate"] == 80.0


@pytest.mark.parametrize("via_switch", [False, True], ids=["direct", "via-switch"])
async def test_the_paced_iso_bench_measures_from_the_intended_send_time(sim: SimServer, via_switch: bool) -> None:
    sim.set_faults([{"action": "delay", "delay_ms": int(STALL_S * 1000), "mti": "0100", "times": 1}])
    assert sim.address is not None
    host, port = sim.address
    cfg = IsoBenchConfig(
        host=host,
        port=port,
        via_switch=via_switch,
        concurrency=1,
        connections=1,
        links=1,
        rate=200.0,
        duration=1.0,
        warmup=0.0,
        timeout=2.0,
    )
    f = (await run_iso(cfg))["figures"]
    assert f["errors_total"] == 0 and f["responses"] > 100
    assert f["latency_us"]["max"] >= STALL_S * 1e6
    assert slow_count(f, int(STALL_S * 1e6 / 2)) >= 10  # the requests queued behind the delayed one


# -- CPU by process --------------------------------------------------------------------------

BURN = "import sys, time\nend = time.time() + 20\nwhile time.time() < end: pass\n"

# A parent that starts children burning CPU, then waits: a front with its workers, or a postmaster.
PARENT = f"""
import os, subprocess, sys, time
pidfile, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kids = [subprocess.Popen([sys.executable, "-c", {BURN!r}, tag]) for _ in range(n)]
if pidfile != "-":
    with open(pidfile, "w") as f:
        f.write(f"{{os.getpid()}}\\n/data\\n")
print("ready", flush=True)
try:
    time.sleep(20)
finally:
    for k in kids:
        k.kill()
"""


@contextlib.contextmanager
def parent(pidfile: str, n: int, tag: str = "worker") -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", PARENT, pidfile, str(n), tag], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_cpu_is_read_for_the_front_its_workers_postgres_and_the_simulator(tmp_path: Path) -> None:
    pg_dir = tmp_path / "data" / "pg"
    pg_dir.mkdir(parents=True)
    with (
        parent("-", 1, "worker") as front,
        parent(str(pg_dir / "postmaster.pid"), 1, "postgres") as postmaster,
    ):
        sim = subprocess.Popen([sys.executable, "-c", BURN, "acquirer_sim"])
        try:
            asyncio.run(wait_for(lambda: len(children(front.pid)) == 1 and len(children(postmaster.pid)) == 1))
            assert postmaster_pid(tmp_path / "data") == postmaster.pid  # isoswitch up's --data-dir
            spec = ProcSpec(target_pid=front.pid, pg_data=tmp_path / "data", sim_pid=sim.pid)
            groups = spec.groups()
            assert groups["front"] == [front.pid]
            assert groups["front_workers"] == children(front.pid)
            assert groups["postgres"] == [postmaster.pid, *children(postmaster.pid)]
            assert groups["simulator"] == [sim.pid]
            window = Window(front.pid, procs=ProcSpec(pg_data=tmp_path / "data", sim_pid=sim.pid))
            tally = Tally(10)
            window.open(tally)
            watch = window.procs
            assert isinstance(watch, ProcWatch)
            for g in ("front_workers", "postgres", "simulator"):
                asyncio.run(wait_for(lambda g=g: _cpu_now(watch, g) > 0.05, what=f"{g} burning CPU"))
            window.close(tally)
        finally:
            sim.kill()
            sim.wait(10)
    cpu = window.cpu(100)
    procs = cpu["processes"]
    assert set(procs) == {"front", "front_workers", "postgres", "simulator", "sum"}
    for g in ("front_workers", "postgres", "simulator"):
        assert procs[g]["cpu_s"] > 0.04
        assert procs[g]["us_per_response"] == pytest.approx(procs[g]["cpu_s"] / 100 * 1e6, rel=0.01)
    assert procs["sum"]["cpu_s"] == pytest.approx(sum(procs[g]["cpu_s"] for g in procs if g != "sum"), abs=0.01)
    assert cpu["target_s"] is not None  # the front alone, as before


def _cpu_now(watch: ProcWatch, group: str) -> float:
    watch.stop()
    return watch.seconds(group) or 0.0


def test_the_simulator_is_found_among_the_fronts_children_by_its_command_line() -> None:
    with parent("-", 2, "acquirer_sim") as front:
        kids = children(front.pid)
        assert len(kids) == 2
        groups = ProcSpec(target_pid=front.pid).groups()
    assert groups["simulator"] == kids and "front_workers" not in groups


def test_bench_rest_prints_cpu_by_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with parent("-", 1, "worker") as front, api_in_thread(FakeApi()) as url:
        argv = ["rest", "--url", url, "--login", LOGIN, "--password", PASSWORD, "--concurrency", "2"]
        argv += ["--duration", "0.3", "--warmup", "0", "--target-pid", str(front.pid)]
        assert main([*argv, "--out", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert "cpu by process  front " in printed and "front_workers" in printed and "sum" in printed
    procs = json.loads((tmp_path / "r.json").read_text())["figures"]["cpu"]["processes"]
    assert {"front", "front_workers", "sum"} <= set(procs)


# -- HTTPS and the password from the environment ---------------------------------------------


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "server.crt", tmp_path / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@contextlib.asynccontextmanager
async def serving_tls(api: FakeApi, cert: Path, key: Path) -> AsyncIterator[str]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    runner = web.AppRunner(api.app(), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("trust", ["insecure", "cafile"])
async def test_https_urls_are_driven_over_tls(tmp_path: Path, trust: str) -> None:
    cert, key = self_signed(tmp_path)
    api = FakeApi()
    opts: dict[str, Any] = {"insecure": True} if trust == "insecure" else {"cafile": str(cert)}
    async with serving_tls(api, cert, key) as url:
        doc = await run_rest(short(url, concurrency=2, duration=0.3, warmup=0.0, **opts))
    f = check_clean(doc)
    assert doc["parameters"]["tls"] is True and doc["parameters"]["endpoint"].startswith("https://")
    assert api.requests >= f["responses"]


async def test_an_untrusted_certificate_is_refused_without_insecure(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    async with serving_tls(FakeApi(), cert, key) as url:
        from bench.measure import BenchError

        with pytest.raises(BenchError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            await run_rest(short(url, concurrency=1, duration=0.2, warmup=0.0))


def test_the_password_can_come_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    with api_in_thread(FakeApi()) as url:
        argv = ["rest", "--url", url, "--login", LOGIN, "--concurrency", "2", "--duration", "0.3", "--warmup", "0"]
        assert main([*argv, "--out", str(tmp_path / "r.json")]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert set(doc["figures"]["status_codes"]) == {"200", "402", "500"}  # authenticated: no 401
    assert PASSWORD not in (tmp_path / "r.json").read_text() and PASSWORD not in capsys.readouterr().out
    assert os.environ[PASSWORD_ENV] == PASSWORD
