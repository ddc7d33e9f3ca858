"""The answer to a frame that does not decode: DE 39 = 30, or nothing at all.

The fast codec stops at the first bad field and keeps nothing, so the fields
read before it (DE 11 and DE 41 let the sender match the answer) are salvaged
with pyiso8583, whose ``DecodeError`` carries the partial message. This runs
only for bad frames: speed does not matter here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import iso8583

from acquirer_sim.issuer import response_mti
from switch.wire.codec import Message, peek_mti

__all__ = ["format_error_reply", "salvage"]


def salvage(spec: Mapping[str, Mapping[str, Any]], frame: bytes) -> dict[str, Any]:
    """The fields of ``frame`` that decode before the first bad one."""
    try:
        doc, _ = iso8583.decode(bytearray(frame), spec)
    except iso8583.DecodeError as e:
        return dict(e.doc_dec)
    except Exception:  # pyiso8583 may trip over worse than a DecodeError
        return {}
    return dict(doc)


def format_error_reply(spec: Mapping[str, Mapping[str, Any]], frame: bytes) -> Message | None:
    """The 30 reply to an undecodable ``frame``; ``{}`` when none is owed.

    None means not even the MTI is readable: the stream cannot be trusted and
    the connection should close. A garbled response-class message (0110, ...)
    is owed nothing, so ``{}``.

    >>> from switch.wire.dialect import load_spec
    >>> format_error_reply(load_spec("ascii"), b"0100zz")
    {'t': '0110', '39': '30'}
    >>> format_error_reply(load_spec("ascii"), b"\\xff\\x01") is None
    True
    """
    mti = peek_mti(frame)
    if mti is None:
        return None
    if mti[2] in "13579":
        return {}
    resp: Message = {"t": response_mti(mti), "39": "30"}
    partial = salvage(spec, frame)
    stan = partial.get("11")
    terminal = partial.get("41")
    if isinstance(stan, str) and len(stan) == 6 and stan.isdigit():
        resp["11"] = stan
    if isinstance(terminal, str) and len(terminal) == 8 and terminal.isascii() and terminal.isprintable():
        resp["41"] = terminal
    return resp
