"""``isoswitch sim``: run the simulated issuer host until SIGINT/SIGTERM.

When the listener is bound, exactly one line ``listening on HOST:PORT`` goes
to stdout (the real port, also with ``--port 0``), then ``admin on
HOST:PORT`` when ``--admin-port`` is given. Logs go to stderr. Exit status: 0
after a signal, 1 when the address cannot be bound or a TLS file cannot be
used, 2 for bad arguments or rules.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from ssl import SSLContext
from typing import Any

from acquirer_sim.config import SimConfig
from acquirer_sim.errors import RulesError
from acquirer_sim.gcpolicy import IdleCollector
from acquirer_sim.rules import load_rules
from acquirer_sim.server import SimServer
from switch.wire.dialect import DIALECTS
from switch.wire.framing import FRAMINGS
from switch.wire.threeds import MessageError, Signer
from switch.wire.tls import TlsError, server_context

__all__ = ["add_arguments", "build_parser", "main", "run"]

log = logging.getLogger("isoswitch.sim")


DESCRIPTION = "Simulated ISO 8583 issuer host."


def build_parser(prog: str = "isoswitch sim") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``isoswitch sim`` (also ``python -m acquirer_sim``), on ``p``."""
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8583, help="listen port, 0 = any free port (default 8583)")
    p.add_argument("--rules", metavar="FILE", help="TOML rules merged over the built-in defaults")
    p.add_argument("--dialect", default="ascii", choices=DIALECTS, help="field encoding (default ascii)")
    p.add_argument("--framing", default="binary2", choices=tuple(FRAMINGS), help="length header (default binary2)")
    p.add_argument("--admin-port", type=int, metavar="P", help="serve the admin HTTP API on this port (0 = any)")
    p.add_argument("--admin-host", metavar="HOST", help="admin API address (default: --host)")
    p.add_argument("--seed", type=int, help="seed for fault rates and auth codes (reproducible runs)")
    p.add_argument(
        "--max-records",
        type=int,
        default=500_000,
        help="answered requests remembered for repeats and reversals, ~0.8 kB each (default 500000)",
    )
    p.add_argument("--tls-cert", metavar="PEM", help="serve ISO 8583 over TLS with this certificate (chain)")
    p.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert (default: in the same file)")
    p.add_argument(
        "--acs-key",
        metavar="PEM",
        help="P-256 private key the simulated 3-D Secure ACS signs with (default: an ephemeral key; "
        "its public key at GET /ds/public-key on the admin port)",
    )
    p.add_argument(
        "--acs-url",
        metavar="URL",
        help="base URL browsers reach the admin port's ACS at (default: the Host the DS was called with)",
    )
    p.add_argument(
        "--wallet-signing-key", metavar="PEM", help="the simulated wallet's signing key (POST /wallet/token)"
    )
    p.add_argument("--wallet-merchant-key", metavar="PUB", help="the gateway's public key wallet tokens are sealed for")
    # Any case, as every isoswitch command takes it (switch.process.log_level; not imported: the
    # simulator takes only the wire layer from the switch).
    p.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    )


def _runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run

    def run(coro: Coroutine[Any, Any, int]) -> int:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)

    return run


async def _serve(config: SimConfig, ssl: SSLContext | None = None) -> int:
    sim = SimServer(config, ssl=ssl)
    try:
        host, port = await sim.start()
    except OSError as e:
        print(f"sim: cannot listen on {config.host}:{config.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    collector = IdleCollector(lambda: sim.stats.requests)
    collector.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        print(f"listening on {host}:{port}", flush=True)
        if sim.admin_address is not None:
            print(f"admin on {sim.admin_address[0]}:{sim.admin_address[1]}", flush=True)
        await stop.wait()
        log.info("signal received, stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        collector.stop()
        await sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (without the program name), serve until a signal, return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits; callers of main() want a status
        return int(e.code or 0)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Serve with the options of :func:`add_arguments` until a signal; the exit status."""
    try:
        config = SimConfig(
            host=args.host,
            port=args.port,
            dialect=args.dialect,
            framing=args.framing,
            admin_port=args.admin_port,
            admin_host=args.admin_host,
            rules=load_rules(args.rules),
            seed=args.seed,
            max_records=args.max_records,
            acs_key=args.acs_key,
            acs_url=args.acs_url,
            wallet_signing_key=args.wallet_signing_key,
            wallet_merchant_key=args.wallet_merchant_key,
        )
    except (RulesError, ValueError) as e:
        print(f"sim: {e}", file=sys.stderr)
        return 2
    if args.acs_key is not None:
        try:
            Signer.load(args.acs_key)  # a missing or unusable key fails the start, as a TLS file does
        except MessageError as e:
            print(f"sim: {e}", file=sys.stderr)
            return 1
    ssl = None
    if args.tls_cert is not None:
        try:
            ssl = server_context(args.tls_cert, args.tls_key)
        except TlsError as e:  # a file missing or unusable: a failure to start, as a busy port is
            print(f"sim: {e}", file=sys.stderr)
            return 1
    elif args.tls_key is not None:
        print("sim: --tls-key needs --tls-cert", file=sys.stderr)
        return 2
    # A no-op when the host program (``isoswitch``) configured logging already.
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    return _runner()(_serve(config, ssl))
