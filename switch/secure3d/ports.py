"""What 3-D Secure needs from the outside: the directory server, behind a port the core defines.

The core knows no HTTP: the aiohttp client is ``http_front.outbound.ds`` and
``isoswitch.serve`` hands it in. Every failure to reach the DS or to read its
answer is a :class:`DirectoryError` (nothing was authorized: the caller
answers an error without sending a 0100).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["DirectoryError", "DirectoryPort", "Enrolment", "Support"]


class DirectoryError(Exception):
    """The directory server did not answer, or answered something unusable (never carries card data)."""


@dataclass(frozen=True, slots=True)
class Enrolment:
    """3DS1 ``/ds/3ds1/enrol``: ``enrolled`` Y, N or U; the ACS URL and its id of the card when Y."""

    enrolled: str
    acs_url: str | None = None
    acct_id: str | None = None


@dataclass(frozen=True, slots=True)
class Support:
    """3DS2 ``/ds/3ds2/prepare``: whether the card's issuer speaks 3DS2, and its 3DS Method URL."""

    supported: bool
    method_url: str | None = None
    message_version: str = "2.2.0"


class DirectoryPort(Protocol):
    async def enrol(self, pan: str, amount: str, currency: str, merchant_id: str) -> Enrolment: ...
    async def prepare(self, pan: str) -> Support: ...
    async def authenticate(self, areq: dict[str, Any]) -> str:
        """The AReq sent, the ARes (a JWS the caller verifies) back."""
        ...

    async def close(self) -> None: ...
