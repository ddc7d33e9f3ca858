"""Length-header framing for ISO 8583 over TCP, apart from the codec.

A framing only knows how long a message is: ``pack`` prefixes one message,
``Deframer.feed`` cuts a byte stream into whole messages.

>>> f = FRAMINGS["ascii4"]
>>> f.pack(b"0800")
b'00040800'
>>> d = Deframer(FRAMINGS["binary2"])
>>> d.feed(b"\\x00\\x02hi\\x00\\x01")
[b'hi']
>>> d.feed(b"!")
[b'!']
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FRAMINGS", "Deframer", "Framing", "FramingError"]


class FramingError(ValueError):
    """The length header cannot be read: the stream is out of sync and must close."""


@dataclass(frozen=True, slots=True)
class Framing:
    name: str
    header_len: int
    ascii: bool
    max_len: int

    def pack(self, msg: bytes) -> bytes:
        n = len(msg)
        if n > self.max_len:
            raise ValueError(f"message of {n} bytes exceeds {self.name} framing limit {self.max_len}")
        if self.ascii:
            return b"%04d" % n + msg
        return n.to_bytes(2, "big") + msg

    def length(self, header: bytes) -> int:
        if self.ascii:
            if not header.isdigit():
                raise FramingError("length header is not 4 ASCII digits")
            return int(header)
        return int.from_bytes(header, "big")


FRAMINGS: dict[str, Framing] = {
    "binary2": Framing("binary2", 2, False, 0xFFFF),
    "ascii4": Framing("ascii4", 4, True, 9999),
}


class Deframer:
    """Incremental splitter: feed it what the socket gave, get whole frames back."""

    __slots__ = ("framing", "_buf")

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        hl = self.framing.header_len
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        length = self.framing.length
        while end - pos >= hl:
            n = length(bytes(buf[pos : pos + hl]))
            if end - pos - hl < n:
                break
            out.append(bytes(buf[pos + hl : pos + hl + n]))
            pos += hl + n
        if pos:
            del buf[:pos]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)
