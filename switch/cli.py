"""``isoswitch`` command line: ``up``, ``switch``, ``sim``, ``bench``.

Sub-commands import what they run lazily, so ``isoswitch sim`` loads no
switch internals and ``isoswitch --help`` is instant.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence

__all__ = ["main", "run_loop"]

log = logging.getLogger("isoswitch.cli")

USAGE = """isoswitch <command> [options]

commands:
  up       start the whole system: the simulated issuer host and a switch link pool to it
  switch   run the switch core (link pools + BIN routing) from a config file
  sim      run the simulated issuer host (acquirer_sim)
  bench    benchmarks: `isoswitch bench iso|suite --help`
"""


def run_loop(main: Callable[[], Awaitable[int]]) -> int:
    """Run ``main`` on uvloop when it is installed, plain asyncio otherwise."""
    # Everything loaded so far lives as long as the process: keep it out of
    # the collector's full passes (they showed as 15 ms pauses under load).
    gc.freeze()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.run(main())  # type: ignore[arg-type]
    return uvloop.run(main())  # type: ignore[arg-type]


def _stop_event() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


async def _serve_switch(config_path: str | None, target: tuple[str, int] | None, stop: asyncio.Event) -> int:
    from switch.config import SwitchConfig

    cfg = SwitchConfig.load(config_path)
    if target is not None:
        cfg = cfg.with_target(*target)
    router = cfg.build_router()
    router.start()
    for d in cfg.destinations:
        log.info("destination %s: %d links to %s:%d", d.name, d.links, d.link.host, d.link.port)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(router.wait_ready(), 10)
        last = ""
        while not stop.is_set():
            states = ", ".join(f"{link.label}={link.state.value}" for p in router.pools.values() for link in p.links)
            if states != last:
                print(f"links: {states}", flush=True)
                last = states
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        await router.close(timeout=5.0)
    return 0


def _cmd_switch(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="isoswitch switch", description="Run the switch link pools and routing.")
    ap.add_argument("--config", help="TOML config (default: schemas/config/default.toml)")
    ap.add_argument("--target", type=_hostport, help="point every destination at HOST:PORT")
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    _setup_logging(args.log_level)

    async def main() -> int:
        return await _serve_switch(args.config, args.target, _stop_event())

    return run_loop(main)


def _cmd_up(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="isoswitch up", description="Start the simulated issuer host and a switch link pool to it."
    )
    ap.add_argument("--config", help="switch TOML config (default: schemas/config/default.toml)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--sim-port", type=int, default=8583)
    ap.add_argument("--sim-admin-port", type=int, default=8584)
    ap.add_argument("--rules", help="simulator rules file (TOML)")
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    _setup_logging(args.log_level)

    cmd = [sys.executable, "-m", "acquirer_sim", "--host", args.host, "--port", str(args.sim_port)]
    cmd += ["--admin-port", str(args.sim_admin_port)]
    if args.rules:
        cmd += ["--rules", args.rules]
    # The sim gets a process (and so a core) of its own, as a real host would.
    sim = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert sim.stdout is not None
        line = sim.stdout.readline().strip()
        if not line.startswith("listening on "):
            print(f"isoswitch up: the simulator did not start ({line or 'no output'})", file=sys.stderr)
            return 1
        sim_addr = line.removeprefix("listening on ")
        print(
            f"simulated issuer host listening on {sim_addr} (ledger: http://{args.host}:{args.sim_admin_port}/ledger)"
        )
        print("switch link pool connecting to it; Ctrl-C stops everything.")
        print("benchmark it from another terminal:")
        print(f"  .venv/bin/isoswitch bench iso --target {sim_addr} --concurrency 64 --duration 20")
        print(f"  .venv/bin/isoswitch bench iso --target {sim_addr} --via-switch --concurrency 256 --duration 20")
        sys.stdout.flush()
        host, port = _hostport(sim_addr)

        async def main() -> int:
            return await _serve_switch(args.config, (host, port), _stop_event())

        return run_loop(main)
    finally:
        if sim.poll() is None:
            sim.send_signal(signal.SIGTERM)
            try:
                sim.wait(10)
            except subprocess.TimeoutExpired:
                sim.kill()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = args[0], args[1:]
    if cmd == "sim":
        from acquirer_sim.cli import main as sim_main

        return sim_main(rest)
    if cmd == "bench":
        from bench.cli import main as bench_main

        return bench_main(rest)
    if cmd == "switch":
        return _cmd_switch(rest)
    if cmd == "up":
        return _cmd_up(rest)
    print(f"isoswitch: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
