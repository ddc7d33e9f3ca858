"""The running switch: database, vault, identifiers, group writer, projects,
idempotency keys, the router and the orders service, opened and closed as one.

>>> cfg = RuntimeConfig(db=DbConfig(url="postgresql://db/isoswitch"), ready_timeout=1.0)
>>> cfg.switch_config().destinations[0].name, cfg.request_timeout
('sim', None)

Typical use (the HTTP front, ``isoswitch up``)::

    rt = await open_runtime(RuntimeConfig(db=DbConfig.from_env(data_dir=data_dir)))
    try:
        order = await rt.orders.authorize(project, AuthorizeRequest(amount=Decimal("9.99"), card=card))
    finally:
        await rt.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from switch import metrics
from switch.config import SwitchConfig
from switch.invoices.expiry import ExpiryConfig, InvoiceExpiry
from switch.invoices.service import Invoices
from switch.invoices.services import PaymentServices
from switch.invoices.store import InvoiceStore
from switch.links.service import PaymentLinks
from switch.links.store import LinkStore
from switch.listener import IsoListener, ListenerConfig
from switch.mail import MailConfig, Mailer, MailSender, MailStore
from switch.notify import Notifier, NotifyStore, TelegramConfig, TelegramSender
from switch.orders import OrdersService
from switch.orders.autocapture import AutoCapture, AutoCaptureConfig
from switch.orders.engine import Engine
from switch.orders.page_store import PageStore
from switch.orders.pages import PagesConfig, PaymentPages
from switch.pool import Router
from switch.portal import Portal, PortalConfig
from switch.saf import LateResponses, Reversals, SafConfig, SafCounts, new_owner
from switch.secure3d import Secure3D
from switch.secure3d.pages import PageSecure3D
from switch.store import (
    Database,
    DbConfig,
    DbIds,
    GroupWriter,
    Idempotency,
    Projects,
    Vault,
    open_database,
)
from switch.store.audit import AuditLog
from switch.webhooks import Events, Render, Sender, WebhookConfig, WebhookStore, WebhookWorker
from switch.wire.wallet import Gateway

__all__ = ["Runtime", "RuntimeConfig", "bounded", "open_runtime"]

log = logging.getLogger("isoswitch.runtime")


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeConfig:
    """Everything the core needs to start; each default is what ``isoswitch up`` uses."""

    db: DbConfig = field(default_factory=DbConfig)  # DATABASE_URL or embedded in db.data_dir
    switch: SwitchConfig | None = None  # the switch config itself; None: that of schemas/config/default.toml
    node_id: int | None = None  # overrides the switch config's node id (0..9) when set
    request_timeout: float | None = None  # seconds per ISO request; None: each link's own timeout
    ready_timeout: float = 5.0  # seconds open_runtime waits for a signed-on link (then starts anyway)
    purge_interval: float = 3600.0  # seconds between deletions of idempotency keys older than 24 h
    close_timeout: float = 5.0  # seconds close() lets in-flight requests and queued writes finish
    id_block_size: int = 1000  # identifiers leased per database round trip
    # Seconds a project's cached settings are used before they are read again: how long a change made by
    # another process (`isoswitch project settings`) may take to reach this one.
    project_refresh: float = 5.0
    # Reversals of unknown outcomes and their store-and-forward worker: poll_interval 1 s,
    # max_attempts 50, backoff_base 1 s doubling to backoff_cap 300 s, recovery_grace 60 s
    # (see switch.saf.SafConfig).
    saf: SafConfig = field(default_factory=SafConfig)
    env: Mapping[str, str] | None = None  # where the PAN key is looked up; None: os.environ
    listener: ListenerConfig | None = None  # the ISO listener for acquirer hosts/terminals; None: not started
    pages: PagesConfig = field(default_factory=PagesConfig)  # the hosted payment page ([pages])
    # Webhook deliveries: timeout 5 s, backoff 5 s doubling to 1 h, for 3 days; private addresses
    # refused, loopback allowed (see switch.webhooks.WebhookConfig).
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    # The mail outbox's SMTP server and retries (see switch.mail.MailConfig): 127.0.0.1:8025 (the sink of
    # `isoswitch up`), no TLS, 12 attempts from 30 s doubling to 1 h.
    mail: MailConfig = field(default_factory=MailConfig)
    # Wallet tokens (POST /orders/token_pay, switch.wire.wallet): the gateway's decryption key (private PEM)
    # and the wallet's signing key (public PEM). Unset: <data_dir>/keys/wallet_merchant.pem and
    # wallet_signing.pub.pem when both exist (`isoswitch up` makes them), else wallet tokens are refused.
    # Invoices' expiry sweep: every 10 s, 100 orders a round at most (see switch.invoices.expiry).
    invoice_expiry: ExpiryConfig = field(default_factory=ExpiryConfig)
    wallet_merchant_key: Path | None = None
    wallet_signing_public_key: Path | None = None
    # The merchant portal's account protection (lockout after 5 failures for 15 minutes, login rate per address,
    # the 5-minute window for the second factor: see switch.portal.PortalConfig).
    portal: PortalConfig = field(default_factory=PortalConfig)
    # Notifications' Telegram bot API (api.telegram.org; the token from ISOSWITCH_TELEGRAM__TOKEN) and the notify
    # worker's retries (see switch.notify.TelegramConfig).
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    # Auto-capture of the projects that ask for it (seeds/000): every 30 s, 50 orders a round, a 120 s lease,
    # 10 tries from 60 s doubling (see switch.orders.autocapture.AutoCaptureConfig).
    autocapture: AutoCaptureConfig = field(default_factory=AutoCaptureConfig)

    def wallet_keys(self) -> tuple[Path, Path] | None:
        """The wallet key files to use (see the fields), or None. Configured files must exist (else the start fails)."""
        keys = self.db.data_dir / "keys"
        merchant = self.wallet_merchant_key or keys / "wallet_merchant.pem"
        signing = self.wallet_signing_public_key or keys / "wallet_signing.pub.pem"
        configured = self.wallet_merchant_key is not None or self.wallet_signing_public_key is not None
        return (merchant, signing) if configured or (merchant.exists() and signing.exists()) else None

    def switch_config(self) -> SwitchConfig:
        if self.switch is not None:
            cfg = self.switch
        else:
            # Here, not at the top: switch.settings builds this class (and reads the file for everyone).
            from switch.settings import DEFAULT_CONFIG, load_settings

            cfg = load_settings(DEFAULT_CONFIG, env={}).switch
        if self.node_id is not None and self.node_id != cfg.node_id:
            cfg = dataclasses.replace(cfg, node_id=self.node_id)
        return cfg


@dataclass(slots=True)
class Runtime:
    """The open parts; :meth:`close` shuts them down in order."""

    config: RuntimeConfig
    db: Database
    vault: Vault
    ids: DbIds
    writer: GroupWriter
    projects: Projects
    idempotency: Idempotency
    router: Router
    orders: OrdersService
    _stack: contextlib.AsyncExitStack
    _closed: bool = False
    reversals: Reversals | None = None  # reversals and the store-and-forward worker
    late: LateResponses = field(default_factory=LateResponses)  # late responses, logged and counted
    audit: AuditLog | None = None  # the audit log of back-office operations (switch.store.audit)
    listener: IsoListener | None = None  # the ISO listener, when RuntimeConfig.listener asks for one
    _step: _StepTimeout | None = None  # what close(timeout=...) changes for the draining steps
    webhooks: WebhookWorker | None = None  # the webhook outbox's delivery worker (switch.webhooks)
    _pages: PaymentPages | None = None
    _invoices: Invoices | None = None
    invoice_expiry: InvoiceExpiry | None = None  # closes expired invoices' orders (switch.invoices.expiry)

    _links: PaymentLinks | None = None
    autocapture: AutoCapture | None = None  # the auto-capture job (switch.orders.autocapture)

    @property
    def links(self) -> PaymentLinks:
        """Payment links: templates and the invoices paid through them (``/api/payment-links``, ``/link/...``)."""
        assert self._links is not None
        return self._links

    _mail: Mailer | None = None

    @property
    def mail(self) -> Mailer:
        """The mail outbox (switch.mail): ``await runtime.mail.enqueue(Mail(...))``."""
        assert self._mail is not None
        return self._mail

    _portal: Portal | None = None

    @property
    def portal(self) -> Portal:
        """The merchant portal's accounts and sessions (``/portal/``, :mod:`switch.portal`)."""
        assert self._portal is not None
        return self._portal

    _notify: Notifier | None = None

    @property
    def notify(self) -> Notifier:
        """Portal users' notifications (switch.notify): preferences, the centre, the delivery worker."""
        assert self._notify is not None
        return self._notify

    @property
    def invoices(self) -> Invoices:
        """Invoices and their payment services (``/api/payment-invoices``, ``/api/payment-services``)."""
        assert self._invoices is not None
        return self._invoices

    @property
    def pages(self) -> PaymentPages:
        """The hosted payment pages (``POST /orders/create``, ``/pay/...``)."""
        assert self._pages is not None
        return self._pages

    # 3-D Secure, when the process has a directory server (isoswitch.serve attaches it: its DS client is HTTP).
    _secure3d: Secure3D | None = None

    @property
    def secure3d(self) -> Secure3D | None:
        return self._secure3d

    @secure3d.setter
    def secure3d(self, value: Secure3D | None) -> None:
        """3-D Secure for the API and, through :class:`PageSecure3D`, for the hosted pages' payments."""
        self._secure3d = value
        if self._pages is not None:
            self._pages.secure3d = None if value is None else PageSecure3D(value)

    @property
    def late_responses(self) -> int:
        """Responses that came after their request timed out (never applied)."""
        return self.late.count

    async def saf_counts(self) -> SafCounts:
        """Store-and-forward rows pending / manual / done and the oldest pending age (for metrics)."""
        assert self.reversals is not None
        return await self.reversals.counts()

    async def webhook_counts(self) -> tuple[int, int]:
        """Webhook deliveries (pending, failed) in the outbox (for metrics)."""
        assert self.webhooks is not None
        return await self.webhooks.store.depth()

    async def mail_counts(self) -> tuple[int, int]:
        """Mails (pending, failed) in the outbox (for metrics)."""
        return await self.mail.store.depth()

    async def close(self, *, timeout: float | None = None) -> None:
        """Drain and sign off the links, flush the writer, stop the id leases, close the database. Idempotent.

        ``timeout``: seconds each draining step gets (the listener's requests, the 0400s in flight, the
        links' drain, the writer's queue); None: ``RuntimeConfig.close_timeout``.
        """
        if self._closed:
            return
        self._closed = True
        if timeout is not None and self._step is not None:
            self._step.seconds = timeout
        if self.secure3d is not None:
            await self.secure3d.close()  # its DS client: nothing in flight needs it once the front is closed
        await self._stack.aclose()


async def open_runtime(
    cfg: RuntimeConfig,
    *,
    webhook_sender: Sender | None = None,
    webhook_render: Render | None = None,
    mail_sender: MailSender | None = None,
    notify: bool = False,
    telegram_sender: TelegramSender | None = None,
) -> Runtime:
    """Open everything; on a failure part-way, what was opened is closed again (last first).

    ``webhook_sender`` (the front's HTTP client) delivers webhooks from this process; without
    one, events are still written to the outbox for a serving process to deliver.
    ``webhook_render`` is how an event shows its order (the front's view); None: a short core view.
    ``mail_sender`` (the front's SMTP client) sends the mail outbox from this process when ``[mail] enabled``;
    without one, mails are still written for a serving process to send.
    ``notify``: run the notify worker here (a serving process), with ``telegram_sender`` (the front's bot API
    client; None: Telegram deliveries wait for a process that has one).
    """
    switch_cfg = cfg.switch_config()
    async with contextlib.AsyncExitStack() as stack:
        # Teardown runs in reverse: router (stop new requests, drain, sign
        # off) before the writer (results of drained requests still get
        # written), the writer before the id leases and the pool, the
        # database last.
        # Multi-process mode: this worker's metrics reach the shared files every few seconds, and once
        # more after everything else closed (so it is stopped last). Single-process mode: returns at once.
        refresher = asyncio.ensure_future(metrics.refresh_forever())
        stack.push_async_callback(_cancel, refresher)
        step = _StepTimeout(cfg.close_timeout)
        db = await open_database(cfg.db)
        stack.push_async_callback(db.close)
        vault = Vault.from_env_or_dir(cfg.db.data_dir, os.environ if cfg.env is None else cfg.env)
        ids = DbIds(db.pool, block_size=cfg.id_block_size)
        await ids.start()
        stack.push_async_callback(ids.close)
        writer = GroupWriter(db.pool)
        stack.push_async_callback(_close, writer, step)
        projects = Projects(db.pool, refresh=cfg.project_refresh)
        idempotency = Idempotency(db.pool, writer=writer)
        purger = asyncio.ensure_future(_purge_idempotency_keys(idempotency, cfg.purge_interval))
        stack.push_async_callback(_cancel, purger)
        late = LateResponses()
        router = switch_cfg.build_router(on_unmatched=late)
        router.start()
        stack.push_async_callback(_close, router, step)
        try:
            await router.wait_ready(cfg.ready_timeout)
        except TimeoutError:
            # Not fatal: requests fail fast (DestinationUnavailable) until a link signs on.
            log.warning("no issuer link ready yet; starting anyway", extra={"timeout": cfg.ready_timeout})
        # The worker leaves a new row alone while its first 0400 may still be in flight.
        link_timeout = max((d.link.timeout for d in switch_cfg.destinations), default=5.0)
        hold = (cfg.saf.timeout if cfg.saf.timeout is not None else link_timeout) + 5.0
        reversals = Reversals(
            router, db.pool, vault, owner=new_owner(switch_cfg.node_id), config=cfg.saf, projects=projects, hold=hold
        )
        # Closed before the router: no advice is sent on a closing link (its row stays due).
        stack.push_async_callback(_close, reversals, step)
        # What a crashed process left pending is reversed before this one takes new requests.
        try:
            await reversals.recover()
        except Exception:
            log.warning("recovery of pending operations failed; the worker retries", exc_info=True)
        reversals.start()
        audit = AuditLog(writer, db.pool)
        events = Events(webhook_render)
        engine = Engine(
            router,
            db,
            writer,
            ids,
            vault,
            request_timeout=cfg.request_timeout,
            reversals=reversals,
            audit=audit,
            events=events,
        )
        wallet_keys = cfg.wallet_keys()
        orders = OrdersService(engine, wallet=Gateway.load(*wallet_keys) if wallet_keys is not None else None)
        pages = PaymentPages(orders, PageStore(db.pool, writer), projects.get, cfg.pages)
        capture = AutoCapture(db.pool, orders.charge, projects.get, engine.clock, cfg.autocapture)
        capture.start()
        # Closed before the router and the writer: a charge in flight still gets its answer written.
        stack.push_async_callback(_close, capture, step)
        hooks = WebhookWorker(WebhookStore(db.pool, vault), events, cfg.webhooks, webhook_sender, engine.repo.get)
        try:
            await hooks.refresh()  # which projects' orders make events, before the first request
        except Exception:
            log.warning("webhook endpoints could not be read; the worker retries", exc_info=True)
        hooks.start()
        # Closed before the writer and the pool: a delivery in flight still records its outcome.
        stack.push_async_callback(_close, hooks, step)
        mailer = Mailer(MailStore(db.pool, vault), cfg.mail)
        if mail_sender is not None and cfg.mail.enabled:
            mailer.start(mail_sender)
        # Closed before the pool: a send in flight still records its outcome.
        stack.push_async_callback(_close, mailer, step)
        # The engine's clock read at each round (tests move it); closed before the writer and the pool.
        expiry = InvoiceExpiry(engine.repo, lambda: engine.clock(), cfg.invoice_expiry)
        expiry.start()
        stack.push_async_callback(_close, expiry, step)
        notifier = Notifier(NotifyStore(db.pool), cfg.telegram, events=events, load_order=engine.repo.get)
        if notify:
            notifier.start(mailer, telegram_sender)
        # Closed before the mailer's pool: an e-mail delivery in flight still writes its mail.
        stack.push_async_callback(_close, notifier, step)
        runtime = Runtime(
            cfg,
            db,
            vault,
            ids,
            writer,
            projects,
            idempotency,
            router,
            orders,
            stack,
            False,
            reversals,
            late,
            audit,
            _step=step,
            _pages=pages,
            _invoices=Invoices(PaymentServices.load(), InvoiceStore(db.pool), pages, vault, mailer),
            webhooks=hooks,
            _mail=mailer,
            _portal=Portal(db.pool, projects, vault, cfg.portal, mailer=mailer),
            invoice_expiry=expiry,
            _notify=notifier,
            autocapture=capture,
        )
        runtime._links = PaymentLinks(runtime.invoices, LinkStore(db.pool), projects)
        if cfg.listener is not None:
            # Opened last, closed first: no ISO request is taken once what it needs starts closing.
            runtime.listener = IsoListener(cfg.listener, orders, projects)
            await runtime.listener.start()
            stack.push_async_callback(_close, runtime.listener, step)
        runtime._stack = stack.pop_all()
    return runtime


async def _purge_idempotency_keys(idempotency: Idempotency, interval: float) -> None:
    """Keys are kept 24 hours (the minimum promised), then deleted, once per ``interval``."""
    while True:
        await asyncio.sleep(interval)
        try:
            n = await idempotency.purge()
        except Exception:
            # The database may be restarting: the next round tries again.
            log.warning("idempotency key purge failed", exc_info=True)
        else:
            if n:
                log.info("idempotency keys purged", extra={"deleted": n})


async def _cancel(task: asyncio.Future[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class _Closable(Protocol):
    async def close(self, *, timeout: float | None = None) -> None: ...


@dataclass(slots=True)
class _StepTimeout:
    """Seconds each draining step of the teardown gets: set at open, changed by ``Runtime.close(timeout=...)``
    (the steps are pushed on the exit stack before the Runtime exists)."""

    seconds: float


async def _close(part: _Closable, step: _StepTimeout) -> None:
    await part.close(timeout=step.seconds)


async def bounded(name: str, work: Awaitable[Any], seconds: float, *, grace: float = 1.0) -> bool:
    """Run ``work`` for at most ``seconds``; past that cancel it and give it ``grace`` seconds to unwind.

    A shutdown step with a hard deadline: ``asyncio.wait_for`` would wait for the cancelled
    work however long its own cleanup takes. True if ``work`` finished in time without error.
    """
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=max(0.0, seconds))
    if done:
        try:
            task.result()
        except Exception:
            log.exception("shutdown step %s failed", name)
            return False
        return True
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=grace)
    if done and not task.cancelled() and task.exception() is not None:
        log.warning("shutdown step %s failed while cancelled", name, exc_info=task.exception())
    log.warning(
        "shutdown step %s overran its %.1f s: cancelled%s",
        name,
        seconds,
        "" if done else ", and abandoned after its grace",
        extra={"step": name},
    )
    return False
