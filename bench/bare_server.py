"""The bare path, served for ``isoswitch bench rest --bare``: JSON -> ISO 8583 -> issuer host -> JSON.

No database, no validation, no auth: :func:`bench.bare.create_bare_app`
(served by :func:`http_front.server.start_app`, the front's own runner
settings) over a switch link pool to the host, so the REST bench can show what the
full path costs on top of it. Run as::

    python -m bench.bare_server --host 127.0.0.1 --port 0 --sim 127.0.0.1:8583

It prints exactly ``listening on HOST:PORT`` once the links are signed on
and the port is open, and stops on SIGTERM or SIGINT: stop accepting, then
close the links.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from switch.process import hostport, log_level, run_loop
from switch.settings import load_settings

__all__ = ["main", "serve"]

_READY_TIMEOUT = 20.0  # seconds for the links to the host to sign on
_CLOSE_TIMEOUT = 5.0  # seconds for in-flight requests when stopping


async def serve(host: str, port: int, sim: tuple[str, int], config_path: str | None = None) -> int:
    """Serve the bare app until SIGTERM/SIGINT; prints ``listening on HOST:PORT`` when ready."""
    # Imported here so that a tree without the REST front still loads this module (and says why it cannot run).
    try:
        from bench.bare import create_bare_app
        from http_front.config import FrontConfig
        from http_front.server import start_app
    except ImportError as e:
        print(f"bare server: the bare app is not available: {e}", file=sys.stderr)
        return 2

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # No access log: one line per request would cost the bare path what the full path's log costs it.
    front = FrontConfig(host=host, port=port, access_log=False, reuse_port=False, shutdown_timeout=_CLOSE_TIMEOUT)
    router = load_settings(config_path).switch.with_target(*sim).build_router()
    router.start()
    try:
        try:
            await router.wait_ready(_READY_TIMEOUT)
        except TimeoutError:
            print(f"bare server: no ready link to {sim[0]}:{sim[1]} after {_READY_TIMEOUT:g} s", file=sys.stderr)
            return 1
        server = await start_app(create_bare_app(router, front), front)
        try:
            bound_host, bound_port = server.addresses[0]
            print(f"listening on {bound_host}:{bound_port}", flush=True)
            await stop.wait()
        finally:
            await server.close()
    finally:
        await router.close(timeout=_CLOSE_TIMEOUT)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.bare_server",
        description="Serve the bare REST path (no database, validation or auth) over a switch link pool.",
    )
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default: 0)")
    ap.add_argument("--sim", type=hostport, required=True, metavar="HOST:PORT", help="the ISO 8583 host")
    ap.add_argument("--config", help="TOML config (default: $ISOSWITCH_CONFIG, else schemas/config/default.toml)")
    ap.add_argument("--log-level", type=log_level, default="warning")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)

    async def run() -> int:
        return await serve(args.host, args.port, args.sim, args.config)

    return run_loop(run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
