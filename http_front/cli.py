"""The ``isoswitch`` command: the composition root of the whole system.

``up`` and ``project`` need the store and the REST front, so they live here
(``switch/`` never imports ``http_front/``); every other command is
``switch.cli``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import shlex
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from switch.cli import USAGE, hostport, run_loop, setup_logging, sim_process, stop_event
from switch.cli import main as switch_main

if TYPE_CHECKING:
    from http_front.config import FrontConfig
    from switch.runtime import Runtime

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


def _serving_args(ap: argparse.ArgumentParser) -> None:
    """Options of every process that runs the switch and the REST front."""
    ap.add_argument("--config", help="switch TOML config (default: schemas/config/default.toml)")
    ap.add_argument("--host", default="127.0.0.1", help="address of the REST front (and of the simulator, for up)")
    ap.add_argument("--http-port", type=int, default=8080, help="REST front port (default 8080)")
    ap.add_argument("--data-dir", default=".data", help="embedded PostgreSQL and generated keys (default .data)")
    ap.add_argument("--no-access-log", action="store_true", help="no access-log line per request")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--tls-cert", type=Path, help="PEM certificate (chain): serve the REST API over HTTPS")
    ap.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert (if not in the same file)")
    ap.add_argument("--tls-client-ca", type=Path, help="PEM CA: require client certificates signed by it")
    ap.add_argument("--rate-limit", type=float, default=1000.0, help="requests/s per project and worker; 0 = off")
    ap.add_argument("--rate-burst", type=int, default=2000, help="burst per project (default 2000)")
    ap.add_argument("--auth-failure-rate", type=float, default=5.0, help="failed logins/s per client address")
    ap.add_argument("--auth-failure-burst", type=int, default=20)
    ap.add_argument("--iso-port", type=int, help="also accept ISO 8583 from acquirer hosts/terminals on this port")
    ap.add_argument("--iso-dialect", default="ascii", choices=("ascii", "binary-bitmap"))
    ap.add_argument("--iso-framing", default="binary2", choices=("binary2", "ascii4"))
    ap.add_argument("--iso-tls-cert", type=Path, help="PEM certificate (chain): the ISO listener speaks TLS")
    ap.add_argument("--iso-tls-key", type=Path, help="PEM private key of --iso-tls-cert (if not in the same file)")
    ap.add_argument("--iso-tls-client-ca", type=Path, help="PEM CA: ISO peers must present certificates signed by it")


def _front_config(args: argparse.Namespace) -> FrontConfig:
    from http_front.config import FrontConfig

    return FrontConfig(
        host=args.host,
        port=args.http_port,
        access_log=not args.no_access_log,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        auth_failure_rate=args.auth_failure_rate,
        auth_failure_burst=args.auth_failure_burst,
    )


def _cmd_up(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="isoswitch up",
        description="Start the whole system: PostgreSQL (embedded unless DATABASE_URL is set), "
        "the simulated issuer host, the switch and the REST front. Ctrl-C stops everything.",
    )
    _serving_args(ap)
    ap.add_argument("--sim-port", type=int, default=8583, help="simulator ISO port (default 8583)")
    ap.add_argument("--sim-admin-port", type=int, default=8584, help="simulator admin/ledger port (default 8584)")
    ap.add_argument("--rules", help="simulator rules file (TOML)")
    ap.add_argument(
        "--workers", type=int, default=1, help="processes serving the REST port together (SO_REUSEPORT); default 1"
    )
    args = ap.parse_args(argv)
    _check_iso_tls(ap, args)
    if not 1 <= args.workers <= 9:
        ap.error("--workers must be 1..9 (each takes a node id)")
    setup_logging(args.log_level)
    try:
        with sim_process(args.host, args.sim_port, args.sim_admin_port, args.rules) as sim_addr:
            return run_loop(lambda: _up(args, sim_addr))
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
    _check_iso_tls(ap, args)
    setup_logging(args.log_level)

    async def run() -> int:
        stop = stop_event()
        runtime = await _open(args, args.target, args.node_id)
        try:
            await _serve_front(runtime, args, stop)
        finally:
            await runtime.close()
        return 0

    return run_loop(run)


async def _open(args: argparse.Namespace, target: tuple[str, int] | None, node_id: int | None) -> Runtime:
    from switch.config import SwitchConfig
    from switch.runtime import RuntimeConfig, open_runtime
    from switch.store import DbConfig

    switch_cfg = SwitchConfig.load(args.config)
    if target is not None:
        switch_cfg = switch_cfg.with_target(*target)
    db = DbConfig.from_env(data_dir=Path(args.data_dir))
    listener = None
    if getattr(args, "iso_port", None) is not None:
        from switch.listener import ListenerConfig

        listener = ListenerConfig(
            host=args.host,
            port=args.iso_port,
            dialect=args.iso_dialect,
            framing=args.iso_framing,
            ssl=_iso_tls(args),
        )
    return await open_runtime(RuntimeConfig(db=db, switch=switch_cfg, node_id=node_id, listener=listener))


def _iso_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The ISO listener's TLS context from ``--iso-tls-*`` (None: plain TCP)."""
    cert, key, client_ca = args.iso_tls_cert, args.iso_tls_key, args.iso_tls_client_ca
    if cert is None:
        if key is not None or client_ca is not None:
            raise ValueError("--iso-tls-key and --iso-tls-client-ca need --iso-tls-cert")
        return None
    from switch.tls import server_context

    return server_context(cert, key, client_ca)


def _check_iso_tls(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fail at once (usage error, exit 2) on ``--iso-tls-*`` that cannot make a context."""
    try:
        _iso_tls(args)
    except ValueError as e:  # TlsError names the file, never key material
        ap.error(str(e))


async def _serve_front(
    runtime: Runtime, args: argparse.Namespace, stop: asyncio.Event, started: Callable[[], None] | None = None
) -> None:
    from http_front.server import serve

    front = _front_config(args)
    serving = asyncio.ensure_future(serve(runtime, front, stop))
    await asyncio.sleep(0.2)
    if not serving.done() and started is not None:
        started()
    await serving  # raises a bind error at once


async def _up(args: argparse.Namespace, sim_addr: tuple[str, int]) -> int:
    stop = stop_event()
    runtime = await _open(args, sim_addr, 0)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        project = await runtime.projects.by_login(DEMO_PROJECT)
        if project is None:
            _, password = await runtime.projects.create(DEMO_PROJECT)
        else:
            # Only a hash is kept, so each start gives the demo project a new password.
            password = await runtime.projects.reset_password(DEMO_PROJECT)
        sim_host, sim_port = sim_addr
        # More workers: processes of their own sharing the REST port (SO_REUSEPORT),
        # each with its own links and node id, all on the same database.
        for node in range(1, args.workers):
            cmd = [sys.executable, "-m", "http_front.cli", "serve", "--target", f"{sim_host}:{sim_port}"]
            cmd += ["--node-id", str(node), "--host", args.host, "--http-port", str(args.http_port)]
            cmd += ["--data-dir", args.data_dir, "--log-level", args.log_level]
            cmd += ["--config", args.config] if args.config else []
            cmd += ["--no-access-log"] if args.no_access_log else []
            for flag in ("tls_cert", "tls_key", "tls_client_ca"):
                if getattr(args, flag) is not None:
                    cmd += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
            cmd += ["--rate-limit", str(args.rate_limit), "--rate-burst", str(args.rate_burst)]
            cmd += ["--auth-failure-rate", str(args.auth_failure_rate)]
            cmd += ["--auth-failure-burst", str(args.auth_failure_burst)]
            # The ISO listener stays in this process: it binds its port once.
            workers.append(subprocess.Popen(cmd, start_new_session=True))  # noqa: ASYNC220 (fork+exec, no wait)
        base = f"{'https' if args.tls_cert else 'http'}://{args.host}:{args.http_port}"
        where = (
            "DATABASE_URL" if os.environ.get("DATABASE_URL") else f"embedded PostgreSQL in {Path(args.data_dir) / 'pg'}"
        )

        def banner() -> None:
            print(
                "\n".join(
                    [
                        "isoswitch is up (Ctrl-C stops everything):",
                        f"  REST API          {base}"
                        + (f" ({args.workers} worker processes)" if args.workers > 1 else ""),
                        f"  issuer simulator  {sim_host}:{sim_port} (ledger: http://{sim_host}:{args.sim_admin_port}/ledger)",
                        f"  database          {where}",
                        *([f"  ISO listener      {args.host}:{args.iso_port}"] if args.iso_port is not None else []),
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

        await _serve_front(runtime, args, stop, banner)
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                await asyncio.to_thread(w.wait, 15)
            except subprocess.TimeoutExpired:
                w.kill()
        await runtime.close()
    return 0


def _cmd_project(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="isoswitch project", description="Manage merchant projects.")
    sub = ap.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help='create a project; prints {"login": ..., "password": ...} once')
    add.add_argument("name")
    add.add_argument("--data-dir", default=".data", help="embedded PostgreSQL location (unless DATABASE_URL)")
    lst = sub.add_parser("list", help="list projects (no secrets)")
    lst.add_argument("--data-dir", default=".data")
    args = ap.parse_args(argv)
    setup_logging("warning")

    async def run() -> int:
        from switch.store import DbConfig, InvalidSettings, ProjectExists, Projects, open_database

        db = await open_database(DbConfig.from_env(data_dir=Path(args.data_dir)))
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
    lst.add_argument("--data-dir", default=".data", help="embedded PostgreSQL location (unless DATABASE_URL)")
    lst.add_argument("--state", choices=("pending", "manual", "done"), help="only rows in this state")
    args = ap.parse_args(argv)
    setup_logging("warning")

    async def run() -> int:
        from switch.orders.saf import list_entries
        from switch.store import DbConfig, open_database

        db = await open_database(DbConfig.from_env(data_dir=Path(args.data_dir)))
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
        from switch.reconcile import main as reconcile_main

        return reconcile_main(args[1:])
    if args and args[0] == "audit":
        from switch.store.audit import main_audit

        return main_audit(args[1:])
    if args and args[0] == "saf":
        return _cmd_saf(args[1:])
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    return switch_main(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
