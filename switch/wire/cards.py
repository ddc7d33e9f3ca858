"""Card numbers: the Luhn check, and masking PANs and secrets before anything is printed.

>>> luhn_ok("4111111111111111"), luhn_ok("4111111111111112")
(True, False)
>>> luhn_digit("411111111111111")
'1'

>>> mask_pan("4111111111111111")
'411111****1111'
>>> loggable({"t": "0100", "2": "4111111111111111", "120": "123", "11": "000001"})
{'t': '0100', '2': '411111****1111', '11': '000001'}
>>> scrub("card 4111111111111111 order 23014806643308174")
'card 411111****1111 order 23014806643308174'
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["loggable", "luhn_digit", "luhn_ok", "mask_pan", "scrub"]

_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]{12,19}(?![0-9])")

# Fields never shown, even masked: track data, PIN block, CVV2, 3-DS cryptogram, MACs.
_SECRET = frozenset({"35", "36", "45", "52", "55", "120", "122", "64", "128"})


def luhn_digit(payload: str) -> str:
    """The Luhn check digit that makes ``payload + digit`` valid."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = ord(ch) - 48
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    """True when ``number`` is all ASCII digits (``str.isdigit`` alone admits "٤" and "²") and passes the Luhn check."""
    if not (number.isascii() and number.isdigit()) or len(number) < 2:
        return False
    return luhn_digit(number[:-1]) == number[-1]


def mask_pan(pan: str) -> str:
    """First 6 and last 4 digits around ``****`` (the orders API's form); short values fully masked."""
    if len(pan) < 13:
        return "****"
    return pan[:6] + "****" + pan[-4:]


def loggable(msg: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``msg`` safe for logs: PAN masked, secrets dropped."""
    out = {k: v for k, v in msg.items() if k not in _SECRET}
    if "2" in out:
        out["2"] = mask_pan(out["2"])
    return out


def _mask(m: re.Match[str]) -> str:
    digits = m.group(0)
    return mask_pan(digits) if luhn_ok(digits) else digits


def scrub(text: str) -> str:
    """``text`` with every Luhn-valid 12-19 digit run masked ``first6****last4``.

    Order ids (17 digits) are mostly left alone: only one in ten passes Luhn.
    """
    return _DIGIT_RUN.sub(_mask, text)
