"""The front door: header, body and idle timeouts and a connection cap, around aiohttp's protocol.

aiohttp (3.14) closes a connection that waits too long for a *complete*
request head only through its keep-alive timer, and has no header or body
timeout of its own: a client that sends half a request line and stalls, or
announces a body and never sends it, holds a file descriptor as long as it
likes (slowloris). :class:`ConnectionGuard` adds, per connection:

* a header timeout: the request line and headers must arrive within
  ``header_timeout`` seconds, counted from the connection's opening for its
  first request and from the first byte of each next one (as Go's
  ``ReadHeaderTimeout`` and hyper's ``header_read_timeout``);
* a body timeout: the body must be complete ``body_timeout`` seconds after
  the request was handed to the app;
* a cap: with ``max_connections`` open in this worker, a new connection is
  answered ``503`` (``Connection: close``, ``Retry-After: 1``) and closed at
  once, before anything is read. The listening socket keeps accepting: to stop
  accepting would leave new clients in the kernel's backlog until their own
  timeouts, which is worse for a well-behaved client than a quick 503.
  Connections still in their TLS handshake are not counted (asyncio makes the
  protocol only after it), but the handshake is bounded by ``header_timeout``.

Idle keep-alive connections are aiohttp's own (``keepalive_timeout``).

How it plugs in, without patching aiohttp: :class:`GuardedSite` listens with a
protocol factory that wraps each of aiohttp's ``RequestHandler`` protocols in a
:class:`_Conn` (which forwards every ``asyncio.Protocol`` callback), and the
guard learns a connection's request state from two public hooks of aiohttp's
``web.Server``: its ``request_factory`` (called once per parsed request head,
with the handler's protocol and the body stream) and the access logger's
``log`` (called once per finished response). ``tests/test_http_hostile.py``
pins both: a slow handler outliving the header timeout is not cut, and the
stalled second request on a keep-alive connection is.

A timeout closes the connection with no answer (the client is not reading one)
and writes one WARNING line through :class:`~http_front.logs.ClientFailureLog`;
a handler reading the body then meets :class:`~http_front.logs.SlowClient`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from enum import Enum
from typing import Any, cast

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.streams import StreamReader
from aiohttp.typedefs import Handler, Middleware

from http_front.body import too_large
from http_front.config import FrontConfig
from http_front.failures import failure_body
from http_front.logs import AccessLog, ClientFailureLog, SlowClient

__all__ = ["ConnectionGuard", "GuardedSite", "declared_size_middleware"]

log = logging.getLogger("isoswitch.http")


def _busy() -> bytes:
    body = failure_body("error", "Too many connections")
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


# Written, whole, to a connection over the cap, before it has sent anything: no request to answer yet.
_BUSY = _busy()


class _Timing(Enum):
    HEAD = "request line and headers"
    BODY = "request body"


class ConnectionGuard:
    """Timeouts and the cap of one worker's REST connections; one per running server."""

    def __init__(self, config: FrontConfig, failures: ClientFailureLog) -> None:
        self.header_timeout = config.header_timeout
        self.body_timeout = config.body_timeout
        self.max_connections = config.max_connections
        self.failures = failures
        self.refused = 0  # connections answered 503 over the cap
        self.timed_out = 0  # connections closed by a header or body timeout
        self._open: set[_Conn] = set()
        self._by_handler: dict[object, _Conn] = {}
        self._server: web.Server | None = None

    @property
    def open(self) -> int:
        """Connections open now (accepted, not yet lost), refused ones aside."""
        return len(self._open)

    @property
    def in_flight(self) -> int:
        """Requests handed to the app and not yet answered, over every connection."""
        return sum(conn.in_flight for conn in self._open)

    def protocol_factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        """The factory to listen with: aiohttp's ``server`` (itself a protocol factory), guarded."""
        if self._server is None:
            self._server = server
            parse = server.request_factory

            def observed(message: Any, payload: StreamReader, protocol: Any, writer: Any, task: Any) -> Any:
                conn = self._by_handler.get(protocol)
                if conn is not None:
                    conn.request_started(payload)
                return parse(message, payload, protocol, writer, task)

            # A RequestHandler reads server.request_factory when it is made: set it before the first connection.
            server.request_factory = observed
        return lambda: _Conn(self)

    def access_log_class(self, *, emit: bool) -> type[AbstractAccessLogger]:
        """The access logger to give aiohttp: it also tells the guard a response is finished.

        aiohttp skips a disabled access logger altogether, so this one is always
        enabled and ``emit`` decides whether it writes its line.
        """
        guard = self

        class GuardedAccessLog(AccessLog):
            def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
                conn = guard._by_handler.get(request.protocol)
                if conn is not None:
                    conn.request_finished()
                if emit:
                    super().log(request, response, time)

            @property
            def enabled(self) -> bool:
                return True

        return GuardedAccessLog

    def _admit(self, conn: _Conn) -> bool:
        if len(self._open) >= self.max_connections:
            self.refused += 1
            detail = f"{len(self._open)} connections open (max_connections)"
            self.failures.warn("connection refused", conn.peer, detail)
            return False
        self._open.add(conn)
        return True

    def _handler(self, conn: _Conn) -> Any:
        assert self._server is not None, "protocol_factory() first"
        handler = self._server()  # aiohttp's RequestHandler for this connection
        self._by_handler[handler] = conn
        return handler

    def _forget(self, conn: _Conn) -> None:
        self._open.discard(conn)
        if conn.inner is not None:
            self._by_handler.pop(conn.inner, None)


class _Conn(asyncio.Protocol):
    """One connection: aiohttp's protocol inside, one timer (head or body) beside it.

    State, from the guard's two hooks: ``in_flight`` requests handed to the app
    and not yet answered. Bytes that come while none is in flight start a
    request head (the header timer starts, unless it runs already); bytes that
    come while one is in flight and its body is complete are the head of a
    pipelined request, timed from when the one in flight is answered.
    """

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self.inner: Any = None  # aiohttp's RequestHandler once admitted
        self.peer: str | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timing: _Timing | None = None
        self._head_bytes = False  # bytes of the timed head have come (a silent connection is not logged)
        self.in_flight = 0
        self._next_head = False  # a pipelined head arrived while a request was in flight
        self._reason: SlowClient | None = None
        self._payload: StreamReader | None = None  # the body stream of the last request handed over

    # -- asyncio.Protocol, forwarded --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports (production's loop) are not asyncio.Transport subclasses.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else None
        if not self._guard._admit(self):
            transport.write(_BUSY)
            transport.close()  # after the 503 is flushed
            return
        self.inner = self._guard._handler(self)
        self._arm(_Timing.HEAD)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return  # refused: closing
        if self.in_flight == 0:
            if self._timer is None:
                self._arm(_Timing.HEAD)
            if self._timing is _Timing.HEAD:
                self._head_bytes = True
        elif self._timing is not _Timing.BODY:
            self._next_head = True
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._transport = None
        self._guard._forget(self)
        if self.inner is not None:
            # Our own reason, when we closed it: the handler reading the body meets SlowClient.
            self.inner.connection_lost(exc if exc is not None else self._reason)
        payload, self._payload = self._payload, None
        if payload is not None and not payload.is_eof():
            # aiohttp drains a body its handler left unread (a 413, a 401) for up to lingering_time,
            # and does not end that drain when the client goes: end it, or the task (and a graceful
            # stop) waits out the full time for a client that is gone. A handler still reading was
            # given the connection's exception above, which a read raises before any end of stream.
            payload.feed_eof()

    # -- the guard's hooks ------------------------------------------------------------

    def request_started(self, payload: StreamReader) -> None:
        """aiohttp parsed a request head and hands the request to the app."""
        self.in_flight += 1
        self._next_head = False
        self._disarm()
        self._payload = payload
        if not payload.is_eof():
            self._arm(_Timing.BODY)
            payload.on_eof(self._body_done)

    def request_finished(self) -> None:
        """aiohttp finished writing a response."""
        self.in_flight = max(0, self.in_flight - 1)
        if self.in_flight == 0 and self._next_head and self._timer is None:
            self._next_head = False
            self._arm(_Timing.HEAD)
            self._head_bytes = True

    def _body_done(self) -> None:
        if self._timing is _Timing.BODY:
            self._disarm()

    # -- the timer --------------------------------------------------------------------

    def _arm(self, timing: _Timing) -> None:
        self._disarm()
        delay = self._guard.header_timeout if timing is _Timing.HEAD else self._guard.body_timeout
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)
        self._timing = timing
        self._head_bytes = False

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timing = None

    def _expire(self) -> None:
        timing, self._timer, self._timing = self._timing, None, None
        transport = self._transport
        if timing is None or transport is None or transport.is_closing():
            return
        delay = self._guard.header_timeout if timing is _Timing.HEAD else self._guard.body_timeout
        self._reason = SlowClient(f"{timing.value} not received within {delay:g} s")
        self._guard.timed_out += 1
        if timing is _Timing.HEAD and not self._head_bytes:
            log.debug("closed a connection from %s that sent nothing in %g s", self.peer, delay)
        else:
            self._guard.failures.warn_once("timeout", self.peer, self._reason)
        transport.abort()  # no answer: a client this slow is not reading one, and close() would wait for it


def declared_size_middleware(limit: int) -> Middleware:
    """413 at once for a request whose ``Content-Length`` is over ``limit``: its body is never read.

    aiohttp only counts a body's bytes as it reads them, so a client announcing
    100 GB would otherwise be waited for. ``Connection: close``: the body that
    may follow is not worth reading (aiohttp still drains it for a few seconds,
    so that the client reads the answer rather than a reset).
    """

    @web.middleware
    async def refuse_oversized(request: web.Request, handler: Handler) -> web.StreamResponse:
        declared = request.content_length
        if declared is not None and declared > limit:
            response = too_large(limit).reply().response()
            response.force_close()
            return response
        return await handler(request)

    return refuse_oversized


class GuardedSite(web.BaseSite):
    """aiohttp's ``TCPSite``, listening with the guard's protocol factory."""

    def __init__(
        self,
        runner: web.BaseRunner,
        guard: ConnectionGuard,
        host: str,
        port: int,
        *,
        ssl_context: Any = None,
        backlog: int = 1024,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._guard = guard
        self._host = host
        self._port = port
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()  # registers the site with the runner, which stops it at cleanup
        server = self._runner.server
        assert server is not None, "runner.setup() first"
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.protocol_factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_port=self._reuse_port,
            ssl_handshake_timeout=self._guard.header_timeout if self._ssl_context is not None else None,
        )
