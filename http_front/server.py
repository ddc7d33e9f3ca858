"""Running an app on a TCP port with a graceful stop.

``serve(runtime, config, stop)`` is what the CLI calls: it listens on
``config.host:config.port`` (``SO_REUSEPORT``, so ``--workers N`` processes
can share the port) until ``stop`` is set, then shuts down in order: stop
accepting, close idle keep-alive connections, give in-flight requests
``config.shutdown_timeout`` seconds to finish, cancel the rest, run the
app's cleanup. The runtime is the caller's to close afterwards.

Every connection goes through a :class:`~http_front.conn.ConnectionGuard`
(header and body timeouts, at most ``config.max_connections``), idle
keep-alive connections close after ``config.keepalive_timeout``, and
client-side failures are logged as one rate-limited WARNING line
(:class:`~http_front.logs.ClientFailureLog`), aiohttp's own included.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass

from aiohttp import web

from http_front.app import create_app
from http_front.config import FrontConfig
from http_front.conn import ConnectionGuard, GuardedSite
from http_front.logs import ACCESS_LOGGER, CLIENT_FAILURES, ClientFailureLog, ServerLog
from http_front.ports import RuntimePort
from switch.wire.tls import server_context

__all__ = ["RunningServer", "serve", "start_app", "start_front"]

log = logging.getLogger("isoswitch.http")


@dataclass(slots=True)
class RunningServer:
    """A started app; ``addresses`` are the bound (host, port) pairs."""

    runner: web.AppRunner
    guard: ConnectionGuard

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
    failures = ClientFailureLog(config.client_failure_log_rate)
    app[CLIENT_FAILURES] = failures  # the app's error middleware logs a client gone mid-body through it
    guard = ConnectionGuard(config, failures)
    _check_open_files(config.max_connections)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log_class=guard.access_log_class(emit=config.access_log),
        access_log=ACCESS_LOGGER,
        shutdown_timeout=config.shutdown_timeout,
        max_line_size=config.max_line_size,
        max_field_size=config.max_field_size,
        max_headers=config.max_headers,
        keepalive_timeout=config.keepalive_timeout,
        # A body left unread (a 413, a 401) is drained for at most this long before the close, so
        # that the client reads the answer rather than a reset; aiohttp's 10 s, bounded by body_timeout.
        lingering_time=min(10.0, config.body_timeout),
        logger=ServerLog(failures),
        # handler_cancellation stays off (aiohttp's default): a client that goes away does not cancel its
        # handler, so a payment already sent to the issuer still finishes and is written (or reversed).
    )
    # Before setup: a bad certificate path fails the start with nothing to clean up.
    ssl_context = (
        server_context(config.tls_cert, config.tls_key, config.tls_client_ca) if config.tls_cert is not None else None
    )
    await runner.setup()
    try:
        site = GuardedSite(
            runner,
            guard,
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
    return RunningServer(runner, guard)


# Files a worker needs besides its REST connections: the database pool, the links, logs, the listener.
_OTHER_FILES = 64


def _check_open_files(max_connections: int) -> None:
    """Warn when the cap cannot hold: the process would run out of descriptors first (accept fails)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and max_connections + _OTHER_FILES > soft:
        log.warning(
            "[http] max_connections = %d is over this process's open-file limit %d less %d for the rest: "
            "raise `ulimit -n` or lower max_connections",
            max_connections,
            soft,
            _OTHER_FILES,
        )


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
