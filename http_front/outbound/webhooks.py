"""The webhook sender: the core's :class:`switch.webhooks.Sender` port over one aiohttp session.

No redirects are followed (a 3xx is a failed attempt: a redirect could lead past the address
policy the worker checked), no cookies are kept, and the answer's body is not read beyond 64 KiB.

The address policy is applied again where the connection is made: the connector's resolver
(:class:`VettedResolver`) resolves the name once, drops every address the policy refuses and
connects only to what is left, so a name that answers a public address to the worker's check and a
private one to the connection (DNS rebinding) reaches nothing private. The request keeps the name
(Host header, TLS SNI and certificate check). A host written as an IP address is checked as such.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from switch.webhooks.policy import refused_address

__all__ = ["AddressRefused", "AiohttpSender", "VettedResolver"]

_MAX_BODY = 65536


class AddressRefused(OSError):
    """Every address of the host is one the ``[webhooks]`` policy refuses (the connection is not made)."""

    def __init__(self, why: str) -> None:
        # With an errno and strerror: aiohttp shows strerror in its connector error (the delivery log's text).
        super().__init__(errno.EACCES, why)

    def __str__(self) -> str:
        return str(self.strerror)


class VettedResolver(AbstractResolver):
    """Resolves through ``inner`` (aiohttp's default) and returns only the addresses the policy allows."""

    def __init__(self, *, allow_private: bool, allow_loopback: bool, inner: AbstractResolver | None = None) -> None:
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept, why = [], None
        for info in found:
            why_not = refused_address(
                info["host"], allow_private=self.allow_private, allow_loopback=self.allow_loopback
            )
            if why_not is None:
                kept.append(info)
            else:
                why = why_not
        if not kept:
            raise AddressRefused(f"{host} resolves to a {why or 'no'} address, which [webhooks] does not allow")
        return kept

    async def close(self) -> None:
        await self._inner.close()


class AiohttpSender:
    """POSTs deliveries; :meth:`close` when the process stops.

    ``allow_private`` / ``allow_loopback``: the ``[webhooks]`` policy (:class:`switch.webhooks.WebhookConfig`;
    the defaults are its defaults). ``resolver``: the names' resolver under the policy (a test's double).
    """

    def __init__(
        self, *, allow_private: bool = False, allow_loopback: bool = True, resolver: AbstractResolver | None = None
    ) -> None:
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            resolver = VettedResolver(
                allow_private=self.allow_private, allow_loopback=self.allow_loopback, inner=self._resolver
            )
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(limit=64, limit_per_host=8, resolver=resolver),
            )
        return self._session

    def _check_literal(self, url: str) -> None:
        # aiohttp connects to an IP-literal host without asking the resolver.
        host = urlsplit(url).hostname or ""
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return  # a name: the resolver vets its addresses
        why = refused_address(host, allow_private=self.allow_private, allow_loopback=self.allow_loopback)
        if why is not None:
            raise AddressRefused(f"{host} is a {why}, which [webhooks] does not allow")

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        self._check_literal(url)
        session = self._open()
        async with session.post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            await resp.content.read(_MAX_BODY)
            return resp.status

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
