"""The notify worker: fans events out to users and channels, and delivers what is due.

It runs in every serving process, like the mail and webhook workers (their model). Each round:

* re-reads which projects want order events (:attr:`switch.webhooks.Events.notified`: their orders' changes
  are written to ``notify_events`` in the changes' own statements);
* writes an event for each invoice that expired unpaid where someone wants to know (at most twice a minute);
* claims undispatched events (``FOR UPDATE SKIP LOCKED``) and, in the claim's transaction, writes each
  subscriber's notification and a delivery per chosen channel, and marks the events dispatched (exactly once);
* claims due deliveries, leased for the attempt (a process that dies mid-send leaves the row to another after
  the lease). An e-mail delivery is written to the mail outbox in the same transaction that marks it sent (the
  mail worker sends and retries it); a Telegram one goes through the :class:`TelegramSender` port. A permanent
  refusal (:class:`TelegramRefused`: the bot API's 400/403, a chat that does not exist or blocked the bot) fails
  it at once; anything else is retried after the backoff until ``max_attempts``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from switch.background import Periodic
from switch.mail import Mail, Mailer
from switch.notify.config import TelegramConfig
from switch.notify.events import Notice, event_status, invoice_notice, login_notice, order_notices
from switch.notify.store import Claimed, NotifyStore, RawEvent

if TYPE_CHECKING:
    from switch.orders.model import Order
    from switch.webhooks import Events

__all__ = ["LoadOrder", "NotifyWorker", "TelegramRefused", "TelegramSender"]

log = logging.getLogger("isoswitch.notify")

LoadOrder = Callable[[int, str], Awaitable["Order | None"]]
_LEASE_MARGIN = 10.0
_SWEEP_EVERY = 30.0


class TelegramRefused(Exception):
    """The bot API refused the message for good (400/403: no such chat, the bot was blocked): not retried."""


class TelegramSender(Protocol):
    """The port to the Telegram bot API (``sendMessage``).

    ``send_message`` sends ``text`` to ``chat_id`` within ``timeout`` seconds and returns the message's id.
    :class:`TelegramRefused`: refused for good; any other exception: a failed attempt, retried. The error text
    never carries the bot token. An optional ``async close()`` is awaited at close. The adapter is
    ``http_front/outbound/telegram.py`` (aiohttp); the core has no HTTP library.
    """

    async def send_message(self, chat_id: str, text: str, timeout: float) -> str: ...


class NotifyWorker(Periodic):
    def __init__(
        self,
        store: NotifyStore,
        config: TelegramConfig,
        mailer: Mailer,
        *,
        events: Events | None = None,
        load_order: LoadOrder | None = None,
        telegram: TelegramSender | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        # A failed round: the database may be restarting.
        super().__init__(log=log, failed="notify round failed", interval=lambda: self.config.poll_interval)
        self.store = store
        self.config = config
        self.mailer = mailer
        self.events = events
        self.load_order = load_order
        self.telegram = telegram
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._next_sweep = 0.0

    async def close(self, *, timeout: float | None = None) -> None:
        await self._stop_loop(timeout)
        closer = getattr(self.telegram, "close", None)  # even when never started: the runtime made it
        if closer is not None:
            await closer()

    async def refresh(self) -> None:
        if self.events is not None:
            self.events.notified = await self.store.notified_projects()

    async def work_once(self) -> int:
        """One round: who wants order events re-read, expired invoices swept (twice a minute), events fanned out
        and deliveries made; how many events and deliveries were claimed (any: look again at once)."""
        loop = asyncio.get_running_loop()
        await self.refresh()
        if loop.time() >= self._next_sweep:
            self._next_sweep = loop.time() + _SWEEP_EVERY
            await self.store.sweep_expired(self.clock())
        return await self.dispatch_once() + await self.deliver_once()

    # -- fan-out -------------------------------------------------------------------------------

    async def _notices(self, e: RawEvent) -> list[Notice]:
        if e.event_type == "login":
            return [login_notice(e.event_id, e.detail or {})]
        if e.event_type == "invoice.expired":
            return [invoice_notice(e.event_id, e.detail or {})]
        if e.event_type.startswith("order.") and e.order_id and e.project_id is not None and self.load_order:
            order = await self.load_order(e.project_id, e.order_id)
            return order_notices(e.event_id, order, *event_status(e.event_type, e.detail)) if order is not None else []
        return []

    async def dispatch_once(self) -> int:
        """Fan out the events due (one transaction); how many events were claimed."""
        async with self.store.pool.acquire() as conn, conn.transaction():
            events = await self.store.claim_events(conn, self.config.batch)
            for e in events:
                for notice in await self._notices(e):
                    await self.store.fan_out(conn, notice, e.project_id, e.user_id, self.config.max_attempts)
            if events:
                await self.store.dispatched(conn, [e.event_id for e in events])
        return len(events)

    # -- deliveries ----------------------------------------------------------------------------

    async def deliver_once(self) -> int:
        cfg = self.config
        channels = ["email", "telegram"] if self.telegram is not None else ["email"]
        rows = await self.store.claim_deliveries(cfg.batch, cfg.timeout + _LEASE_MARGIN, channels)
        if rows:
            await asyncio.gather(*(self._deliver(r) for r in rows))
        return len(rows)

    async def _deliver(self, row: Claimed) -> None:
        try:
            if row.channel == "email":
                await self._email(row)
            else:
                await self._telegram(row)
        except Exception:
            # Not recorded (the database is away): the lease runs out and the row is claimed again.
            log.warning("notification attempt could not be recorded", extra={"delivery_id": row.id}, exc_info=True)

    async def _email(self, row: Claimed) -> None:
        text = f"{row.body}\n\nSee the notification centre of the merchant portal: /portal/notifications\n"
        mail = Mail(
            kind="notice",
            to=row.recipient,
            subject=row.title,
            text=text,
            project_id=row.project_id,
            reference=f"notification:{row.id}",
        )
        async with self.store.pool.acquire() as conn, conn.transaction():
            queued = await self.mailer.enqueue(mail, conn=conn)
            await self.store.sent(row.id, row.attempt, f"mail {queued.id}", conn=conn)
        self.mailer.kick()

    async def _telegram(self, row: Claimed) -> None:
        assert self.telegram is not None
        cfg = self.config
        try:
            message_id = await asyncio.wait_for(
                self.telegram.send_message(row.recipient, f"{row.title}\n{row.body}", cfg.timeout), cfg.timeout + 1.0
            )
        except asyncio.CancelledError:
            raise
        except TelegramRefused as e:
            await self.store.failed(row.id, row.attempt, 0.0, f"refused: {e}", final=True)
            log.error("telegram notification refused", extra={"delivery_id": row.id, "error": str(e)})
            return
        except Exception as e:
            error = f"{e.__class__.__name__}: {e}".rstrip(": ")
            await self.store.failed(row.id, row.attempt, cfg.backoff(row.attempt), error, final=False)
            log.info("telegram notification attempt failed", extra={"delivery_id": row.id, "error": error})
            return
        await self.store.sent(row.id, row.attempt, f"message {message_id}")
