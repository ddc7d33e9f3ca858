"""ISO 8583 codec: bytes <-> ``dict[str, str]``, no sockets, no asyncio.

Messages are plain dicts keyed like pyiso8583's (``"t"`` for the MTI, ``"p"``
and ``"1"`` for bitmaps, ``"2"`` .. ``"128"`` for data elements).

pyiso8583 is the reference codec. For specs made only of ASCII text fields
with ASCII or binary length prefixes (every dialect we ship) a spec is
compiled into per-field tables and encoded/decoded by a tight loop that gives
byte-identical results about 5x faster: at 20,000 messages a second the
generic codec alone would eat a whole core. Any spec outside that subset
(BCD, EBCDIC, nibble lengths, padding) falls back to pyiso8583; the test
suite checks both paths agree.

>>> from switch.wire.dialect import load_spec
>>> codec = Codec(load_spec("ascii"))
>>> codec.encode({"t": "0210", "3": "111111", "39": "05"})
b'0210200000000200000011111105'
>>> codec.decode(b"0210200000000200000011111105")["39"]
'05'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import iso8583
import iso8583.decoder
import iso8583.encoder

__all__ = ["Codec", "DecodeError", "EncodeError", "Message", "peek_mti"]

Message = dict[str, str]

# For each byte value, the 1-based positions of its set bits, left-aligned as
# ISO 8583 bitmaps are (0x80 -> (1,)).
_BYTE_BITS: tuple[tuple[int, ...], ...] = tuple(tuple(j + 1 for j in range(8) if b & (0x80 >> j)) for b in range(256))

# (key, length-prefix bytes, max length, binary prefix?, text encoding)
_FieldSpec = tuple[str, int, int, bool, str]
_PLAN_CACHE_MAX = 4096

_TEXT_ENCODINGS = frozenset({"ascii", "latin-1", "latin_1", "iso-8859-1", "utf-8"})


class DecodeError(ValueError):
    """Bytes that do not parse under the spec. Carries where, never the data."""

    def __init__(self, msg: str, *, field: str, pos: int) -> None:
        super().__init__(f"{msg}: field {field} pos {pos}")
        self.field = field
        self.pos = pos


class EncodeError(ValueError):
    """A message dict that cannot be encoded under the spec."""

    def __init__(self, msg: str, *, field: str) -> None:
        super().__init__(f"{msg}: field {field}")
        self.field = field


def peek_mti(frame: bytes, mti_len: int = 4) -> str | None:
    """The MTI of a frame if it is readable, else None (for format-error replies)."""
    mti = frame[:mti_len]
    if len(mti) == mti_len and mti.isdigit():
        return mti.decode("ascii")
    return None


def _fast_ok(spec: Mapping[str, Mapping[str, Any]]) -> bool:
    if spec["h"]["max_len"] != 0:
        return False
    for key, f in spec.items():
        if f.get("len_count", "bytes") != "bytes" or f.get("left_pad") or f.get("right_pad"):
            return False
        if f["len_enc"] not in ("ascii", "b"):
            return False
        if key in ("p", "1"):
            if f["data_enc"] not in ("ascii", "b"):
                return False
        elif f["data_enc"] not in _TEXT_ENCODINGS:
            return False
    return spec["t"]["data_enc"] == "ascii" and spec["t"]["max_len"] == 4


class Codec:
    """Encoder/decoder for one spec. Thread-safe and reusable."""

    __slots__ = ("_bin_bitmap", "_bitmap_len", "_fields", "_layouts", "_plans", "fast", "spec")

    def __init__(self, spec: Mapping[str, Mapping[str, Any]]) -> None:
        self.spec = spec
        self.fast = _fast_ok(spec)
        self._plans: dict[tuple[str, ...], tuple[bytes, tuple[_FieldSpec, ...]]] = {}
        self._layouts: dict[bytes, tuple[tuple[int, _FieldSpec | None], ...]] = {}
        # index i -> (key, len_type, max_len, binary_len, encoding) for field i
        self._fields: list[_FieldSpec | None] = [None] * 129
        for i in range(2, 129):
            f = spec.get(str(i))
            if f is not None:
                self._fields[i] = (
                    str(i),
                    int(f["len_type"]),
                    int(f["max_len"]),
                    f["len_enc"] == "b",
                    f["data_enc"],
                )
        self._bin_bitmap = spec["p"]["data_enc"] == "b"
        self._bitmap_len = 8 if self._bin_bitmap else 16

    # -- encode ---------------------------------------------------------
    def encode(self, msg: Mapping[str, str]) -> bytes:
        """Encode ``msg`` (not modified). Raises :class:`EncodeError`."""
        if not self.fast:
            return self._slow_encode(msg)
        try:
            mti = msg["t"]
        except KeyError:
            raise EncodeError("MTI missing", field="t") from None
        if type(mti) is not str or len(mti) != 4 or not mti.isascii():
            raise EncodeError("MTI must be 4 ASCII characters", field="t")
        keys = tuple(msg)
        plan = self._plans.get(keys)
        if plan is None:
            plan = self._plan(keys)
        bitmap, layout = plan
        parts = [mti.encode("ascii"), bitmap]
        for key, len_type, max_len, bin_len, enc in layout:
            value = msg[key]
            try:
                data = value.encode(enc)
            except (UnicodeEncodeError, AttributeError):
                raise EncodeError("invalid data", field=key) from None
            size = len(data)
            if len_type == 0:
                if size != max_len:
                    raise EncodeError(f"field data is {size} bytes, expecting {max_len}", field=key)
                parts.append(data)
                continue
            if size > max_len:
                raise EncodeError(f"field data is {size} bytes, larger than maximum {max_len}", field=key)
            if bin_len:
                parts.append(size.to_bytes(len_type, "big"))
            else:
                parts.append(b"%0*d" % (len_type, size))
            parts.append(data)
        return b"".join(parts)

    def _plan(self, keys: tuple[str, ...]) -> tuple[bytes, tuple[_FieldSpec, ...]]:
        """Encoded bitmap and field layout for a message with these keys.

        Messages of one kind share their key set, so this runs once per kind:
        the sort and the bitmap are cached (~6 us of a ~9 us encode).
        """
        nums: list[int] = []
        for k in keys:
            if k in ("t", "p", "1", "65"):
                continue
            # Only canonical decimal keys: int() would also take " 2", "02",
            # "+2", "٢", 2, 2.0 ... and then encode the wrong key or a field twice.
            if type(k) is not str or not (k.isascii() and k.isdigit()) or k[0] == "0":
                if k == "h":
                    continue
                raise EncodeError("unknown field key", field=str(k))
            n = int(k)
            if not 2 <= n <= 128 or self._fields[n] is None:
                raise EncodeError("field outside 2-128", field=k)
            nums.append(n)
        nums.sort()
        secondary = bool(nums) and nums[-1] > 64
        bits = 1 << 127 if secondary else 0
        for n in nums:
            bits |= 1 << (128 - n)
        raw_bm = bits.to_bytes(16, "big") if secondary else (bits >> 64).to_bytes(8, "big")
        bitmap = raw_bm if self._bin_bitmap else raw_bm.hex().upper().encode("ascii")
        layout = tuple(self._fields[n] for n in nums)
        plan = (bitmap, layout)
        if len(self._plans) < _PLAN_CACHE_MAX:
            self._plans[keys] = plan  # type: ignore[assignment]
        return plan  # type: ignore[return-value]

    def _slow_encode(self, msg: Mapping[str, str]) -> bytes:
        try:
            s, _ = iso8583.encode(dict(msg), self.spec)
        except iso8583.EncodeError as e:
            raise EncodeError(e.msg, field=e.field) from None
        except KeyError as e:  # a field key the spec lacks ("129") or that is not canonical ("02")
            raise EncodeError("field not in spec", field=str(e.args[0])) from None
        return bytes(s)

    # -- decode ---------------------------------------------------------
    def decode(self, frame: bytes) -> Message:
        """Decode one whole message (no length header). Raises :class:`DecodeError`."""
        if not self.fast:
            return self._slow_decode(frame)
        end = len(frame)
        mti_b = frame[:4]
        if len(mti_b) != 4:
            raise DecodeError("message too short for MTI", field="t", pos=0)
        try:
            mti = mti_b.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError("MTI is not ASCII", field="t", pos=0) from None
        msg: Message = {"t": mti}
        pos = 4
        bml = self._bitmap_len
        bin_bm = self._bin_bitmap
        raw, pos = self._read_bitmap(frame, pos, bml, bin_bm, "p")
        msg["p"] = self._bitmap_text(frame, pos - bml, pos, bin_bm)
        if raw[0] & 0x80:
            sec, pos = self._read_bitmap(frame, pos, bml, bin_bm, "1")
            msg["1"] = self._bitmap_text(frame, pos - bml, pos, bin_bm)
            raw += sec
            if sec[0] & 0x80:
                # Bit 65 announces a tertiary bitmap (fields 129-192), which
                # pyiso8583 reads and appends to "1"; no spec of ours has such fields.
                ter, pos = self._read_bitmap(frame, pos, bml, bin_bm, "1")
                msg["1"] += self._bitmap_text(frame, pos - bml, pos, bin_bm)
                if any(ter):
                    raise DecodeError("tertiary bitmap has fields 129-192", field="1", pos=pos - bml)
        layout = self._layouts.get(raw)
        if layout is None:
            layout = self._layout(raw)
        for n, spec in layout:
            if spec is None:
                raise DecodeError("field not in spec", field=str(n), pos=pos)
            key, len_type, max_len, bin_len, enc = spec
            if len_type == 0:
                size = max_len
            else:
                lb = frame[pos : pos + len_type]
                if len(lb) != len_type:
                    raise DecodeError(f"field length is {len(lb)} bytes wide, expecting {len_type}", field=key, pos=pos)
                if bin_len:
                    size = int.from_bytes(lb, "big")
                else:
                    if lb.isdigit():
                        size = int(lb)
                    else:
                        # As pyiso8583: int() of the text, so blanks, a sign, "_" pass.
                        try:
                            size = int(lb.decode("ascii"))
                        except ValueError:
                            raise DecodeError("field length is not numeric", field=key, pos=pos) from None
                        if size < 0:
                            raise DecodeError("field length is negative", field=key, pos=pos)
                if size > max_len:
                    raise DecodeError(f"field data is {size} bytes, larger than maximum {max_len}", field=key, pos=pos)
                pos += len_type
            nxt = pos + size
            if nxt > end:
                raise DecodeError(f"field data is {end - pos} bytes, expecting {size}", field=key, pos=pos)
            try:
                msg[key] = frame[pos:nxt].decode(enc)
            except UnicodeDecodeError:
                raise DecodeError("field data is not valid text", field=key, pos=pos) from None
            pos = nxt
        if pos != end:
            raise DecodeError("extra data after last field", field="p", pos=pos)
        return msg

    def _layout(self, raw: bytes) -> tuple[tuple[int, _FieldSpec | None], ...]:
        """The fields a bitmap announces, in order; cached per bitmap like encode plans."""
        fields = self._fields
        byte_bits = _BYTE_BITS
        nums = [i * 8 + j for i, b in enumerate(raw) if b for j in byte_bits[b]]
        layout = tuple((n, fields[n] if n <= 128 else None) for n in nums if n != 1 and n != 65)
        if len(self._layouts) < _PLAN_CACHE_MAX:
            self._layouts[raw] = layout
        return layout

    @staticmethod
    def _read_bitmap(frame: bytes, pos: int, bml: int, bin_bm: bool, key: str) -> tuple[bytes, int]:
        raw = frame[pos : pos + bml]
        if len(raw) != bml:
            raise DecodeError(f"bitmap is {len(raw)} bytes, expecting {bml}", field=key, pos=pos)
        if bin_bm:
            return raw, pos + bml
        try:
            out = bytes.fromhex(raw.decode("ascii"))
        except ValueError:
            raise DecodeError("bitmap is not hex", field=key, pos=pos) from None
        # As pyiso8583: fromhex skips blanks between digit pairs, and the
        # bytes it does not return hold no fields.
        return out.ljust(bml // 2, b"\0"), pos + bml

    @staticmethod
    def _bitmap_text(frame: bytes, start: int, stop: int, bin_bm: bool) -> str:
        raw = frame[start:stop]
        return raw.hex().upper() if bin_bm else raw.decode("ascii")  # text kept as sent, as pyiso8583

    def _slow_decode(self, frame: bytes) -> Message:
        try:
            dec, _ = iso8583.decode(bytearray(frame), self.spec)
        except iso8583.DecodeError as e:
            raise DecodeError(e.msg, field=e.field, pos=e.pos) from None
        except KeyError as e:  # pyiso8583 looks up fields 129-192 a tertiary bitmap names
            raise DecodeError("field not in spec", field=str(e.args[0]), pos=len(frame)) from None
        return dec
