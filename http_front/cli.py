"""The ``isoswitch`` command: the composition root of the whole system.

``up`` and ``project`` need the store and the REST front, so they live here
(``switch/`` never imports ``http_front/``); every other command is
``switch.cli``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from http_front.config import FrontConfig
from http_front.shutdown import http_drain, shutdown
from switch.cli import USAGE, hostport, run_loop, sim_process, stop_event
from switch.cli import main as switch_main
from switch.config import ConfigError
from switch.logs import setup_logging
from switch.settings import ENV_PREFIX, Section, Settings, load_settings, shown

if TYPE_CHECKING:
    from switch.runtime import Runtime
    from switch.store import DbConfig

__all__ = ["main"]

log = logging.getLogger("isoswitch.cli")

DEMO_PROJECT = "demo"


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


# Flags of `up`/`serve`: (section, key) of the setting each one overrides. Every
# flag defaults to None (not given), so the file and the environment keep theirs.
_FLAGS: dict[str, tuple[str, str]] = {
    "host": ("http", "host"),
    "http_port": ("http", "port"),
    "data_dir": ("database", "data_dir"),
    "log_level": ("logging", "level"),
    "log_format": ("logging", "format"),
    "tls_cert": ("http", "tls_cert"),
    "tls_key": ("http", "tls_key"),
    "tls_client_ca": ("http", "tls_client_ca"),
    "rate_limit": ("http", "rate_limit"),
    "rate_burst": ("http", "rate_burst"),
    "auth_failure_rate": ("http", "auth_failure_rate"),
    "auth_failure_burst": ("http", "auth_failure_burst"),
    "iso_port": ("iso_listener", "port"),
    "iso_host": ("iso_listener", "host"),
    "iso_dialect": ("iso_listener", "dialect"),
    "iso_framing": ("iso_listener", "framing"),
    "iso_tls_cert": ("iso_listener", "tls_cert"),
    "iso_tls_key": ("iso_listener", "tls_key"),
    "iso_tls_client_ca": ("iso_listener", "tls_client_ca"),
    "workers": ("process", "workers"),
    "sim_port": ("simulator", "port"),
    "sim_admin_port": ("simulator", "admin_port"),
    "rules": ("simulator", "rules"),
    "node_id": ("switch", "node_id"),
}

# The REST front's table: FrontConfig's fields, but for the data files shipped in schemas/.
HTTP_SECTION = Section(FrontConfig, skip=frozenset({"schemas_dir", "exchange_rates_path", "metrics"}))


def _serving_args(ap: argparse.ArgumentParser) -> None:
    """Options of every process that runs the switch and the REST front (each overrides the config file)."""
    ap.add_argument("--config", help="TOML config (default: $ISOSWITCH_CONFIG, else schemas/config/default.toml)")
    ap.add_argument("--host", help="address to listen on: [http] host and [iso_listener] host (and the simulator's)")
    ap.add_argument("--http-port", type=int, help="REST front port [http] port (default 8080)")
    ap.add_argument("--data-dir", type=Path, help="embedded PostgreSQL and generated keys (default .data)")
    ap.add_argument("--no-access-log", action="store_true", help="no access-log line per request")
    ap.add_argument("--log-level", choices=_LEVELS, help="[logging] level (default info)")
    ap.add_argument("--log-format", choices=("json", "text"), help="[logging] format (default json)")
    ap.add_argument("--tls-cert", type=Path, help="PEM certificate (chain): serve the REST API over HTTPS")
    ap.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert (if not in the same file)")
    ap.add_argument("--tls-client-ca", type=Path, help="PEM CA: require client certificates signed by it")
    ap.add_argument("--rate-limit", type=float, help="requests/s per project and worker; 0 = off (default 1000)")
    ap.add_argument("--rate-burst", type=int, help="burst per project (default 2000)")
    ap.add_argument("--auth-failure-rate", type=float, help="failed logins/s per client address (default 5)")
    ap.add_argument("--auth-failure-burst", type=int)
    ap.add_argument("--iso-port", type=int, help="also accept ISO 8583 from acquirer hosts/terminals on this port")
    ap.add_argument("--iso-host", help="another address for the ISO listener than --host")
    ap.add_argument("--iso-dialect", choices=("ascii", "binary-bitmap"))
    ap.add_argument("--iso-framing", choices=("binary2", "ascii4"))
    ap.add_argument("--iso-tls-cert", type=Path, help="PEM certificate (chain): the ISO listener speaks TLS")
    ap.add_argument("--iso-tls-key", type=Path, help="PEM private key of --iso-tls-cert (if not in the same file)")
    ap.add_argument("--iso-tls-client-ca", type=Path, help="PEM CA: ISO peers must present certificates signed by it")


_LEVELS = ("debug", "info", "warning", "error")


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The settings the flags in ``args`` override, by section."""
    out: dict[str, dict[str, Any]] = {}
    for flag, (section, key) in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            out.setdefault(section, {})[key] = value
    if getattr(args, "no_access_log", False):
        out.setdefault("http", {})["access_log"] = False
    if getattr(args, "iso_port", None) is not None:
        out.setdefault("iso_listener", {})["enabled"] = True
    if args.host is not None and getattr(args, "iso_host", None) is None:
        # A flag like any other: `--host` is where this process listens, REST and ISO alike.
        out.setdefault("iso_listener", {})["host"] = args.host
    return out


def _settings(ap: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    """The effective configuration; a wrong file, variable or flag is a usage error (exit 2)."""
    try:
        return load_settings(args.config, overrides=_overrides(args), sections={"http": HTTP_SECTION})
    except ConfigError as e:  # names the file/section/key; TlsError texts name files, never key material
        ap.error(str(e))


def _front(settings: Settings) -> FrontConfig:
    """``[http]``, with ``[metrics] enabled`` and its drain capped inside the shutdown deadline."""
    front: FrontConfig = settings.sections["http"]
    drain = http_drain(settings.process.shutdown_timeout, front.shutdown_timeout)
    return dataclasses.replace(front, metrics=settings.metrics.enabled, shutdown_timeout=drain)


def _logging(settings: Settings) -> None:
    cfg = settings.logging
    setup_logging(cfg.level, fmt=cfg.format, levels=dict(cfg.levels))


def _cmd_up(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="isoswitch up",
        description="Start the whole system: PostgreSQL (embedded unless DATABASE_URL is set), "
        "the simulated issuer host, the switch and the REST front. Ctrl-C stops everything.",
    )
    _serving_args(ap)
    ap.add_argument("--sim-port", type=int, help="simulator ISO port [simulator] port (default 8583)")
    ap.add_argument("--sim-admin-port", type=int, help="simulator admin/ledger port (default 8584)")
    ap.add_argument("--rules", type=Path, help="simulator rules file (TOML)")
    ap.add_argument("--workers", type=int, help="processes serving the HTTP and ISO ports together (SO_REUSEPORT)")
    args = ap.parse_args(argv)
    settings = _settings(ap, args)
    _logging(settings)
    if settings.process.workers > 1:
        if not _front(settings).reuse_port or (settings.listener is not None and not settings.listener.reuse_port):
            ap.error("workers > 1 share the ports: [http] and [iso_listener] reuse_port must be true")
        # Before anything loads prometheus_client: the workers started later inherit the directory.
        from switch import metrics

        metrics.prepare_multiprocess(settings.metrics.multiprocess_dir or settings.database.data_dir / "metrics")
    sim = settings.simulator
    host = _front(settings).host
    try:
        with sim_process(host, sim.port, sim.admin_port, str(sim.rules) if sim.rules else None) as sim_addr:
            return run_loop(lambda: _up(args, settings, sim_addr))
    except RuntimeError as e:
        print(f"isoswitch up: {e}", file=sys.stderr)
        return 1


def _cmd_serve(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="isoswitch serve",
        description="Run the switch and the REST front (no simulator): what each worker of `up` runs.",
    )
    _serving_args(ap)
    ap.add_argument("--target", type=hostport, help="point every destination at HOST:PORT")
    ap.add_argument("--node-id", type=int, help="0..9, overrides the config's (each process needs its own)")
    args = ap.parse_args(argv)
    settings = _settings(ap, args)
    _logging(settings)

    async def run() -> int:
        stop = stop_event()
        runtime = await _open(settings, args.target)
        await _serve_front(runtime, settings, stop)
        return 0

    return run_loop(run)


def _cmd_config(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="isoswitch config",
        description="The effective configuration: the TOML file, then ISOSWITCH_<SECTION>__<KEY> "
        "variables and DATABASE_URL, then these flags.",
    )
    sub = ap.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="print the effective configuration as TOML, secrets hidden")
    _serving_args(show)
    show.add_argument("--workers", type=int)
    show.add_argument("--node-id", type=int)
    args = ap.parse_args(argv)
    settings = _settings(show, args)
    import tomli_w

    print(f"# effective configuration from {settings.source}, the environment and flags; secrets hidden")
    print(tomli_w.dumps(shown(settings, {"http": HTTP_SECTION})), end="")
    return 0


async def _open(settings: Settings, target: tuple[str, int] | None) -> Runtime:
    from switch.runtime import open_runtime

    cfg = settings.runtime
    if target is not None:
        cfg = dataclasses.replace(cfg, switch=cfg.switch_config().with_target(*target))
    return await open_runtime(cfg)


async def _serve_front(
    runtime: Runtime, settings: Settings, stop: asyncio.Event, started: Callable[[], None] | None = None
) -> None:
    """Serve until ``stop``, then shut down in order within ``[process] shutdown_timeout``."""
    from http_front.server import start_front

    front = _front(settings)
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


def _child_env(overrides: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The flags' overrides as ``ISOSWITCH_<SECTION>__<KEY>`` variables, for worker processes."""
    env = dict(os.environ)
    for section, values in overrides.items():
        for key, value in values.items():
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            env[f"{ENV_PREFIX}{section.upper()}__{key.upper()}"] = text
    return env


async def _up(args: argparse.Namespace, settings: Settings, sim_addr: tuple[str, int]) -> int:
    stop = stop_event()
    runtime = await _open(settings, sim_addr)
    workers: list[subprocess.Popen[bytes]] = []
    sim_host, sim_port = sim_addr

    stop_at: list[float] = []

    async def stop_workers() -> None:
        await stop.wait()
        stop_at.append(time.monotonic())
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)

    stopping = asyncio.ensure_future(stop_workers())
    commands: list[list[str]] = []
    env: dict[str, str] = {}

    async def watch_workers() -> None:
        """A worker that dies (killed, out of memory) is logged, dropped from the metrics and started again;
        one that keeps dying (it cannot bind, the database is gone) is retried less and less often."""
        from switch import metrics

        delays = [0.5] * len(commands)
        started = [time.monotonic()] * len(commands)
        due = [0.0] * len(commands)
        while not stop.is_set():
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for i, w in enumerate(workers):
                if w.poll() is None or stop.is_set():
                    continue
                if due[i] == 0.0:
                    log.error("worker %d exited (status %s)", w.pid, w.returncode)
                    metrics.mark_process_dead(w.pid)
                    # One that ran a while restarts at once; one that keeps dying waits twice as long each time.
                    delays[i] = 0.5 if now - started[i] > 60.0 else min(delays[i] * 2, 60.0)
                    due[i] = now + delays[i]
                elif now >= due[i]:
                    log.warning("starting worker %d of %d again", i + 2, len(commands) + 1)
                    started[i], due[i] = now, 0.0
                    try:
                        workers[i] = subprocess.Popen(commands[i], env=env, start_new_session=True)  # noqa: ASYNC220
                    except OSError:
                        log.exception("worker %d of %d could not be started", i + 2, len(commands) + 1)

    watching: asyncio.Future[None] | None = None
    try:
        project = await runtime.projects.by_login(DEMO_PROJECT)
        if project is None:
            _, password = await runtime.projects.create(DEMO_PROJECT)
        else:
            # Only a hash is kept, so each start gives the demo project a new password.
            password = await runtime.projects.reset_password(DEMO_PROJECT)
        # More workers: processes of their own sharing the HTTP and ISO ports
        # (SO_REUSEPORT), each with its own links and node id, all on one database.
        # They read the same file; the flags reach them as environment overrides.
        env.update(_child_env(_overrides(args)))
        for k in range(1, settings.process.workers):
            node = (settings.switch.node_id + k) % 10
            cmd = [sys.executable, "-m", "http_front.cli", "serve", "--target", f"{sim_host}:{sim_port}"]
            cmd += ["--node-id", str(node)] + (["--config", args.config] if args.config else [])
            commands.append(cmd)
            workers.append(subprocess.Popen(cmd, env=env, start_new_session=True))  # noqa: ASYNC220 (no wait)
        if workers:
            watching = asyncio.ensure_future(watch_workers())
        front = _front(settings)
        base = f"{front.scheme}://{front.host}:{front.port}"
        where = (
            "DATABASE_URL" if settings.database.url else f"embedded PostgreSQL in {settings.database.data_dir / 'pg'}"
        )
        listener = settings.listener

        def banner() -> None:
            n = settings.process.workers
            print(
                "\n".join(
                    [
                        "isoswitch is up (Ctrl-C stops everything):",
                        f"  REST API          {base}" + (f" ({n} worker processes)" if n > 1 else ""),
                        f"  API docs          {base}/docs   metrics: {base}/metrics",
                        f"  issuer simulator  {sim_host}:{sim_port} "
                        f"(ledger: http://{sim_host}:{settings.simulator.admin_port}/ledger)",
                        f"  database          {where}",
                        *([f"  ISO listener      {listener.host}:{listener.port}"] if listener is not None else []),
                        "demo project credentials (a new password at every start):",
                        "  " + orjson.dumps({"login": DEMO_PROJECT, "password": password}).decode(),
                        "authorize 9.99 USD on a test card:",
                        "  " + _demo_curl(base, DEMO_PROJECT, password),
                        "benchmark it from another terminal:",
                        f"  .venv/bin/isoswitch bench rest --url {base} --login {DEMO_PROJECT} --password={password} "
                        f"--concurrency 64 --duration 20 --bare --sim {sim_host}:{sim_port}",
                    ]
                ),
                flush=True,
            )

        await _serve_front(runtime, settings, stop, banner)
    finally:
        stop.set()
        if watching is not None:
            watching.cancel()
        await stopping
        # One deadline for all, from the signal: the workers stop together, each within its own shutdown_timeout.
        end = (stop_at[0] if stop_at else time.monotonic()) + settings.process.shutdown_timeout + 5.0
        for w in workers:
            try:
                await asyncio.to_thread(w.wait, max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop in time: killed", w.pid)
                w.kill()
                await asyncio.to_thread(w.wait)
            from switch import metrics

            metrics.mark_process_dead(w.pid)  # its live gauges go; its counts stay in the sums
        await runtime.close()
    return 0


def _db_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--config", help="TOML config: its [database] (default: $ISOSWITCH_CONFIG, else the shipped one)")
    ap.add_argument("--data-dir", type=Path, help="embedded PostgreSQL location (unless DATABASE_URL)")


def _db_config(ap: argparse.ArgumentParser, args: argparse.Namespace) -> DbConfig:
    """``[database]`` of the config, DATABASE_URL, then ``--data-dir``."""
    try:
        settings = load_settings(args.config, overrides={"database": {"data_dir": args.data_dir}})
    except ConfigError as e:
        ap.error(str(e))
    return settings.database


def _cmd_project(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="isoswitch project", description="Manage merchant projects.")
    sub = ap.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help='create a project; prints {"login": ..., "password": ...} once')
    add.add_argument("name")
    _db_args(add)
    lst = sub.add_parser("list", help="list projects (no secrets)")
    _db_args(lst)
    args = ap.parse_args(argv)
    setup_logging("warning")

    async def run() -> int:
        from switch.store import InvalidSettings, ProjectExists, Projects, open_database

        db = await open_database(_db_config(ap, args))
        try:
            projects = Projects(db.pool)
            if args.action == "add":
                try:
                    project, password = await projects.create(args.name)
                except (ProjectExists, InvalidSettings) as e:
                    print(f"isoswitch project add: {e}", file=sys.stderr)
                    return 1
                print(orjson.dumps({"login": project.login, "password": password}).decode(), flush=True)
            else:
                for p in await projects.list_all():
                    print(orjson.dumps({"id": p.id, "name": p.name, "login": p.login}).decode())
            return 0
        finally:
            await db.close()

    return run_loop(run)


def _cmd_saf(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="isoswitch saf", description="Inspect the reversal store-and-forward queue.")
    sub = ap.add_subparsers(dest="action", required=True)
    lst = sub.add_parser("list", help="one JSON line per queued reversal, oldest first (no card data)")
    _db_args(lst)
    lst.add_argument("--state", choices=("pending", "manual", "done"), help="only rows in this state")
    args = ap.parse_args(argv)
    setup_logging("warning")

    async def run() -> int:
        from switch.saf import list_entries
        from switch.store import open_database

        db = await open_database(_db_config(ap, args))
        try:
            for entry in await list_entries(db.pool, args.state):
                print(orjson.dumps(entry).decode())
            return 0
        finally:
            await db.close()

    return run_loop(run)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "up":
        return _cmd_up(args[1:])
    if args and args[0] == "project":
        return _cmd_project(args[1:])
    if args and args[0] == "serve":
        return _cmd_serve(args[1:])
    if args and args[0] == "reconcile":
        from bench.reconcile import main as reconcile_main

        return reconcile_main(args[1:])
    if args and args[0] == "audit":
        from switch.store.audit import main_audit

        return main_audit(args[1:])
    if args and args[0] == "config":
        return _cmd_config(args[1:])
    if args and args[0] == "saf":
        return _cmd_saf(args[1:])
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    return switch_main(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
