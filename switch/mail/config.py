"""Mail settings (the ``[mail]`` section of the TOML file)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

__all__ = ["TLS_MODES", "MailConfig"]

TLS_MODES = ("none", "starttls", "tls")
# A bare address or "Name <address>"; CR/LF never (a header injection).
_FROM = re.compile(r"[^\r\n<>]{0,200}<[^@\s<>]+@[^@\s<>]+>|[^@\s<>]+@[^@\s<>]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class MailConfig:
    """Where the mail outbox's worker sends (SMTP) and how it retries; each default is ``isoswitch up``'s.

    ``isoswitch up`` starts a local SMTP sink and points ``host``/``port`` at it (``[smtp_sink]``).
    """

    enabled: bool = True  # false: mails are still written to the outbox; this process sends none
    host: str = "127.0.0.1"  # the SMTP server (relay) to hand mails to
    port: int = 8025  # 25/587 with starttls, 465 with tls; 8025: the sink of `isoswitch up`
    tls: str = "none"  # none | starttls (upgrade after EHLO) | tls (implicit TLS from the first byte)
    username: str | None = None  # SMTP AUTH login; unset: no AUTH
    password: str | None = None  # SMTP AUTH password: set it with ISOSWITCH_MAIL__PASSWORD, not in the file
    from_address: str = "isoswitch <noreply@isoswitch.localhost>"  # the From header and envelope sender
    timeout: float = 10.0  # seconds per attempt (connect, TLS, AUTH, the message); past it: a failed attempt
    poll_interval: float = 1.0  # seconds between claims of due mails (a new mail wakes the worker at once)
    batch: int = 8  # mails sent at once per process
    backoff_base: float = 30.0  # seconds after the first failed attempt; doubles per attempt (jittered)
    backoff_cap: float = 3600.0  # longest wait between two attempts
    max_attempts: int = 12  # attempts before a mail is left `failed` (about 10 hours with the defaults)

    def __post_init__(self) -> None:
        if self.tls not in TLS_MODES:
            raise ValueError(f"mail: tls must be one of {', '.join(TLS_MODES)}")
        if not 0 < self.port < 65536:
            raise ValueError("mail: port must be 1..65535")
        if not _FROM.fullmatch(self.from_address):
            raise ValueError('mail: from_address must be an address or "Name <address>"')
        if (self.username is None) != (self.password is None):
            raise ValueError("mail: username and password go together (ISOSWITCH_MAIL__PASSWORD)")
        if self.timeout <= 0 or self.poll_interval <= 0 or self.batch < 1 or self.max_attempts < 1:
            raise ValueError("mail: timeout and poll_interval must be > 0, batch and max_attempts >= 1")
        if self.backoff_base <= 0 or self.backoff_cap < self.backoff_base:
            raise ValueError("mail: backoff_base must be > 0 and backoff_cap >= backoff_base")

    def backoff(self, attempts: int, jitter: float | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt: capped doubling, less up to 20 % jitter.

        >>> c = MailConfig(backoff_base=1.0, backoff_cap=4.0)
        >>> [c.backoff(n, jitter=0.0) for n in (1, 2, 3, 4)]
        [1.0, 2.0, 4.0, 4.0]
        """
        delay = min(self.backoff_cap, self.backoff_base * 2 ** min(max(attempts - 1, 0), 30))
        share = random.random() if jitter is None else jitter  # a relay's outage: not one burst of retries after it
        return delay * (1.0 - 0.2 * share)
