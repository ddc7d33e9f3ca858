"""What an order shows of its card: scheme, subtype, issuer (from ``schemas/orders/cards.json``).

>>> describe("4111111111111111")
CardInfo(bin='411111', type='visa', subtype='classic', issuer={'bin': '411111', 'country': 'UKR', 'title': 'TestBank'})
>>> describe("6011000990139424").type, describe("5105105105105100").type, describe("9999999999999995").type
('discover', 'mastercard', 'unknown')
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from schemas import SCHEMAS_DIR

__all__ = ["CardInfo", "describe"]

UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CardInfo:
    bin: str
    type: str
    subtype: str
    issuer: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Scheme:
    low: str
    high: str
    type: str

    @property
    def width(self) -> int:
        return (int(self.high) - int(self.low) + 1) * 10 ** (19 - len(self.low))


@functools.cache
def _table() -> tuple[list[_Scheme], dict[str, dict[str, str]]]:
    with open(SCHEMAS_DIR / "orders" / "cards.json", encoding="utf-8") as f:
        doc = json.load(f)
    schemes = sorted((_Scheme(s["low"], s["high"], s["type"]) for s in doc["schemes"]), key=lambda s: s.width)
    return schemes, doc["bins"]


def describe(pan: str) -> CardInfo:
    """Scheme by prefix (most specific range first) and the BIN table's issuer data."""
    schemes, bins = _table()
    kind = next((s.type for s in schemes if s.low <= pan[: len(s.low)] <= s.high), UNKNOWN)
    bin6 = pan[:6]
    known = bins.get(bin6, {})
    issuer: dict[str, Any] = {"bin": bin6}
    for key in ("country", "title"):
        if key in known:
            issuer[key] = known[key]
    return CardInfo(bin6, kind, known.get("subtype", UNKNOWN), issuer)
