"""The delivery worker: claims due outbox rows, signs them (Standard Webhooks), POSTs them.

It runs in every serving process, like the store-and-forward worker: rows are claimed with
``FOR UPDATE SKIP LOCKED`` and leased in the claiming statement (``next_attempt_at`` moves
past the timeout), so two processes never send one delivery at once, and a process that dies
mid-delivery leaves a row that another claims when the lease ends: at least once, never lost.
A 2xx answer is a delivery; anything else (another status, a timeout, a refused address) is
retried after ``backoff`` (capped doubling with jitter) until ``max_age`` (3 days) has passed
since the event, then the row is ``failed`` (by the attempt, or at the claim for a row whose
attempts could not even be recorded). Deliveries run as tasks of their own (at most
``batch``), so a slow endpoint holds one slot, never the claim loop, and never a payment.

The HTTP client is a port (:class:`Sender`): the core has no HTTP library; the front's aiohttp
one (``http_front/outbound/webhooks.py``) is given by ``isoswitch serve``. Without one the
worker only keeps :attr:`Events.projects` fresh (a core with no front still writes the outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import orjson
from standardwebhooks import Webhook

from switch import metrics
from switch.webhooks.config import WebhookConfig
from switch.webhooks.events import Events
from switch.webhooks.policy import UrlRefused, check_url
from switch.webhooks.store import Delivery, WebhookStore

if TYPE_CHECKING:
    from switch.orders.model import Order

# The order of (project id, order id) as it is now: for events written without a payload.
LoadOrder = Callable[[int, str], Awaitable["Order | None"]]

__all__ = ["Sender", "WebhookWorker", "signed_headers"]

log = logging.getLogger("isoswitch.webhooks")

# isoswitch_webhook_deliveries{outcome}: what each attempt came to.
_OUTCOMES = ("delivered", "retried", "failed")

# close() lets deliveries in flight finish for this long; the rest are cancelled (their rows' leases run out).
CLOSE_TIMEOUT = 2.0
# A claimed row is someone else's again this long after the delivery's timeout.
_LEASE_MARGIN = 10.0


class Sender(Protocol):
    """POSTs ``body`` with ``headers`` to ``url`` within ``timeout`` seconds; the HTTP status.

    Any exception is a failed attempt (its class and text go to the delivery log). An optional
    ``async close()`` is awaited when the worker closes.
    """

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int: ...


def signed_headers(secret: str, msg_id: str, body: bytes, now: datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers of ``body`` (``webhook-id``, ``-timestamp``, ``-signature``)."""
    at = now or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "user-agent": "isoswitch-webhooks",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }


class WebhookWorker:
    """Delivers due rows every ``poll_interval`` (or when kicked); refreshes ``events.projects``."""

    def __init__(
        self,
        store: WebhookStore,
        events: Events,
        config: WebhookConfig,
        sender: Sender | None,
        load: LoadOrder | None = None,
    ) -> None:
        """``load`` renders events written without a payload (recovery's); without it they fail."""
        self.store = store
        self.load = load
        self.events = events
        self.config = config
        self.sender = sender
        self.delivered = 0  # 2xx answers got by this process
        self.failed_attempts = 0
        self._outcomes = {o: metrics.counter("isoswitch_webhook_deliveries", o) for o in _OUTCOMES}
        self._post_time = metrics.histogram("isoswitch_webhook_delivery_duration_seconds")
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._kick = asyncio.Event()
        self._stopping = False
        self._refreshing = asyncio.Lock()

    async def refresh(self) -> None:
        """Re-read which projects have endpoints (their orders' changes make events).

        One read at a time: a periodic read that began before an endpoint was added must not land after
        a read that began later and saw it (the older, stale set would hide the new endpoint's events).
        """
        async with self._refreshing:
            self.events.projects = await self.store.projects_with_endpoints()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.ensure_future(self.run())

    def kick(self) -> None:
        self._kick.set()

    async def close(self, *, timeout: float | None = None) -> None:
        """Stop claiming; give deliveries in flight ``timeout`` (None: ``CLOSE_TIMEOUT``), then cancel them."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._kick.set()
        wait = CLOSE_TIMEOUT if timeout is None else timeout
        await asyncio.wait({task}, timeout=wait)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=wait)
        for t in list(self._inflight):
            t.cancel()
        if self._inflight:
            await asyncio.wait(self._inflight)
        closer = getattr(self.sender, "close", None)
        if closer is not None:
            await closer()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        next_refresh = 0.0
        while not self._stopping:
            if loop.time() >= next_refresh:
                next_refresh = loop.time() + cfg.refresh_interval
                try:
                    await self.refresh()
                except Exception:
                    log.warning("webhook endpoints could not be read", exc_info=True)
            try:
                claimed = await self.work_once()
            except Exception:
                log.warning("webhook round failed", exc_info=True)
                claimed = 0
            if self._stopping:
                break
            if claimed and len(self._inflight) < cfg.batch:
                continue  # more may be due
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), min(cfg.poll_interval, cfg.refresh_interval))

    async def work_once(self) -> int:
        """Claim what is due (as many as free slots), start delivering it; how many were claimed."""
        if self.sender is None:
            return 0
        free = self.config.batch - len(self._inflight)
        if free <= 0:
            return 0
        rows = await self.store.claim(free, self.config.timeout + _LEASE_MARGIN, self.config.max_age)
        for d in rows:
            t = asyncio.ensure_future(self._deliver(d))
            self._inflight.add(t)
            t.add_done_callback(self._done)
        return len(rows)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not self._stopping:
            self._kick.set()  # a free slot: claim again

    async def _deliver(self, d: Delivery) -> None:
        cfg = self.config
        try:
            if d.url is None:
                await self._failed(d, None, "endpoint removed", final=True)
                return
            secret = (
                self.store.endpoint_secret(d.endpoint_id, d.key_id, d.secret_blob)
                if d.endpoint_id is not None and d.key_id is not None and d.secret_blob is not None
                else await self.store.project_secret(d.project_id)
            )
            try:
                await check_url(d.url, allow_private=cfg.allow_private, allow_loopback=cfg.allow_loopback)
            except UrlRefused as e:
                await self._failed(d, None, str(e))
                return
            payload = d.payload
            if payload is None:
                order = await self.load(d.project_id, d.order_id) if self.load is not None else None
                if order is None:
                    await self._failed(d, None, "order not found", final=True)
                    return
                payload = self.events.payload(order)
            body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
            assert self.sender is not None
            started = time.perf_counter()
            try:
                status = await asyncio.wait_for(
                    self.sender.post(d.url, body, signed_headers(secret, d.event_id, body), cfg.timeout),
                    cfg.timeout + 1.0,
                )
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._post_time.observe(time.perf_counter() - started)
                await self._failed(d, None, f"{e.__class__.__name__}: {e}".rstrip(": "))
                return
            self._post_time.observe(time.perf_counter() - started)
            if 200 <= status < 300:
                self.delivered += 1
                self._outcomes["delivered"].inc()
                await self.store.delivered(d.id, status)
            else:
                await self._failed(d, status, f"HTTP {status}")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # Failed before an attempt was recorded (the vault cannot open the secret, the database ...):
            # recorded as a failed attempt so the backoff and the retry window apply. Only the class: the
            # text of an internal error is for the log, not the merchant-visible delivery log.
            log.warning("webhook delivery failed before sending", extra={"delivery_id": d.id}, exc_info=True)
            try:
                await self._failed(d, None, f"not sent: {e.__class__.__name__}")
            except Exception:
                # Not recorded either: the lease runs out, the row is claimed again, and the claim fails
                # it once its retry window is over.
                log.warning("webhook delivery could not be recorded", extra={"delivery_id": d.id}, exc_info=True)

    async def _failed(self, d: Delivery, status: int | None, error: str, *, final: bool = False) -> None:
        self.failed_attempts += 1
        cfg = self.config
        state = await self.store.attempt_failed(d.id, cfg.backoff(d.attempts), status, error, cfg.max_age, final=final)
        if state is not None:  # None: the row was no longer pending (redelivered meanwhile): not this attempt's
            self._outcomes["failed" if state == "failed" else "retried"].inc()
        level = logging.ERROR if state == "failed" else logging.INFO
        log.log(
            level,
            "webhook delivery failed" if state == "failed" else "webhook attempt failed",
            extra={"delivery_id": d.id, "event_id": d.event_id, "attempts": d.attempts, "error": error},
        )
