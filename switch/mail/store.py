"""The mail outbox and its attempts in PostgreSQL (schemas/sql/025_mail_outbox.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

__all__ = ["Claimed", "MailStore", "QueuedMail", "SealingVault"]


class SealingVault(Protocol):
    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]: ...
    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes: ...


def _aad(message_id: str) -> bytes:
    return f"mail:{message_id}".encode()


@dataclass(frozen=True, slots=True)
class QueuedMail:
    """A mail written to the outbox: its row id (``isoswitch mail resend ID``) and Message-ID."""

    id: int
    message_id: str


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed outbox row: the message to send (opened) and this attempt's number."""

    id: int
    message_id: str
    recipient: str
    message: bytes
    attempt: int
    max_attempts: int


_INSERT = """
INSERT INTO mail_outbox (message_id, project_id, kind, reference, recipient, subject, key_id, message, max_attempts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id
"""

# Rows whose attempts are used up but still pending (their last attempt was never recorded: the process died)
# are failed here, not claimed again forever. (The CTEs see one snapshot: `due` skips them by the same test.)
_CLAIM = """
WITH exhausted AS (
    UPDATE mail_outbox SET state = 'failed', last_error = coalesce(last_error, 'no answer to the last attempt')
    WHERE state = 'pending' AND next_attempt_at <= now() AND attempts >= max_attempts
    RETURNING id
), due AS (
    SELECT id FROM mail_outbox
    WHERE state = 'pending' AND next_attempt_at <= now() AND attempts < max_attempts
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE mail_outbox AS m
SET attempts = m.attempts + 1, next_attempt_at = now() + $2 * interval '1 second', last_attempt_at = now()
FROM due WHERE m.id = due.id
RETURNING m.id, m.message_id, m.recipient, m.key_id, m.message, m.attempts, m.max_attempts
"""

# The attempt's outcome and its log line in one statement. Only while the row is still this attempt's
# (pending, with this attempt number): a resend in between makes it someone else's.
_SENT = """
WITH row AS (
    UPDATE mail_outbox SET state = 'sent', sent_at = now(), last_error = NULL
    WHERE id = $1 AND state = 'pending' AND attempts = $2
    RETURNING id
)
INSERT INTO mail_attempts (mail_id, attempt, ok, detail) SELECT id, $2, true, $3 FROM row
"""
_FAILED = """
WITH row AS (
    UPDATE mail_outbox
    SET state = CASE WHEN $5 OR attempts >= max_attempts THEN 'failed' ELSE 'pending' END,
        next_attempt_at = now() + $3 * interval '1 second', last_error = $4
    WHERE id = $1 AND state = 'pending' AND attempts = $2
    RETURNING id, state
), logged AS (
    INSERT INTO mail_attempts (mail_id, attempt, ok, detail) SELECT id, $2, false, $4 FROM row
)
SELECT state FROM row
"""

_LIST = """
SELECT m.id, m.message_id, m.project_id, p.login AS project, m.kind, m.reference, m.recipient, m.subject,
       m.state, m.attempts, m.max_attempts, m.last_error, m.last_attempt_at,
       CASE WHEN m.state = 'pending' THEN m.next_attempt_at END AS next_attempt_at, m.sent_at, m.created,
       coalesce((SELECT json_agg(json_build_object('attempt', a.attempt, 'at', a.at, 'ok', a.ok, 'detail', a.detail)
                 ORDER BY a.attempt) FROM mail_attempts a WHERE a.mail_id = m.id), '[]'::json) AS attempt_log
FROM mail_outbox m LEFT JOIN projects p ON p.id = m.project_id
WHERE ($1::text IS NULL OR m.state = $1) AND ($2::text IS NULL OR m.reference = $2)
  AND ($3::text IS NULL OR p.login = $3) AND ($4::bigint IS NULL OR m.id = $4)
ORDER BY m.id DESC
LIMIT $5
"""


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class MailStore:
    """SQL of the outbox; the vault seals the messages and opens them for the worker."""

    def __init__(self, pool: asyncpg.Pool, vault: SealingVault) -> None:
        self._pool = pool
        self._vault = vault

    async def insert(
        self,
        *,
        message_id: str,
        project_id: int | None,
        kind: str,
        reference: str | None,
        recipient: str,
        subject: str,
        message: bytes,
        max_attempts: int,
        conn: asyncpg.Connection | None = None,
    ) -> int:
        key_id, blob = self._vault.seal(message, _aad(message_id))
        args = (message_id, project_id, kind, reference, recipient, subject, key_id, blob, max_attempts)
        row_id = await (conn or self._pool).fetchval(_INSERT, *args)
        assert row_id is not None
        return int(row_id)

    async def claim(self, limit: int, lease: float) -> list[Claimed]:
        """Due rows, leased for ``lease`` seconds (another process takes them again after that)."""
        rows = await self._pool.fetch(_CLAIM, limit, lease)
        claimed = []
        for r in rows:
            try:
                message = self._vault.open(r["key_id"], bytes(r["message"]), _aad(r["message_id"]))
            except Exception as e:
                # One mail the vault cannot open (its key gone from the keyring) fails alone, visibly, and the
                # others claimed with it are still sent.
                await self.attempt_failed(r["id"], r["attempts"], 0, f"cannot open: {type(e).__name__}", final=True)
                continue
            claimed.append(
                Claimed(
                    id=r["id"],
                    message_id=r["message_id"],
                    recipient=r["recipient"],
                    message=message,
                    attempt=r["attempts"],
                    max_attempts=r["max_attempts"],
                )
            )
        return claimed

    async def sent(self, mail_id: int, attempt: int, reply: str) -> None:
        await self._pool.execute(_SENT, mail_id, attempt, reply[:500])

    async def attempt_failed(
        self, mail_id: int, attempt: int, retry_in: float, error: str, *, final: bool = False
    ) -> str | None:
        """Record a failed attempt; the row's state after it (``pending``, ``failed``; None: no longer this
        attempt's row)."""
        state: str | None = await self._pool.fetchval(_FAILED, mail_id, attempt, retry_in, error[:500], final)
        return state

    async def list(
        self,
        *,
        state: str | None = None,
        reference: str | None = None,
        project: str | None = None,
        mail_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first, each with its attempts (``attempt_log``); never the message itself."""
        rows = await self._pool.fetch(_LIST, state, reference, project, mail_id, limit)
        return [{k: _plain(v) for k, v in dict(r).items()} for r in rows]  # json: decoded by the pool's codec

    async def resend(self, mail_id: int, attempts: int) -> bool:
        """Send a mail again (sent or failed, or sooner when pending), with ``attempts`` more attempts."""
        status = await self._pool.execute(
            # A pending mail in flight keeps its lease (greatest): a resend never makes a second concurrent send.
            "UPDATE mail_outbox SET state = 'pending', max_attempts = attempts + $2,"
            " next_attempt_at = CASE WHEN state = 'pending' THEN greatest(now(), next_attempt_at) ELSE now() END"
            " WHERE id = $1",
            mail_id,
            attempts,
        )
        return bool(status != "UPDATE 0")

    async def depth(self) -> tuple[int, int]:
        """(pending, failed) mails, for the metrics."""
        row = await self._pool.fetchrow(
            "SELECT count(*) FILTER (WHERE state = 'pending') AS pending,"
            " count(*) FILTER (WHERE state = 'failed') AS failed FROM mail_outbox"
        )
        assert row is not None
        return int(row["pending"]), int(row["failed"])
