"""Where webhooks may go: http(s) URLs whose every address is public, unless the config allows more.

Checked when an endpoint is added and again at each delivery (a name's addresses may change).
The sender resolves the name again to connect; a name that changes its answer between this check
and the connection (DNS rebinding) is caught there: the front's sender (``http_front/outbound/
webhooks.py``) applies :func:`refused_address` to every address its resolver returns and connects
only to the allowed ones.

>>> import asyncio
>>> asyncio.run(check_url("ftp://example.com/x", allow_private=False, allow_loopback=False))
Traceback (most recent call last):
...
switch.webhooks.policy.UrlRefused: URL must be http or https
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = ["UrlRefused", "check_url", "check_form", "refused_address"]


class UrlRefused(ValueError):
    """The URL is malformed, or resolves to an address the config does not allow."""


def check_form(url: str) -> tuple[str, int]:
    """``(host, port)`` of a well-formed http(s) URL; :class:`UrlRefused` otherwise."""
    if not isinstance(url, str) or len(url) > 2048:
        raise UrlRefused("URL must be a string of at most 2048 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("URL is malformed") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("URL must be http or https")
    if not parts.hostname:
        raise UrlRefused("URL has no host")
    if parts.username or parts.password:
        raise UrlRefused("URL must not carry credentials")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def refused_address(address: str, *, allow_private: bool, allow_loopback: bool) -> str | None:
    """Why ``address`` is refused (None: allowed).

    >>> refused_address("127.0.0.1", allow_private=False, allow_loopback=False)
    'loopback address'
    >>> refused_address("10.1.2.3", allow_private=False, allow_loopback=True)
    'private address'
    >>> refused_address("93.184.216.34", allow_private=False, allow_loopback=False) is None
    True
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return None if allow_loopback or allow_private else "loopback address"
    if allow_private:
        return None
    if ip.is_link_local:
        return "link-local address"
    if ip.is_private or ip.is_reserved or ip.is_multicast or ip.is_unspecified or not ip.is_global:
        return "private address"
    return None


async def check_url(url: str, *, allow_private: bool, allow_loopback: bool) -> None:
    """Refuse ``url`` (:class:`UrlRefused`) unless every address its host resolves to is allowed."""
    host, port = check_form(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise UrlRefused(f"host {host} does not resolve: {e.strerror or e}") from None
    for info in infos:
        why = refused_address(str(info[4][0]), allow_private=allow_private, allow_loopback=allow_loopback)
        if why is not None:
            raise UrlRefused(f"{host} resolves to a {why}, which [webhooks] does not allow")
