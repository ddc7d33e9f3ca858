"""The Telegram sender: the core's :class:`switch.notify.TelegramSender` port over one aiohttp session.

``POST {api_base}/bot{token}/sendMessage`` with ``{"chat_id": ..., "text": ...}`` (the Bot API). Its answer is
``{"ok": true, "result": {"message_id": N}}``, or ``{"ok": false, "error_code": C, "description": ...}``: a 400
or 403 (no such chat, the bot blocked or kicked) is :class:`~switch.notify.TelegramRefused`, not retried; a 429
(flood control), a 5xx, a timeout or a lost connection is an ordinary failure, retried by the worker.

The token is in the URL's path, so no error raised here carries the URL (aiohttp's own errors do: they are
replaced by their class and the host). No redirects are followed, no cookies kept, at most 64 KiB read.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
import orjson

from switch.notify import TelegramConfig, TelegramRefused

__all__ = ["TelegramApiError", "TelegramHttpSender"]

_MAX_BODY = 65536


class TelegramApiError(Exception):
    """A failed call that may work later (its text names the host and the answer, never the token)."""


class TelegramHttpSender:
    """Sends with the ``[telegram]`` bot token to ``api_base``; :meth:`close` when the process stops."""

    def __init__(self, config: TelegramConfig) -> None:
        if config.token is None:
            raise ValueError("telegram: no bot token (ISOSWITCH_TELEGRAM__TOKEN)")
        self._url = f"{config.api_base.rstrip('/')}/bot{config.token}/sendMessage"
        self._host = urlsplit(config.api_base).netloc
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def send_message(self, chat_id: str, text: str, timeout: float) -> str:
        body = orjson.dumps({"chat_id": chat_id, "text": text[:4096], "disable_web_page_preview": True})
        try:
            async with self._open().post(
                self._url,
                data=body,
                headers={"content-type": "application/json", "user-agent": "isoswitch-notify"},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                status, raw = resp.status, await resp.content.read(_MAX_BODY)
        except aiohttp.ClientError as e:
            # aiohttp's message may quote the URL, and with it the token: only the class and the host.
            raise TelegramApiError(f"{e.__class__.__name__} talking to {self._host}") from None
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        description = str(answer.get("description", ""))[:200].replace(self._url, "<bot API>")
        if status == 200 and answer.get("ok") is True:
            result = answer.get("result")
            return str(result.get("message_id", "")) if isinstance(result, dict) else ""
        if status in (400, 403):
            raise TelegramRefused(f"{status} {description}".strip())
        raise TelegramApiError(f"{self._host} answered {status} {description}".strip())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
