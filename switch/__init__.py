"""isoswitch core: ISO 8583 codec and framing, links, pools and routing, identifiers.

The public surface is small; everything else is reached through its module.
"""

from switch.codec import Codec, DecodeError, EncodeError, Message
from switch.config import SwitchConfig
from switch.dialect import Dialect
from switch.errors import (
    DestinationUnavailable,
    DuplicateRequest,
    LinkBusy,
    LinkClosed,
    LinkError,
    LinkNotReady,
    NoRoute,
    RequestTimeout,
    SwitchError,
    TranslationError,
)
from switch.link import Link, LinkConfig, LinkState
from switch.pool import Pool, Route, Router, RoutingTable

__all__ = [
    "Codec",
    "DecodeError",
    "DestinationUnavailable",
    "Dialect",
    "DuplicateRequest",
    "EncodeError",
    "Link",
    "LinkBusy",
    "LinkClosed",
    "LinkConfig",
    "LinkError",
    "LinkNotReady",
    "LinkState",
    "Message",
    "NoRoute",
    "Pool",
    "RequestTimeout",
    "Route",
    "Router",
    "RoutingTable",
    "SwitchConfig",
    "SwitchError",
    "TranslationError",
]
