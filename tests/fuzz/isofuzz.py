"""A seeded ISO 8583 frame fuzzer that attacks a server over real TCP on 127.0.0.1.

The target is a separate process: ``python -m acquirer_sim`` (:func:`start_sim`),
or the ISO listener of ``isoswitch serve --iso-port`` routed to such a sim,
with its embedded PostgreSQL (:func:`start_listener`). A crash is then the
process dying or refusing connections, and its memory is its own RSS, not
the test runner's.

How a campaign runs:

- ``streams`` connections each send batches of mutated frames (valid
  requests with bytes flipped, cut, grown, spliced, bitmaps and length
  digits garbled, MTIs replaced, or plain random bytes), each batch followed
  by a *sync* 0800 whose 0810 proves the target processed the batch (it
  answers in order on one connection). A connection the target closes
  (a frame whose MTI cannot be read) is counted and reopened.
- A share of frames attacks the framing itself on a fresh connection each:
  headers announcing more than is sent, lone header bytes, empty frames,
  a valid frame dribbled one byte per write.
- A control connection opened beside them sends a well-formed 0800 and an
  0100 for 4111 1111 1111 1111 every ``control_every`` frames and checks the
  answers (0810/0110, DE 39 = 00, DE 11 echoed).

What fails a run (the oracle): the target dying or refusing a connection; a
control answer that is wrong or missing; an answer our codec cannot read; the
target closing a connection after a frame whose MTI reads (only an unreadable
one may make it hang up); a dribbled valid frame not answered; an error line
in its log (JSON ``"level": "error"``/``"critical"``, a traceback); its memory
growing past a bound; and, for the listener, a difference between the
switch's books and the issuer's ledger once everything settled.

Against the listener the valid requests (and so most mutated ones) and the
control's carry the DE 41/42 of a real project, so they go the whole way:
orders service, PostgreSQL, the sim, the answer mapped back.

Everything is drawn from one ``random.Random(seed)`` per stream, so a run is
reproducible from its seed (timing aside).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from sim_helpers import MessageFactory, free_ports

from bench.reconcile import Report, reconcile
from switch.store import DbConfig, open_database
from switch.store.projects import ProjectSettings
from switch.wire.codec import DecodeError, Message, peek_mti
from switch.wire.dialect import Dialect
from switch.wire.framing import Framing

__all__ = [
    "FuzzReport",
    "Mutator",
    "Target",
    "error_lines",
    "run_campaign",
    "settle_and_reconcile",
    "start_listener",
    "start_sim",
]

_HEX = b"0123456789ABCDEF"
_DIGITS = b"0123456789"
_INTERESTING = (b"0", b"00", b"000", b"999", b"9999", b"99", b"-1", b"\x00", b"\xff", b"FFFF", b" ", b"%s", b"\r\n")
_MTIS = (b"0100", b"0110", b"0200", b"0220", b"0400", b"0420", b"0421", b"0800", b"0810", b"9999", b"0000", b"01")


class Mutator:
    """Frames from valid requests, mutated; bodies only (the caller frames them).

    >>> m = Mutator(Dialect.named("ascii"), seed=7)
    >>> frames = [m.body() for _ in range(200)]
    >>> all(isinstance(f, bytes) for f in frames) and len(set(frames)) > 150
    True
    """

    def __init__(
        self, dialect: Dialect, seed: int, terminal: str = "FUZZ0001", merchant: str = "MERCHANT0000001"
    ) -> None:
        self.dialect = dialect
        self.rng = random.Random(seed)
        self._factory = MessageFactory(terminal=terminal, stan_start=1 + seed % 1000 * 1000, merchant=merchant)
        self._binary_bitmap = dialect.name != "ascii"
        self._valid: list[bytes] = [self._valid_body() for _ in range(64)]
        self._ops: list[Callable[[bytes], bytes]] = [
            self._flip_bytes,
            self._flip_bits,
            self._truncate,
            self._append,
            self._insert,
            self._delete,
            self._bitmap,
            self._length_digits,
            self._mti,
            self._interesting,
            self._splice,
            self._random,
        ]

    def _valid_body(self) -> bytes:
        f, rng = self._factory, self.rng
        pan = rng.choice(("4111111111111111", "2222400060000007", "4000000000000002", "4276990011343663"))
        amount = rng.choice((0, 1, 999, 1000, 10**11))
        kind = rng.randrange(6)
        original = f.auth(pan, amount)
        msg: Message
        if kind == 0:
            msg = original
        elif kind == 1:
            msg = f.sale(pan, amount)
        elif kind == 2:
            msg = f.capture(original, auth_code="AUTH12")
        elif kind == 3:
            msg = f.reversal(original, rng.choice(("0400", "0420", "0421")))
        elif kind == 4:
            msg = f.auth(pan, amount, **{"120": "123", "124": "M1"})
        else:
            msg = f.network(rng.choice(("001", "002", "161", "301")))
        return self.dialect.codec.encode(msg)

    def valid(self) -> bytes:
        """A well-formed request (fresh STAN every call once the pool is refreshed)."""
        i = self.rng.randrange(len(self._valid))
        if self.rng.random() < 0.05:
            self._valid[i] = self._valid_body()
        return self._valid[i]

    def body(self) -> bytes:
        """One frame body: usually a mutated valid request, sometimes one left intact."""
        rng = self.rng
        if rng.random() < 0.05:
            return self.valid()
        data = self.valid()
        for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 4)):
            data = rng.choice(self._ops)(data)
        return data[:0xFFFF]

    # -- mutations -------------------------------------------------------
    def _pos(self, data: bytes) -> int:
        return self.rng.randrange(len(data)) if data else 0

    def _flip_bytes(self, data: bytes) -> bytes:
        b = bytearray(data)
        for _ in range(self.rng.randint(1, 8)):
            if b:
                b[self._pos(b)] = self.rng.randrange(256)
        return bytes(b)

    def _flip_bits(self, data: bytes) -> bytes:
        b = bytearray(data)
        for _ in range(self.rng.randint(1, 4)):
            if b:
                b[self._pos(b)] ^= 1 << self.rng.randrange(8)
        return bytes(b)

    def _truncate(self, data: bytes) -> bytes:
        return data[: self._pos(data)]

    def _append(self, data: bytes) -> bytes:
        n = self.rng.choice((1, 2, 8, 64, 999, 4000))
        return data + self.rng.randbytes(n)

    def _insert(self, data: bytes) -> bytes:
        p = self._pos(data)
        return data[:p] + self.rng.randbytes(self.rng.randint(1, 32)) + data[p:]

    def _delete(self, data: bytes) -> bytes:
        p = self._pos(data)
        return data[:p] + data[p + self.rng.randint(1, 16) :]

    def _bitmap(self, data: bytes) -> bytes:
        # Bits for fields that are absent (or absent ones for present fields):
        # the decoder then reads every later field from the wrong place.
        b = bytearray(data)
        span = 8 if self._binary_bitmap else 16
        if len(b) > 4 and self.rng.random() < 0.3:  # a secondary bitmap announced
            span *= 2
            b[4] = (b[4] | 0x80) if self._binary_bitmap else ord(self.rng.choice("89ABCDEF"))
        for _ in range(self.rng.randint(1, 4)):
            p = 4 + self.rng.randrange(span)
            if p < len(b):
                b[p] = self.rng.randrange(256) if self._binary_bitmap else self.rng.choice(_HEX)
        return bytes(b)

    def _length_digits(self, data: bytes) -> bytes:
        # LLVAR/LLLVAR prefixes are digit runs: put other digits in one.
        runs = [m.span() for m in re.finditer(rb"[0-9]{2,3}", data[20:])]
        if not runs:
            return self._flip_bytes(data)
        start, end = self.rng.choice(runs)
        digits = bytes(self.rng.choice(_DIGITS) for _ in range(end - start))
        return data[: 20 + start] + digits + data[20 + end :]

    def _mti(self, data: bytes) -> bytes:
        return self.rng.choice(_MTIS) + data[4:]

    def _interesting(self, data: bytes) -> bytes:
        p = self._pos(data)
        v = self.rng.choice(_INTERESTING)
        return data[:p] + v + data[p + len(v) :]

    def _splice(self, data: bytes) -> bytes:
        other = self.rng.choice(self._valid)
        return data[: self._pos(data)] + other[self._pos(other) :]

    def _random(self, data: bytes) -> bytes:
        n = self.rng.choice((0, 1, 3, 4, 5, 16, 64, 256, 1024))
        if self.rng.random() < 0.5:
            return self.rng.randbytes(n)
        return self.rng.choice(_MTIS) + bytes(self.rng.choice(_HEX) for _ in range(n))


# -- the target process ------------------------------------------------------------


@dataclass
class Target:
    """A server process under test: where it listens, its pid, its log file.

    ``ids``: the (DE 41, DE 42) the valid and control requests carry (None:
    the sim's, which answers any). ``strict_mti``: the target hangs up on an
    undecodable frame whose MTI does not start with ``0`` too (the listener),
    not only on one with no readable MTI (the sim). ``companions`` are stopped
    after it, and ``workdir`` removed. ``admin``: the sim's admin API (its
    ledger), ``data_dir``: the listener's embedded PostgreSQL.
    """

    name: str
    proc: subprocess.Popen[bytes]
    address: tuple[str, int]
    log_path: Path
    dialect: Dialect
    ids: tuple[str, str] | None = None
    strict_mti: bool = False
    companions: list[Target] = field(default_factory=list)
    workdir: Path | None = None
    admin: str | None = None
    data_dir: Path | None = None

    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_errors(self) -> list[str]:
        """The lines of the target's log that show a bug (:func:`error_lines`)."""
        return error_lines(self.log_path.read_text(encoding="utf-8", errors="replace"))

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (SIGKILL after ``timeout``), then the companions; the target's exit status."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        finally:
            for c in self.companions:
                c.stop(timeout)
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
        return self.proc.returncode


# A text line (the sim's format: "time name LEVEL message") or asyncio's own complaints.
_TEXT_ERROR = re.compile(r"Traceback|Fatal error|Exception in callback|\bERROR\b|\bCRITICAL\b")


def error_lines(text: str) -> list[str]:
    """Log lines that show a bug: an error or critical record, a traceback, asyncio's 'Fatal error'.

    isoswitch logs one JSON object per line (``switch.logs``: ``"level": "error"``,
    a traceback in ``exc_info``); the sim logs text. A JSON line is judged by its
    fields, so a message that merely quotes the word ERROR is not one.

    >>> error_lines('{"level":"warning","msg":"client sent ERROR"}\\n{"level":"error","msg":"x"}')
    ['{"level":"error","msg":"x"}']
    """
    out = []
    for line in text.splitlines():
        record = None
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
        if isinstance(record, dict):
            if str(record.get("level", "")).lower() in ("error", "critical") or "exc_info" in record:
                out.append(line)
        elif _TEXT_ERROR.search(line):
            out.append(line)
    return out


def start_sim(log_path: Path, *, dialect: str = "ascii", framing: str = "binary2", max_records: int = 20_000) -> Target:
    """``python -m acquirer_sim`` on an ephemeral port (its admin API too), its stderr in ``log_path``.

    ``max_records`` bounds the sim's memory of answered requests (~0.8 kB
    each; the default 500,000 would let 100k valid-looking frames grow it by
    tens of MB legitimately): with it bounded, any growth is a leak.
    """
    cmd = [
        sys.executable,
        "-m",
        "acquirer_sim",
        "--port",
        "0",
        "--seed",
        "1",
        "--dialect",
        dialect,
        "--framing",
        framing,
        "--max-records",
        str(max_records),
        "--admin-port",
        "0",
        "--log-level",
        "WARNING",
    ]
    log = open(log_path, "wb")
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        log.close()
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    m = re.fullmatch(r"listening on (\S+):(\d+)\s*", line)
    admin = re.fullmatch(r"admin on (\S+):(\d+)\s*", proc.stdout.readline().decode()) if m else None
    if m is None or admin is None:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"sim did not start: {line!r}; log: {log_path.read_text(errors='replace')[-2000:]}")
    target = Target("acquirer_sim", proc, (m[1], int(m[2])), log_path, Dialect.named(dialect, framing))
    target.admin = f"http://{admin[1]}:{admin[2]}"
    return target


def _approved(address: tuple[str, int], dialect: Dialect, req: Message) -> bool:
    """Whether ``req`` sent alone on a fresh connection is answered with DE 39 = 00."""
    try:
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(dialect.framing.pack(dialect.codec.encode(req)))
            buf = b""
            while len(buf) < dialect.framing.header_len or len(
                buf
            ) < dialect.framing.header_len + dialect.framing.length(buf[: dialect.framing.header_len]):
                chunk = sock.recv(65536)
                if not chunk:
                    return False
                buf += chunk
        resp = dialect.codec.decode(buf[dialect.framing.header_len :])
    except (OSError, DecodeError):
        return False
    return resp.get("39") == "00"


def start_listener(
    workdir: Path,
    *,
    dialect: str = "ascii",
    framing: str = "binary2",
    max_records: int = 500_000,
    ready_timeout: float = 120.0,
) -> Target:
    """``isoswitch serve --iso-port`` routed to a ``python -m acquirer_sim``, all in ``workdir``.

    The embedded PostgreSQL lives in ``workdir/data`` (not pytest's tmp_path:
    a concurrent pytest run prunes old basetemp directories, and PostgreSQL
    stops when its data directory vanishes). A project ``fuzz`` is made with
    ``isoswitch project add``; its default terminal and merchant ids
    (:meth:`ProjectSettings.defaults`) are the target's ``ids``. Ready once
    an 0100 from those ids is approved through the listener.

    The sim is not the target here (its memory is not measured): it keeps
    every record (``max_records``), so that the ledger can be reconciled
    with the switch's books after the run.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    sim = start_sim(workdir / "sim.log", max_records=max_records)  # the links' dialect: the default config's
    try:
        data = workdir / "data"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("DATABASE_URL", None)
        # The installed command beside this interpreter: wherever its package lives, `isoswitch` stays.
        cli = [shutil.which("isoswitch", path=str(Path(sys.executable).parent)) or "isoswitch"]
        subprocess.run(
            [*cli, "project", "add", "fuzz", "--data-dir", str(data)],
            check=True,
            capture_output=True,
            env=env,
            timeout=180,
        )
        listed = subprocess.run(
            [*cli, "project", "list", "--data-dir", str(data)], check=True, capture_output=True, env=env, timeout=180
        )
        project = next(p for p in map(json.loads, listed.stdout.splitlines()) if p["login"] == "fuzz")
        settings = ProjectSettings.defaults(project["id"], project["name"])
        ids = (settings.terminal_id, settings.merchant_id)
        iso_port, http_port = free_ports(2)
        sim_host, sim_port = sim.address
        cmd = [*cli, "serve", "--target", f"{sim_host}:{sim_port}", "--host", "127.0.0.1"]
        cmd += ["--iso-port", str(iso_port), "--iso-dialect", dialect, "--iso-framing", framing]
        cmd += ["--http-port", str(http_port), "--data-dir", str(data), "--no-access-log", "--log-level", "warning"]
        log_path = workdir / "serve.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    except BaseException:
        sim.stop()
        raise
    target = Target(
        "iso_listener",
        proc,
        ("127.0.0.1", iso_port),
        log_path,
        Dialect.named(dialect, framing),
        ids=ids,
        strict_mti=True,
        companions=[sim],
        workdir=workdir,
        admin=sim.admin,
        data_dir=data,
    )
    probe = MessageFactory(terminal=ids[0], merchant=ids[1], stan_start=600_000)
    deadline = time.monotonic() + ready_timeout
    while not _approved(target.address, target.dialect, probe.auth("4111111111111111", 1000)):
        if not target.alive() or time.monotonic() > deadline:
            target.stop(30)
            raise RuntimeError(f"the listener did not get ready; log: {log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.5)  # a probe takes a PostgreSQL start: polling twice a second is plenty
    return target


async def settle_and_reconcile(target: Target, timeout: float = 120.0) -> Report:
    """Once no operation is pending and every reversal is delivered, the switch's books against the ledger."""
    assert target.admin is not None and target.data_dir is not None
    # The listener's embedded server, shared (switch.store.embedded counts the processes using it).
    db = await open_database(DbConfig(url=None, data_dir=target.data_dir, min_size=1, max_size=2))
    try:
        deadline = time.monotonic() + timeout
        while True:
            pending = await db.pool.fetchval("SELECT count(*) FROM operations WHERE status = 'pending'")
            owed = await db.pool.fetchval("SELECT count(*) FROM saf WHERE state <> 'done'")
            if pending == 0 and owed == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"not settled after {timeout} s: {pending} pending, {owed} reversals owed")
            await asyncio.sleep(0.25)
        return await reconcile(db.pool, target.admin)
    finally:
        await db.close()


# -- the campaign ------------------------------------------------------------------


@dataclass
class FuzzReport:
    target: str
    frames: int = 0  # mutated/random frames written to the target
    frames_confirmed: int = 0  # of those, in batches whose sync 0800 was answered
    framing_attacks: int = 0  # frames of the framing attacks (one connection each)
    unreadable: int = 0  # of the frames, those whose MTI cannot be read: sent alone, the target must hang up
    closed_by_target: int = 0  # connections the target closed after an unreadable frame (as it must)
    # Connections the target closed after frames whose MTI reads (it must answer those, or ignore
    # them, and keep the connection), and dribbled valid frames it did not answer: each a failure.
    unexpected_closes: list[str] = field(default_factory=list)
    framing_failures: list[str] = field(default_factory=list)
    answers: int = 0  # frames the target sent back on stream connections
    undecodable_answers: int = 0  # answers our codec could not read (a bug of the target)
    control_checks: int = 0
    control_failures: list[str] = field(default_factory=list)
    crashes: int = 0  # target process gone or not accepting
    rss_before: int = 0
    rss_after: int = 0
    seconds: float = 0.0

    @property
    def rss_growth_mb(self) -> float:
        return (self.rss_after - self.rss_before) / 1e6

    def summary(self) -> str:
        return (
            f"fuzz {self.target}: frames={self.frames} confirmed={self.frames_confirmed} "
            f"framing_attacks={self.framing_attacks} unreadable={self.unreadable} "
            f"closed_by_target={self.closed_by_target} unexpected_closes={len(self.unexpected_closes)} "
            f"framing_failures={len(self.framing_failures)} "
            f"answers={self.answers} undecodable_answers={self.undecodable_answers} "
            f"control_checks={self.control_checks} control_failures={len(self.control_failures)} "
            f"crashes={self.crashes} rss={self.rss_before / 1e6:.1f}MB->{self.rss_after / 1e6:.1f}MB "
            f"({self.rss_growth_mb:+.1f}MB) seconds={self.seconds:.1f} "
            f"rate={self.frames / max(self.seconds, 1e-9):.0f}/s"
        )


_IO_TIMEOUT = 5.0
_SYNC_STANS = itertools.count(900_000)


class _Stream:
    """One fuzzing connection: batch, sync, read until the sync's answer."""

    def __init__(self, target: Target, report: FuzzReport) -> None:
        self.target = target
        self.report = report
        self.dialect = target.dialect
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        await self.close()
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(*self.target.address), _IO_TIMEOUT
            )
        except (OSError, TimeoutError):
            self.report.crashes += 1
            raise

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def batch(self, bodies: list[bytes]) -> None:
        """Pipeline the frames whose MTI reads, each other one alone (the target hangs up on it)."""
        readable = []
        for body in bodies:
            if self._hangs_up(body):
                await self._alone(body)
            else:
                readable.append(body)
        if readable:
            await self._pipelined(readable)

    def _hangs_up(self, body: bytes) -> bool:
        """Whether the target closes on ``body``: it does not decode and its MTI cannot be read.

        The codec takes any four ASCII bytes as an MTI, so the sim checks
        ``peek_mti`` only for what fails to decode; the listener also hangs
        up on a decoded frame whose MTI has no response (non-digits, 0190),
        and on a malformed one (undecodable, or a control character in a
        field) whose MTI is not of version ``0``.
        """
        try:
            msg = self.dialect.codec.decode(body)
            decoded = True
        except DecodeError:
            decoded = False
        mti = peek_mti(body)
        if self.target.strict_mti:  # the listener: no answer can be made (no MTI, or none to respond with)
            # It takes a field holding a control character for a malformed message too.
            malformed = not decoded or not all(v.isprintable() for v in msg.values())
            return mti is None or mti[2] == "9" or (malformed and not mti.startswith("0"))
        return not decoded and mti is None

    async def _alone(self, body: bytes) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*self.target.address), _IO_TIMEOUT)
        except (OSError, TimeoutError):
            self.report.crashes += 1
            raise
        try:
            writer.write(self.dialect.framing.pack(body))
            self.report.frames += 1
            self.report.unreadable += 1
            await writer.drain()
            if await asyncio.wait_for(reader.read(), _IO_TIMEOUT) == b"":
                self.report.closed_by_target += 1
                self.report.frames_confirmed += 1
        except ConnectionError:
            self.report.closed_by_target += 1
            self.report.frames_confirmed += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _pipelined(self, bodies: list[bytes]) -> None:
        if self.writer is None:
            await self._connect()
        assert self.reader is not None and self.writer is not None
        pack, codec = self.dialect.framing.pack, self.dialect.codec
        stan = f"{next(_SYNC_STANS) % 1_000_000:06d}"
        sync = pack(codec.encode({"t": "0800", "7": "0101000000", "11": stan, "70": "301"}))
        try:
            self.writer.write(b"".join(pack(b) for b in bodies) + sync)
            self.report.frames += len(bodies)
            await asyncio.wait_for(self.writer.drain(), _IO_TIMEOUT)
            while True:
                body = await self._read_frame()
                if body is None:  # every frame of the batch had a readable MTI: no reason to hang up
                    self.report.unexpected_closes.append(f"closed after a batch of {len(bodies)} readable frames")
                    await self.close()
                    return
                self.report.answers += 1
                try:
                    msg = codec.decode(body)
                except DecodeError:
                    self.report.undecodable_answers += 1
                    continue
                if msg.get("t") == "0810" and msg.get("11") == stan:
                    self.report.frames_confirmed += len(bodies)
                    return
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            self.report.unexpected_closes.append(f"{type(e).__name__} after a batch of {len(bodies)} readable frames")
            await self.close()

    async def _read_frame(self) -> bytes | None:
        assert self.reader is not None
        framing = self.dialect.framing
        try:
            header = await asyncio.wait_for(self.reader.readexactly(framing.header_len), _IO_TIMEOUT)
        except asyncio.IncompleteReadError as e:
            if e.partial:
                raise
            return None
        return await asyncio.wait_for(self.reader.readexactly(framing.length(header)), _IO_TIMEOUT)


async def _framing_attack(target: Target, rng: random.Random, mutator: Mutator, report: FuzzReport) -> None:
    """One malformed stream on a fresh connection; the target may close it or wait: we close."""
    framing = target.dialect.framing
    valid = framing.pack(mutator.valid())
    kind = rng.randrange(6)
    if kind == 0:  # announces more than comes
        data = framing.pack(mutator.body())[: framing.header_len] + rng.randbytes(rng.randint(0, 64))
        if framing.ascii:
            data = b"%04d" % rng.randint(100, 9999) + data[framing.header_len :]
        else:
            data = rng.randint(100, 0xFFFF).to_bytes(2, "big") + data[framing.header_len :]
    elif kind == 1:  # half a header
        data = valid[:1]
    elif kind == 2:  # empty frames, then a valid one
        data = framing.pack(b"") * rng.randint(1, 5) + valid
    elif kind == 3:  # a header that is not a length (ascii4) / random bytes
        data = rng.randbytes(rng.randint(2, 300))
    elif kind == 4:  # a valid frame then garbage
        data = valid + rng.randbytes(rng.randint(1, 40))
    else:  # a valid frame dribbled a byte per write
        data = valid
    report.framing_attacks += 1
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*target.address), _IO_TIMEOUT)
    except (OSError, TimeoutError):
        report.crashes += 1
        raise
    try:
        if kind == 5:
            await _dribble(data, reader, writer, framing, report)
        else:
            # The target may answer, wait or hang up: any of them is fine for a malformed stream.
            with contextlib.suppress(ConnectionError):
                writer.write(data)
                await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _dribble(
    data: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, framing: Framing, report: FuzzReport
) -> None:
    """A valid frame a byte per write: it must be answered (a close or a silence is a failure)."""
    try:
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
        header = await asyncio.wait_for(reader.readexactly(framing.header_len), _IO_TIMEOUT)
        await asyncio.wait_for(reader.readexactly(framing.length(header)), _IO_TIMEOUT)
    except (ConnectionError, asyncio.IncompleteReadError, TimeoutError) as e:
        report.framing_failures.append(f"dribbled valid frame not answered: {type(e).__name__}")


class _Control:
    """The well-behaved connection: an echo and an approved 0100 per round, answers checked."""

    def __init__(self, target: Target, report: FuzzReport) -> None:
        self.target = target
        self.report = report
        terminal, merchant = target.ids or ("CTRL0001", "MERCHANT0000001")
        self.factory = MessageFactory(terminal=terminal, stan_start=700_000, merchant=merchant)
        self.conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def check(self) -> None:
        codec, framing = self.target.dialect.codec, self.target.dialect.framing
        f, report = self.factory, self.report
        report.control_checks += 1
        for req, want in ((f.network("301"), "0810"), (f.auth("4111111111111111", 1000), "0110")):
            try:
                if self.conn is None:
                    self.conn = await asyncio.wait_for(asyncio.open_connection(*self.target.address), _IO_TIMEOUT)
                reader, writer = self.conn
                writer.write(framing.pack(codec.encode(req)))
                await writer.drain()
                header = await asyncio.wait_for(reader.readexactly(framing.header_len), _IO_TIMEOUT)
                resp = codec.decode(await asyncio.wait_for(reader.readexactly(framing.length(header)), _IO_TIMEOUT))
            except (OSError, TimeoutError, asyncio.IncompleteReadError, DecodeError) as e:
                report.control_failures.append(f"{want}: {type(e).__name__}")
                await self.close()
                return
            got = (resp.get("t"), resp.get("39"), resp.get("11"))
            if got != (want, "00", req["11"]):
                report.control_failures.append(f"{want}: got {got}")

    async def close(self) -> None:
        if self.conn is not None:
            writer = self.conn[1]
            self.conn = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def run_campaign(
    target: Target,
    frames: int,
    *,
    seed: int = 1,
    streams: int = 4,
    batch: int = 16,
    framing_share: float = 0.02,
    control_every: int = 1000,
    warmup: int = 2000,
) -> FuzzReport:
    """Send ``frames`` fuzzed frames (``warmup`` more first, not counted) and report."""
    report = FuzzReport(target.name)
    rng = random.Random(seed)
    ids = target.ids or ("FUZZ0001", "MERCHANT0000001")
    mutators = [Mutator(target.dialect, seed * 100 + i, *ids) for i in range(streams)]
    conns = [_Stream(target, report) for _ in range(streams)]
    control = _Control(target, report)
    try:
        # Warm-up: the first frames allocate caches and arenas that stay; RSS is measured after them.
        warm = FuzzReport(target.name)
        warm_conns = [_Stream(target, warm) for _ in range(streams)]
        for chunk in _chunks(warmup, batch * streams):
            await asyncio.gather(
                *(
                    c.batch([m.body() for _ in range(chunk // streams)])
                    for c, m in zip(warm_conns, mutators, strict=True)
                )
            )
        for c in warm_conns:
            await c.close()
        report.rss_before = target.rss()
        started = time.monotonic()
        next_control = 0
        while report.frames + report.framing_attacks < frames:
            if report.frames + report.framing_attacks >= next_control:
                await control.check()
                next_control += control_every
            attacks = sum(1 for _ in range(batch * streams) if rng.random() < framing_share)
            jobs = [c.batch([m.body() for _ in range(batch)]) for c, m in zip(conns, mutators, strict=True)]
            jobs += [_framing_attack(target, rng, mutators[0], report) for _ in range(attacks)]
            await asyncio.gather(*jobs)
            if not target.alive():
                report.crashes += 1
                break
        await control.check()
        report.seconds = time.monotonic() - started
        report.rss_after = target.rss() if target.alive() else 0
    finally:
        for c in conns:
            await c.close()
        await control.close()
    return report


def _chunks(total: int, size: int) -> Iterator[int]:
    while total > 0:
        yield min(size, total)
        total -= size
