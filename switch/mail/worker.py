"""The mail worker: claims due outbox rows and hands them to the SMTP server through the :class:`MailSender` port.

It runs in every serving process, as the webhook worker does (switch/webhooks/worker.py, its model): rows
are claimed with ``FOR UPDATE SKIP LOCKED`` and leased in the claiming statement (``next_attempt_at`` moves
past the attempt's timeout), so two processes never send one mail at once, and a process that dies mid-send
leaves a row that another claims when the lease ends (at least once; the Message-ID is the same on every
attempt, so a duplicate is recognisable). A server's permanent refusal (:class:`MailRefused`, SMTP 5xx)
fails the mail at once; anything else (a refused connection, a timeout, 4xx) is retried after the backoff
until ``max_attempts``. Every attempt is recorded with the server's reply or the error.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from switch import metrics
from switch.background import CLOSE_TIMEOUT, Periodic
from switch.mail.config import MailConfig
from switch.mail.message import envelope_sender
from switch.mail.store import Claimed, MailStore

__all__ = ["MailRefused", "MailSender", "MailWorker"]

log = logging.getLogger("isoswitch.mail")

# A claimed row is someone else's again this long after the attempt's timeout.
_LEASE_MARGIN = 10.0


class MailRefused(Exception):
    """The server refused the mail for good (an SMTP 5xx: no such mailbox, message refused): not retried."""


class MailSender(Protocol):
    """The port to an SMTP server.

    ``send`` hands ``message`` (RFC 5322 bytes) for ``recipient`` to the SMTP server within ``timeout``
    seconds and returns the server's reply (``"250 OK ..."``). :class:`MailRefused`: refused for good;
    any other exception: a failed attempt, retried. An optional ``async close()`` is awaited at close.
    The adapter is ``http_front/outbound/smtp.py`` (aiosmtplib); the core has no SMTP library.
    """

    async def send(self, sender: str, recipient: str, message: bytes, timeout: float) -> str: ...


class MailWorker(Periodic):
    """Sends what is due every ``poll_interval`` (or at once when kicked by a new mail)."""

    def __init__(self, store: MailStore, config: MailConfig, sender: MailSender) -> None:
        super().__init__(log=log, failed="mail round failed", interval=lambda: self.config.poll_interval)
        self.store = store
        self.config = config
        self.sender = sender
        self.sent = 0  # mails this process handed over
        self._outcomes = {o: metrics.counter("isoswitch_mail_attempts", o) for o in ("sent", "retried", "failed")}
        self._inflight: set[asyncio.Task[None]] = set()

    async def close(self, *, timeout: float | None = None) -> None:
        """Stop claiming; give sends in flight ``timeout`` seconds (their rows' leases cover the rest)."""
        if not await self._stop_loop(timeout):
            return
        wait = CLOSE_TIMEOUT if timeout is None else timeout
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=wait)
        for t in list(self._inflight):
            t.cancel()
        if self._inflight:
            await asyncio.wait(self._inflight)
        closer = getattr(self.sender, "close", None)
        if closer is not None:
            await closer()

    def more_due(self, done: int) -> bool:
        return done > 0 and len(self._inflight) < self.config.batch  # a full house waits for a free slot's kick

    async def work_once(self) -> int:
        """Claim what is due (as many as free slots) and start sending it; how many were claimed."""
        free = self.config.batch - len(self._inflight)
        if free <= 0:
            return 0
        rows = await self.store.claim(free, self.config.timeout + _LEASE_MARGIN)
        for row in rows:
            t = asyncio.ensure_future(self._send(row))
            self._inflight.add(t)
            t.add_done_callback(self._done)
        return len(rows)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not self._stopping:
            self._kick.set()

    async def _send(self, row: Claimed) -> None:
        cfg = self.config
        try:
            try:
                reply = await asyncio.wait_for(
                    self.sender.send(envelope_sender(cfg.from_address), row.recipient, row.message, cfg.timeout),
                    cfg.timeout + 1.0,
                )
            except asyncio.CancelledError:
                raise
            except MailRefused as e:
                await self._failed(row, f"refused: {e}", final=True)
                return
            except Exception as e:
                await self._failed(row, f"{e.__class__.__name__}: {e}".rstrip(": "))
                return
            self.sent += 1
            self._outcomes["sent"].inc()
            await self.store.sent(row.id, row.attempt, reply)
            log.info("mail sent", extra={"mail_id": row.id, "attempt": row.attempt})
        except asyncio.CancelledError:
            raise
        except Exception:
            # Not recorded (the database is away): the lease runs out and the row is claimed again.
            log.warning("mail attempt could not be recorded", extra={"mail_id": row.id}, exc_info=True)

    async def _failed(self, row: Claimed, error: str, *, final: bool = False) -> None:
        state = await self.store.attempt_failed(
            row.id, row.attempt, self.config.backoff(row.attempt), error, final=final
        )
        if state is not None:
            self._outcomes["failed" if state == "failed" else "retried"].inc()
        # The recipient is not logged (personal data); the row id finds it.
        log.log(
            logging.ERROR if state == "failed" else logging.INFO,
            "mail failed" if state == "failed" else "mail attempt failed",
            extra={"mail_id": row.id, "attempt": row.attempt, "error": error},
        )
