"""The commands that run the system: ``up`` (everything), ``serve`` (one worker: the switch and
the REST front) and ``switch`` (the core alone, with its ISO listener).

Each loads its settings first, so a wrong file, variable or flag fails before anything starts;
``up`` also checks that its ports are free before it starts the simulator and the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from isoswitch import args as options
from isoswitch import config
from isoswitch.failures import CannotStart
from switch.logs import setup_logging
from switch.process import hostport, run_loop, stop_event
from switch.settings import ConfigError, Settings
from switch.wire import wallet
from switch.wire.threeds import generate_key_pair

if TYPE_CHECKING:
    from switch.runtime import Runtime

__all__ = [
    "DEMO_OWNER",
    "DEMO_PROJECT",
    "acs_keys",
    "attach_secure3d",
    "cmd_serve",
    "cmd_switch",
    "cmd_up",
    "demo_owner",
    "sim_process",
    "with_sim_admin_port",
    "with_simulated_secure3d",
]

log = logging.getLogger("isoswitch.cli")

DEMO_PROJECT = "demo"
#: The demo project's portal owner that ``up`` makes (``.test``: a name that is never a real mailbox, RFC 2606).
DEMO_OWNER = "owner@demo.test"


def _logging(settings: Settings) -> None:
    cfg = settings.logging
    setup_logging(cfg.level, fmt=cfg.format, levels=dict(cfg.levels))


def _demo_curl(base: str, login: str, password: str) -> str:
    body = {
        "amount": "9.99",
        "currency": "USD",
        "pan": "4111111111111111",
        "card": {
            "cvv": "123",
            "holder": "John Smith",
            "expiration_month": "12",
            "expiration_year": str(dt.date.today().year + 3),
        },
        "location": {"ip": "8.8.8.8"},
    }
    return (
        f"curl -s -u {shlex.quote(f'{login}:{password}')} -H 'Content-Type: application/json' "
        f"-d {shlex.quote(orjson.dumps(body).decode())} {base}/orders/authorize"
    )


def acs_keys(settings: Settings) -> tuple[Path, Path]:
    """The simulated ACS's signing key pair ``up`` uses, made if missing: ``<data_dir>/keys/acs_signing.pem``
    (private, 0600; the simulator signs with it) and ``acs_signing.pub.pem`` (the switch checks with it)."""
    return generate_key_pair(settings.database.data_dir / "keys")


@contextlib.contextmanager
def sim_process(
    host: str,
    port: int,
    admin_port: int | None = None,
    rules: str | None = None,
    log_level: str = "info",
    acs_key: Path | None = None,
    *,
    wallet_keys: tuple[Path, Path] | None = None,
) -> Iterator[tuple[tuple[str, int], tuple[str, int] | None]]:
    """Run ``acquirer_sim`` in a process of its own (and so on a core of its own,
    as a real host would be); yields its ISO address and its admin address (None without ``admin_port``),
    both as the simulator reports them once bound (so port 0 is the port it got); SIGTERM on exit.

    ``wallet_keys``: the wallet's signing key and the gateway's public key (its ``POST /wallet/token``)."""
    cmd = [sys.executable, "-m", "acquirer_sim", "--host", host, "--port", str(port), "--log-level", log_level]
    if admin_port is not None:
        cmd += ["--admin-port", str(admin_port)]
    if rules:
        cmd += ["--rules", rules]
    if acs_key is not None:
        cmd += ["--acs-key", str(acs_key)]
    if wallet_keys is not None:
        cmd += ["--wallet-signing-key", str(wallet_keys[0]), "--wallet-merchant-key", str(wallet_keys[1])]
    sim = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert sim.stdout is not None
        line = sim.stdout.readline().strip()
        if not line.startswith("listening on "):
            status = sim.wait()
            raise CannotStart(f"the simulator did not start (exit status {status}; its reason is on the line above)")
        admin = None
        if admin_port is not None:
            # acquirer_sim.cli: "admin on HOST:PORT" follows, the admin port it bound (any free one for 0).
            second = sim.stdout.readline().strip()
            if not second.startswith("admin on "):
                status = sim.wait()
                raise CannotStart(f"the simulator's admin port did not start (exit status {status})")
            admin = hostport(second.removeprefix("admin on "))
        yield hostport(line.removeprefix("listening on ")), admin
    finally:
        if sim.poll() is None:
            sim.send_signal(signal.SIGTERM)
            try:
                sim.wait(10)
            except subprocess.TimeoutExpired:
                sim.kill()


def _ensure_free(ports: list[tuple[str, int, str]]) -> None:
    """Fail at once, naming the setting, when one of ``(host, port, what)`` is taken: before the
    simulator and the database start, rather than after (port 0: any free one, nothing to check)."""
    for host, port, what in ports:
        if port == 0:
            continue
        try:
            family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            with socket.socket(family, kind, proto) as s:
                # As the servers bind: a port in TIME_WAIT is free, one with a listener is not.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(address)
        except OSError as e:
            raise CannotStart(f"cannot listen on {host}:{port} ({what}): {e.strerror or e}") from None


async def _open(settings: Settings, target: tuple[str, int] | None) -> Runtime:
    from http_front.orders.views import FULL_EXPAND, order_view
    from http_front.outbound.smtp import SmtpSender
    from http_front.outbound.telegram import TelegramHttpSender
    from http_front.outbound.webhooks import AiohttpSender
    from switch.runtime import open_runtime

    cfg = settings.runtime
    if target is not None:
        cfg = dataclasses.replace(cfg, switch=cfg.switch_config().with_target(*target))
    # Webhooks: events show the order as the API does (everything expanded); this process delivers them,
    # its connections held to the [webhooks] address policy too (DNS rebinding: http_front/outbound/webhooks.py).
    hooks = cfg.webhooks
    sender = AiohttpSender(allow_private=hooks.allow_private, allow_loopback=hooks.allow_loopback)
    runtime = await open_runtime(
        cfg,
        webhook_sender=sender,
        webhook_render=lambda order: order_view(order, FULL_EXPAND),
        mail_sender=SmtpSender(cfg.mail),  # used when [mail] enabled
        notify=True,
        telegram_sender=TelegramHttpSender(cfg.telegram) if cfg.telegram.token is not None else None,
    )
    try:
        attach_secure3d(runtime, settings)
    except BaseException:
        await runtime.close()
        raise
    return runtime


def attach_secure3d(runtime: Runtime, settings: Settings) -> None:
    """3-D Secure with the aiohttp DS client, when ``[secure3d]`` names a directory server and the ACS's key."""
    from http_front.outbound.ds import DsClient
    from switch.secure3d import Secure3D
    from switch.wire.threeds import MessageError, Verifier

    cfg = settings.secure3d
    if cfg.ds_url is None:
        return
    if cfg.acs_public_key is None:
        raise ConfigError("[secure3d] ds_url needs acs_public_key (the PEM the ACS's signatures are checked with)")
    try:
        verifier = Verifier.load(cfg.acs_public_key)
    except MessageError as e:
        raise CannotStart(f"[secure3d] acs_public_key: {e}") from None
    directory = DsClient(cfg.ds_url, timeout=cfg.ds_timeout)
    runtime.secure3d = Secure3D(runtime.orders, runtime.projects, runtime.db.pool, directory, verifier, cfg)
    runtime.secure3d.start()  # every serving process sweeps abandoned sessions (SKIP LOCKED: they share them)


def with_simulated_secure3d(settings: Settings, host: str, admin_port: int, acs_public: Path) -> Settings:
    """``isoswitch up``: the simulator's DS (its admin port + /ds) and its ACS's public key, unless the file says."""
    cfg = settings.secure3d
    ds_url = cfg.ds_url or f"http://{host}:{admin_port}/ds"
    key = cfg.acs_public_key or acs_public
    return dataclasses.replace(settings, secure3d=dataclasses.replace(cfg, ds_url=ds_url, acs_public_key=key))


async def _serve_front(
    runtime: Runtime, settings: Settings, stop: asyncio.Event, started: Callable[[], None] | None = None
) -> None:
    """Serve until ``stop``, then shut down in order within ``[process] shutdown_timeout``."""
    from http_front.server import start_front
    from http_front.shutdown import shutdown

    front = config.front(settings)
    try:
        server = await start_front(runtime, front)
    except BaseException:
        await runtime.close()
        raise
    where = ", ".join(f"{front.scheme}://{h}:{p}" for h, p in server.addresses)
    log.info("REST front listening on %s", where)
    if started is not None:
        started()
    await stop.wait()
    await shutdown(server, runtime, settings.process.shutdown_timeout)


# -- up -------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    settings = options.settings(args)
    config.check_front_tls(settings)
    _logging(settings)
    front = config.front(settings)
    if settings.process.workers > 1:
        if not front.reuse_port or (settings.listener is not None and not settings.listener.reuse_port):
            raise ConfigError("workers > 1 share the ports: [http] and [iso_listener] reuse_port must be true")
        # Before anything loads prometheus_client: the workers started later inherit the directory.
        from switch import metrics

        metrics.prepare_multiprocess(settings.metrics.multiprocess_dir or settings.database.data_dir / "metrics")
    sim = config.simulator(settings)
    ports = [(front.host, front.port, "[http] port"), (front.host, sim.port, "[simulator] port")]
    ports.append((front.host, sim.admin_port, "[simulator] admin_port"))
    if config.smtp_sink(settings).enabled:
        ports.append(("127.0.0.1", config.smtp_sink(settings).port, "[smtp_sink] port"))
    if settings.listener is not None:
        ports.append((settings.listener.host, settings.listener.port, "[iso_listener] port"))
    _ensure_free(ports)
    rules = str(sim.rules) if sim.rules else None
    acs_private, acs_public = acs_keys(settings)
    wallet = _wallet_keys(settings)
    with sim_process(
        front.host, sim.port, sim.admin_port, rules, settings.logging.level, acs_private, wallet_keys=wallet
    ) as (sim_addr, admin_addr):
        assert admin_addr is not None
        # The DS URL (and the banner) from the admin port the simulator bound: [simulator] admin_port = 0 works.
        settings = with_sim_admin_port(settings, admin_addr[1])
        settings = with_simulated_secure3d(settings, admin_addr[0], admin_addr[1], acs_public)
        return run_loop(lambda: _up(args, settings, sim_addr))


def with_sim_admin_port(settings: Settings, admin_port: int) -> Settings:
    """``settings`` with ``[simulator] admin_port`` the port the simulator actually listens on."""
    sim = dataclasses.replace(config.simulator(settings), admin_port=admin_port)
    return dataclasses.replace(settings, sections={**settings.sections, "simulator": sim})


def _wallet_keys(settings: Settings) -> tuple[Path, Path] | None:
    """The wallet test keys in ``<data_dir>/keys/`` (made once): the switch finds the gateway's pair there by
    default (``RuntimeConfig.wallet_keys``); the simulator's wallet gets its signing key and the gateway's public key.
    None (the simulator mints nothing) when the configuration names wallet keys of its own.
    """
    runtime = settings.runtime
    if runtime.wallet_merchant_key is not None or runtime.wallet_signing_public_key is not None:
        return None
    keys = settings.database.data_dir / "keys"
    _, merchant_public = wallet.generate_key_pair(keys, "wallet_merchant")
    signing, _ = wallet.generate_key_pair(keys, "wallet_signing")
    return signing, merchant_public


def _workers(args: argparse.Namespace, settings: Settings, sim_addr: tuple[str, int]) -> list[list[str]]:
    """The command line of each worker beyond this process: ``serve``, each with its own node id.

    They read the same file; the flags reach them as environment overrides (:func:`options.child_env`).
    """
    commands = []
    for k in range(1, settings.process.workers):
        node = (settings.switch.node_id + k) % 10
        cmd = [sys.executable, "-m", "isoswitch", "serve", "--target", f"{sim_addr[0]}:{sim_addr[1]}"]
        cmd += ["--node-id", str(node)] + (["--config", args.config] if args.config else [])
        commands.append(cmd)
    return commands


async def _up(args: argparse.Namespace, settings: Settings, sim_addr: tuple[str, int]) -> int:
    stop = stop_event()
    sink = None
    if config.smtp_sink(settings).enabled:
        from isoswitch.mailsink import MailSink

        # Loopback only, whatever [http] host is: only this machine's processes send to it.
        sink = MailSink(mail_dir(settings), "127.0.0.1", config.smtp_sink(settings).port)
        settings = with_mail_sink(settings, *await sink.start())
    try:
        return await _up_with(args, settings, sim_addr, stop)
    finally:
        if sink is not None:
            await sink.close()  # last: the workers' mail in flight still lands


def mail_dir(settings: Settings) -> Path:
    """Where the SMTP sink of ``up`` keeps the mails: DATA_DIR/mail."""
    return settings.database.data_dir / "mail"


def with_mail_sink(settings: Settings, host: str, port: int) -> Settings:
    """``settings`` with ``[mail]`` pointed at the sink on ``host:port`` (no TLS, no AUTH)."""
    mail = dataclasses.replace(settings.runtime.mail, host=host, port=port, tls="none", username=None, password=None)
    runtime = dataclasses.replace(settings.runtime, mail=mail)
    return dataclasses.replace(settings, runtime=runtime, sections={**settings.sections, "mail": mail})


async def _up_with(args: argparse.Namespace, settings: Settings, sim_addr: tuple[str, int], stop: asyncio.Event) -> int:
    from isoswitch.supervisor import Supervisor
    from switch import metrics

    runtime = await _open(settings, sim_addr)
    supervisor: Supervisor | None = None
    supervising: asyncio.Future[None] | None = None
    try:
        project = await runtime.projects.by_login(DEMO_PROJECT)
        if project is None:
            project, password = await runtime.projects.create(DEMO_PROJECT)
        else:
            # Only a hash is kept, so each start gives the demo project a new password.
            password = await runtime.projects.reset_password(DEMO_PROJECT)
        keys = await runtime.projects.public_keys(project.id)
        public_key = keys.test if keys is not None else ""
        owner_password = await demo_owner(runtime)
        # More workers: processes of their own sharing the HTTP and ISO ports
        # (SO_REUSEPORT), each with its own links and node id, all on one database.
        commands = _workers(args, settings, sim_addr)
        if commands:
            env = options.child_env(options.overrides(args))
            # The workers read the same file: the simulator's DS and key reach them as the environment.
            env["ISOSWITCH_SECURE3D__DS_URL"] = str(settings.secure3d.ds_url)
            env["ISOSWITCH_SECURE3D__ACS_PUBLIC_KEY"] = str(settings.secure3d.acs_public_key)
            if config.smtp_sink(settings).enabled:  # the sink's address, and no AUTH/TLS (the file's may differ)
                mail = settings.runtime.mail
                env.update({"ISOSWITCH_MAIL__HOST": mail.host, "ISOSWITCH_MAIL__PORT": str(mail.port)})
                env.update(
                    {"ISOSWITCH_MAIL__TLS": "none", "ISOSWITCH_MAIL__USERNAME": "", "ISOSWITCH_MAIL__PASSWORD": ""}
                )
            starting = Supervisor(commands, env, on_exit=metrics.mark_process_dead)
            starting.start()
            supervisor = starting
            supervising = asyncio.ensure_future(supervisor.run(stop))
        await _serve_front(
            runtime, settings, stop, lambda: _banner(settings, sim_addr, password, public_key, owner_password)
        )
    finally:
        stop.set()
        if supervisor is not None:
            assert supervising is not None
            await supervising
            # One deadline for all, from the signal: the workers stop together, each within its own shutdown_timeout.
            await supervisor.stop(settings.process.shutdown_timeout + 5.0)
        await runtime.close()
    return 0


async def demo_owner(runtime: Runtime) -> str:
    """The demo project's portal owner (:data:`DEMO_OWNER`), made once; a new one-time password at every start
    (only a hash is kept), to be changed at the first login."""
    from switch.portal import UserExists

    try:
        _, _, password = await runtime.portal.add_user(DEMO_OWNER, DEMO_PROJECT, "owner")
    except UserExists:
        password = None
    return password if password is not None else await runtime.portal.reset_password(DEMO_OWNER)


def _banner(settings: Settings, sim_addr: tuple[str, int], password: str, public_key: str, owner_password: str) -> None:
    front = config.front(settings)
    base = f"{front.scheme}://{front.host}:{front.port}"
    where = "DATABASE_URL" if settings.database.url else f"embedded PostgreSQL in {settings.database.data_dir / 'pg'}"
    listener = settings.listener
    sim_host, sim_port = sim_addr
    n = settings.process.workers
    mail, sink = settings.runtime.mail, config.smtp_sink(settings).enabled
    lines = [
        "isoswitch is up (Ctrl-C stops everything):",
        f"  REST API          {base}" + (f" ({n} worker processes)" if n > 1 else ""),
        f"  API docs          {base}/docs   metrics: {base}/metrics",
        f"  merchant portal   {base}/portal/",
        f"  issuer simulator  {sim_host}:{sim_port} "
        f"(ledger: http://{sim_host}:{config.simulator(settings).admin_port}/ledger)",
        f"  database          {where}",
        *([f"  ISO listener      {listener.host}:{listener.port}"] if listener is not None else []),
        *([f"  SMTP sink         {mail.host}:{mail.port} (mails: {mail_dir(settings)})"] if sink else []),
        "demo project credentials (a new password at every start):",
        "  " + orjson.dumps({"login": DEMO_PROJECT, "password": password, "public_key": public_key}).decode(),
        "the demo project's portal owner (a one-time password at every start, changed at the first login):",
        "  " + orjson.dumps({"email": DEMO_OWNER, "password": owner_password, "role": "owner"}).decode(),
        "authorize 9.99 USD on a test card:",
        "  " + _demo_curl(base, DEMO_PROJECT, password),
        *(
            [
                "a wallet test token for POST /orders/token_pay (dsrp.type apple_pay):",
                f"  curl -s -X POST http://{sim_host}:{config.simulator(settings).admin_port}/wallet/token "
                """-d '{"pan": "4111111111111111", "amount": "9.99"}'""",
            ]
            if settings.runtime.wallet_merchant_key is None and settings.runtime.wallet_signing_public_key is None
            else []
        ),
        "benchmark it from another terminal:",
        f"  .venv/bin/isoswitch bench rest --url {base} --login {DEMO_PROJECT} --password={password} "
        f"--concurrency 64 --duration 20 --bare --sim {sim_host}:{sim_port}",
    ]
    print("\n".join(lines), flush=True)


# -- serve and switch ------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    settings = options.settings(args)
    config.check_front_tls(settings)
    _logging(settings)

    async def run() -> int:
        stop = stop_event()
        runtime = await _open(settings, args.target)
        await _serve_front(runtime, settings, stop)
        return 0

    return run_loop(run)


def cmd_switch(args: argparse.Namespace) -> int:
    settings = options.settings(args)
    _logging(settings)

    async def run() -> int:
        return await _serve_switch(settings, args.target, stop_event())

    return run_loop(run)


async def _serve_switch(settings: Settings, target: tuple[str, int] | None, stop: asyncio.Event) -> int:
    from switch.runtime import bounded

    runtime = await _open(settings, target)
    for d in runtime.config.switch_config().destinations:
        log.info("destination %s: %d links to %s:%d", d.name, d.links, d.link.host, d.link.port)
    if runtime.listener is not None and runtime.listener.address is not None:
        host, port = runtime.listener.address
        print(f"ISO listener on {host}:{port}", flush=True)
    try:
        last = ""
        while not stop.is_set():
            pools = runtime.router.pools.values()
            states = ", ".join(f"{link.label}={link.state.value}" for p in pools for link in p.links)
            if states != last:
                print(f"links: {states}", flush=True)
                last = states
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        # The listener stops accepting first, then links drain and sign off, writes flush, the database closes.
        await bounded("core", runtime.close(), settings.process.shutdown_timeout)
    return 0
