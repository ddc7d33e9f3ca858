"""Webhook delivery settings (the ``[webhooks]`` section of the TOML file)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["WebhookConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookConfig:
    """Webhook settings; each default is what ``isoswitch up`` uses with the shipped file."""

    poll_interval: float = 1.0  # seconds between the worker's claims of due deliveries
    batch: int = 32  # deliveries in flight at once per process
    timeout: float = 5.0  # seconds a delivery (connect + answer) may take; past it: a failed attempt
    backoff_base: float = 5.0  # seconds after the first failed attempt; doubles per attempt
    backoff_cap: float = 3600.0  # longest wait between two attempts
    max_age: float = 259200.0  # seconds (3 days) of retries before a delivery is left `failed`
    refresh_interval: float = 2.0  # seconds between re-reads of which projects have endpoints
    allow_private: bool = False  # deliver to private, link-local, reserved addresses (10/8, 169.254/16, ...)
    allow_loopback: bool = True  # deliver to 127.0.0.0/8 and ::1: a developer's local endpoint; false in production

    def __post_init__(self) -> None:
        if self.poll_interval <= 0 or self.batch < 1 or self.timeout <= 0 or self.refresh_interval <= 0:
            raise ValueError("webhooks: poll_interval, timeout and refresh_interval must be > 0, batch >= 1")
        if self.backoff_base <= 0 or self.backoff_cap < self.backoff_base or self.max_age <= 0:
            raise ValueError("webhooks: backoff_base and max_age must be > 0 and backoff_cap >= backoff_base")

    def backoff(self, attempts: int, jitter: float | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt: capped doubling, less up to 20 % jitter.

        >>> c = WebhookConfig(backoff_base=1.0, backoff_cap=4.0)
        >>> [c.backoff(n, jitter=0.0) for n in (1, 2, 3, 4)]
        [1.0, 2.0, 4.0, 4.0]
        """
        delay = min(self.backoff_cap, self.backoff_base * 2 ** min(max(attempts - 1, 0), 30))
        # Jitter: endpoints that failed together (an outage) are not retried in one burst.
        share = random.random() if jitter is None else jitter
        return delay * (1.0 - 0.2 * share)
