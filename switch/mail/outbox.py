"""The mail outbox's one entry point, :class:`Mailer` (``runtime.mail``).

Sending a mail is writing it to the outbox; the worker hands it to SMTP later, retrying::

    queued = await runtime.mail.enqueue(Mail(kind="code", to=user.email, subject="Your code", text=f"{code}"))
    # in the caller's transaction, so the mail exists iff what it announces does:
    async with pool.acquire() as conn, conn.transaction():
        ...
        await runtime.mail.enqueue(mail, conn=conn)

``isoswitch mail list`` shows every mail with its attempts; ``isoswitch mail resend ID`` sends one again.
"""

from __future__ import annotations

import asyncpg

from switch.mail.config import MailConfig
from switch.mail.message import Mail, new_message_id, render
from switch.mail.store import MailStore, QueuedMail
from switch.mail.worker import MailSender, MailWorker

__all__ = ["Mailer"]


class Mailer:
    """The outbox (always) and, once :meth:`start` has a sender, this process's worker."""

    def __init__(self, store: MailStore, config: MailConfig) -> None:
        self.store = store
        self.config = config
        self.worker: MailWorker | None = None

    async def enqueue(self, mail: Mail, *, conn: asyncpg.Connection | None = None) -> QueuedMail:
        """Write ``mail`` to the outbox (with ``conn``: in its transaction); it is sent after the commit.

        Nothing is sent here, and nothing here fails for the SMTP server's sake: its failures are the
        worker's, retried and recorded on the row.
        """
        message_id = new_message_id(self.config.from_address)
        raw = render(mail, self.config.from_address, message_id)
        row_id = await self.store.insert(
            message_id=message_id,
            project_id=mail.project_id,
            kind=mail.kind,
            reference=mail.reference,
            recipient=mail.to,
            subject=mail.subject,
            message=raw,
            max_attempts=self.config.max_attempts,
            conn=conn,
        )
        if self.worker is not None and conn is None:
            self.worker.kick()  # in a transaction: not yet committed; the next poll finds it
        return QueuedMail(row_id, message_id)

    def start(self, sender: MailSender) -> None:
        """Send from this process (``[mail] enabled``): every serving process does; tools do not."""
        if self.worker is None:
            self.worker = MailWorker(self.store, self.config, sender)
            self.worker.start()

    def kick(self) -> None:
        """Look for due mails now (after a transaction that enqueued one has committed)."""
        if self.worker is not None:
            self.worker.kick()

    async def close(self, *, timeout: float | None = None) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            await worker.close(timeout=timeout)
