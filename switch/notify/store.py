"""Notifications in PostgreSQL (schemas/sql/039_notifications.sql): preferences, the centre, the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from switch.notify.events import EVENTS, Notice

__all__ = ["Claimed", "NotifyStore", "Pref", "RawEvent"]

_EVENT_NAMES = frozenset(name for name, _ in EVENTS)


@dataclass(frozen=True, slots=True)
class Pref:
    """One user's wish for one event: notified at all (``on``: the centre), and by which channels."""

    event: str
    on: bool = False
    email: bool = False
    telegram: bool = False


@dataclass(frozen=True, slots=True)
class RawEvent:
    event_id: str
    project_id: int | None
    user_id: int | None
    order_id: str | None
    event_type: str
    detail: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery due, leased to this worker for its attempt."""

    id: int
    channel: str
    recipient: str
    attempt: int
    max_attempts: int
    project_id: int
    user_id: int
    title: str
    body: str
    link: str | None


_CLAIM_EVENTS = """
SELECT event_id, project_id, user_id, order_id, event_type, detail FROM notify_events
WHERE NOT dispatched ORDER BY created LIMIT $1 FOR UPDATE SKIP LOCKED
"""

# Who gets a notice of ``event`` in a project: users with the preference who are still its members.
_SUBSCRIBERS = """
SELECT p.user_id, p.project_id, p.email, p.telegram, u.email AS address, t.chat_id
FROM notify_prefs p JOIN portal_users u ON u.id = p.user_id
JOIN portal_members m ON m.user_id = p.user_id AND m.project_id = p.project_id
LEFT JOIN notify_telegram t ON t.user_id = p.user_id
WHERE p.event = $1 AND ($2::bigint IS NULL OR p.project_id = $2) AND ($3::bigint IS NULL OR p.user_id = $3)
ORDER BY p.user_id, p.project_id
"""

_CLAIM_DELIVERIES = """
WITH exhausted AS (
    UPDATE notify_outbox SET state = 'failed', last_error = coalesce(last_error, 'no answer to the last attempt')
    WHERE state = 'pending' AND next_attempt_at <= now() AND attempts >= max_attempts
), due AS (
    SELECT id FROM notify_outbox
    WHERE state = 'pending' AND next_attempt_at <= now() AND attempts < max_attempts AND channel = ANY($3::text[])
    ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE notify_outbox AS d SET attempts = d.attempts + 1, next_attempt_at = now() + $2 * interval '1 second'
FROM due, notifications n WHERE d.id = due.id AND n.id = d.notification_id
RETURNING d.id, d.channel, d.recipient, d.attempts AS attempt, d.max_attempts, n.project_id, n.user_id, n.title,
          n.body, n.link
"""

# An invoice past its expiry, unpaid, of a project where someone wants to know: an event, once.
_SWEEP_EXPIRED = """
INSERT INTO notify_events (event_id, project_id, event_type, detail)
SELECT 'invexp_' || i.id, i.project_id, 'invoice.expired',
       jsonb_build_object('invoice_id', i.id, 'reference_id', i.reference_id, 'amount', i.amount,
                          'currency', i.currency)
FROM payment_invoices i
WHERE i.expires <= $1::timestamptz AND i.expires > $1::timestamptz - interval '2 days'
  AND EXISTS (SELECT 1 FROM notify_prefs p WHERE p.project_id = i.project_id AND p.event = 'invoice_expired')
  AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = i.order_id
                  AND o.status IN ('authorized', 'charged', 'refunded', 'chargedback'))
ON CONFLICT DO NOTHING
"""


class NotifyStore:
    """The SQL of notifications."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- preferences ---------------------------------------------------------------------------

    async def prefs(self, user_id: int, project_id: int) -> list[Pref]:
        rows = await self.pool.fetch(
            "SELECT event, email, telegram FROM notify_prefs WHERE user_id = $1 AND project_id = $2",
            user_id,
            project_id,
        )
        have = {r["event"]: Pref(r["event"], True, r["email"], r["telegram"]) for r in rows}
        return [have.get(name, Pref(name)) for name, _ in EVENTS]

    async def save_prefs(self, user_id: int, project_id: int, prefs: list[Pref]) -> None:
        wanted = [p for p in prefs if p.on and p.event in _EVENT_NAMES]
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM notify_prefs WHERE user_id = $1 AND project_id = $2", user_id, project_id)
            await conn.executemany(
                "INSERT INTO notify_prefs (user_id, project_id, event, email, telegram) VALUES ($1, $2, $3, $4, $5)",
                [(user_id, project_id, p.event, p.email, p.telegram) for p in wanted],
            )

    async def telegram_chat(self, user_id: int) -> str | None:
        chat: str | None = await self.pool.fetchval("SELECT chat_id FROM notify_telegram WHERE user_id = $1", user_id)
        return chat

    async def set_telegram_chat(self, user_id: int, chat_id: str | None) -> None:
        if chat_id is None:
            await self.pool.execute("DELETE FROM notify_telegram WHERE user_id = $1", user_id)
        else:
            await self.pool.execute(
                "INSERT INTO notify_telegram (user_id, chat_id) VALUES ($1, $2)"
                " ON CONFLICT (user_id) DO UPDATE SET chat_id = EXCLUDED.chat_id",
                user_id,
                chat_id,
            )

    async def notified_projects(self) -> frozenset[int]:
        """Projects whose orders' changes are events for someone (a login pref alone needs no order events)."""
        rows = await self.pool.fetch("SELECT DISTINCT project_id FROM notify_prefs WHERE event <> 'login'")
        return frozenset(r["project_id"] for r in rows)

    # -- the centre ----------------------------------------------------------------------------

    async def notifications(self, user_id: int, project_id: int, *, unread: bool, limit: int) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT n.id, n.event, n.title, n.body, n.link, n.created, n.read_at,"
            " coalesce((SELECT json_agg(json_build_object('channel', d.channel, 'state', d.state) ORDER BY d.id)"
            "  FROM notify_outbox d WHERE d.notification_id = n.id), '[]'::json) AS deliveries"
            " FROM notifications n WHERE n.user_id = $1 AND n.project_id = $2 AND (NOT $3 OR n.read_at IS NULL)"
            " ORDER BY n.id DESC LIMIT $4",
            user_id,
            project_id,
            unread,
            limit,
        )
        return [dict(r) for r in rows]

    async def unread(self, user_id: int, project_id: int) -> int:
        n = await self.pool.fetchval(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND project_id = $2 AND read_at IS NULL",
            user_id,
            project_id,
        )
        return int(n)

    async def mark_read(self, user_id: int, project_id: int, ids: list[int] | None, now: datetime) -> int:
        """Mark the user's notifications read (``ids`` None: all of them); how many changed."""
        status = await self.pool.execute(
            "UPDATE notifications SET read_at = $4 WHERE user_id = $1 AND project_id = $2 AND read_at IS NULL"
            " AND ($3::bigint[] IS NULL OR id = ANY($3::bigint[]))",
            user_id,
            project_id,
            ids,
            now,
        )
        return int(status.rsplit(" ", 1)[-1])

    # -- fan-out -------------------------------------------------------------------------------

    async def claim_events(self, conn: asyncpg.Connection, limit: int) -> list[RawEvent]:
        rows = await conn.fetch(_CLAIM_EVENTS, limit)
        return [RawEvent(**dict(r)) for r in rows]

    async def fan_out(
        self, conn: asyncpg.Connection, notice: Notice, project_id: int | None, user_id: int | None, max_attempts: int
    ) -> int:
        """The notice for each subscriber (and a delivery per channel); how many notifications were written."""
        written = 0
        seen: set[int] = set()
        for s in await conn.fetch(_SUBSCRIBERS, notice.event, project_id, user_id):
            if s["user_id"] in seen:  # a login: one notice, in the first project that asks for it
                continue
            seen.add(s["user_id"])
            nid = await conn.fetchval(
                "INSERT INTO notifications (user_id, project_id, event, dedupe, title, body, link)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, dedupe) DO NOTHING RETURNING id",
                s["user_id"],
                s["project_id"],
                notice.event,
                notice.dedupe,
                notice.title,
                notice.body,
                notice.link,
            )
            if nid is None:
                continue
            written += 1
            channels = [("email", s["address"])] if s["email"] else []
            if s["telegram"] and s["chat_id"] is not None:
                channels.append(("telegram", s["chat_id"]))
            for channel, recipient in channels:
                await conn.execute(
                    "INSERT INTO notify_outbox (notification_id, channel, recipient, max_attempts)"
                    " VALUES ($1, $2, $3, $4)",
                    nid,
                    channel,
                    recipient,
                    max_attempts,
                )
        return written

    async def dispatched(self, conn: asyncpg.Connection, event_ids: list[str]) -> None:
        await conn.execute("UPDATE notify_events SET dispatched = true WHERE event_id = ANY($1::text[])", event_ids)

    async def sweep_expired(self, now: datetime) -> None:
        """Events of invoices that expired unpaid; and dispatched events older than 3 days go."""
        await self.pool.execute(_SWEEP_EXPIRED, now)
        await self.pool.execute(
            "DELETE FROM notify_events WHERE dispatched AND created < $1::timestamptz - interval '3 days'", now
        )

    # -- deliveries ----------------------------------------------------------------------------

    async def claim_deliveries(self, limit: int, lease: float, channels: list[str]) -> list[Claimed]:
        rows = await self.pool.fetch(_CLAIM_DELIVERIES, limit, lease, channels)
        return [Claimed(**dict(r)) for r in rows]

    async def sent(self, delivery_id: int, attempt: int, detail: str, conn: asyncpg.Connection | None = None) -> None:
        await (conn or self.pool).execute(
            "UPDATE notify_outbox SET state = 'sent', sent_at = now(), last_error = NULL, detail = $3"
            " WHERE id = $1 AND state = 'pending' AND attempts = $2",
            delivery_id,
            attempt,
            detail[:200],
        )

    async def failed(self, delivery_id: int, attempt: int, retry_in: float, error: str, *, final: bool) -> None:
        await self.pool.execute(
            "UPDATE notify_outbox SET state = CASE WHEN $5 OR attempts >= max_attempts THEN 'failed' ELSE 'pending'"
            " END, next_attempt_at = now() + $3 * interval '1 second', last_error = $4"
            " WHERE id = $1 AND state = 'pending' AND attempts = $2",
            delivery_id,
            attempt,
            retry_in,
            error[:500],
            final,
        )

    async def deliveries(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest deliveries (tests, tools): channel, state, attempts, error."""
        rows = await self.pool.fetch(
            "SELECT d.id, d.notification_id, d.channel, d.recipient, d.state, d.attempts, d.last_error, d.detail,"
            " n.event, n.title FROM notify_outbox d JOIN notifications n ON n.id = d.notification_id"
            " ORDER BY d.id DESC LIMIT $1",
            limit,
        )
        return [dict(r) for r in rows]
