"""Message authentication codes of the ISO listener's peers: AES-CMAC in DE 64 or DE 128.

The rule, for both directions:

- The MAC field is DE 128 when the message has any other field above 64
  (it has a secondary bitmap anyway), else DE 64. Either way it is the
  **last** field of the encoded message, and both specs make it 16 ASCII
  characters.
- The MAC is AES-CMAC (NIST SP 800-38B) under the peer's key over every
  byte of the encoded message, after the length header, **up to the MAC
  field**: the MTI, the bitmaps (with the MAC field's bit set) and all the
  other fields exactly as sent. Because the MAC field comes last, that is
  the whole message but its last 16 bytes.
- The first 8 bytes of the CMAC, as 16 upper-case hex characters, are the
  field's value (compared case-insensitively and in constant time).

>>> from switch.wire.dialect import Dialect
>>> codec = Dialect.named("ascii").codec
>>> key = bytes(range(16))
>>> frame = sign(codec, {"t": "0810", "11": "000001", "39": "00"}, key)
>>> frame[-16:].decode(), verify(codec.decode(frame), frame, key)
('403021B54F2340F1', True)
>>> verify(codec.decode(frame), frame[:-1] + b"0", key)
False
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

from switch.wire.codec import Codec, Message

__all__ = ["MAC_LEN", "mac_field", "mac_of", "parse_key", "sign", "verify"]

MAC_LEN = 16  # hex characters of DE 64 / DE 128
_NOT_FIELDS = frozenset({"t", "p", "1", "h", "64", "128"})


def parse_key(text: str) -> bytes:
    """An AES key (16, 24 or 32 bytes) from hex; ValueError names what is wrong, never the key."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError("MAC key must be hex") from None
    if len(key) not in (16, 24, 32):
        raise ValueError(f"MAC key must be 16, 24 or 32 bytes, not {len(key)}")
    return key


def mac_field(msg: Mapping[str, str]) -> str:
    """``"128"`` when ``msg`` has a field above 64 (the MAC fields aside), else ``"64"``."""
    for k in msg:
        if k not in _NOT_FIELDS and k.isdigit() and int(k) > 64:
            return "128"
    return "64"


def mac_of(data: bytes, key: bytes) -> str:
    """The first 8 bytes of AES-CMAC(``key``, ``data``) as 16 upper-case hex characters."""
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()[:8].hex().upper()


def sign(codec: Codec, msg: Mapping[str, str], key: bytes) -> bytes:
    """``msg`` encoded with its MAC field (any MAC it had is replaced)."""
    out: Message = {k: v for k, v in msg.items() if k not in ("p", "1", "64", "128")}
    field = mac_field(out)
    out[field] = "0" * MAC_LEN
    data = codec.encode(out)
    return data[:-MAC_LEN] + mac_of(data[:-MAC_LEN], key).encode("ascii")


def verify(msg: Mapping[str, str], frame: bytes, key: bytes) -> bool:
    """True when ``frame`` (decoded as ``msg``) carries the right MAC in the right field, and only there."""
    field = mac_field(msg)
    other = "64" if field == "128" else "128"
    value = msg.get(field)
    if value is None or other in msg or len(value) != MAC_LEN or not frame.endswith(value.encode("ascii", "replace")):
        return False
    expected = mac_of(frame[:-MAC_LEN], key)
    return hmac.compare_digest(expected, value.upper())
