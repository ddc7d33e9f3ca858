"""Notifications of portal users (issue 13 item 8; seeds/004): preferences per user, project and event; the
notification centre; deliveries by e-mail (through the mail outbox) and Telegram (the bot API, through the
:class:`TelegramSender` port), durable and retried.

- :mod:`switch.notify.events`: the events a user can choose, and each notification's words;
- :mod:`switch.notify.store`: preferences, events, notifications, deliveries (schemas/sql/039_notifications.sql);
- :mod:`switch.notify.worker`: fans events out, delivers, retries;
- :mod:`switch.notify.service`: :class:`Notifier` (``runtime.notify``), what the portal calls;
- :mod:`switch.notify.config`: ``[telegram]``.
"""

from __future__ import annotations

from switch.notify.config import TelegramConfig
from switch.notify.events import EVENTS, Notice
from switch.notify.service import Notifier, NotifyError
from switch.notify.store import NotifyStore, Pref
from switch.notify.worker import NotifyWorker, TelegramRefused, TelegramSender

__all__ = [
    "EVENTS",
    "Notice",
    "Notifier",
    "NotifyError",
    "NotifyStore",
    "NotifyWorker",
    "Pref",
    "TelegramConfig",
    "TelegramRefused",
    "TelegramSender",
]
