"""The ISO listener: acquirer hosts and terminals connect to the switch over ISO 8583.

An asyncio ``Protocol`` server speaking the links' dialects and framings
(``ListenerConfig.dialect`` / ``framing``). Per message:

- **0800** is answered here (0810, DE 39 ``00`` for sign-on 001, sign-off
  002, echo 301; ``12`` for another DE 70). No sign-on is required first.
- **0100, 0200, 0220, 0400, 0420, 0421** are recorded and forwarded through
  the orders service (:meth:`OrdersService.iso_start` and ``iso_follow_up``),
  exactly like a REST operation: a write-ahead intent, the router (BIN of DE
  2), the result, an order with ``source = iso`` in ``GET /orders/`` of the
  project that owns the terminal, and an unknown outcome reversed by
  store-and-forward. The host sees our DE 11 (its destination's STAN space),
  DE 37 (a new RRN) and DE 7; the peer gets back its own DE 7, 11, 37 and
  every other field it sent (CVV2 and 3-D Secure fields 120-124 aside), with
  the host's DE 38 and 39 (and DE 4 of a partial approval, DE 54 when the
  host adds it).
- **Which project.** DE 41 + DE 42 (right-trimmed) are looked up in the
  projects' ``terminal_id`` / ``merchant_id`` settings. No project with that
  merchant id: ``03`` (invalid merchant); the merchant exists but not with
  that terminal: ``58`` (not permitted to terminal). Nothing is recorded.
- **Errors.** Nothing sent (no route, no ready link): ``91``. Sent but no
  answer (timeout, lost link; the switch reverses it): ``68``. A repeat or a
  reversal of a request still in flight waits for its outcome. See
  :class:`switch.orders.service.IsoResult` for the rest (25, 12, 13, 14, 94).
- **Garbage.** A framing error, or a frame whose MTI is not even readable
  (or has no response MTI: function digit 9), closes that connection only.
  A frame with a readable request MTI that does not decode, or whose fields
  hold control characters (NUL, CR, ...: no ISO field of ours may, and
  PostgreSQL refuses NUL), is answered ``30`` (format error) with whatever
  DE 11 and DE 41 could be read.
- **MAC.** A peer listed in ``ListenerConfig.peers`` (by DE 41) must MAC
  every message (:mod:`switch.listener_mac`: AES-CMAC in DE 64/128); a
  missing or wrong MAC is answered ``63`` and nothing is forwarded. Every
  answer to such a peer carries a MAC.
- **Metrics** (:mod:`switch.metrics`): open connections, and every request
  answered by MTI (``other`` beyond the MTIs above: the peer must not be able
  to make up label values) and the DE 39 it got.

>>> ListenerConfig(port=0, peers={"TERM0001": "00" * 16}).keys()["TERM0001"] == bytes(16)
True
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as _ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import iso8583

from switch import metrics
from switch.listener_mac import parse_key, sign, verify
from switch.orders.errors import OrderError
from switch.orders.iso import IsoResult
from switch.store.projects import Project
from switch.wire.cards import loggable
from switch.wire.codec import DecodeError, EncodeError, Message, peek_mti
from switch.wire.dialect import DIALECTS, Dialect
from switch.wire.framing import FRAMINGS, Deframer, FramingError
from switch.wire.messages import NM_ECHO, NM_SIGN_OFF, NM_SIGN_ON, is_response, network_response, response_mti

__all__ = ["IsoListener", "ListenerConfig", "ListenerStats"]

log = logging.getLogger("isoswitch.listener")

#: Seconds :meth:`IsoListener.close` gives requests in progress when no timeout is passed.
CLOSE_TIMEOUT = 5.0

_STARTS = frozenset({"0100", "0200"})
_FOLLOW_UPS = frozenset({"0220", "0400", "0420", "0421"})
# Never echoed back: card-security data the peer sent (MESSAGES.md), the bitmaps and the MAC fields.
_NOT_ECHOED = frozenset({"p", "1", "64", "128", "120", "121", "122", "123", "124"})
_FROM_HOST = ("38", "39", "54")
# MTIs with a label of their own in isoswitch_listener_messages; any other is "other".
_COUNTED = _STARTS | _FOLLOW_UPS | {"0800"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerConfig:
    """The ISO listener's settings; each default is what ``isoswitch up --iso-port`` uses."""

    host: str = "127.0.0.1"
    port: int = 8585  # 0: an ephemeral port (tests)
    dialect: str = "ascii"  # schemas/iso8583/NAME.json, as the links
    framing: str = "binary2"  # binary2 | ascii4
    peers: Mapping[str, str] = field(default_factory=dict)  # DE 41 -> AES key (hex): that terminal must MAC
    max_connections: int = 256  # beyond: a new connection is closed at once
    max_in_flight: int = 256  # requests of one connection being worked on; beyond: stop reading it
    idle_timeout: float = 300.0  # seconds without a byte from the peer before its connection is closed; 0 = never
    directory_refresh: float = 1.0  # at most this often (s), an unknown DE 41/42 re-reads the projects
    reuse_port: bool = True  # SO_REUSEPORT: the workers of `up --workers N` share the port
    ssl: _ssl.SSLContext | None = None  # TLS for the listener (cert/key from the security config)

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"listener dialect must be one of {DIALECTS}")
        if self.framing not in FRAMINGS:
            raise ValueError(f"listener framing must be one of {tuple(FRAMINGS)}")
        if not 0 <= self.port <= 65535 or self.max_connections < 1 or self.max_in_flight < 1:
            raise ValueError("listener port must be 0..65535, max_connections and max_in_flight >= 1")
        for terminal, key in self.peers.items():
            try:
                parse_key(key)
            except ValueError as e:
                raise ValueError(f"listener peer {terminal!r}: {e}") from None

    def keys(self) -> dict[str, bytes]:
        """MAC keys by terminal id (right-trimmed DE 41)."""
        return {t.rstrip(): parse_key(k) for t, k in self.peers.items()}


@dataclass(slots=True)
class ListenerStats:
    connections: int = 0  # open now
    accepted: int = 0
    refused: int = 0  # over max_connections
    requests: int = 0
    answered: int = 0
    format_errors: int = 0  # answered 30
    garbage_closes: int = 0  # connections closed for unreadable input
    idle_closes: int = 0
    mac_failures: int = 0
    unknown_terminals: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class _Orders(Protocol):
    async def iso_start(self, project: Project, msg: Message) -> IsoResult: ...
    async def iso_follow_up(self, project: Project, msg: Message) -> IsoResult: ...


class _Projects(Protocol):
    async def list_all(self) -> list[Project]: ...


class _Directory:
    """Projects by (terminal id, merchant id), re-read at most every ``refresh`` seconds on a miss."""

    def __init__(self, projects: _Projects, refresh: float) -> None:
        self._projects = projects
        self._refresh = refresh
        self._by_ids: dict[tuple[str, str], Project] = {}
        self._merchants: set[str] = set()
        self._loaded = -float("inf")
        self._lock = asyncio.Lock()

    async def find(self, terminal: str, merchant: str) -> Project | str:
        """The project, or the DE 39 to refuse with (03 unknown merchant, 58 terminal not permitted)."""
        key = (terminal, merchant)
        project = self._by_ids.get(key)
        if project is None and time.monotonic() - self._loaded >= self._refresh:
            async with self._lock:
                if time.monotonic() - self._loaded >= self._refresh:
                    await self._load()
            project = self._by_ids.get(key)
        if project is not None:
            return project
        return "58" if merchant in self._merchants else "03"

    async def _load(self) -> None:
        projects = await self._projects.list_all()
        self._by_ids = {(p.settings.terminal_id, p.settings.merchant_id): p for p in projects}
        self._merchants = {p.settings.merchant_id for p in projects}
        self._loaded = time.monotonic()


class IsoListener:
    """``await start()``, then ``address``; ``await close()`` stops accepting, drains and closes."""

    def __init__(self, config: ListenerConfig, orders: _Orders, projects: _Projects) -> None:
        self.config = config
        self.dialect = Dialect.named(config.dialect, config.framing)
        self.stats = ListenerStats()
        self.address: tuple[str, int] | None = None
        self._orders = orders
        self._directory = _Directory(projects, config.directory_refresh)
        self._keys = config.keys()
        self._server: asyncio.Server | None = None
        self._conns: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._answered: dict[tuple[str, str], metrics.Count] = {}
        metrics.watch_listener(self)

    async def start(self) -> tuple[str, int]:
        if self._server is not None:
            raise RuntimeError("listener already started")
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), cfg.host, cfg.port, ssl=cfg.ssl, reuse_address=True, reuse_port=cfg.reuse_port
        )
        sockname = self._server.sockets[0].getsockname()
        self.address = (sockname[0], sockname[1])
        log.info("ISO listener on %s:%d (%s, %s)", sockname[0], sockname[1], cfg.dialect, cfg.framing)
        return self.address

    async def close(self, *, timeout: float | None = None) -> None:
        """Stop accepting; give requests in progress ``timeout`` seconds (None: ``CLOSE_TIMEOUT``) to answer;
        close every connection."""
        timeout = CLOSE_TIMEOUT if timeout is None else timeout
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for t in late:
                t.cancel()
            if late:
                await asyncio.wait(late)
        for conn in list(self._conns):
            conn.close()
        await server.wait_closed()

    # -- one message ----------------------------------------------------------

    def _spawn(self, conn: _Connection, msg: Message, frame: bytes) -> None:
        task = asyncio.ensure_future(self._answer(conn, msg, frame))
        self._tasks.add(task)
        conn.in_flight += 1
        conn.throttle()

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            conn.in_flight -= 1
            conn.throttle()

        task.add_done_callback(done)

    async def _answer(self, conn: _Connection, msg: Message, frame: bytes) -> None:
        try:
            reply = await self._reply(msg, frame)
        except Exception:
            log.exception("ISO request failed", extra={"iso_message": loggable(msg)})
            reply = _refusal(msg, "96")
        if reply is not None:
            self._count(msg["t"], reply.get("39"))
            conn.send(reply)

    def _count(self, mti: str, rc: str | None) -> None:
        key = (mti if mti in _COUNTED else "other", metrics.rc_label(rc))
        cell = self._answered.get(key)
        if cell is None:
            cell = self._answered[key] = metrics.counter("isoswitch_listener_messages", *key)
        cell.inc()

    async def _reply(self, msg: Message, frame: bytes) -> Message | None:
        mti = msg["t"]
        if is_response(mti):
            log.info("unsolicited response from a peer ignored", extra={"iso_message": loggable(msg)})
            return None
        self.stats.requests += 1
        terminal = msg.get("41", "").rstrip()
        key = self._keys.get(terminal)
        if key is not None and not verify(msg, frame, key):
            self.stats.mac_failures += 1
            log.warning("bad or missing MAC", extra={"terminal_id": terminal, "mti": mti})
            return _refusal(msg, "63")
        if mti == "0800":
            code = "00" if msg.get("70") in (NM_SIGN_ON, NM_SIGN_OFF, NM_ECHO) else "12"
            return network_response(msg, code)
        if mti not in _STARTS and mti not in _FOLLOW_UPS:
            return _refusal(msg, "12")
        found = await self._directory.find(terminal, msg.get("42", "").rstrip())
        if isinstance(found, str):
            self.stats.unknown_terminals += 1
            log.info("request from an unknown terminal refused", extra={"terminal_id": terminal, "iso_code": found})
            return _refusal(msg, found)
        try:
            if mti in _STARTS and not (mti == "0200" and msg.get("3", "")[:2] == "20"):
                result = await self._orders.iso_start(found, msg)
            else:
                result = await self._orders.iso_follow_up(found, msg)
        except OrderError as e:
            # Raised only for what the service could not express as a code (bad stored data, a race).
            log.warning("ISO request refused", extra={"failure_type": e.failure_type, "order_id": e.order_id})
            return _refusal(msg, "30" if e.failure_type == "validation" else "96")
        if result.response is None:
            return _refusal(msg, result.code or "96")
        return _mapped(msg, result.response)


class _Connection(asyncio.Protocol):
    """One peer's connection: deframe, decode, hand each request to the listener, write answers."""

    def __init__(self, listener: IsoListener) -> None:
        self.listener = listener
        self.deframer = Deframer(listener.dialect.framing)
        self.transport: asyncio.Transport | None = None
        self.in_flight = 0
        self._paused = False  # reading paused: too many requests in progress
        self._write_paused = False  # the peer does not read its answers
        self._last_rx = 0.0
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        lst = self.listener
        if len(lst._conns) >= lst.config.max_connections:
            lst.stats.refused += 1
            log.warning("connection refused: %d open", len(lst._conns))
            self.transport.abort()
            return
        lst._conns.add(self)
        lst.stats.accepted += 1
        lst.stats.connections = len(lst._conns)
        loop = asyncio.get_running_loop()
        self._last_rx = loop.time()
        if lst.config.idle_timeout > 0:
            self._idle = loop.call_later(lst.config.idle_timeout, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        lst = self.listener
        lst._conns.discard(self)
        lst.stats.connections = len(lst._conns)
        self.transport = None  # answers still in progress are dropped

    def pause_writing(self) -> None:
        self._write_paused = True
        self.throttle()

    def resume_writing(self) -> None:
        self._write_paused = False
        self.throttle()

    def throttle(self) -> None:
        """Read only while the peer reads its answers and has fewer than max_in_flight requests in progress."""
        t = self.transport
        if t is None or t.is_closing():
            return
        pause = self._write_paused or self.in_flight >= self.listener.config.max_in_flight
        if pause and not self._paused:
            t.pause_reading()
        elif not pause and self._paused:
            t.resume_reading()
        self._paused = pause

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        lst = self.listener
        self._last_rx = asyncio.get_running_loop().time()
        try:
            frames = self.deframer.feed(data)
        except FramingError:
            self._garbage("framing error")
            return
        codec = lst.dialect.codec
        for frame in frames:
            try:
                msg = codec.decode(frame)
            except DecodeError as e:
                if not self._malformed(frame, e.field):
                    return
                continue
            if not _answerable(peek_mti(frame)):
                self._garbage("unanswerable MTI")
                return
            bad = _control_field(msg)
            if bad is not None:
                if not self._malformed(frame, bad):
                    return
                continue
            lst._spawn(self, msg, frame)

    def _malformed(self, frame: bytes, field: str) -> bool:
        """Answer 30 to a request whose MTI is readable; False (connection closed) when it is not."""
        mti = peek_mti(frame)
        if mti is None or not mti.startswith("0") or not _answerable(mti):
            self._garbage(f"unreadable message ({field})")
            return False
        if is_response(mti):
            return True  # nothing is owed to a garbled response
        lst = self.listener
        lst.stats.format_errors += 1
        log.info("malformed %s answered 30 (field %s)", mti, field)
        reply: Message = {"t": response_mti(mti), "39": "30"}
        reply.update(_salvage(lst.dialect.codec.spec, frame))
        lst._count(mti, "30")
        self.send(reply)
        return True

    def _garbage(self, why: str) -> None:
        self.listener.stats.garbage_closes += 1
        log.warning("closing a connection: %s", why)
        self.abort()

    def _check_idle(self) -> None:
        self._idle = None
        if self.transport is None:
            return
        loop = asyncio.get_running_loop()
        quiet = loop.time() - self._last_rx
        limit = self.listener.config.idle_timeout
        if quiet >= limit and self.in_flight == 0:
            self.listener.stats.idle_closes += 1
            log.info("closing an idle connection (%.0f s)", quiet)
            self.close()
        else:
            self._idle = loop.call_later(max(limit - quiet, 0.05), self._check_idle)

    def send(self, reply: Message) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        lst = self.listener
        codec = lst.dialect.codec
        key = lst._keys.get(reply.get("41", "").rstrip())
        try:
            body = sign(codec, reply, key) if key is not None else codec.encode(reply)
        except EncodeError:
            log.warning("answer could not be encoded; sending 96", extra={"mti": reply.get("t")})
            fallback = {k: v for k, v in reply.items() if k in ("t", "11", "41")}
            fallback["39"] = "96"
            body = sign(codec, fallback, key) if key is not None else codec.encode(fallback)
        t.write(lst.dialect.framing.pack(body))
        lst.stats.answered += 1

    # Sync, unlike the core's ``async close(*, timeout=None)``: this is one transport, whose close()
    # only schedules the socket's closing (asyncio calls connection_lost later); nothing to await.
    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _answerable(mti: str | None) -> bool:
    """Whether a response MTI exists for ``mti``: four digits, function digit not 9 (0190 -> no 01A0)."""
    return mti is not None and mti[2] != "9"


def _control_field(msg: Mapping[str, str]) -> str | None:
    """The first field holding a control character (C0 or DEL), or None."""
    for k, v in msg.items():
        if not v.isprintable():  # the codec decodes ASCII: only C0 and DEL are not printable
            return k
    return None


def _echo(req: Mapping[str, str]) -> Message:
    """The peer's request fields a response carries back, with the response MTI."""
    out = {k: v for k, v in req.items() if k not in _NOT_ECHOED}
    out["t"] = response_mti(req["t"])
    return out


def _refusal(req: Mapping[str, str], code: str) -> Message:
    out = _echo(req)
    out["39"] = code
    return out


def _mapped(req: Mapping[str, str], resp: Mapping[str, str]) -> Message:
    """The host's answer as the peer sees it: its own request echoed, the host's DE 38/39 (54), DE 4 of a partial."""
    out = _echo(req)
    for k in _FROM_HOST:
        if k in resp:
            out[k] = resp[k]
    if req["t"] in _STARTS and "4" in resp:
        out["4"] = resp["4"]
    return out


def _salvage(spec: Mapping[str, Any], frame: bytes) -> Message:
    """DE 11 and DE 41 of an undecodable frame, when they decode before the bad field (for matching)."""
    doc: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        try:
            doc, _ = iso8583.decode(bytearray(frame), spec)
        except iso8583.DecodeError as e:
            doc = dict(e.doc_dec)
    out: Message = {}
    stan, terminal = doc.get("11"), doc.get("41")
    if isinstance(stan, str) and len(stan) == 6 and stan.isdigit():
        out["11"] = stan
    if isinstance(terminal, str) and len(terminal) == 8 and terminal.isascii() and terminal.isprintable():
        out["41"] = terminal
    return out
