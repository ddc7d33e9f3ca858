"""Webhooks and callbacks: order events written to an outbox with the status change, delivered
signed (Standard Webhooks) by a worker in every serving process.

- :mod:`switch.webhooks.events`: which order changes make an event, and its payload;
- :mod:`switch.webhooks.store`: endpoints, sealed secrets, the outbox and delivery log;
- :mod:`switch.webhooks.worker`: claims, signs, sends (through the :class:`Sender` port), retries;
- :mod:`switch.webhooks.policy`: which URLs may receive them.
"""

from __future__ import annotations

from switch.webhooks.config import WebhookConfig
from switch.webhooks.events import Event, Events, Render, core_view
from switch.webhooks.policy import UrlRefused, check_url
from switch.webhooks.store import Delivery, WebhookStore, new_secret
from switch.webhooks.worker import Sender, WebhookWorker, signed_headers

__all__ = [
    "Delivery",
    "Event",
    "Events",
    "Render",
    "Sender",
    "UrlRefused",
    "WebhookConfig",
    "WebhookStore",
    "WebhookWorker",
    "check_url",
    "core_view",
    "new_secret",
    "signed_headers",
]
