"""The simulator's TCP server: an asyncio Protocol per connection, no streams.

Each connection has its own :class:`~switch.wire.framing.Deframer`. Requests are
answered synchronously inside ``data_received`` (decode, issuer, encode) and
all answers to one read go out in a single ``transport.write``: no task per
message, no log line per message. Only a ``delay`` fault defers an answer,
with ``loop.call_later``.

A framing error, or a frame whose MTI cannot even be read, closes that one
connection; every other connection carries on.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from acquirer_sim.config import SimConfig
from acquirer_sim.faults import FaultPlan
from acquirer_sim.issuer import Issuer
from acquirer_sim.ledger import Ledger
from acquirer_sim.malformed import format_error_reply
from acquirer_sim.rules import FaultRule
from switch.wire.codec import DecodeError, EncodeError, Message
from switch.wire.dialect import Dialect
from switch.wire.framing import Deframer, FramingError

if TYPE_CHECKING:
    from acquirer_sim.admin import AdminServer

__all__ = ["SimServer", "SimStats"]

log = logging.getLogger("isoswitch.sim")

# Answers to one read go out in slices of this many. One write per read
# makes client and server take turns (the client waits for the whole batch
# before sending more); slices let it send while we still work. Measured at
# 64 in flight: 16 gives ~30k/s, one write per read ~25k/s, 4 ~19k/s.
_FLUSH_EVERY = 16


# Distinct MTIs / response codes counted one by one; beyond, "other" (a peer cannot grow them without bound).
_MAX_LABELS = 64


class SimStats:
    """Counters since start. ``connections`` is the number open right now.

    ``by_mti`` (decoded messages) and ``by_rc`` (answers by DE 39, fault and
    format-error answers aside) feed the admin port's ``/metrics``.
    """

    __slots__ = (
        "connections",
        "connections_total",
        "requests",
        "responses",
        "decode_errors",
        "framing_errors",
        "faults",
        "by_mti",
        "by_rc",
    )
    _COUNTERS = __slots__[:7]

    def __init__(self) -> None:
        self.connections = 0
        self.connections_total = 0
        #: messages that decoded (whatever became of them)
        self.requests = 0
        #: frames written back (answers, format-error answers, garbage)
        self.responses = 0
        self.decode_errors = 0
        self.framing_errors = 0
        #: requests a fault rule took over
        self.faults = 0
        self.by_mti: dict[str, int] = {}
        self.by_rc: dict[str, int] = {}

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self._COUNTERS}


def _count(counts: dict[str, int], label: str) -> None:
    """Count a label not seen before (or "other" once there are too many)."""
    if label not in counts and len(counts) >= _MAX_LABELS:
        label = "other"
    counts[label] = counts.get(label, 0) + 1


class SimServer:
    """The simulated issuer host, in-process.

    ``sim = SimServer(SimConfig(port=0, admin_port=0))``, then ``host, port =
    await sim.start()`` ... ``await sim.stop()`` (or ``async with``); in
    between, ``sim.ledger``, ``sim.stats`` and ``sim.set_faults([...])``.
    """

    def __init__(self, config: SimConfig | None = None, *, ssl: _ssl.SSLContext | None = None) -> None:
        """``ssl``: a server context (``switch.wire.tls.server_context``) to speak TLS; None = plain TCP."""
        self.config = config = config or SimConfig()
        self._ssl = ssl
        dialect = Dialect.named(config.dialect, config.framing)
        self.dialect = dialect
        # Two streams from one seed, so adding a fault rule does not change auth codes.
        auth_seed = None if config.seed is None else f"{config.seed}:auth"
        fault_seed = None if config.seed is None else f"{config.seed}:faults"
        self.issuer = Issuer(config.rules, max_records=config.max_records, seed=auth_seed)
        self.faults = FaultPlan(config.rules.faults, seed=fault_seed)
        self.stats = SimStats()
        self.address: tuple[str, int] | None = None
        self.admin_address: tuple[str, int] | None = None
        self._server: asyncio.Server | None = None
        self._admin: AdminServer | None = None
        self._conns: set[_SimProtocol] = set()
        self._drained: asyncio.Event | None = None  # set by stop(), fired by the last connection_lost

    @property
    def ledger(self) -> Ledger:
        """The cardholder books (see :mod:`acquirer_sim.ledger`)."""
        return self.issuer.ledger

    def set_faults(self, rules: Iterable[FaultRule | Mapping[str, Any]]) -> None:
        """Replace the fault rules (dicts are parsed like the rules file's ``[[faults]]``)."""
        parsed = [r if isinstance(r, FaultRule) else FaultRule.from_mapping(r, i) for i, r in enumerate(rules)]
        self.faults.replace(parsed)

    def stats_dict(self) -> dict[str, int]:
        """Counters for ``GET /stats``: server, issuer and ledger together."""
        out = self.stats.as_dict()
        out["repeats"] = self.issuer.repeats
        out["records"] = self.ledger.records
        out["records_dropped"] = self.ledger.dropped
        return out

    # -- lifecycle ------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        """Listen (and start the admin API if configured); the bound (host, port)."""
        if self._server is not None:
            raise RuntimeError("SimServer already started")
        cfg = self.config
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _SimProtocol(self), cfg.host, cfg.port, backlog=cfg.backlog, reuse_address=True, ssl=self._ssl
        )
        self._server = server
        # With a host name bound on several addresses, port 0 gives each its
        # own port; the first socket is the one reported.
        sockname = server.sockets[0].getsockname()
        self.address = (sockname[0], sockname[1])
        if cfg.admin_port is not None:
            from acquirer_sim.admin import AdminServer  # aiohttp only when asked for

            admin = AdminServer(self)
            try:
                self.admin_address = await admin.start(cfg.admin_host or cfg.host, cfg.admin_port)
            except BaseException:
                server.close()
                self._server = None
                raise
            self._admin = admin
        log.info("sim listening on %s:%d (%s, %s)", self.address[0], self.address[1], cfg.dialect, cfg.framing)
        return self.address

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection, stop the admin API."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for conn in list(self._conns):
            conn.close()
        if self._conns:
            # transport.close() flushes what is buffered, then connection_lost runs.
            self._drained = asyncio.Event()
            try:
                await asyncio.wait_for(self._drained.wait(), timeout)
            except TimeoutError:
                for conn in list(self._conns):
                    conn.abort()
            self._drained = None
        await server.wait_closed()
        if self._admin is not None:
            admin, self._admin = self._admin, None
            await admin.stop()
        log.info("sim stopped")

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class _SimProtocol(asyncio.Protocol):
    """One ISO 8583 connection. The hot path is ``data_received``."""

    __slots__ = ("_sim", "_transport", "_deframer", "_timers", "_closing")

    def __init__(self, sim: SimServer) -> None:
        self._sim = sim
        self._transport: asyncio.Transport | None = None
        self._deframer = Deframer(sim.dialect.framing)
        self._timers: set[asyncio.TimerHandle] = set()
        self._closing = False

    # -- asyncio callbacks ----------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        sim = self._sim
        sim._conns.add(self)
        sim.stats.connections += 1
        sim.stats.connections_total += 1
        log.debug("connection from %s", transport.get_extra_info("peername"))

    def connection_lost(self, exc: Exception | None) -> None:
        for h in self._timers:
            h.cancel()
        self._timers.clear()
        self._closing = True
        self._transport = None  # transport <-> protocol is a cycle; let refcounting free both
        sim = self._sim
        if self in sim._conns:
            sim._conns.discard(self)
            sim.stats.connections -= 1
            if not sim._conns and sim._drained is not None:
                sim._drained.set()
        log.debug("connection closed (%s)", type(exc).__name__ if exc else "eof")

    def pause_writing(self) -> None:
        # A peer that does not read its answers must not make us buffer
        # without limit: stop reading its requests until it catches up.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._closing:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        sim = self._sim
        try:
            frames = self._deframer.feed(data)
        except FramingError:
            sim.stats.framing_errors += 1
            log.debug("framing error: closing the connection")
            self.close()
            return
        if not frames:
            return
        codec = sim.dialect.codec
        decode = codec.decode
        encode = codec.encode
        pack = sim.dialect.framing.pack
        handle = sim.issuer.handle
        faults = sim.faults
        by_mti, by_rc = sim.stats.by_mti, sim.stats.by_rc
        out: list[bytes] = []
        decoded = 0
        for frame in frames:
            try:
                msg = decode(frame)
            except DecodeError:
                if not self._malformed(frame, out):
                    break
                continue
            decoded += 1
            mti = msg["t"]
            if mti in by_mti:  # the common case inline: no call per message
                by_mti[mti] += 1
            else:
                _count(by_mti, mti)
            if faults:
                rule = faults.pick(msg)
                if rule is not None:
                    sim.stats.faults += 1
                    if not self._fault(rule, msg, out):
                        break
                    continue
            resp = handle(msg)
            if resp is not None:
                rc = resp.get("39") or "none"
                if rc in by_rc:
                    by_rc[rc] += 1
                else:
                    _count(by_rc, rc)
                try:
                    out.append(pack(encode(resp)))
                except (EncodeError, ValueError):
                    log.warning("answer to a %s could not be encoded; none sent", msg["t"])
                if len(out) >= _FLUSH_EVERY:
                    self._write(out)
                    out = []
        sim.stats.requests += decoded
        if out and not self._closing:
            self._write(out)
        if self._closing and self._transport is not None:
            self._transport.close()

    # -- helpers --------------------------------------------------------
    def _write(self, out: list[bytes]) -> None:
        assert self._transport is not None
        self._transport.write(out[0] if len(out) == 1 else b"".join(out))
        self._sim.stats.responses += len(out)

    def _malformed(self, frame: bytes, out: list[bytes]) -> bool:
        """Answer a frame that does not decode; False when the connection must close."""
        sim = self._sim
        sim.stats.decode_errors += 1
        reply = format_error_reply(sim.dialect.codec.spec, frame)
        if reply is None:
            log.debug("unreadable frame: closing the connection")
            self._flush_and_close(out)
            return False
        if reply:
            out.append(sim.dialect.framing.pack(sim.dialect.codec.encode(reply)))
        return True

    def _fault(self, rule: FaultRule, msg: Message, out: list[bytes]) -> bool:
        """Apply ``rule`` to ``msg``; False when the connection is closing."""
        action = rule.action
        if action == "no_reply":
            return True
        if action == "close":
            self._flush_and_close(out)
            return False
        sim = self._sim
        resp = sim.issuer.handle(msg)  # delay and garbage process the request
        if resp is None:
            return True
        if action == "garbage":
            out.append(sim.dialect.framing.pack(sim.faults.garbage()))
            return True
        framed = sim.dialect.framing.pack(sim.dialect.codec.encode(resp))
        loop = asyncio.get_running_loop()
        cell: list[asyncio.TimerHandle] = []
        handle = loop.call_later(rule.delay_ms / 1000.0, self._late_write, framed, cell)
        cell.append(handle)
        self._timers.add(handle)
        return True

    def _late_write(self, framed: bytes, cell: list[asyncio.TimerHandle]) -> None:
        self._timers.discard(cell[0])
        if not self._closing and self._transport is not None:
            self._write([framed])

    def _flush_and_close(self, out: list[bytes]) -> None:
        if out and not self._closing:
            self._write(out)
            out.clear()
        self.close()

    def close(self) -> None:
        """Close after flushing what is already written."""
        self._closing = True
        for h in self._timers:
            h.cancel()
        self._timers.clear()
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
