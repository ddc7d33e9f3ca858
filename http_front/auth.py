"""HTTP Basic per project: every request names its project by login and password.

The check itself (scrypt hash, constant-time compare, cache of verified
credentials, slow failures) is ``Projects.authenticate``'s; this layer
parses the header and answers 401 with a challenge. The header and the
password are never logged or echoed.

>>> parse_basic("Basic cHJvamVjdDpwYXNzd29yZA==")
('project', 'password')
>>> parse_basic("Basic bm9jb2xvbg==") is None, parse_basic("Bearer x") is None
(True, True)
"""

from __future__ import annotations

import binascii

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from http_front.failures import HttpFailure
from http_front.keys import PROJECT, RUNTIME

__all__ = ["PUBLIC_ROUTE", "auth_middleware", "is_public", "parse_basic", "unauthorized"]

# A real header is a few dozen bytes; a huge one is refused before any decoding.
_MAX_HEADER = 1024


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(login, password) of an ``Authorization: Basic`` header, or None when absent or malformed."""
    if header is None or len(header) > _MAX_HEADER:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = binascii.a2b_base64(token.strip().encode("ascii"), strict_mode=True)
        text = raw.decode("utf-8")
    except (ValueError, UnicodeError):  # binascii.Error is a ValueError
        return None
    login, colon, password = text.partition(":")
    if not colon or not login:
        return None
    return login, password


def unauthorized(realm: str) -> HttpFailure:
    # One message whatever went wrong: which of login or password was wrong is not told.
    return HttpFailure(
        401,
        "validation",
        "Authentication required",
        headers={hdrs.WWW_AUTHENTICATE: f'Basic realm="{realm}"'},
    )


PUBLIC_ROUTE = "public:"
"""Route names starting with this answer without credentials (/metrics, /health, /docs, /openapi.json)."""


def is_public(request: web.Request) -> bool:
    name = request.match_info.route.name
    return name is not None and name.startswith(PUBLIC_ROUTE)


def auth_middleware(realm: str) -> Middleware:
    """Sets ``request[PROJECT]``; 401 without valid credentials. Unrouted paths pass to their 404/405."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None or is_public(request):
            return await handler(request)
        creds = parse_basic(request.headers.get(hdrs.AUTHORIZATION))
        if creds is None:
            raise unauthorized(realm)
        project = await request.app[RUNTIME].projects.authenticate(*creds)
        if project is None:
            raise unauthorized(realm)
        request[PROJECT] = project
        return await handler(request)

    return authenticate
