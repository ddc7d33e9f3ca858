"""``isoswitch bench``: ``iso`` (one run against a host), ``suite`` (the simulator, then the
scenarios), ``rest`` (the orders API, and optionally the bare path), ``compare`` (two results)
and ``report`` (charts and a page from a result).

Each sub-command's flags sit next to the function that runs them; the values
and option groups they share are :mod:`bench.args`'s.

``main`` takes the arguments after ``bench``::

    isoswitch bench iso --target 127.0.0.1:8583 --concurrency 64 --duration 20 --report bench/reports/direct
    isoswitch bench iso --target 127.0.0.1:8583 --via-switch --links 2 --concurrency 256 --duration 20
    isoswitch bench suite --duration 20 --out-dir bench/results
    isoswitch bench rest --url http://127.0.0.1:8080 --login L --password P --concurrency 64 --duration 20 \\
        --bare --sim 127.0.0.1:8583
    isoswitch bench compare bench/results/iso-direct-A.json bench/results/iso-direct-B.json
    isoswitch bench report bench/results/iso-direct-A.json bench/reports/A

A progress bar goes to stderr while a bench runs (when stderr is a terminal,
or with ``--progress``); stdout has only the report.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import sys
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bench import args as args_
from bench.stats import write_result
from switch.process import hostport

__all__ = ["DEFAULT_OUT_DIR", "DESCRIPTION", "PASSWORD_ENV", "add_commands", "main", "run"]

DEFAULT_OUT_DIR = Path("bench") / "results"
PASSWORD_ENV = "ISOSWITCH_BENCH_PASSWORD"  # --password when it is not given (keeps it out of ps and history)

_T = TypeVar("_T")

DESCRIPTION = "ISO 8583 and REST benchmarks."


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="isoswitch bench", description=DESCRIPTION)
    add_commands(ap)
    return ap


def add_commands(ap: argparse.ArgumentParser) -> None:
    """The sub-commands of ``isoswitch bench`` on ``ap``; :func:`run` runs the one parsed."""
    sub = ap.add_subparsers(dest="command", required=True, metavar="{iso,suite,rest,compare,report}")

    _add_iso(sub)
    _add_suite(sub)
    _add_rest(sub)
    _add_compare_and_report(sub)


_Sub = Any  # argparse's _SubParsersAction (private to argparse)


def _add_iso(sub: _Sub) -> None:
    iso = sub.add_parser(
        "iso",
        help="drive 0100 authorizations at a host, directly or through a switch link pool",
        description="0100 load against an ISO 8583 host, closed-loop (--concurrency in flight) or paced "
        "(--rate); prints throughput, latency percentiles, errors and response codes, and writes a JSON result.",
    )
    iso.add_argument("--target", type=hostport, required=True, metavar="HOST:PORT", help="the ISO 8583 host")
    iso.add_argument("--via-switch", action="store_true", help="go through a switch link pool built in this process")
    iso.add_argument(
        "--concurrency",
        type=args_.positive_int,
        default=64,
        help="requests in flight; with --rate, the cap on them (default: 64)",
    )
    iso.add_argument(
        "--rate",
        type=args_.rate,
        default=0.0,
        metavar="PER_S",
        help="offer this many requests a second (paced, open loop) instead of a closed loop (default: 0 = closed)",
    )
    args_.run_options(iso)
    iso.add_argument(
        "--connections", type=args_.positive_int, default=4, help="direct mode: TCP connections (default: 4)"
    )
    iso.add_argument("--links", type=args_.positive_int, default=2, help="--via-switch: links in the pool (default: 2)")
    args_.wire_options(iso)
    iso.add_argument("--timeout", type=args_.seconds, default=5.0, help="seconds a request may take (default: 5)")
    iso.add_argument("--amount", type=args_.positive_int, default=1, help="DE 4 in minor units (default: 1)")
    args_.mix_option(iso)
    iso.add_argument("--no-sign-on", action="store_true", help="direct mode: no 0800 sign-on/sign-off")
    iso.add_argument("--target-pid", type=int, help="also report this local process's CPU time (the host's)")
    iso.add_argument("--out", type=Path, help="JSON result (default: bench/results/iso-<mode>-<timestamp>.json)")
    args_.threshold_option(iso)
    args_.report_options(iso)
    iso.set_defaults(func=_cmd_iso)


def _add_suite(sub: _Sub) -> None:
    suite = sub.add_parser(
        "suite",
        aliases=["all"],
        help="start the simulator and run the scenarios (direct at 64, via-switch at 256, via-switch paced)",
        description="Start acquirer_sim as a subprocess, run the direct (64 in flight), via-switch (256 in "
        "flight) and via-switch paced (12,000/s, <= 256 in flight) scenarios against it, print a summary table "
        "and write the JSON results; the simulator is stopped at the end, however the suite ends.",
    )
    suite.add_argument("--duration", type=args_.seconds, default=15.0, help="measured seconds per run (default: 15)")
    suite.add_argument("--warmup", type=args_.seconds, default=2.0, help="warmup seconds per run (default: 2)")
    suite.add_argument(
        "--out-dir", "--out", dest="out_dir", type=Path, default=DEFAULT_OUT_DIR, help="default: bench/results"
    )
    args_.wire_options(suite)
    args_.threshold_option(suite)
    args_.report_options(suite)
    suite.set_defaults(func=_cmd_suite)


def _add_rest(sub: _Sub) -> None:
    rest = sub.add_parser(
        "rest",
        help="drive POST /orders/authorize at the REST front (and optionally at the bare path)",
        description="POST /orders/authorize load over --concurrency keep-alive connections (one "
        "request in flight each) with mixed test cards: a closed loop, or with --rate an open loop (a fixed "
        "schedule, latency from each request's intended send time, as wrk2), or with --rates a curve of open "
        "loops and the highest rate meeting --slo-p99; prints throughput, latency percentiles, status codes, "
        "errors and CPU per response (by process with --target-pid, --pg-data/--pg-pid, --sim-pid), and writes "
        "a JSON result. With --bare, the same load then runs against the bare path (JSON -> "
        "ISO -> --sim -> JSON: no database, validation or auth) served by a bench.bare_server subprocess, and "
        "the report shows full/bare.",
    )
    rest.add_argument("--url", required=True, help="the API's base URL, e.g. http://127.0.0.1:8080 (or https://)")
    rest.add_argument("--login", help="HTTP Basic login of a project (or give it in the URL)")
    rest.add_argument(
        "--password",
        help=f"HTTP Basic password of that project (default with --login: ${PASSWORD_ENV}; never written to the "
        "result)",
    )
    rest.add_argument("--insecure", action="store_true", help="https: do not check the server's certificate")
    rest.add_argument("--cafile", help="https: trust this CA bundle (PEM) instead of the system's")
    rest.add_argument(
        "--concurrency",
        type=args_.positive_int,
        default=64,
        help="keep-alive connections, one request each; with --rate, the cap on requests in flight (default: 64)",
    )
    rest.add_argument(
        "--rate",
        type=args_.rate,
        default=0.0,
        metavar="PER_S",
        help="open loop: send this many requests a second on a fixed schedule (default: 0 = closed loop)",
    )
    rest.add_argument(
        "--rates", type=args_.rates, default=(), metavar="R,R,...", help="a curve: one open-loop run per rate"
    )
    rest.add_argument(
        "--slo-p99",
        type=args_.latency_us,
        default=25_000,
        metavar="LATENCY",
        help="--rates: report the highest rate whose p99 is at most this (default: 25ms)",
    )
    args_.run_options(rest)
    rest.add_argument("--timeout", type=args_.seconds, default=5.0, help="seconds a request may take (default: 5)")
    rest.add_argument("--amount", default="0.01", help="order amount in major units (default: 0.01)")
    rest.add_argument("--currency", default="USD", help="order currency (default: USD)")
    args_.mix_option(rest)
    rest.add_argument(
        "--target-pid",
        type=int,
        help="also report this local process's CPU time (the front's), and its worker processes' (its children)",
    )
    rest.add_argument("--pg-pid", type=int, help="also report PostgreSQL's CPU: this postmaster and its children")
    rest.add_argument(
        "--pg-data",
        type=Path,
        metavar="DIR",
        help="or find the postmaster in DIR/postmaster.pid (or DIR/pg/: isoswitch up --data-dir DIR)",
    )
    rest.add_argument(
        "--sim-pid", type=int, help="also report the simulator's CPU (default: the front's child running acquirer_sim)"
    )
    rest.add_argument("--bare", action="store_true", help="then run the same load against the bare path")
    rest.add_argument("--sim", type=hostport, metavar="HOST:PORT", help="--bare: the ISO 8583 host it talks to")
    rest.add_argument("--out", type=Path, help="JSON result (default: bench/results/rest-<timestamp>.json)")
    args_.threshold_option(rest)
    args_.report_options(rest)
    rest.set_defaults(func=_cmd_rest)


def _add_compare_and_report(sub: _Sub) -> None:
    compare = sub.add_parser(
        "compare",
        help="print B/A ratios of throughput, latency percentiles and errors of two results",
        description="Compare two JSON results (bench iso, bench rest, or a suite summary): one line per "
        "metric (throughput, p50, p90, p99, p99.9, max, errors) with A, B and B/A, for each run they share "
        "(two single runs are compared whatever their names).",
    )
    compare.add_argument("a", type=Path, metavar="A.json", help="the baseline")
    compare.add_argument("b", type=Path, metavar="B.json", help="the result to compare with it")
    compare.set_defaults(func=_cmd_compare)

    report = sub.add_parser(
        "report",
        help="write the charts and index.html of a JSON result (what --report does after a run)",
        description="Write DIR/index.html, the PNG charts and result.json for a JSON result of bench iso or "
        "bench rest, or a suite summary (its runs' results are read from the files it names).",
    )
    report.add_argument("result", type=Path, metavar="RESULT.json")
    report.add_argument("dir", type=Path, metavar="DIR")
    report.set_defaults(func=_cmd_report)


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _command(argv: Sequence[str]) -> str:
    return shlex.join(["isoswitch", "bench", *argv])


def _write_report(doc: dict[str, Any], directory: Path, prog: str) -> bool:
    """Write the report of ``doc``; print where. False (and why, on stderr) when it cannot be written."""
    from bench.report import write_report

    try:
        index = write_report(doc, directory)
    except (OSError, ValueError) as e:
        print(f"{prog}: cannot write the report to {directory}: {e}", file=sys.stderr)
        return False
    print(f"  report          {index}")
    return True


async def _cancelled_by_sigterm(run: Awaitable[_T]) -> _T:
    """Await ``run`` with SIGTERM cancelling the current task (so it unwinds as on Ctrl-C)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _cmd_iso(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from bench.iso import IsoBenchConfig, format_report, run_iso
    from bench.measure import BenchError
    from bench.progress import progress_wanted
    from bench.thresholds import THRESHOLDS_MISSED
    from bench.workload import DEFAULT_MIX
    from switch.process import run_loop

    host, port = args.target
    try:
        cfg = IsoBenchConfig(
            host=host,
            port=port,
            via_switch=args.via_switch,
            concurrency=args.concurrency,
            rate=args.rate,
            duration=args.duration,
            warmup=args.warmup,
            max_requests=args.max_requests,
            connections=args.connections,
            links=args.links,
            dialect=args.dialect,
            framing=args.framing,
            timeout=args.timeout,
            amount=args.amount,
            mix=args.mix or DEFAULT_MIX,
            sign_on=not args.no_sign_on,
            target_pid=args.target_pid,
        )
    except ValueError as e:
        print(f"isoswitch bench iso: {e}", file=sys.stderr)
        return 2

    result: dict[str, Any] = {}

    progress = cfg.mode if progress_wanted(args.progress) else None

    async def main() -> int:
        result.update(await run_iso(cfg, command=_command(argv), progress=progress))
        return 0

    try:
        run_loop(main)
    except BenchError as e:
        print(f"isoswitch bench iso: {e}", file=sys.stderr)
        return 1
    out = args.out or DEFAULT_OUT_DIR / f"iso-{cfg.mode}-{_stamp()}.json"
    print(format_report(result))
    passed = args_.judge(result, args.threshold)
    print(f"  result          {write_result(result, out)}")
    if args.report is not None and not _write_report(result, args.report, "isoswitch bench iso"):
        return 1
    if result["figures"]["responses"] == 0:
        return 1
    return 0 if passed else THRESHOLDS_MISSED


def _cmd_suite(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from bench.measure import BenchError
    from bench.progress import progress_wanted
    from bench.suite import SuiteConfig, run_suite
    from switch.process import run_loop

    cfg = SuiteConfig(
        duration=args.duration,
        warmup=args.warmup,
        out_dir=args.out_dir,
        dialect=args.dialect,
        framing=args.framing,
        command=_command(argv),
        report_dir=args.report,
        progress=progress_wanted(args.progress),
        thresholds=tuple(args.threshold),
    )

    async def main() -> int:
        # SIGTERM unwinds like Ctrl-C does, so the simulator is stopped either way.
        return await _cancelled_by_sigterm(run_suite(cfg))

    try:
        return run_loop(main)
    except BenchError as e:
        print(f"isoswitch bench suite: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("isoswitch bench suite: interrupted; the simulator was stopped", file=sys.stderr)
        return 130


def _cmd_rest(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from bench.measure import BenchError
    from bench.procs import ProcSpec
    from bench.progress import progress_wanted
    from bench.rest import RestBenchConfig, format_report, run_rest
    from bench.thresholds import THRESHOLDS_MISSED
    from bench.workload import DEFAULT_MIX
    from switch.process import run_loop

    if args.bare and args.sim is None:
        print(
            "isoswitch bench rest: --bare needs --sim HOST:PORT (the ISO host the bare path talks to)", file=sys.stderr
        )
        return 2
    try:
        cfg = RestBenchConfig(
            url=args.url,
            login=args.login,
            password=args.password if args.password is not None or args.login is None else os.environ.get(PASSWORD_ENV),
            concurrency=args.concurrency,
            duration=args.duration,
            warmup=args.warmup,
            max_requests=args.max_requests,
            timeout=args.timeout,
            amount=args.amount,
            currency=args.currency,
            mix=args.mix or DEFAULT_MIX,
            target_pid=args.target_pid,
            bare_sim=args.sim if args.bare else None,
            rate=args.rate,
            rates=args.rates,
            slo_p99_us=args.slo_p99,
            insecure=args.insecure,
            cafile=args.cafile,
            procs=ProcSpec(args.target_pid, args.pg_pid, args.pg_data, args.sim_pid),
        )
    except ValueError as e:
        print(f"isoswitch bench rest: {e}", file=sys.stderr)
        return 2
    out: Path = args.out or DEFAULT_OUT_DIR / f"rest-{_stamp()}.json"
    result: dict[str, Any] = {}

    async def main() -> int:
        # SIGTERM unwinds like Ctrl-C does, so the bare server is stopped either way.
        bare_log = out.with_name(out.stem + "-bare.log")
        run = run_rest(
            cfg, command=_command(args_.redact(argv)), bare_log=bare_log, progress=progress_wanted(args.progress)
        )
        result.update(await _cancelled_by_sigterm(run))
        return 0

    try:
        run_loop(main)
    except BenchError as e:
        print(f"isoswitch bench rest: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("isoswitch bench rest: interrupted; the bare server (if any) was stopped", file=sys.stderr)
        return 130
    print(format_report(result))
    passed = args_.judge(result, args.threshold)
    print(f"  result          {write_result(result, out)}")
    if args.report is not None and not _write_report(result, args.report, "isoswitch bench rest"):
        return 1
    bare_failed = "error" in result.get("bare", {})
    if result["figures"]["responses"] == 0 or bare_failed:
        return 1
    return 0 if passed else THRESHOLDS_MISSED


def _load(path: Path, prog: str) -> dict[str, Any] | None:
    import orjson

    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        print(f"{prog}: cannot read {path}: {e}", file=sys.stderr)
        return None
    if not isinstance(doc, dict):
        print(f"{prog}: {path} is not a bench result", file=sys.stderr)
        return None
    return doc


def _cmd_compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from bench.compare import compare

    a, b = _load(args.a, "isoswitch bench compare"), _load(args.b, "isoswitch bench compare")
    if a is None or b is None:
        return 2
    try:
        print(compare(a, b, a_name=str(args.a), b_name=str(args.b)))
    except (KeyError, TypeError, ValueError) as e:
        print(f"isoswitch bench compare: not a bench result I can read: {e!r}", file=sys.stderr)
        return 2
    return 0


def _cmd_report(args: argparse.Namespace, argv: Sequence[str]) -> int:
    prog = "isoswitch bench report"
    doc = _load(args.result, prog)
    if doc is None:
        return 2
    if doc.get("benchmark") == "suite" and "results" not in doc:
        # The summary names its runs' files, relative to where the suite ran or to the summary.
        results = []
        for run in doc.get("runs", []):
            if "file" not in run:
                continue
            path = Path(run["file"])
            if not path.exists():
                path = args.result.parent / path.name
            loaded = _load(path, prog)
            if loaded is None:
                return 2
            results.append(loaded)
        doc = {**doc, "results": results}
    try:
        ok = _write_report(doc, args.dir, prog)
    except (KeyError, TypeError) as e:
        print(f"{prog}: not a bench result I can read: {e!r}", file=sys.stderr)
        return 2
    return 0 if ok else 2


def main(argv: list[str]) -> int:
    """``isoswitch bench ...``: ``argv`` is what follows ``bench``."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help, or bad arguments (argparse printed why)
        return e.code if isinstance(e.code, int) else 2
    return run(args, argv)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run the sub-command parsed by :func:`add_commands`; ``argv`` (what follows ``bench``) goes into results."""
    code: int = args.func(args, argv)
    return code
