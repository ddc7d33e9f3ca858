"""The commands that read or change the books of a switch that may be running: ``project``,
``saf``, ``audit``, ``reconcile``, and ``config show``.

Every one of them that opens the database takes ``--config`` (its ``[database]``), then
``DATABASE_URL`` and the ``ISOSWITCH_DATABASE__*`` variables, then ``--data-dir``: the same
database ``up`` and ``serve`` use with the same file and environment. They print JSON lines
(or text) on stdout and log only warnings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson

from isoswitch import args as options
from switch.logs import setup_logging
from switch.process import run_loop

if TYPE_CHECKING:
    from switch.store import Database

__all__ = ["cmd_audit", "cmd_config", "cmd_project", "cmd_reconcile", "cmd_saf"]


def _with_database(args: argparse.Namespace, work: Callable[[Database], Awaitable[int]], pool_size: int = 10) -> int:
    """Open the database of ``args``' configuration, run ``work`` on it, close it; its exit status."""
    import dataclasses

    from switch.store import open_database

    db_config = dataclasses.replace(options.settings(args).database, min_size=1, max_size=pool_size)
    setup_logging("warning")

    async def run() -> int:
        db = await open_database(db_config)
        try:
            return await work(db)
        finally:
            await db.close()

    return run_loop(run)


def cmd_config(args: argparse.Namespace) -> int:
    from isoswitch import config

    print(config.show(options.settings(args)), end="")
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        from switch.store import InvalidSettings, ProjectExists, Projects

        projects = Projects(db.pool)
        if args._action == "add":
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

    return _with_database(args, work)


def cmd_saf(args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        from switch.saf import list_entries

        for entry in await list_entries(db.pool, args.state):
            print(orjson.dumps(entry).decode())
        return 0

    return _with_database(args, work)


def cmd_audit(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("isoswitch audit list: --limit must be at least 1", file=sys.stderr)
        return 2

    async def work(db: Database) -> int:
        from switch.store.audit import list_entries

        entries = await list_entries(
            db.pool, actor=args.project, order_id=args.order, action=args.action, since=args.since, limit=args.limit
        )
        sys.stdout.write("".join(orjson.dumps(entry).decode() + "\n" for entry in entries))
        sys.stdout.flush()
        return 0

    return _with_database(args, work)


def cmd_reconcile(args: argparse.Namespace) -> int:
    sim_admin = args.sim_admin
    if sim_admin is None:
        from isoswitch import config

        sim_admin = f"http://127.0.0.1:{config.simulator(options.settings(args)).admin_port}"

    async def work(db: Database) -> int:
        import aiohttp

        from bench.reconcile import reconcile

        try:
            report = await reconcile(db.pool, sim_admin, args.since)
        except (OSError, aiohttp.ClientError) as e:
            print(f"isoswitch reconcile: ledger unavailable at {sim_admin}: {e}", file=sys.stderr)
            return 2
        for d in report.differences:
            print(d)
        print(report.summary(), flush=True)
        return 1 if report.differences else 0

    return _with_database(args, work, pool_size=2)
