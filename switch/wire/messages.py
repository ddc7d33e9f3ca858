"""Small facts about ISO 8583 messages the link needs: MTI classes, match
keys, network-management messages and the time fields.

>>> response_mti("0100"), response_mti("0421"), is_response("0430")
('0110', '0430', True)
>>> match_key({"t": "0110", "41": "TERM0001", "11": "000042"})
('010', 'TERM0001', '000042')
"""

from __future__ import annotations

import time
from collections.abc import Mapping

__all__ = [
    "NM_SIGN_ON",
    "NM_SIGN_OFF",
    "NM_ECHO",
    "response_mti",
    "is_response",
    "match_key",
    "network_request",
    "network_response",
    "de7",
]

NM_SIGN_ON = "001"
NM_SIGN_OFF = "002"
NM_ECHO = "301"

# MTI position 3 (function): request 0 / response 1 / advice 2 / advice response 3.
_FUNCTION_CLASS = {"0": "0", "1": "0", "2": "2", "3": "2", "4": "4", "5": "4"}


def response_mti(mti: str) -> str:
    """The MTI answering ``mti``: 0100 -> 0110, 0420/0421 -> 0430."""
    return f"{mti[:2]}{int(mti[2]) + 1}0"


def is_response(mti: str) -> bool:
    return len(mti) == 4 and mti[2] in "135"


def match_key(msg: Mapping[str, str]) -> tuple[str, str, str]:
    """Request/response match key: MTI class (version, class, request/advice), DE 41, DE 11.

    A request and its response share the key (0100 and 0110; 0420, 0421 and 0430).
    """
    mti = msg.get("t", "")
    cls = mti[:2] + _FUNCTION_CLASS.get(mti[2:3], "?")
    return (cls, msg.get("41", ""), msg.get("11", ""))


_de7_last: list[object] = [-1, ""]  # (second, text): strftime costs more than the rest of a send


def de7(now: float | None = None) -> str:
    """DE 7 transmission date and time, ``MMDDhhmmss`` UTC.

    >>> de7(0)
    '0101000000'
    """
    sec = int(time.time() if now is None else now)
    if _de7_last[0] != sec:
        _de7_last[0] = sec
        _de7_last[1] = time.strftime("%m%d%H%M%S", time.gmtime(sec))
    return _de7_last[1]  # type: ignore[return-value]


def network_request(code: str) -> dict[str, str]:
    """An 0800 with DE 70 ``code``; DE 7 and DE 11 are stamped by the link."""
    return {"t": "0800", "70": code}


def network_response(req: Mapping[str, str], rc: str = "00") -> dict[str, str]:
    """The 0810 answering an 0800: echoes DE 7, 11, 41 and 70."""
    out = {"t": response_mti(req.get("t", "0800")), "39": rc}
    for k in ("7", "11", "41", "70"):
        if k in req:
            out[k] = req[k]
    return out
