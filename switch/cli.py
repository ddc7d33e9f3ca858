"""``isoswitch`` command line: ``up``, ``switch``, ``sim``, ``bench``.

Sub-commands import what they run lazily, so ``isoswitch sim`` loads no
switch internals and ``isoswitch --help`` is instant.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

__all__ = ["USAGE", "hostport", "main", "run_loop", "setup_logging", "sim_process", "stop_event"]

from switch.logs import setup_logging

if TYPE_CHECKING:
    from switch.settings import Settings

log = logging.getLogger("isoswitch.cli")

USAGE = """isoswitch <command> [options]

commands:
  up       start the whole system: PostgreSQL, the simulated issuer host, the switch and the REST front
  serve    run the switch and the REST front without the simulator (one worker of `up`)
  project  manage merchant projects: `isoswitch project add NAME`
  reconcile  compare the switch's books with the simulator's ledger: `isoswitch reconcile --sim-admin URL`
  saf      the store-and-forward queue of reversals: `isoswitch saf list`
  audit    the audit log of back-office operations: `isoswitch audit list`
  switch   run the switch core without the REST front (links, routing, reversals, --iso-port listener)
  config   the effective configuration: `isoswitch config show` (secrets hidden)
  sim      run the simulated issuer host (acquirer_sim)
  bench    benchmarks: `isoswitch bench iso|suite|rest --help`
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


def stop_event() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


async def _serve_switch(settings: Settings, target: tuple[str, int] | None, stop: asyncio.Event) -> int:
    from switch.runtime import open_runtime

    cfg = settings.runtime
    if target is not None:
        cfg = dataclasses.replace(cfg, switch=cfg.switch_config().with_target(*target))
    runtime = await open_runtime(cfg)
    for d in cfg.switch_config().destinations:
        log.info("destination %s: %d links to %s:%d", d.name, d.links, d.link.host, d.link.port)
    if runtime.listener is not None and runtime.listener.address is not None:
        host, port = runtime.listener.address
        print(f"ISO listener on {host}:{port}", flush=True)
    try:
        last = ""
        while not stop.is_set():
            pools = runtime.router.pools.values()
            states = ", ".join(f"{link.label}={link.state.value}" for p in pools for link in p.links)
            if states != last:
                print(f"links: {states}", flush=True)
                last = states
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        # The listener stops accepting first, then links drain and sign off, writes flush, the database closes.
        from switch.runtime import bounded

        await bounded("core", runtime.close(), settings.process.shutdown_timeout)
    return 0


def _cmd_switch(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="isoswitch switch",
        description="Run the switch core without the REST front: link pools, BIN routing, reversals and "
        "store-and-forward, and with --iso-port the ISO listener for acquirer hosts and terminals.",
    )
    ap.add_argument("--config", help="TOML config (default: $ISOSWITCH_CONFIG, else schemas/config/default.toml)")
    ap.add_argument("--target", type=hostport, help="point every destination at HOST:PORT")
    ap.add_argument("--iso-port", type=int, help="accept ISO 8583 from acquirer hosts/terminals on this port")
    ap.add_argument("--iso-host", help="address of the ISO listener [iso_listener] host")
    ap.add_argument("--data-dir", type=Path, help="embedded PostgreSQL and generated keys (default .data)")
    ap.add_argument("--node-id", type=int, help="0..9, overrides the config's")
    ap.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    args = ap.parse_args(argv)
    flags: dict[str, dict[str, Any]] = {
        "iso_listener": {"port": args.iso_port, "host": args.iso_host},
        "database": {"data_dir": args.data_dir},
        "switch": {"node_id": args.node_id},
        "logging": {"level": args.log_level},
    }
    if args.iso_port is not None:
        flags["iso_listener"]["enabled"] = True
    from switch.config import ConfigError
    from switch.settings import load_settings

    try:
        settings = load_settings(args.config, overrides=flags)
    except ConfigError as e:
        ap.error(str(e))
    setup_logging(settings.logging.level, fmt=settings.logging.format, levels=dict(settings.logging.levels))

    async def main() -> int:
        return await _serve_switch(settings, args.target, stop_event())

    return run_loop(main)


@contextlib.contextmanager
def sim_process(
    host: str, port: int, admin_port: int | None = None, rules: str | None = None
) -> Iterator[tuple[str, int]]:
    """Run ``acquirer_sim`` in a process of its own (and so on a core of its own,
    as a real host would be); yields its address; SIGTERM on exit."""
    cmd = [sys.executable, "-m", "acquirer_sim", "--host", host, "--port", str(port)]
    if admin_port is not None:
        cmd += ["--admin-port", str(admin_port)]
    if rules:
        cmd += ["--rules", rules]
    sim = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert sim.stdout is not None
        line = sim.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the simulator did not start ({line or 'no output'})")
        yield hostport(line.removeprefix("listening on "))
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
    print(f"isoswitch: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
