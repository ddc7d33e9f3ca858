"""Notification settings: the ``[telegram]`` section of the TOML file (the bot API and the deliveries' retries)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

__all__ = ["TelegramConfig"]

_BASE = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")


@dataclass(frozen=True, slots=True, kw_only=True)
class TelegramConfig:
    """Where Telegram notifications go and how the notify worker retries; each default is ``isoswitch up``'s.

    The bot token is a secret: ``ISOSWITCH_TELEGRAM__TOKEN``, never the file (``config show`` hides it). Without a
    token, Telegram deliveries wait (pending) and the portal says Telegram is not configured; e-mail and the
    notification centre work regardless.
    """

    api_base: str = "https://api.telegram.org"  # the bot API; a test (or a proxy) points it elsewhere
    token: str | None = None  # the bot's token (ISOSWITCH_TELEGRAM__TOKEN)
    timeout: float = 10.0  # seconds per bot API call
    poll_interval: float = 1.0  # seconds between the notify worker's rounds (events to fan out, deliveries due)
    batch: int = 16  # events fanned out / deliveries sent per round
    backoff_base: float = 30.0  # seconds after the first failed attempt; doubles per attempt (jittered)
    backoff_cap: float = 3600.0  # longest wait between two attempts
    max_attempts: int = 12  # attempts before a delivery is left `failed`

    def __post_init__(self) -> None:
        if not _BASE.fullmatch(self.api_base):
            raise ValueError("telegram: api_base must be an http(s) URL without query")
        if self.token is not None and not re.fullmatch(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,100}", self.token):
            raise ValueError("telegram: token must look like 123456:ABC... (ISOSWITCH_TELEGRAM__TOKEN)")
        if self.timeout <= 0 or self.poll_interval <= 0 or self.batch < 1 or self.max_attempts < 1:
            raise ValueError("telegram: timeout and poll_interval must be > 0, batch and max_attempts >= 1")
        if self.backoff_base <= 0 or self.backoff_cap < self.backoff_base:
            raise ValueError("telegram: backoff_base must be > 0 and backoff_cap >= backoff_base")

    def backoff(self, attempts: int, jitter: float | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt: capped doubling, less up to 20 % jitter.

        >>> c = TelegramConfig(backoff_base=1.0, backoff_cap=4.0)
        >>> [c.backoff(n, jitter=0.0) for n in (1, 2, 3, 4)]
        [1.0, 2.0, 4.0, 4.0]
        """
        delay = min(self.backoff_cap, self.backoff_base * 2 ** min(max(attempts - 1, 0), 30))
        share = random.random() if jitter is None else jitter
        return delay * (1.0 - 0.2 * share)
