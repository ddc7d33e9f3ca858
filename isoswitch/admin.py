"""The commands that read or change the books of a switch that may be running: ``project``, ``user``,
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
from typing import TYPE_CHECKING, Any

import orjson

from isoswitch import args as options
from switch.logs import setup_logging
from switch.process import run_loop

if TYPE_CHECKING:
    from switch.store import Database

__all__ = [
    "cmd_audit",
    "cmd_config",
    "cmd_keys",
    "cmd_project",
    "cmd_reconcile",
    "cmd_saf",
    "cmd_user",
    "cmd_webhook",
]


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


def cmd_keys(args: argparse.Namespace) -> int:
    """``isoswitch keys --sim-dir DIR --switch-dir DIR``: each private key made where its owner reads it, the
    public halves copied across (run again: nothing changes, the public copies are refreshed)."""
    import shutil

    from switch.wire import wallet
    from switch.wire.threeds import generate_key_pair

    sim, switch = args.sim_dir, args.switch_dir
    acs, acs_public = generate_key_pair(sim)  # the ACS signs; the switch verifies
    signing, signing_public = wallet.generate_key_pair(sim, "wallet_signing")  # the wallet signs; the switch verifies
    merchant, merchant_public = wallet.generate_key_pair(switch, "wallet_merchant")  # the switch decrypts
    copies = ((acs_public, switch), (signing_public, switch), (merchant_public, sim))
    placed = {}
    for public, directory in copies:
        target = directory / public.name
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(public, tmp)
        tmp.replace(target)  # a reader never sees half a file
        placed[public.stem.removesuffix(".pub")] = target
    _line(
        {
            "sim": {
                "acs_key": str(acs),
                "wallet_signing_key": str(signing),
                "wallet_merchant_key": str(placed["wallet_merchant"]),
            },
            "switch": {
                "acs_public_key": str(placed["acs_signing"]),
                "wallet_merchant_key": str(merchant),
                "wallet_signing_public_key": str(placed["wallet_signing"]),
            },
        }
    )
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    if args._action == "webhook":
        return _project_webhook(args)
    if args._action == "settings":
        return _project_settings(args)

    async def work(db: Database) -> int:
        from switch.store import InvalidSettings, ProjectExists, Projects

        projects = Projects(db.pool)
        if args._action == "add":
            try:
                project, password = await projects.create(args.name)
            except (ProjectExists, InvalidSettings) as e:
                print(f"isoswitch project add: {e}", file=sys.stderr)
                return 1
            keys = await projects.public_keys(project.id)
            assert keys is not None  # made with the project
            doc = {"login": project.login, "password": password, "public_key": keys.test}
            print(orjson.dumps(doc).decode(), flush=True)
        else:
            for p in await projects.list_all():
                print(orjson.dumps({"id": p.id, "name": p.name, "login": p.login}).decode())
        return 0

    return _with_database(args, work)


def _project_settings(args: argparse.Namespace) -> int:
    """``isoswitch project settings PROJECT [--set KEY=VALUE ...]``: the settings as JSON, after the changes."""
    from switch.store import InvalidSettings, ProjectSettings

    prog = "isoswitch project settings"
    texts: dict[str, str] = {}
    try:
        for pair in args.changes:
            key, eq, text = pair.partition("=")
            if not eq:
                raise InvalidSettings(f"--set takes KEY=VALUE, not {pair!r}")
            texts[key] = text
        # The portal's settings page parses its form with the same call (http_front/portal/settings.py).
        changes: dict[str, Any] = ProjectSettings.parse_settings(texts)
    except InvalidSettings as e:  # before the database is opened: a typo costs nothing
        print(f"{prog}: {e}", file=sys.stderr)
        return 1

    async def work(db: Database) -> int:
        from switch.store import Projects

        projects = Projects(db.pool)
        project = await projects.by_login(args.project)
        if project is None:
            print(f"{prog}: no project with login {args.project!r}", file=sys.stderr)
            return 1
        if changes:
            try:
                project = await projects.update_settings(project.id, **changes)
            except (InvalidSettings, LookupError) as e:
                print(f"{prog}: {e}", file=sys.stderr)
                return 1
        _line(project.settings.to_json())
        return 0

    return _with_database(args, work, pool_size=2)


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


def _line(doc: object) -> None:
    print(orjson.dumps(doc).decode(), flush=True)


def _project_webhook(args: argparse.Namespace) -> int:
    """``isoswitch project webhook add|list|remove|secret PROJECT ...``."""
    prog = f"isoswitch project webhook {args._webhook_action}"
    settings = options.settings(args)

    async def work(db: Database) -> int:
        from switch.store import Projects, Vault
        from switch.webhooks import UrlRefused, WebhookStore, check_url

        project = await Projects(db.pool).by_login(args.project)
        if project is None:
            print(f"{prog}: no project with login {args.project!r}", file=sys.stderr)
            return 1
        store = WebhookStore(db.pool, Vault.from_env_or_dir(settings.database.data_dir))
        action = args._webhook_action
        if action == "add":
            cfg = settings.runtime.webhooks
            try:
                await check_url(args.url, allow_private=cfg.allow_private, allow_loopback=cfg.allow_loopback)
                endpoint, secret = await store.add_endpoint(project.id, args.name, args.url)
            except (UrlRefused, ValueError) as e:
                print(f"{prog}: {e}", file=sys.stderr)
                return 1
            _line({**endpoint, "project": project.login, "secret": secret})
        elif action == "list":
            for endpoint in await store.endpoints(project.id):
                _line({**endpoint, "project": project.login})
        elif action == "remove":
            if not await store.remove_endpoint(project.id, args.endpoint):
                print(f"{prog}: the project has no endpoint {args.endpoint!r}", file=sys.stderr)
                return 1
        else:
            _line({"project": project.login, "secret": await store.rotate_project_secret(project.id)})
        return 0

    return _with_database(args, work, pool_size=2)


def cmd_webhook(args: argparse.Namespace) -> int:
    """``isoswitch webhook list`` (the delivery log) and ``redeliver EVENT_ID``."""
    if args._action == "list" and args.limit < 1:
        print("isoswitch webhook list: --limit must be at least 1", file=sys.stderr)
        return 2

    async def work(db: Database) -> int:
        from switch.webhooks import WebhookStore

        # The log needs no secret: the vault is not opened (a placeholder that holds no key).
        store = WebhookStore(db.pool, _NoVault())
        if args._action == "list":
            rows = await store.list_deliveries(
                project=args.project, endpoint=args.endpoint, state=args.state, limit=args.limit
            )
            sys.stdout.write("".join(orjson.dumps(r).decode() + "\n" for r in rows))
            sys.stdout.flush()
            return 0
        n = await store.redeliver(args.event_id)
        if n == 0:
            print(f"isoswitch webhook redeliver: no event {args.event_id!r}", file=sys.stderr)
            return 1
        _line({"event_id": args.event_id, "deliveries": n})
        return 0

    return _with_database(args, work, pool_size=2)


class _NoVault:
    """For commands that read the delivery log only: never seals or opens anything."""

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        raise RuntimeError("no vault here")

    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        raise RuntimeError("no vault here")


def cmd_user(args: argparse.Namespace) -> int:
    """``isoswitch user add EMAIL --project NAME --role ROLE`` (one JSON line, the password shown only now) and
    ``user list --project NAME``."""
    prog = f"isoswitch user {args._action}"

    async def work(db: Database) -> int:
        from switch.portal import Portal, PortalError
        from switch.store import Projects

        projects = Projects(db.pool)
        portal = Portal(db.pool, projects)  # no vault: adding users touches no TOTP secret
        try:
            if args._action == "add":
                user, project, password = await portal.add_user(args.email, args.project, args.role)
                _line({"email": user.email, "project": project.login, "role": args.role, "password": password})
                return 0
            found = await projects.by_login(args.project)
            if found is None:
                raise LookupError(f"no project {args.project!r}")
            for m in await portal.team.members(found.id):
                _line({"email": m["email"], "role": m["role"], "totp": m["totp_enabled"]})
            return 0
        except (PortalError, LookupError) as e:
            print(f"{prog}: {e.args[0] if e.args else e}", file=sys.stderr)
            return 1

    return _with_database(args, work)
