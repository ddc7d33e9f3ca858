"""Typed errors of the switch core, split by who is at fault.

Network faults subclass the built-ins generic handlers already catch
(``TimeoutError``, ``ConnectionError``), so ``except TimeoutError`` works.
No error text ever carries card data.
"""

from __future__ import annotations

__all__ = [
    "SwitchError",
    "LinkError",
    "LinkNotReady",
    "LinkClosed",
    "LinkBusy",
    "RequestTimeout",
    "DuplicateRequest",
    "NoRoute",
    "DestinationUnavailable",
    "TranslationError",
]


class SwitchError(Exception):
    """Base of every error raised by the switch core."""


class LinkError(SwitchError):
    """A request could not be completed on a link."""


class LinkNotReady(LinkError, ConnectionError):
    """The link is not signed on (connecting, closing or closed); nothing was sent."""


class LinkClosed(LinkError, ConnectionError):
    """The connection was lost while the request was pending: outcome unknown."""


class LinkBusy(LinkError):
    """The link's in-flight cap is reached (backpressure); nothing was sent."""


class RequestTimeout(LinkError, TimeoutError):
    """No response in time: the request was sent, so its outcome is unknown."""


class DuplicateRequest(LinkError, ValueError):
    """A request with the same match key is already in flight on this link."""


class NoRoute(SwitchError, LookupError):
    """No routing entry covers the PAN and there is no default route."""


class DestinationUnavailable(SwitchError, ConnectionError):
    """The destination has no ready link: failed fast, nothing was sent."""


class TranslationError(SwitchError, ValueError):
    """An operation cannot be expressed as an ISO 8583 message (caller's input)."""
