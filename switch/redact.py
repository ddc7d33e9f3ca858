"""Card data out of logs: mask PANs, drop secrets, before anything is printed.

>>> mask_pan("4111111111111111")
'411111****1111'
>>> loggable({"t": "0100", "2": "4111111111111111", "120": "123", "11": "000001"})
{'t': '0100', '2': '411111****1111', '11': '000001'}
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["mask_pan", "loggable"]

# Fields never shown, even masked: track data, PIN block, CVV2, 3-DS cryptogram, MACs.
_SECRET = frozenset({"35", "36", "45", "52", "55", "120", "122", "64", "128"})


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
