"""A scripted ISO 8583 host for link tests, its behaviour chosen per message.

The reply to each request is decided by ``script(msg) -> Action``; by default
every request is answered 00 at once. Actions can delay, drop, reorder
(``hold`` replies until ``release``), send garbage, or close the socket.
Real sockets on 127.0.0.1, ephemeral port.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from switch.wire.codec import DecodeError, Message
from switch.wire.dialect import Dialect
from switch.wire.framing import Deframer
from switch.wire.messages import response_mti


@dataclass
class Action:
    rc: str = "00"
    delay: float = 0.0
    drop: bool = False
    hold: bool = False  # keep the reply until release()
    close: bool = False
    garbage: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def answer(msg: Message, rc: str = "00", **extra: str) -> Message:
    out = {k: v for k, v in msg.items() if k not in ("p", "1", "120")}
    out["t"] = response_mti(msg["t"])
    out["39"] = rc
    out.update(extra)
    return out


class ScriptedHost:
    def __init__(
        self,
        script: Callable[[Message], Action] | None = None,
        dialect: str = "ascii",
        framing: str = "binary2",
        network: Callable[[Message], Action] | None = None,
    ) -> None:
        self.script = script or (lambda m: Action())
        # 0800s (sign-on, echo, sign-off) are answered 00 unless ``network`` says otherwise.
        self.network = network or (lambda m: Action())
        self.dialect = Dialect.named(dialect, framing)
        self.received: list[Message] = []
        self.held: list[tuple[asyncio.Transport, bytes]] = []
        self.transports: list[asyncio.Transport] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Proto(self), "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for t in self.transports:
                t.close()
            await self.server.wait_closed()
            self.server = None

    def drop_connections(self) -> None:
        for t in self.transports:
            t.close()

    def release(self, shuffle: bool = True) -> None:
        held, self.held = self.held, []
        if shuffle:
            random.shuffle(held)
        for t, data in held:
            if not t.is_closing():
                t.write(data)

    def messages(self, mti: str) -> list[Message]:
        return [m for m in self.received if m["t"] == mti]


class _Proto(asyncio.Protocol):
    def __init__(self, host: ScriptedHost) -> None:
        self.host = host
        self.deframer = Deframer(host.dialect.framing)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.host.transports.append(self.transport)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport in self.host.transports:
            self.host.transports.remove(self.transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        d = self.host.dialect
        for frame in self.deframer.feed(data):
            try:
                msg = d.codec.decode(frame)
            except DecodeError:
                continue
            self.host.received.append(msg)
            if msg["t"][2] in "13":
                continue  # a response (e.g. to our own echo); nothing to answer
            act = self.host.network(msg) if msg["t"] == "0800" else self.host.script(msg)
            if act.close:
                self.transport.close()
                return
            if act.drop:
                continue
            if act.garbage:
                out = d.framing.pack(b"\x00garbage\xff" * 3)
            else:
                out = d.framing.pack(d.codec.encode(answer(msg, act.rc, **act.extra)))
            if act.hold:
                self.host.held.append((self.transport, out))
            elif act.delay:
                asyncio.get_running_loop().call_later(act.delay, self._write, out)
            else:
                self.transport.write(out)

    def _write(self, out: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)
