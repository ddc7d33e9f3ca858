"""Store-and-forward settings (the ``[saf]`` section of the TOML file)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SafConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SafConfig:
    """Store-and-forward settings; each default is what ``isoswitch up`` uses."""

    poll_interval: float = 1.0  # seconds between the worker's claims of due advices
    batch: int = 32  # advices claimed (and sent concurrently) per round
    max_attempts: int = 50  # advices (0420 + 0421s) before the row is left `manual`
    backoff_base: float = 1.0  # seconds after the first unanswered advice; doubles per attempt
    backoff_cap: float = 300.0  # longest wait between two advices
    timeout: float | None = None  # seconds per 0400/0420/0421; None: the link's own timeout
    recovery_grace: float = 60.0  # a pending intent of another process this old (s) is orphaned
    recovery_interval: float = 30.0  # seconds between recovery scans after the one at start

    def __post_init__(self) -> None:
        if self.poll_interval <= 0 or self.batch < 1 or self.max_attempts < 1:
            raise ValueError("saf: poll_interval must be > 0, batch and max_attempts >= 1")
        if self.backoff_base <= 0 or self.backoff_cap < self.backoff_base:
            raise ValueError("saf: backoff_base must be > 0 and backoff_cap >= backoff_base")

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th unanswered advice.

        >>> c = SafConfig(backoff_base=0.5, backoff_cap=3.0)
        >>> [c.backoff(n) for n in (1, 2, 3, 4, 5)]
        [0.5, 1.0, 2.0, 3.0, 3.0]
        """
        return min(self.backoff_cap, self.backoff_base * 2 ** min(max(attempts - 1, 0), 30))
