"""Test helpers for acquirer_sim: a tiny raw ISO 8583 client and message builders.

The client frames and encodes with ``switch.wire.codec``/``switch.wire.framing`` only,
so the simulator is tested the way an independent peer would use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from acquirer_sim import SimConfig, SimServer
from switch.wire.codec import Message
from switch.wire.dialect import Dialect

__all__ = [
    "IsoClient",
    "MessageFactory",
    "admin_get",
    "admin_put",
    "running_sim",
]

TIMEOUT = 2.0


class IsoClient:
    """One connection to the simulator: send dicts or raw frames, read answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, dialect: Dialect) -> None:
        self.reader = reader
        self.writer = writer
        self.dialect = dialect

    @classmethod
    async def connect(cls, address: tuple[str, int], dialect: str = "ascii", framing: str = "binary2") -> IsoClient:
        reader, writer = await asyncio.open_connection(*address)
        return cls(reader, writer, Dialect.named(dialect, framing))

    async def send(self, msg: Message) -> None:
        await self.send_raw(self.dialect.codec.encode(msg))

    async def send_raw(self, body: bytes) -> None:
        """``body`` framed with the connection's length header."""
        await self.send_bytes(self.dialect.framing.pack(body))

    async def send_bytes(self, data: bytes) -> None:
        """``data`` exactly as given, no framing."""
        self.writer.write(data)
        await self.writer.drain()

    async def recv_frame(self, timeout: float = TIMEOUT) -> bytes:
        framing = self.dialect.framing
        header = await asyncio.wait_for(self.reader.readexactly(framing.header_len), timeout)
        return await asyncio.wait_for(self.reader.readexactly(framing.length(header)), timeout)

    async def recv(self, timeout: float = TIMEOUT) -> Message:
        return self.dialect.codec.decode(await self.recv_frame(timeout))

    async def request(self, msg: Message, timeout: float = TIMEOUT) -> Message:
        await self.send(msg)
        return await self.recv(timeout)

    async def nothing_within(self, seconds: float) -> bool:
        """True when no byte arrives (and the connection stays open) for ``seconds``."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), seconds)
        except TimeoutError:
            return True
        del data  # a byte or EOF: either way something happened
        return False

    async def is_closed(self, timeout: float = TIMEOUT) -> bool:
        """True when the peer closes (EOF or reset) within ``timeout``."""
        try:
            while True:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
                if not data:
                    return True
        except (ConnectionError, asyncio.IncompleteReadError):
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


class MessageFactory:
    """Well-formed requests per MESSAGES.md, each with a fresh STAN and DE 7."""

    def __init__(self, terminal: str = "TERM0001", stan_start: int = 1, merchant: str = "MERCHANT0000001") -> None:
        self.terminal = terminal
        self.merchant = merchant
        self._stan = itertools.count(stan_start)
        self._rrn = itertools.count(1)
        self._tick = itertools.count()

    def _stamp(self) -> str:
        # Distinct DE 7 per message even within one second (the seconds part
        # runs ahead of the clock): repeats must be deliberate in these tests.
        t = time.gmtime(time.time())
        n = next(self._tick)
        return f"{t.tm_mon:02d}{t.tm_mday:02d}{t.tm_hour:02d}{(t.tm_min + n // 60) % 60:02d}{n % 60:02d}"

    def next_stan(self) -> str:
        return f"{next(self._stan) % 999_999 or 1:06d}"

    def auth(
        self,
        pan: str = "4111111111111111",
        amount: int = 1000,
        /,
        *,
        mti: str = "0100",
        proc: str = "000000",
        expiry: str | None = "3012",
        currency: str = "840",
        **extra: str,
    ) -> Message:
        """A 0100 (or 0200 with ``mti``) plus ``extra`` fields by number: ``**{"120": "123"}``."""
        msg: Message = {
            "t": mti,
            "2": pan,
            "3": proc,
            "4": f"{amount:012d}",
            "7": self._stamp(),
            "11": self.next_stan(),
            "12": "120000",
            "13": "0101",
            "18": "5999",
            "22": "010",
            "25": "59",
            "32": "12345678901",
            "37": f"51234500{next(self._rrn):04d}",
            "41": self.terminal,
            "42": self.merchant,
            "43": "EXAMPLE.COM/12345".ljust(40),
            "49": currency,
        }
        if expiry is not None:
            msg["14"] = expiry
        msg.update(extra)
        return msg

    def sale(self, pan: str = "4111111111111111", amount: int = 1000, **kw: Any) -> Message:
        return self.auth(pan, amount, mti="0200", **kw)

    def refund(self, pan: str = "4111111111111111", amount: int = 1000, **kw: Any) -> Message:
        return self.auth(pan, amount, mti="0200", proc="200000", **kw)

    def credit(self, pan: str = "4111111111111111", amount: int = 1000, **kw: Any) -> Message:
        return self.auth(pan, amount, mti="0200", proc="260000", **kw)

    @staticmethod
    def de90(original: Message) -> str:
        return f"{original['t']}{original['11']}{original['7']}{original.get('32', '').zfill(11)}00000000000"

    def follow_up(self, mti: str, original: Message, amount: int | None = None, *, use_de90: bool = True) -> Message:
        """A 0220/0400/0420/0421 referring to ``original`` (its request dict)."""
        msg: Message = {
            "t": mti,
            "2": original["2"],
            "3": original["3"],
            "4": f"{amount:012d}" if amount is not None else original["4"],
            "7": self._stamp(),
            "11": self.next_stan(),
            "32": original.get("32", "12345678901"),
            "37": original["37"],
            "41": original["41"],
            "42": original.get("42", self.merchant),
            "49": original.get("49", "840"),
        }
        if use_de90:
            msg["90"] = self.de90(original)
        return msg

    def capture(self, original: Message, amount: int | None = None, auth_code: str | None = None) -> Message:
        msg = self.follow_up("0220", original, amount)
        msg["12"], msg["13"] = "120500", "0101"
        if auth_code is not None:
            msg["38"] = auth_code
        return msg

    def reversal(self, original: Message, mti: str = "0400", **kw: Any) -> Message:
        return self.follow_up(mti, original, **kw)

    def network(self, code: str = "301") -> Message:
        return {"t": "0800", "7": self._stamp(), "11": self.next_stan(), "70": code}


@contextlib.asynccontextmanager
async def running_sim(**config: Any) -> AsyncIterator[SimServer]:
    """A started simulator on an ephemeral port (admin API too unless admin_port=None)."""
    config.setdefault("port", 0)
    config.setdefault("admin_port", 0)
    config.setdefault("seed", 1)
    sim = SimServer(SimConfig(**config))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def _admin_url(sim: SimServer, path: str) -> str:
    assert sim.admin_address is not None
    host, port = sim.admin_address
    return f"http://{host}:{port}{path}"


async def admin_get(sim: SimServer, path: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(_admin_url(sim, path)) as resp:
        assert resp.status == 200, resp.status
        return await resp.json()


async def admin_put(sim: SimServer, path: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.put(_admin_url(sim, path), json=body) as resp:
        return resp.status, await resp.json()


def free_ports(n: int = 1) -> list[int]:
    """``n`` distinct ports on 127.0.0.1 that nothing listens on (bound together, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
