"""Absolute URLs of this front as browsers and the issuer's ACS see it.

``[http] public_url`` when set (behind a proxy or balancer), else the scheme
and ``Host`` of the request being answered (a developer's box, the tests).

>>> public_base_of("https://pay.example.com/", "http", "127.0.0.1:8080")
'https://pay.example.com'
>>> public_base_of(None, "http", "127.0.0.1:8080")
'http://127.0.0.1:8080'
"""

from __future__ import annotations

from aiohttp import web

from http_front.keys import CONFIG

__all__ = ["public_base", "public_base_of", "public_url"]


def public_base_of(configured: str | None, scheme: str, host: str) -> str:
    return configured.rstrip("/") if configured else f"{scheme}://{host}"


def public_base(request: web.Request) -> str:
    """``https://pay.example.com`` (no trailing slash)."""
    return public_base_of(request.app[CONFIG].public_url, request.scheme, request.host)


def public_url(request: web.Request, path: str) -> str:
    """``path`` (starting with ``/``) under :func:`public_base`."""
    return public_base(request) + path
