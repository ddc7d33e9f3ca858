"""The mail outbox (issue 12 item 7): invoices by e-mail, and the portal's recovery links and codes.

The whole API a caller needs is :class:`Mailer` (``runtime.mail``) and :class:`Mail`:
``await runtime.mail.enqueue(Mail(kind=..., to=..., subject=..., text=..., html=...))`` writes the mail
to the outbox (optionally in the caller's transaction, ``conn=``) and returns its row id and Message-ID.

- :mod:`switch.mail.message`: the mail, address checks, the RFC 5322 message;
- :mod:`switch.mail.store`: the outbox and its attempts (schemas/sql/025_mail_outbox.sql), sealed by the vault;
- :mod:`switch.mail.worker`: claims (SKIP LOCKED), sends through the :class:`MailSender` port, retries;
- :mod:`switch.mail.config`: ``[mail]``.
"""

from __future__ import annotations

from switch.mail.config import MailConfig
from switch.mail.message import KINDS, Mail, check_address
from switch.mail.outbox import Mailer
from switch.mail.store import MailStore, QueuedMail
from switch.mail.worker import MailRefused, MailSender, MailWorker

__all__ = [
    "KINDS",
    "Mail",
    "MailConfig",
    "MailRefused",
    "MailSender",
    "MailStore",
    "MailWorker",
    "Mailer",
    "QueuedMail",
    "check_address",
]
