"""Running an app on a TCP port with a graceful stop.

``serve(runtime, config, stop)`` is what the CLI calls: it listens on
``config.host:config.port`` (``SO_REUSEPORT``, so ``--workers N`` processes
can share the port) until ``stop`` is set, then shuts down in order: stop
accepting, close idle keep-alive connections, give in-flight requests
``config.shutdown_timeout`` seconds to finish, cancel the rest, run the
app's cleanup. The runtime is the caller's to close afterwards.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web

from http_front.app import create_app
from http_front.config import FrontConfig
from http_front.logs import ACCESS_LOGGER, AccessLog
from http_front.ports import RuntimePort
from switch.wire.tls import server_context

__all__ = ["RunningServer", "serve", "start_app", "start_front"]

log = logging.getLogger("isoswitch.http")


@dataclass(slots=True)
class RunningServer:
    """A started app; ``addresses`` are the bound (host, port) pairs."""

    runner: web.AppRunner

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(a[0], a[1]) for a in self.runner.addresses]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_app(app: web.Application, config: FrontConfig) -> RunningServer:
    """Set ``app`` up and listen; on any failure nothing is left running."""
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log_class=AccessLog,
        access_log=ACCESS_LOGGER if config.access_log else None,
        shutdown_timeout=config.shutdown_timeout,
        max_line_size=config.max_line_size,
        max_field_size=config.max_field_size,
        max_headers=config.max_headers,
    )
    # Before setup: a bad certificate path fails the start with nothing to clean up.
    ssl_context = (
        server_context(config.tls_cert, config.tls_key, config.tls_client_ca) if config.tls_cert is not None else None
    )
    await runner.setup()
    try:
        site = web.TCPSite(
            runner,
            config.host,
            config.port,
            backlog=config.backlog,
            reuse_port=config.reuse_port,
            ssl_context=ssl_context,
        )
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return RunningServer(runner)


async def start_front(runtime: RuntimePort, config: FrontConfig) -> RunningServer:
    return await start_app(create_app(runtime, config), config)


async def serve(runtime: RuntimePort, config: FrontConfig, stop: asyncio.Event) -> None:
    """Serve the REST front until ``stop`` is set, then shut down gracefully."""
    server = await start_front(runtime, config)
    where = ", ".join(f"{config.scheme}://{h}:{p}" for h, p in server.addresses)
    log.info("REST front listening on %s", where)
    try:
        await stop.wait()
    finally:
        log.info("REST front stopping: finishing requests in flight (up to %.0f s)", config.shutdown_timeout)
        await server.close()
        log.info("REST front stopped")
