"""The ISO 8583 bench: short bounded runs against in-process hosts, the CLI, the report helpers.

Speed is what the bench measures, never what a test asserts: these tests
check that runs are bounded, counted and reported, not how fast they are.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from peer import Action, ScriptedHost

from acquirer_sim.config import SimConfig
from acquirer_sim.server import SimServer
from bench.cli import main
from bench.direct import spread
from bench.iso import IsoBenchConfig, format_report, run_iso
from bench.measure import BenchError, Pacer, error_kind
from bench.stats import fmt_counts, fmt_rate, fmt_us, latency_summary, new_histogram, render_table
from bench.workload import DEFAULT_MIX, TEST_CARDS, card_cycle
from switch.errors import DestinationUnavailable, LinkBusy, LinkClosed, LinkNotReady, RequestTimeout

pytestmark = pytest.mark.timeout(30)

RESULT_KEYS = {"benchmark", "mode", "command", "date", "machine", "parameters", "figures"}
FIGURE_KEYS = {
    "requests",
    "responses",
    "elapsed_s",
    "throughput_per_s",
    "latency_us",
    "errors",
    "errors_total",
    "response_codes",
    "unexpected_codes",
    "cards",
    "cpu",
}
LATENCY_KEYS = {"count", "min", "mean", "p50", "p90", "p99", "p99.9", "max", "hdr"}
MACHINE_KEYS = {"cpu_count", "cpu_model", "platform", "python", "event_loop"}


@pytest.fixture
async def sim() -> AsyncIterator[tuple[str, int]]:
    server = SimServer(SimConfig(port=0))
    address = await server.start()
    yield address
    await server.stop()


def short(host: str, port: int, **kw: Any) -> IsoBenchConfig:
    opts: dict[str, Any] = {"concurrency": 8, "duration": 1.0, "warmup": 0.2, "connections": 2, "timeout": 2.0}
    opts.update(kw)
    return IsoBenchConfig(host=host, port=port, **opts)


def check_clean_result(result: dict[str, Any], mode: str) -> None:
    assert RESULT_KEYS <= set(result)
    assert result["mode"] == mode
    assert MACHINE_KEYS <= set(result["machine"])
    f = result["figures"]
    assert FIGURE_KEYS <= set(f)
    assert LATENCY_KEYS <= set(f["latency_us"])
    assert f["responses"] > 0
    assert f["latency_us"]["count"] == f["responses"]
    assert sum(f["response_codes"].values()) == f["responses"]
    assert f["errors"] == {} and f["errors_total"] == 0
    assert f["unanswered_at_end"] == 0
    json.dumps(result)  # the document is plain JSON


@pytest.mark.parametrize("via_switch", [False, True], ids=["direct", "via-switch"])
async def test_a_short_run_against_the_simulator_answers_every_card_by_its_rule(
    sim: tuple[str, int], via_switch: bool
) -> None:
    # One link: links of one pool draw STANs independently, and two of them giving one terminal the
    # same DE 11 in the same second make the host answer the second as a repeat of the first
    # (a switch issue the bench reports as unexpected codes; not what this test is about).
    result = await run_iso(short(*sim, via_switch=via_switch, links=1), command="test")
    check_clean_result(result, "via-switch" if via_switch else "direct")
    f = result["figures"]
    assert f["unexpected_codes"] == 0
    assert set(f["response_codes"]) <= {c.expect for c in TEST_CARDS}
    assert f["response_codes"]["00"] > f["responses"] // 2
    assert f["cpu"]["bench_s"] >= 0
    if via_switch:
        assert set(f["links"]) == {"bench#0"}
        assert sum(f["outcomes"].values()) == f["responses"]
    else:
        assert f["connections"] == 2 and f["connections_lost"] == 0


@pytest.mark.parametrize("via_switch", [False, True], ids=["direct", "via-switch"])
async def test_other_dialects_and_framings_work_end_to_end(via_switch: bool) -> None:
    server = SimServer(SimConfig(port=0, dialect="binary-bitmap", framing="ascii4"))
    host, port = await server.start()
    try:
        cfg = short(host, port, via_switch=via_switch, links=1, dialect="binary-bitmap", framing="ascii4")
        result = await run_iso(cfg)
    finally:
        await server.stop()
    check_clean_result(result, "via-switch" if via_switch else "direct")
    assert result["figures"]["unexpected_codes"] == 0


@pytest.mark.parametrize("via_switch", [False, True], ids=["direct", "via-switch"])
async def test_max_requests_ends_the_run_when_all_are_answered(sim: tuple[str, int], via_switch: bool) -> None:
    # An hour's duration: only max_requests can end the run before the test's timeout fails it.
    cfg = short(*sim, via_switch=via_switch, duration=3600.0, warmup=0.0, max_requests=50)
    result = await run_iso(cfg)
    f = result["figures"]
    assert f["requests"] == 50
    assert f["responses"] == 50


@pytest.mark.parametrize("via_switch", [False, True], ids=["direct", "via-switch"])
async def test_a_paced_run_counts_its_answers(sim: tuple[str, int], via_switch: bool) -> None:
    result = await run_iso(short(*sim, via_switch=via_switch, rate=400.0, concurrency=16))
    check_clean_result(result, "via-switch" if via_switch else "direct")
    assert result["parameters"]["loop"] == "paced"
    assert "pacer_max_backlog" in result["figures"]


@pytest.mark.parametrize("via_switch", [False, True], ids=["direct", "via-switch"])
async def test_unanswered_requests_count_as_timeouts(via_switch: bool) -> None:
    declined_fraud = TEST_CARDS[4].pan
    host = ScriptedHost(lambda m: Action(drop=m.get("2") == declined_fraud))
    port = await host.start()
    try:
        cfg = short("127.0.0.1", port, via_switch=via_switch, timeout=0.2, duration=1.0)
        result = await run_iso(cfg)
    finally:
        await host.stop()
    f = result["figures"]
    assert f["errors"].get("timeout", 0) > 0
    assert f["responses"] > 0
    assert "decode_error" not in f["errors"]


async def test_an_unreachable_target_is_a_bench_error() -> None:
    host = ScriptedHost()
    port = await host.start()
    await host.stop()  # nothing listens there now
    with pytest.raises(BenchError):
        await run_iso(short("127.0.0.1", port))
    with pytest.raises(BenchError):
        await run_iso(short("127.0.0.1", port, via_switch=True, timeout=0.3))


def test_bench_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        IsoBenchConfig(host="h", port=1, concurrency=0)
    with pytest.raises(ValueError):
        IsoBenchConfig(host="h", port=1, mix=(1, 2))
    with pytest.raises(ValueError):
        IsoBenchConfig(host="h", port=1, duration=0)


# -- the command line -----------------------------------------------------------------


@pytest.mark.parametrize("extra", [[], ["--via-switch", "--links", "1"]], ids=["direct", "via-switch"])
def test_bench_iso_cli_prints_the_figures_and_writes_the_json(
    sim_process: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    out = tmp_path / "r.json"
    argv = ["iso", "--target", sim_process, "--concurrency", "8", "--duration", "1", "--warmup", "0.2"]
    argv += ["--out", str(out), *extra]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for word in ("responses", "p99.9", "errors", "response codes", str(out)):
        assert word in printed
    doc = json.loads(out.read_text())
    assert doc["command"].startswith("isoswitch bench iso --target")
    check_clean_result(doc, "via-switch" if extra else "direct")


def test_bench_iso_cli_writes_to_bench_results_by_default(
    sim_process: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["iso", "--target", sim_process, "--concurrency", "4", "--duration", "0.5", "--warmup", "0"]
    assert main(argv) == 0
    (written,) = (tmp_path / "bench" / "results").glob("iso-direct-*.json")
    assert json.loads(written.read_text())["figures"]["responses"] > 0


def test_bench_iso_cli_reports_an_unreachable_target(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens
    argv = ["iso", "--target", f"127.0.0.1:{port}", "--duration", "0.5", "--timeout", "0.5"]
    assert main([*argv, "--out", str(tmp_path / "x.json")]) == 1
    assert "cannot connect" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_bench_suite_runs_both_scenarios_and_stops_the_simulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["suite", "--duration", "0.5", "--warmup", "0", "--out-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    pid = int(printed.split("simulator pid ")[1].split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped (and reaped) when the suite ended
    assert "scenario" in printed and "via-switch" in printed
    direct = json.loads(next(tmp_path.glob("iso-direct-*.json")).read_text())
    (via,) = (json.loads(p.read_text()) for p in tmp_path.glob("iso-via-switch-2*.json"))
    paced = json.loads(next(tmp_path.glob("iso-via-switch-paced-*.json")).read_text())
    assert direct["parameters"]["concurrency"] == 64 and via["parameters"]["concurrency"] == 256
    assert paced["parameters"]["rate"] == 12_000 and paced["parameters"]["loop"] == "paced"
    for doc in (direct, via, paced):
        assert doc["figures"]["responses"] > 0
        assert doc["figures"]["cpu"]["target_s"] is not None  # the simulator's CPU, read from /proc
    summary = json.loads(next(tmp_path.glob("suite-*.json")).read_text())
    assert [r["scenario"] for r in summary["runs"]] == ["direct", "via-switch", "via-switch-paced"]
    assert next(tmp_path.glob("sim-*.log")).exists()


# -- helpers ----------------------------------------------------------------------------


def test_latency_summary_reports_percentiles_in_microseconds() -> None:
    h = new_histogram()
    for us in range(1, 1001):
        h.record_value(us)
    s = latency_summary(h)
    assert s["count"] == 1000 and s["unit"] == "us"
    assert (s["min"], s["p50"], s["p90"], s["p99"], s["p99.9"], s["max"]) == (1, 500, 900, 990, 999, 1000)
    assert s["hdr"]


def test_latency_summary_of_an_empty_histogram_is_zeros() -> None:
    s = latency_summary(new_histogram())
    assert s["count"] == 0 and s["p99"] == 0 and s["max"] == 0


def test_formatting_helpers() -> None:
    assert fmt_us(0) == "0 µs"
    assert fmt_us(999) == "999 µs"
    assert fmt_us(1_000) == "1 ms"
    assert fmt_us(12_345) == "12.3 ms"
    assert fmt_us(123_456) == "123 ms"
    assert fmt_us(1_500_000) == "1.50 s"
    assert fmt_rate(20_000.4) == "20,000/s"
    assert fmt_counts({}) == "none"
    assert fmt_counts({"timeout": 2, "busy": 1}) == "busy=1 timeout=2"
    table = render_table(["a", "bb"], [["x", "1"], ["yyy", "22"]]).splitlines()
    assert table == ["a    bb", "---  --", "x     1", "yyy  22"]


def test_format_report_shows_every_figure() -> None:
    h = new_histogram()
    h.record_value(1500)
    result = {
        "parameters": IsoBenchConfig(host="h", port=1).parameters(),
        "figures": {
            "responses": 1,
            "elapsed_s": 1.0,
            "throughput_per_s": 1.0,
            "latency_us": latency_summary(h),
            "errors": {"timeout": 3},
            "response_codes": {"00": 1},
            "unexpected_codes": 0,
            "cpu": {
                "bench_s": 0.1,
                "bench_us_per_response": 1.0,
                "target_s": None,
                "machine_busy_cores": None,
            },
        },
    }
    text = format_report(result)
    for part in ("direct", "h:1", "1/s", "p50 1.5 ms", "p99.9", "timeout=3", "00=1"):
        assert part in text


def test_card_cycle_follows_the_mix() -> None:
    cycle = card_cycle(DEFAULT_MIX)
    counts = Counter(cycle)
    assert [counts[i] * 5 for i in range(5)] == list(DEFAULT_MIX)
    assert cycle[:4] == [0, 0, 0, 0]  # the declines are spread out, not bunched
    assert card_cycle((0, 0, 0, 0, 3)) == [4]


def test_spread_shares_concurrency_over_connections() -> None:
    assert spread(64, 4) == [16, 16, 16, 16]
    assert spread(7, 3) == [3, 2, 2]
    assert spread(3, 8) == [1, 1, 1]


def test_pacer_keeps_what_could_not_be_sent_due() -> None:
    p = Pacer(100.0, start=0.0)
    assert p.due(0.5) == 50
    p.issued(30, backlog=20)
    assert p.due(0.5) == 20 and p.max_backlog == 20
    p.issued(20)
    assert p.due(1.0) == 50


def test_errors_are_reported_by_kind() -> None:
    assert error_kind(RequestTimeout("x")) == "timeout"
    assert error_kind(LinkClosed("x")) == "link_closed"
    assert error_kind(LinkBusy("x")) == "busy"
    assert error_kind(LinkNotReady("x")) == "not_ready"
    assert error_kind(DestinationUnavailable("x")) == "not_ready"
    assert error_kind(TimeoutError()) == "timeout"
    assert error_kind(RuntimeError()) == "RuntimeError"
