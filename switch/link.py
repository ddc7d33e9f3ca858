"""One connection to a host: sign-on, request/response matching, echo,
reconnect, backpressure and graceful close.

The socket side is an asyncio ``Protocol`` (no streams: one less buffer
copy and no per-read task wakeups). Pending requests live in a dict keyed
by :func:`switch.wire.messages.match_key` (MTI class + DE 41 + DE 11, like jPOS
QMUX); each has a timer, not a ``wait_for`` task, because a timer handle is
an order of magnitude cheaper on the hot path.

Metrics (:mod:`switch.metrics`, labelled with the link's destination): the
round trip of each answered request by MTI, responses by MTI and DE 39,
timeouts, late responses; the state and the requests in flight are read
when the metrics are flushed, not counted here.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import ssl as _ssl
from collections.abc import Callable
from dataclasses import dataclass

from switch import metrics
from switch.errors import DuplicateRequest, LinkBusy, LinkClosed, LinkNotReady, RequestTimeout
from switch.stan import StanSpace
from switch.wire.cards import loggable
from switch.wire.codec import DecodeError, Message
from switch.wire.dialect import Dialect
from switch.wire.framing import Deframer, FramingError
from switch.wire.messages import (
    NM_ECHO,
    NM_SIGN_OFF,
    NM_SIGN_ON,
    de7,
    is_response,
    match_key,
    network_request,
    network_response,
)

__all__ = ["Link", "LinkConfig", "LinkState", "LinkStats", "UnmatchedHandler"]

log = logging.getLogger("isoswitch.link")

Key = tuple[str, str, str]


class LinkState(enum.Enum):
    IDLE = "idle"  # not started
    CONNECTING = "connecting"
    SIGNING_ON = "signing_on"
    READY = "ready"
    CLOSING = "closing"  # no new requests; draining
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """One link's settings; every default is what ``isoswitch`` uses."""

    host: str
    port: int
    name: str = ""  # default: "host:port"
    dialect: str = "ascii"  # schemas/iso8583/NAME.json
    framing: str = "binary2"  # binary2 | ascii4
    timeout: float = 5.0  # seconds a request waits for its response
    max_in_flight: int = 1024  # requests pending at once; beyond: LinkBusy
    sign_on: bool = True  # 0800/001 before ready, 0800/002 on close
    sign_on_timeout: float = 5.0
    echo_interval: float = 30.0  # idle seconds before an 0800/301; 0 = never
    connect_timeout: float = 5.0
    reconnect_initial: float = 0.05  # first backoff; doubles per failure
    reconnect_max: float = 10.0  # backoff cap
    drain_timeout: float = 5.0  # close() waits this long for in-flight requests
    stan_quarantine: float = 120.0  # seconds a timed-out STAN is not reused
    ssl: _ssl.SSLContext | None = None

    @property
    def label(self) -> str:
        return self.name or f"{self.host}:{self.port}"


@dataclass(slots=True)
class LinkStats:
    sent: int = 0
    received: int = 0
    timeouts: int = 0
    unmatched: int = 0  # responses nobody waits for (late or unknown)
    decode_errors: int = 0
    busy: int = 0  # requests refused by the in-flight cap
    connects: int = 0
    disconnects: int = 0
    echoes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Message]
    timer: asyncio.TimerHandle | None = None
    rrn: str | None = None
    sent: float = 0.0  # loop time the request was queued
    cells: metrics.RequestCells | None = None  # its MTI's round-trip histogram and timeout counter


class _Protocol(asyncio.Protocol):
    __slots__ = ("link", "deframer", "transport")

    def __init__(self, link: Link) -> None:
        self.link = link
        self.deframer = Deframer(link.dialect.framing)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.deframer.feed(data)
        except FramingError as e:
            # The stream is out of sync: nothing after this can be trusted.
            log.warning("link %s: %s; closing", self.link.label, e)
            assert self.transport is not None
            self.transport.close()
            return
        on_frame = self.link._on_frame
        for frame in frames:
            on_frame(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link._on_lost(self, exc)


UnmatchedHandler = Callable[[Message], None]


class Link:
    """A client connection to one host. ``start()``, ``await request(msg)``, ``await close()``."""

    def __init__(
        self,
        config: LinkConfig,
        *,
        on_unmatched: UnmatchedHandler | None = None,
        stans: StanSpace | None = None,
        destination: str | None = None,
    ) -> None:
        """``destination``: the pool this link belongs to, for metrics (default: the link's label)."""
        self.config = config
        self.label = config.label
        self.destination = destination or self.label
        self._metrics = metrics.iso(self.destination)
        self.dialect = Dialect.named(config.dialect, config.framing)
        self._codec = self.dialect.codec
        self._pack = self.dialect.framing.pack
        self.state = LinkState.IDLE
        self.stats = LinkStats()
        self.on_unmatched = on_unmatched
        self._pending: dict[Key, _Pending] = {}
        self._busy = stans if stans is not None else StanSpace()
        self._proto: _Protocol | None = None
        self._wbuf: list[bytes] = []
        self._flush_scheduled = False
        self._last_rx = 0.0
        self._ready = asyncio.Event()
        self._closed = asyncio.Event()
        self._lost: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        metrics.watch_link(self)

    # -- public ---------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.state is LinkState.READY

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def stans(self) -> StanSpace:
        """The STAN space this link draws from (shared by every link of a pool)."""
        return self._busy

    def start(self) -> None:
        """Begin connecting (and reconnecting) in the background."""
        if self._task is not None:
            raise RuntimeError(f"link {self.label} already started")
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name=f"link {self.label}")

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until signed on; raises ``TimeoutError`` after ``timeout``."""
        async with asyncio.timeout(timeout):
            await self._ready.wait()

    async def request(self, msg: Message, *, timeout: float | None = None) -> Message:
        """Send ``msg`` and return the matching response.

        DE 11 (when absent) and DE 7 (when absent) are stamped into ``msg``,
        so the caller holds the request exactly as sent.
        Raises LinkNotReady, LinkBusy, DuplicateRequest (nothing sent), or
        RequestTimeout, LinkClosed (sent: outcome unknown).
        """
        if self.state is not LinkState.READY:
            raise LinkNotReady(f"link {self.label} is {self.state.value}")
        if len(self._pending) >= self.config.max_in_flight:
            self.stats.busy += 1
            raise LinkBusy(f"link {self.label} has {len(self._pending)} requests in flight")
        return await self._exchange(msg, self.config.timeout if timeout is None else timeout)

    def send(self, msg: Message) -> None:
        """Send without waiting for an answer (replies to the host's own requests)."""
        if self._proto is None:
            raise LinkNotReady(f"link {self.label} is {self.state.value}")
        self._write(self._pack(self._codec.encode(msg)))

    async def close(self, *, timeout: float | None = None) -> None:
        """Stop new requests, drain in-flight ones, sign off, close. Idempotent."""
        if self.state in (LinkState.CLOSED, LinkState.IDLE) and self._task is None:
            self.state = LinkState.CLOSED
            return
        if self.state is LinkState.CLOSING:
            await self._closed.wait()
            return
        was_ready = self.state is LinkState.READY
        self.state = LinkState.CLOSING
        self._ready.clear()
        deadline = self.config.drain_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        try:
            # Before READY the only exchange in flight is our own sign-on: nothing to drain.
            if was_ready and self._pending:
                self._drained = loop.create_future()
                try:
                    await asyncio.wait_for(asyncio.shield(self._drained), deadline)
                except TimeoutError:
                    log.warning("link %s: %d requests still in flight at close", self.label, len(self._pending))
            if was_ready and self.config.sign_on and self._proto is not None:
                try:
                    await self._exchange(network_request(NM_SIGN_OFF), min(self.config.sign_on_timeout, 2.0))
                except (LinkClosed, RequestTimeout, LinkNotReady):
                    pass  # the host may already be gone; closing anyway
                else:
                    log.info("link %s: signed off", self.label)
        finally:
            # Even when close() itself is cancelled: a link left CLOSING would hang every later close().
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            self._drop_connection()
            self._fail_pending(LinkClosed(f"link {self.label} closed"))
            self.state = LinkState.CLOSED
            self._closed.set()

    # -- sending --------------------------------------------------------
    async def _exchange(self, msg: Message, timeout: float) -> Message:
        if self._proto is None:
            raise LinkNotReady(f"link {self.label} is {self.state.value}")
        busy = self._busy
        stan = msg.get("11")
        if stan is None:
            stan = msg["11"] = busy.next()
        if "7" not in msg:
            msg["7"] = de7()
        key = match_key(msg)
        pending = self._pending
        if key in pending:
            raise DuplicateRequest(f"link {self.label}: request {key[0]}/{key[2]} already in flight")
        data = self._pack(self._codec.encode(msg))
        loop = self._loop
        assert loop is not None
        fut: asyncio.Future[Message] = loop.create_future()
        entry = _Pending(fut, None, msg.get("37"), loop.time(), self._metrics.request(msg["t"]))
        pending[key] = entry
        busy.in_flight.add(stan)
        entry.timer = loop.call_later(timeout, self._expire, key, entry)
        self._write(data)
        self.stats.sent += 1
        try:
            return await fut
        finally:
            if pending.get(key) is entry:
                del pending[key]
                entry.timer.cancel()
                if fut.cancelled():
                    # The caller gave up but the request went out: an answer may still come.
                    busy.quarantine[stan] = loop.time() + self.config.stan_quarantine
            busy.in_flight.discard(stan)
            if not pending and self._drained is not None and not self._drained.done():
                self._drained.set_result(None)

    def _write(self, data: bytes) -> None:
        # Coalesce: frames queued in one loop iteration go out in one write.
        self._wbuf.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        buf, self._wbuf = self._wbuf, []
        proto = self._proto
        if proto is None or proto.transport is None or proto.transport.is_closing():
            return  # pending requests fail through connection_lost
        proto.transport.write(buf[0] if len(buf) == 1 else b"".join(buf))

    def _expire(self, key: Key, entry: _Pending) -> None:
        if self._pending.get(key) is not entry:
            return
        del self._pending[key]
        self.stats.timeouts += 1
        if entry.cells is not None:
            entry.cells.timeouts.inc()
        assert self._loop is not None
        # A late answer must never meet a new request that reused this STAN.
        self._busy.quarantine[key[2]] = self._loop.time() + self.config.stan_quarantine
        if not entry.future.done():
            entry.future.set_exception(RequestTimeout(f"link {self.label}: no response to {key[0]}/{key[2]}"))

    # -- receiving ------------------------------------------------------
    def _on_frame(self, frame: bytes) -> None:
        try:
            msg = self._codec.decode(frame)
        except DecodeError as e:
            # A bad message does not mean a bad stream: keep the link.
            self.stats.decode_errors += 1
            log.warning("link %s: undecodable message (%s)", self.label, e)
            return
        self.stats.received += 1
        assert self._loop is not None
        self._last_rx = now = self._loop.time()
        mti = msg["t"]
        if is_response(mti):
            entry = self._pending.pop(match_key(msg), None)
            if entry is not None:
                rrn = msg.get("37")
                if entry.rrn is not None and rrn is not None and rrn != entry.rrn:
                    # Same key but another transaction: not ours. Put it back.
                    self._pending[match_key(msg)] = entry
                else:
                    assert entry.timer is not None
                    entry.timer.cancel()
                    if entry.cells is not None:
                        entry.cells.duration.observe(now - entry.sent)
                    self._metrics.response(mti, msg.get("39")).inc()
                    if not entry.future.done():
                        entry.future.set_result(msg)
                    return
            if not mti.startswith("08"):
                # What LateResponses counts too (its request timed out or was given up), per destination here.
                self._metrics.late.inc()
        elif mti == "0800":
            self.send(network_response(msg))
            return
        self.stats.unmatched += 1
        if self.on_unmatched is not None:
            try:
                self.on_unmatched(msg)
            except Exception:
                # A faulty handler must not take the connection down with it.
                log.exception("link %s: unmatched-message handler failed", self.label)
        else:
            log.info("link %s: unmatched message %s", self.label, loggable(msg))

    def _on_lost(self, proto: _Protocol, exc: Exception | None) -> None:
        if proto is not self._proto:
            return
        self._proto = None
        self.stats.disconnects += 1
        self._ready.clear()
        if self.state is LinkState.READY:
            self.state = LinkState.CONNECTING
        self._fail_pending(LinkClosed(f"link {self.label} lost its connection"))
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def _fail_pending(self, err: Exception) -> None:
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            if entry.timer is not None:
                entry.timer.cancel()
            if not entry.future.done():
                entry.future.set_exception(err)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _drop_connection(self) -> None:
        proto = self._proto
        if proto is not None and proto.transport is not None:
            proto.transport.close()

    # -- lifecycle ------------------------------------------------------
    async def _run(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            if failures:
                await asyncio.sleep(self._backoff(failures))
            if self.state is LinkState.CLOSING:
                return
            self.state = LinkState.CONNECTING
            try:
                async with asyncio.timeout(cfg.connect_timeout):
                    _, proto = await loop.create_connection(lambda: _Protocol(self), cfg.host, cfg.port, ssl=cfg.ssl)
            except (OSError, TimeoutError) as e:
                failures += 1
                log.info("link %s: connect failed (%s); retry %d", self.label, e.__class__.__name__, failures)
                continue
            self._proto = proto
            self._lost = loop.create_future()
            self._last_rx = loop.time()
            self.stats.connects += 1
            self.state = LinkState.SIGNING_ON
            if cfg.sign_on:
                try:
                    resp = await self._exchange(network_request(NM_SIGN_ON), cfg.sign_on_timeout)
                except (LinkClosed, RequestTimeout, LinkNotReady) as e:
                    resp = {"39": e.__class__.__name__}
                if resp.get("39") != "00":
                    failures += 1
                    log.warning("link %s: sign-on refused (%s)", self.label, resp.get("39"))
                    self._drop_connection()
                    await self._lost
                    continue
            if self._proto is not proto or self.state is not LinkState.SIGNING_ON:
                failures += 1
                continue
            failures = 0
            self.state = LinkState.READY
            self._ready.set()
            log.info("link %s: ready", self.label)
            await self._watch(self._lost)
            failures = 1  # reconnect after the first (short) backoff

    async def _watch(self, lost: asyncio.Future[None]) -> None:
        """Until the connection is lost: echo when idle, expire STAN quarantine."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        tick = cfg.echo_interval if cfg.echo_interval > 0 else 30.0
        while not lost.done():
            try:
                await asyncio.wait_for(asyncio.shield(lost), tick / 2)
                return
            except TimeoutError:
                pass
            now = loop.time()
            self._busy.expire(now)
            if cfg.echo_interval <= 0 or now - self._last_rx < cfg.echo_interval:
                continue
            if self.state is not LinkState.READY:
                continue
            try:
                self.stats.echoes += 1
                resp = await self._exchange(network_request(NM_ECHO), cfg.sign_on_timeout)
                if resp.get("39") != "00":
                    raise LinkClosed(f"echo answered {resp.get('39')}")
            except (RequestTimeout, LinkClosed, LinkNotReady) as e:
                log.warning("link %s: echo failed (%s); reconnecting", self.label, e)
                self._drop_connection()

    def _backoff(self, failures: int) -> float:
        cfg = self.config
        cap = min(cfg.reconnect_max, cfg.reconnect_initial * (2 ** min(failures - 1, 20)))
        return cap * random.uniform(0.5, 1.0)  # jitter: hosts are not hit in lockstep
