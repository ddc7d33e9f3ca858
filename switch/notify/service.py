"""The portal's side of notifications: preferences, the Telegram chat, the centre (``runtime.notify``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from switch.mail import Mailer
from switch.notify.config import TelegramConfig
from switch.notify.store import NotifyStore, Pref
from switch.notify.worker import LoadOrder, NotifyWorker, TelegramSender

if TYPE_CHECKING:
    from switch.webhooks import Events

__all__ = ["Notifier", "NotifyError"]

_CHAT = re.compile(r"-?[0-9]{1,20}|@[A-Za-z0-9_]{5,32}")


class NotifyError(ValueError):
    """A refusal to show the user (a malformed chat id ...)."""


class Notifier:
    """Notifications of portal users; the worker (when this process runs one) is kicked by every change."""

    def __init__(
        self,
        store: NotifyStore,
        config: TelegramConfig,
        *,
        events: Events | None = None,
        load_order: LoadOrder | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.events = events  # whose ``notified`` projects the worker keeps fresh
        self.load_order = load_order  # how the worker reads an event's order
        self.worker: NotifyWorker | None = None
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))

    @property
    def telegram_ready(self) -> bool:
        """Whether Telegram messages can go out: this process sends them (every serving process has the same
        ``[telegram]``, so one process's answer is all of them)."""
        return self.worker is not None and self.worker.telegram is not None

    async def prefs(self, user_id: int, project_id: int) -> list[Pref]:
        return await self.store.prefs(user_id, project_id)

    async def save(self, user_id: int, project_id: int, prefs: list[Pref], chat_id: str) -> None:
        """Save a user's preferences and Telegram chat (empty: none); :class:`NotifyError` for a bad chat id."""
        chat_id = chat_id.strip()
        if chat_id and not _CHAT.fullmatch(chat_id):
            raise NotifyError("the Telegram chat id is a number (or @channel name)")
        if any(p.telegram for p in prefs) and not chat_id:
            raise NotifyError("Telegram needs your chat id")
        await self.store.set_telegram_chat(user_id, chat_id or None)
        await self.store.save_prefs(user_id, project_id, prefs)
        if self.worker is not None:
            await self.worker.refresh()  # this process's orders make events at once
            self.worker.kick()

    async def telegram_chat(self, user_id: int) -> str | None:
        return await self.store.telegram_chat(user_id)

    async def centre(
        self, user_id: int, project_id: int, *, unread: bool = False, limit: int = 50
    ) -> list[dict[str, Any]]:
        return await self.store.notifications(user_id, project_id, unread=unread, limit=limit)

    async def unread(self, user_id: int, project_id: int) -> int:
        return await self.store.unread(user_id, project_id)

    async def mark_read(self, user_id: int, project_id: int, ids: list[int] | None = None) -> int:
        return await self.store.mark_read(user_id, project_id, ids, self.clock())

    def start(
        self, mailer: Mailer, telegram: TelegramSender | None = None, config: TelegramConfig | None = None
    ) -> NotifyWorker:
        """Run this process's worker: e-mails through ``mailer``'s outbox, Telegram through ``telegram`` (None:
        Telegram deliveries wait for a process that has one); ``config``: another than ``[telegram]`` (tests)."""
        if self.worker is None:
            self.worker = NotifyWorker(
                self.store,
                config or self.config,
                mailer,
                events=self.events,
                load_order=self.load_order,
                telegram=telegram,
                clock=self.clock,
            )
            self.worker.start()
        return self.worker

    async def close(self, *, timeout: float | None = None) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            await worker.close(timeout=timeout)
