"""An HTTP/1.1 load generator that must cost little: keep-alive connections, one request in flight each.

The target and the load generator share the box, so every microsecond spent
here is taken from the system under test. Hence a bare asyncio ``Protocol``
per connection (no streams, no aiohttp client, no task or future per
request): requests are pre-built ``bytes`` (headers, ``Authorization`` and
``Content-Length`` included) written as they are; of a response only the
status line and the framing headers are read, and the body is skipped.
The next request goes out from the ``data_received`` call that completed
the previous answer, so ``concurrency`` connections each keep one request
in flight for the whole run.

With a ``rate`` the loop is open (as wrk2 drives it): request *i* is
intended at ``t0 + (i + 1) / rate`` whatever the server does, and its latency
is measured from that intended time, not from when a connection was free to
send it, so a stall shows in the latency of every request that had to wait
behind it (coordinated omission corrected). A free connection sends the next
due request at once; when all ``concurrency`` connections are busy, due
requests wait (the backlog) and their intended times keep counting.

Requests and response framing are :mod:`bench.http_wire`'s; ``https://``
targets get TLS on each connection (an ``ssl.SSLContext`` given by the caller).
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import time
from collections.abc import Sequence
from typing import Any

from bench.http_wire import (
    HttpTarget,
    ProtocolError,
    basic_auth,
    build_post,
    chunked_end,
    connect_error_kind,
    parse_head,
)
from bench.measure import BenchError, Pacer, Tally, Window, run_then_drain

__all__ = [
    "HttpTarget",
    "ProtocolError",
    "basic_auth",
    "build_post",
    "chunked_end",
    "connect_error_kind",
    "parse_head",
    "run_http",
]

_TICK_S = 0.05  # timeout sweep period
_PACE_S = 0.001  # open loop: recheck period while due requests wait for a free connection
_MAX_HEAD = 64 * 1024  # a response head longer than this is not an orders API answer
_RECONNECT_MAX_S = 1.0  # cap of the backoff between failed reconnects

# Body framing of the response being read.
_HEAD, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)


class _Conn(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    __slots__ = (
        "run",
        "tally",
        "requests",
        "pos",
        "transport",
        "buf",
        "sent_at",
        "intended",
        "card",
        "mode",
        "remaining",
        "status",
        "close_after",
        "closing",
    )

    def __init__(self, run: _HttpRun, start: int) -> None:
        self.run = run
        self.tally = run.tally
        self.requests = run.requests
        self.pos = start % len(run.requests)
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.sent_at = 0.0  # 0: no request in flight; else when it was written (for the timeout)
        self.intended = 0.0  # when it was meant to go (latency is measured from here)
        self.card = 0
        self.mode = _HEAD
        self.remaining = 0  # body bytes still to skip (_LENGTH)
        self.status = 0
        self.close_after = False  # the response being read retires the connection
        self.closing = False  # we closed (or abort) it: connection_lost is expected

    # -- asyncio.Protocol ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:  # small requests must not wait for Nagle (uvloop and asyncio set it; be sure)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass
        self.run.live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        run = self.run
        run.live.discard(self)
        run.busy.discard(self)
        if self.sent_at:
            if self.mode == _UNTIL_CLOSE:
                self._complete(time.perf_counter())  # the close is what ends this body
                run.closed_by_server += 1
            else:
                self.sent_at = 0.0
                self.tally.error("connection_reset" if isinstance(exc, ConnectionResetError) else "connection_closed")
        elif not self.closing:
            run.closed_by_server += 1  # an idle connection the server let go
        run.replace()
        run.check_done()

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self.buf:
            data = self.buf + data
            self.buf = b""
        try:
            self._parse(data, now)
        except ProtocolError:
            self._fail("protocol_error")
            return
        if self.close_after and not self.sent_at:
            self._retire()
        elif not self.sent_at:
            self.run.ready(self, now)

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost sorts out what was in flight

    # -- reading -------------------------------------------------------------------
    def _parse(self, buf: bytes, now: float) -> None:
        pos = 0
        end = len(buf)
        while pos < end:
            mode = self.mode
            if mode == _HEAD:
                if not self.sent_at or self.close_after:
                    raise ProtocolError("bytes with no request in flight")
                i = buf.find(b"\r\n\r\n", pos)
                if i < 0:
                    if end - pos > _MAX_HEAD:
                        raise ProtocolError("response head too long")
                    self.buf = buf[pos:]
                    return
                status, length, chunked, close = parse_head(buf[pos:i])
                pos = i + 4
                if status < 200:
                    continue  # an interim answer (100 Continue): the real one follows
                self.status = status
                self.close_after = close
                if status == 204 or status == 304:
                    self._complete(now)
                elif chunked:
                    self.mode = _CHUNKED
                elif length > 0:
                    self.mode = _LENGTH
                    self.remaining = length
                elif length == 0:
                    self._complete(now)
                else:
                    self.mode = _UNTIL_CLOSE
                    self.close_after = True
            elif mode == _LENGTH:
                take = min(self.remaining, end - pos)
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self._complete(now)
            elif mode == _CHUNKED:
                n = chunked_end(buf, pos)
                if n < 0:
                    if end - pos > _MAX_HEAD * 16:
                        raise ProtocolError("chunked body too long")
                    self.buf = buf[pos:]
                    return
                pos = n
                self._complete(now)
            else:  # _UNTIL_CLOSE: the body is whatever comes before the close
                return

    def _complete(self, now: float) -> None:
        tally = self.tally
        if tally.measuring:
            tally.responses += 1
            tally.hist.record_value(int((now - self.intended) * 1_000_000))
            key = (self.card, self.run.status_text(self.status))
            codes = tally.codes
            codes[key] = codes.get(key, 0) + 1
        else:
            tally.responses_outside_window += 1
        self.sent_at = 0.0
        self.mode = _HEAD
        self.run.busy.discard(self)

    # -- writing and closing ---------------------------------------------------------
    def send(self, now: float, intended: float = 0.0) -> None:
        """Write the next request; ``intended``: when the schedule meant it to go (0: now, the closed loop)."""
        if self.closing or self.transport is None or not self.tally.sending:
            return
        self.tally.take()
        request, self.card = self.requests[self.pos]
        self.pos += 1
        if self.pos == len(self.requests):
            self.pos = 0
        self.sent_at = now
        self.intended = intended or now
        self.run.busy.add(self)
        self.transport.write(request)

    def _retire(self) -> None:
        """The server said ``Connection: close``: close after its answer; a new connection takes over."""
        self.run.closed_by_server += 1
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, kind: str) -> None:
        """Count an error and drop the connection: after it, nothing read on it can be trusted."""
        self.tally.error(kind)
        self.sent_at = 0.0
        self.run.busy.discard(self)
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def expire(self, now: float, timeout: float) -> None:
        if self.sent_at and now - self.sent_at > timeout:
            self._fail("timeout")


class _HttpRun:
    def __init__(
        self,
        host: str,
        port: int,
        requests: Sequence[tuple[bytes, int]],
        tally: Tally,
        timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.requests = list(requests)
        self.tally = tally
        self.timeout = timeout
        self.tls = tls
        self.pacer: Pacer | None = None  # the open loop's schedule; None: closed loop
        self.idle: collections.deque[_Conn] = collections.deque()  # open loop: connections free to send
        self.live: set[_Conn] = set()
        self.busy: set[_Conn] = set()  # a request in flight
        self.tasks: set[asyncio.Task[None]] = set()
        self.done = asyncio.Event()
        self.opened = 0
        self.closed_by_server = 0
        self.stopping = False
        self._next_start = 0
        self._status_text: dict[int, str] = {}

    def status_text(self, status: int) -> str:
        text = self._status_text.get(status)
        if text is None:
            text = self._status_text[status] = str(status)
        return text

    def in_flight(self) -> int:
        return len(self.busy)

    def ready(self, conn: _Conn, now: float) -> None:
        """``conn`` is free: the closed loop sends on it at once; the open loop sends what is due, or parks it."""
        if not self.tally.sending:
            self.check_done()
            return
        pacer = self.pacer
        if pacer is None:
            conn.send(now)
        elif pacer.due(now) > 0:
            intended = pacer.next_intended()
            pacer.issued(1)
            conn.send(now, intended)
        else:
            self.idle.append(conn)

    def pace(self) -> float:
        """Send what is due on the idle connections; seconds until the next request is due (or a 1 ms
        recheck while a backlog waits for a connection)."""
        pacer = self.pacer
        assert pacer is not None
        now = time.perf_counter()
        due = pacer.due(now)
        idle = self.idle
        while due > 0 and idle and self.tally.sending:
            conn = idle.popleft()
            if conn.closing or conn.sent_at or conn not in self.live:
                continue
            intended = pacer.next_intended()
            pacer.issued(1)
            conn.send(now, intended)
            due -= 1
        if due > 0:
            pacer.issued(0, backlog=due)
            return _PACE_S
        return max(pacer.next_intended() - now, 0.0)

    def check_done(self) -> None:
        if not self.tally.sending and not self.in_flight():
            self.done.set()

    def tick(self) -> None:
        now = time.perf_counter()
        for c in list(self.live):
            c.expire(now, self.timeout)
        self.check_done()

    async def connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        start = self._next_start
        self._next_start += 7  # connections start at different places of the card cycle
        async with asyncio.timeout(self.timeout):
            _, proto = await loop.create_connection(
                lambda: _Conn(self, start),
                self.host,
                self.port,
                ssl=self.tls,
                server_hostname=self.host if self.tls is not None else None,
            )
        self.opened += 1
        return proto

    def replace(self) -> None:
        """A connection ended: open another while the run still sends."""
        if self.tally.sending and not self.stopping:
            task = asyncio.get_running_loop().create_task(self._reopen())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _reopen(self) -> None:
        delay = 0.0
        while self.tally.sending and not self.stopping:
            if delay:
                await asyncio.sleep(delay)
            try:
                conn = await self.connect()
            except (OSError, TimeoutError) as e:
                self.tally.error(connect_error_kind(e))
                delay = min(max(delay * 2, 0.05), _RECONNECT_MAX_S)
                continue
            self.ready(conn, time.perf_counter())
            return

    async def close(self) -> None:
        self.stopping = True
        for t in list(self.tasks):
            t.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        for c in list(self.live):
            c.closing = True
            if c.transport is not None:
                c.transport.close()
        await asyncio.sleep(0)  # let connection_lost run before the loop goes away


async def run_http(
    *,
    host: str,
    port: int,
    requests: Sequence[tuple[bytes, int]],
    concurrency: int,
    duration: float,
    warmup: float,
    timeout: float,
    tally: Tally,
    window: Window,
    rate: float = 0.0,
    tls: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """Drive ``requests`` (bytes, card index) round robin over ``concurrency`` connections: a closed loop,
    or with ``rate`` the open loop of the module docstring (``concurrency`` then caps what is in flight).

    Figures go to ``tally`` and ``window``; the connection figures are
    returned. Raises :class:`BenchError` when no connection can be opened.
    """
    if not requests:
        raise ValueError("no requests to send")
    loop = asyncio.get_running_loop()
    run = _HttpRun(host, port, requests, tally, timeout, tls)
    timers: dict[str, asyncio.TimerHandle] = {}

    def tick() -> None:
        run.tick()
        timers["tick"] = loop.call_later(_TICK_S, tick)

    def pace() -> None:
        if tally.sending:
            timers["pace"] = loop.call_later(run.pace(), pace)

    try:
        results = await asyncio.gather(*(run.connect() for _ in range(concurrency)), return_exceptions=True)
        conns = [r for r in results if isinstance(r, _Conn)]
        failures = [r for r in results if not isinstance(r, _Conn)]
        if not conns:
            e = failures[0]
            raise BenchError(f"cannot connect to {host}:{port}: {e!r}")
        for e in failures:
            if not isinstance(e, (OSError, TimeoutError)):
                raise e
            tally.error(connect_error_kind(e))
        timers["tick"] = loop.call_later(_TICK_S, tick)
        if warmup:
            timers["open"] = loop.call_later(warmup, window.open, tally)
        else:
            window.open(tally)
        now = time.perf_counter()
        if rate:
            run.pacer = Pacer(rate, now)
            run.idle.extend(conns)
            pace()
        else:
            for c in conns:
                c.send(now)
        for _ in failures:
            run.replace()  # keep trying those, backing off
        await run_then_drain(run.done, tally, window, warmup + duration, timeout, lambda: bool(run.in_flight()))
        out: dict[str, Any] = {
            "connections": concurrency,
            "connections_opened": run.opened,
            "connections_closed_by_server": run.closed_by_server,
            "unanswered_at_end": run.in_flight(),
        }
        if run.pacer is not None:
            out["offered_rate_per_s"] = rate
            out["pacer_max_backlog"] = run.pacer.max_backlog
        return out
    finally:
        tally.sending = False
        for t in timers.values():
            t.cancel()
        await run.close()
