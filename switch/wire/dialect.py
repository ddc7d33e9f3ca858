"""ISO 8583 dialects: a field spec (from ``schemas/iso8583``) plus a framing.

>>> d = Dialect.named("ascii")
>>> d.framing.name, d.codec.fast
('binary2', True)
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from schemas import SCHEMAS_DIR
from switch.wire.codec import Codec
from switch.wire.framing import FRAMINGS, Framing

__all__ = ["Dialect", "DIALECTS", "load_spec"]

DIALECTS = ("ascii", "binary-bitmap")


@functools.cache
def load_spec(name: str) -> dict[str, dict[str, Any]]:
    """The pyiso8583 spec dict of dialect ``name`` (``schemas/iso8583/NAME.json``)."""
    if name not in DIALECTS:
        raise ValueError(f"unknown dialect {name!r}; known: {', '.join(DIALECTS)}")
    with open(SCHEMAS_DIR / "iso8583" / f"{name}.json", encoding="utf-8") as f:
        doc = json.load(f)
    fields: dict[str, dict[str, Any]] = doc["fields"]
    return fields


@dataclass(frozen=True, slots=True)
class Dialect:
    """What one end of a connection speaks: field encoding and length framing."""

    name: str
    codec: Codec
    framing: Framing

    @classmethod
    def named(cls, name: str = "ascii", framing: str = "binary2") -> Dialect:
        if framing not in FRAMINGS:
            raise ValueError(f"unknown framing {framing!r}; known: {', '.join(FRAMINGS)}")
        return cls(name=name, codec=_codec(name), framing=FRAMINGS[framing])


@functools.cache
def _codec(name: str) -> Codec:
    return Codec(load_spec(name))
