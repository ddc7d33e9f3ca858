"""The webhook sender: the core's :class:`switch.webhooks.Sender` port over one aiohttp session.

No redirects are followed (a 3xx is a failed attempt: a redirect could lead past the address
policy the worker checked), no cookies are kept, and the answer's body is not read beyond 64 KiB.
"""

from __future__ import annotations

import aiohttp

__all__ = ["AiohttpSender"]

_MAX_BODY = 65536


class AiohttpSender:
    """POSTs deliveries; :meth:`close` when the process stops."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(limit=64, limit_per_host=8),
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
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
