"""The SMTP sender: the core's :class:`switch.mail.MailSender` port over aiosmtplib.

One connection per mail (mails are few: invoices, codes; a pooled connection would have to survive the
relay's idle timeouts). A 5xx answer is :class:`~switch.mail.MailRefused` (the mail is failed, not retried);
a 4xx, a refused or lost connection, a timeout is an ordinary exception (retried by the worker). The
password is used, never logged: errors carry the server's reply, not the login.
"""

from __future__ import annotations

import aiosmtplib

from switch.mail import MailConfig, MailRefused

__all__ = ["SmtpSender"]


class SmtpSender:
    """Sends through the ``[mail]`` server (``host``, ``port``, ``tls``, ``username``, ``password``)."""

    def __init__(self, config: MailConfig) -> None:
        self.config = config

    async def send(self, sender: str, recipient: str, message: bytes, timeout: float) -> str:
        cfg = self.config
        try:
            errors, reply = await aiosmtplib.send(
                message,
                sender=sender,
                recipients=[recipient],
                hostname=cfg.host,
                port=cfg.port,
                username=cfg.username,
                password=cfg.password,
                use_tls=cfg.tls == "tls",
                start_tls=cfg.tls == "starttls",  # "none": never, even when the server offers it
                timeout=timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = [r.code for r in e.recipients]
            text = "; ".join(f"{r.code} {r.message}" for r in e.recipients)
            if codes and all(code >= 500 for code in codes):
                raise MailRefused(text) from None
            raise ConnectionError(text) from None
        except aiosmtplib.SMTPResponseException as e:
            if e.code >= 500 and not isinstance(e, aiosmtplib.SMTPAuthenticationError):
                raise MailRefused(f"{e.code} {e.message}") from None
            raise  # 4xx, or our login refused (a configuration to fix, then the retries go through)
        if errors:  # one recipient only: refused ones raise above
            raise MailRefused("; ".join(f"{r.code} {r.message}" for r in errors.values()))
        return reply
