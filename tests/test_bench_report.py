"""Bench reports: the per-second series of a real run, ``--report DIR``, the progress bar, ``bench compare``.

As in test_bench.py, speed is never asserted: only that the series is
counted and cut into intervals, and that the report's files are there,
valid and referenced by the page.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from PIL import Image

from acquirer_sim.config import SimConfig
from acquirer_sim.server import SimServer
from bench.cli import main
from bench.compare import compare
from bench.iso import IsoBenchConfig, run_iso
from bench.measure import Tally, Window
from bench.report import CHARTS, percentile_curve, report_runs, write_report
from bench.rest import RestBenchConfig, run_rest
from bench.stats import latency_summary, new_histogram

pytestmark = pytest.mark.timeout(20)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
POINT_KEYS = {"t_s", "length_s", "responses", "throughput_per_s", "errors", "p50", "p90", "p99", "p99.9", "max"}


@pytest.fixture
async def sim() -> AsyncIterator[tuple[str, int]]:
    server = SimServer(SimConfig(port=0))
    address = await server.start()
    yield address
    await server.stop()


def check_series(figures: dict[str, Any], *, full_intervals: int) -> list[dict[str, Any]]:
    """The series adds up to the run's figures and tiles the measured window second by second."""
    series = figures["series"]
    assert series["interval_s"] == 1.0 and series["unit"] == "us"
    points: list[dict[str, Any]] = series["points"]
    assert all(POINT_KEYS <= set(p) for p in points)
    assert sum(p["responses"] for p in points) == figures["responses"] == figures["latency_us"]["count"]
    assert sum(p["errors"] for p in points) == figures["errors_total"]
    assert points[0]["t_s"] == 0.0
    for before, after in itertools.pairwise(points):
        assert after["t_s"] == pytest.approx(before["t_s"] + before["length_s"], abs=0.002)
    assert sum(p["length_s"] for p in points) == pytest.approx(figures["elapsed_s"], abs=0.01)
    full = [p for p in points if p["length_s"] >= 0.5]
    assert len(full) == full_intervals
    for p in full:
        assert 0.9 <= p["length_s"] <= 1.5  # a loaded box may fire the timer late, never early
        assert p["responses"] > 0
        assert 0 < p["p50"] <= p["p90"] <= p["p99"] <= p["p99.9"] <= p["max"]
        assert p["throughput_per_s"] == pytest.approx(p["responses"] / p["length_s"], rel=0.01)
    return points


def check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), path
    assert len(data) > 5_000, (path, len(data))  # a drawn chart, not an empty canvas
    with Image.open(path) as img:
        img.verify()
        assert img.size == (640, 288)


def check_report_dir(directory: Path) -> str:
    """The JSON, the three charts and a self-contained page that shows them; the page's text."""
    assert (directory / "result.json").is_file()
    for name in CHARTS:
        check_png(directory / name)
    page = (directory / "index.html").read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources == list(CHARTS)  # relative, each chart once
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere
    assert 'href="result.json"' in page
    return page


# -- the series of a real run -----------------------------------------------------------------


@pytest.mark.parametrize("via_switch", [False, True], ids=["direct", "via-switch"])
async def test_a_two_second_run_has_a_point_per_second_that_adds_up_to_its_figures(
    sim: tuple[str, int], via_switch: bool
) -> None:
    cfg = IsoBenchConfig(
        host=sim[0], port=sim[1], via_switch=via_switch, links=1, concurrency=8, connections=2, duration=2.0, warmup=0.2
    )
    result = await run_iso(cfg, command="test")
    check_series(result["figures"], full_intervals=2)


def test_a_window_opened_without_an_event_loop_is_one_interval() -> None:
    tally, window = Tally(10), Window(None)
    window.open(tally)
    for us in (100, 200, 300):
        tally.hist.record_value(us)
    tally.responses = 3
    tally.error("timeout")
    window.close(tally)
    (point,) = tally.series
    assert point["responses"] == 3 and point["errors"] == 1 and point["p50"] == 200
    assert latency_summary(tally.total)["min"] == 100  # not hdrh's 0 from add() into an empty histogram


def test_the_percentile_curve_runs_from_the_minimum_to_the_maximum() -> None:
    h = new_histogram()
    for us in range(1, 1001):
        h.record_value(us)
    curve = percentile_curve(h)
    assert curve[0] == (1.0, 1)
    assert curve[-1] == (1000.0, 1000)
    xs, values = [x for x, _ in curve], [v for _, v in curve]
    assert xs == sorted(xs) and values == sorted(values)
    assert percentile_curve(new_histogram()) == []


# -- --report, and the progress bar ---------------------------------------------------------


def test_bench_iso_report_writes_the_json_the_charts_and_a_page_showing_them(
    sim_process: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = tmp_path / "r.json", tmp_path / "report"
    argv = ["iso", "--target", sim_process, "--concurrency", "8", "--duration", "2", "--warmup", "0.2"]
    assert main([*argv, "--out", str(out), "--report", str(report)]) == 0
    captured = capsys.readouterr()
    assert f"report          {report / 'index.html'}" in captured.out
    assert captured.err == ""  # not a terminal: no progress bar unless asked for
    doc = json.loads((report / "result.json").read_text())
    assert doc == json.loads(out.read_text())
    check_series(doc["figures"], full_intervals=2)
    page = check_report_dir(report)
    assert "iso8583 bench, direct" in page
    assert f"{doc['figures']['responses']:,}" in page  # the summary table
    assert "<td>concurrency</td><td>8</td>" in page  # the parameters
    assert doc["command"] in page


def test_the_progress_bar_goes_to_stderr_and_leaves_stdout_to_the_report(
    sim_process: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["iso", "--target", sim_process, "--concurrency", "4", "--duration", "1.2", "--warmup", "0.2"]
    assert main([*argv, "--out", str(tmp_path / "r.json"), "--progress"]) == 0
    captured = capsys.readouterr()
    assert "direct:" in captured.err and "%|" in captured.err and " s, " in captured.err
    assert "measuring" in captured.err
    assert captured.out.startswith("iso8583 bench, direct")
    assert "\r" not in captured.out and "%|" not in captured.out
    assert main([*argv, "--out", str(tmp_path / "r2.json"), "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_bench_suite_report_shows_every_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report"
    argv = ["suite", "--duration", "0.5", "--warmup", "0", "--out-dir", str(tmp_path), "--report", str(report)]
    assert main(argv) == 0
    assert f"suite report: {report / 'index.html'}" in capsys.readouterr().out
    page = check_report_dir(report)
    doc = json.loads((report / "result.json").read_text())
    names = ["direct", "via-switch", "via-switch-paced"]
    assert doc["benchmark"] == "suite" and [r["scenario"] for r in doc["runs"]] == names
    assert [r["suite"]["scenario"] for r in doc["results"]] == names
    for result in doc["results"]:
        assert result["figures"]["series"]["points"]
    for name in names:
        assert f"<td>{name}</td>" in page
    assert "verdict" in page


async def rest_answers(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"orders": [{"id": "1", "status": "authorized"}]})


@contextlib.asynccontextmanager
async def rest_server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/orders/authorize", rest_answers)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_a_rest_run_reports_its_series_with_the_same_charts(tmp_path: Path) -> None:
    async with rest_server() as url:
        cfg = RestBenchConfig(url=url, concurrency=4, duration=1.2, warmup=0.1, timeout=1.0, mix=(1, 0, 0, 0, 0))
        doc = await run_rest(cfg, command="test")
    check_series(doc["figures"], full_intervals=1)
    page = check_report_dir(write_report(doc, tmp_path / "report").parent)
    assert "rest bench, full" in page and "target throughput" in page


def test_bench_report_rebuilds_a_suite_report_from_the_files_its_summary_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = []
    for name, rate in (("direct", 1000.0), ("via-switch", 500.0)):
        path = tmp_path / f"iso-{name}.json"
        doc = synthetic_iso(rate, 1000, 0)
        doc["suite"] = {"scenario": name, "target": ">= 1/s"}
        path.write_bytes(orjson.dumps(doc))
        runs.append({"scenario": name, "file": str(path), "verdict": "met", **synthetic_summary(rate, 1000, {})})
    summary = tmp_path / "suite.json"
    summary.write_bytes(orjson.dumps({"benchmark": "suite", "command": "c", "date": "d", "runs": runs}))
    assert main(["report", str(summary), str(tmp_path / "out")]) == 0
    page = check_report_dir(tmp_path / "out")
    assert "<td>direct</td>" in page and "<td>via-switch</td>" in page
    assert [r.label for r in report_runs(json.loads((tmp_path / "out" / "result.json").read_text()))] == [
        "direct",
        "via-switch",
    ]
    assert "report" in capsys.readouterr().out


# -- bench compare --------------------------------------------------------------------------


def synthetic_hist(p50: int) -> Any:
    h = new_histogram()
    for us in range(p50 // 2, p50 * 3 // 2 + 1):
        h.record_value(us)
    return h


def synthetic_summary(throughput: float, p50: int, errors: dict[str, int]) -> dict[str, Any]:
    lat = latency_summary(synthetic_hist(p50))
    return {
        "throughput_per_s": throughput,
        "latency_us": {k: lat[k] for k in ("p50", "p90", "p99", "p99.9", "max")},
        "errors": errors,
    }


def synthetic_iso(throughput: float, p50: int, errors: int, mode: str = "direct") -> dict[str, Any]:
    """A small iso8583 result, as run_iso writes it, with a three-second series."""
    hist = synthetic_hist(p50)
    point = {"length_s": 1.0, "responses": int(throughput), "throughput_per_s": throughput, "errors": 0}
    point |= {k: hist.get_value_at_percentile(p) for k, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9))}
    point["max"] = hist.get_max_value()
    return {
        "benchmark": "iso8583",
        "mode": mode,
        "command": f"isoswitch bench iso --target h:1 ({mode})",
        "date": "2026-11-22T00:00:00Z",
        "machine": {"cpu_count": 2},
        "parameters": {"mode": mode, "concurrency": 64},
        "figures": {
            "requests": int(throughput * 3),
            "responses": int(throughput * 3),
            "elapsed_s": 3.0,
            "throughput_per_s": throughput,
            "latency_us": latency_summary(hist),
            "errors": {"timeout": errors} if errors else {},
            "errors_total": errors,
            "response_codes": {"00": int(throughput * 3)},
            "cpu": {"bench_us_per_response": 10.0, "target_us_per_response": None, "others_cores": 0.0},
            "series": {"interval_s": 1.0, "unit": "us", "points": [{**point, "t_s": float(t)} for t in range(3)]},
        },
    }


def metric_line(text: str, metric: str) -> list[str]:
    (line,) = [ln for ln in text.splitlines() if ln.split()[:1] == [metric]]
    return line.split()


def test_bench_compare_prints_b_over_a_for_throughput_percentiles_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_bytes(orjson.dumps(synthetic_iso(1000.0, 2000, 4)))
    b.write_bytes(orjson.dumps(synthetic_iso(1500.0, 1000, 2)))
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert metric_line(out, "throughput") == ["throughput", "1,000/s", "1,500/s", "1.500"]
    assert metric_line(out, "p50") == ["p50", "2", "ms", "1", "ms", "0.500"]
    assert metric_line(out, "errors") == ["errors", "4", "2", "0.500"]
    for metric in ("p90", "p99", "p99.9", "max"):
        assert 0.45 < float(metric_line(out, metric)[-1]) < 0.55
    assert f"A  {a}: iso8583 (direct)" in out


def test_bench_compare_pairs_suite_scenarios_by_name_and_lists_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def suite(*runs: tuple[str, float]) -> dict[str, Any]:
        rows = [{"scenario": n, **synthetic_summary(rate, 1000, {})} for n, rate in runs]
        return {"benchmark": "suite", "date": "d", "runs": rows}

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_bytes(orjson.dumps(suite(("direct", 100.0), ("via-switch", 50.0))))
    b.write_bytes(orjson.dumps(suite(("via-switch", 75.0), ("direct", 100.0), ("new", 1.0))))
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    blocks = out.split("\n\n")[1:]
    assert [blk.splitlines()[0] for blk in blocks] == ["direct", "via-switch"]
    assert metric_line(blocks[0], "throughput")[-1] == "1.000"
    assert metric_line(blocks[1], "throughput")[-1] == "1.500"
    assert metric_line(blocks[1], "errors")[-1] == "n/a"  # none in A: no ratio
    assert "only in B: new" in out


def test_two_single_runs_are_compared_whatever_their_names() -> None:
    text = compare(synthetic_iso(100.0, 1000, 0), synthetic_iso(50.0, 1000, 0, mode="via-switch"))
    assert "direct -> via-switch" in text
    assert metric_line(text, "throughput")[-1] == "0.500"


def test_bench_compare_refuses_what_is_not_a_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(orjson.dumps(synthetic_iso(1.0, 100, 0)))
    bad.write_text('{"benchmark": "nope"}')
    assert main(["compare", str(good), str(bad)]) == 2
    assert "not a bench result" in capsys.readouterr().err
    assert main(["compare", str(good), str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
