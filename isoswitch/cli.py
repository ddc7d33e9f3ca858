"""``isoswitch``: one tree of sub-commands over the whole system.

The tree is built at once (``isoswitch --help`` lists everything, each sub-command has its own
``--help``); what a command runs is imported only when it runs, so ``isoswitch sim`` loads none
of the core but the wire layer. A command that cannot go on (a port in use, the database
unreachable, a bad TLS file, a wrong configuration) ends with one line on stderr and exit
status 1 (2 for a wrong configuration or flag), never a traceback (:mod:`isoswitch.failures`).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from isoswitch import args as options
from switch.process import point_in_time

__all__ = ["build_parser", "command_parser", "main", "version"]

_EPILOG = "Each command has its own --help. Settings: the TOML file (--config), ISOSWITCH_<SECTION>__<KEY>, then flags."


def version() -> str:
    """This installation's version, from the package metadata."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("isoswitch")
    except PackageNotFoundError:  # run from a tree that was never installed
        return "unknown"


class _Version(argparse.Action):
    """``--version``, looked up only when asked (the metadata lookup is not free)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"isoswitch {version()}")
        parser.exit()


Runner = Callable[[argparse.Namespace], int]


def _runs(p: argparse.ArgumentParser, module: str, name: str) -> None:
    """``p`` runs ``module.name(args)``, imported when it runs."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        func: Runner = getattr(importlib.import_module(module), name)
        return func(args)

    p.set_defaults(_run=run)


def _serving_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = sub.add_parser(
        "up",
        help="start the whole system: PostgreSQL, the simulated issuer host, the switch and the REST front",
        description="Start the whole system: PostgreSQL (embedded unless DATABASE_URL is set), "
        "the simulated issuer host, the switch and the REST front. Ctrl-C stops everything.",
    )
    options.add_serving(up)
    up.add_argument("--sim-port", type=int, help="simulator ISO port [simulator] port (default 8583)")
    up.add_argument("--sim-admin-port", type=int, help="simulator admin/ledger port (default 8584)")
    up.add_argument("--rules", type=Path, help="simulator rules file (TOML)")
    up.add_argument("--smtp-sink-port", type=int, help="the local SMTP sink's port [smtp_sink] port (default 8025)")
    up.add_argument("--workers", type=int, help="processes serving the HTTP and ISO ports together (SO_REUSEPORT)")
    _runs(up, "isoswitch.serve", "cmd_up")

    serve = sub.add_parser(
        "serve",
        help="run the switch and the REST front without the simulator (one worker of `up`)",
        description="Run the switch and the REST front (no simulator): what each worker of `up` runs.",
    )
    options.add_serving(serve)
    options.add_target(serve)
    serve.add_argument("--node-id", type=int, help="0..9, overrides the config's (each process needs its own)")
    _runs(serve, "isoswitch.serve", "cmd_serve")

    switch = sub.add_parser(
        "switch",
        help="run the switch core without the REST front (links, routing, reversals, --iso-port listener)",
        description="Run the switch core without the REST front: link pools, BIN routing, reversals and "
        "store-and-forward, and with --iso-port the ISO listener for acquirer hosts and terminals.",
    )
    options.add_core(switch)
    _runs(switch, "isoswitch.serve", "cmd_switch")


def _book_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    since_help = "ISO 8601 date or time (UTC unless it names a zone), or an age: 90s, 15m, 2h, 1d, 1w"

    project = sub.add_parser("project", help="manage merchant projects: `isoswitch project add NAME`")
    actions = project.add_subparsers(dest="_action", required=True, metavar="{add,list,settings,webhook}")
    add = actions.add_parser("add", help='create a project; prints {"login", "password", "public_key"} once')
    add.add_argument("name")
    options.add_database(add)
    options.add_database(actions.add_parser("list", help="list projects (no secrets)"))
    conf = actions.add_parser(
        "settings",
        help="print a project's settings as JSON, or change some: --set require_3ds=true",
        description="Print the project's settings (JSON), or change them with --set KEY=VALUE (repeatable; "
        "true/false, comma-separated lists, numbers as written) and print the new ones. Running processes "
        "see a change within [runtime] project_refresh seconds.",
    )
    conf.add_argument("project", metavar="PROJECT", help="the project's login")
    conf.add_argument("--set", dest="changes", action="append", default=[], metavar="KEY=VALUE")
    options.add_database(conf)
    _webhook_endpoint_commands(actions.add_parser("webhook", help="the project's webhook endpoints"))
    _runs(project, "isoswitch.admin", "cmd_project")

    user = sub.add_parser("user", help="merchant portal users: `isoswitch user add EMAIL --project NAME --role owner`")
    actions = user.add_subparsers(dest="_action", required=True, metavar="{add,list}")
    add = actions.add_parser(
        "add",
        help='give EMAIL a role in a project; prints {"email", "project", "role", "password"} (a new user\'s '
        "one-time password, changed at the first login; null for a user who has one)",
    )
    add.add_argument("email", metavar="EMAIL")
    add.add_argument("--project", required=True, metavar="NAME", help="the project's login")
    add.add_argument("--role", required=True, choices=("owner", "admin", "operator", "viewer"))
    options.add_database(add)
    lst = actions.add_parser("list", help="a project's users and roles, one JSON line each")
    lst.add_argument("--project", required=True, metavar="NAME", help="the project's login")
    options.add_database(lst)
    _runs(user, "isoswitch.admin", "cmd_user")

    hook = sub.add_parser("webhook", help="webhook deliveries: `isoswitch webhook list`, `redeliver EVENT_ID`")
    actions = hook.add_subparsers(dest="_action", required=True, metavar="{list,redeliver}")
    lst = actions.add_parser("list", help="the delivery log: one JSON line per event and destination, oldest first")
    options.add_database(lst)
    lst.add_argument("--project", metavar="LOGIN", help="only this project's deliveries")
    lst.add_argument("--endpoint", metavar="NAME|ID", help="only this endpoint's deliveries")
    lst.add_argument("--state", choices=("pending", "delivered", "failed"), help="only deliveries in this state")
    lst.add_argument("--limit", type=int, default=1000, help="at most this many lines (default 1000)")
    again = actions.add_parser("redeliver", help="send an event again to each of its destinations")
    again.add_argument("event_id", metavar="EVENT_ID")
    options.add_database(again)
    _runs(hook, "isoswitch.admin", "cmd_webhook")

    mail = sub.add_parser("mail", help="the mail outbox: `isoswitch mail list`, `resend ID`")
    actions = mail.add_subparsers(dest="_action", required=True, metavar="{list,resend}")
    lst = actions.add_parser("list", help="one JSON line per mail with its attempts, newest first (no message)")
    options.add_database(lst)
    lst.add_argument("--state", choices=("pending", "sent", "failed"), help="only mails in this state")
    lst.add_argument("--reference", metavar="ID", help="only mails about this (an invoice id)")
    lst.add_argument("--project", metavar="LOGIN", help="only this project's mails")
    lst.add_argument("--id", type=int, dest="mail_id", metavar="ID", help="only this mail")
    lst.add_argument("--limit", type=int, default=100, help="at most this many lines (default 100)")
    again = actions.add_parser("resend", help="send a mail again (a serving process sends it), with new attempts")
    again.add_argument("mail_id", type=int, metavar="ID")
    again.add_argument("--attempts", type=int, help="attempts of the new round (default [mail] max_attempts)")
    options.add_database(again)
    _runs(mail, "isoswitch.mail", "cmd_mail")

    saf = sub.add_parser("saf", help="the store-and-forward queue of reversals: `isoswitch saf list`")
    actions = saf.add_subparsers(dest="_action", required=True, metavar="{list}")
    lst = actions.add_parser("list", help="one JSON line per queued reversal, oldest first (no card data)")
    options.add_database(lst)
    lst.add_argument("--state", choices=("pending", "manual", "done"), help="only rows in this state")
    _runs(saf, "isoswitch.admin", "cmd_saf")

    audit = sub.add_parser("audit", help="the audit log of back-office operations: `isoswitch audit list`")
    actions = audit.add_subparsers(dest="_action", required=True, metavar="{list}")
    lst = actions.add_parser("list", help="one JSON line per entry, oldest first (no card data)")
    options.add_database(lst)
    lst.add_argument("--project", metavar="LOGIN", help="only this project's login")
    lst.add_argument("--order", metavar="ID", help="only entries about this order (acted on or created)")
    # The actions of switch.store.audit.ACTIONS, listed here so that building the tree loads no store code.
    actions_list = ("charge", "reverse", "refund", "cancel", "credit", "rebill")
    lst.add_argument("--action", choices=actions_list, help="only this action")
    lst.add_argument("--since", type=point_in_time, metavar="TIME", help=f"only entries at or after TIME: {since_help}")
    lst.add_argument("--limit", type=int, default=1000, help="at most this many lines (default 1000)")
    _runs(audit, "isoswitch.admin", "cmd_audit")

    rec = sub.add_parser(
        "reconcile",
        help="compare the switch's books with the simulator's ledger",
        description="Compare the switch's books (orders, operations, store-and-forward) with the issuer "
        "simulator's ledger; one line per difference, then a summary. Exit status 1 if any difference.",
    )
    options.add_database(rec)
    rec.add_argument(
        "--sim-admin", metavar="URL", help="simulator admin API (default http://127.0.0.1:<[simulator] admin_port>)"
    )
    rec.add_argument(
        "--since", type=point_in_time, metavar="TIME", help=f"only orders created at or after TIME: {since_help}"
    )
    _runs(rec, "isoswitch.admin", "cmd_reconcile")

    _report_commands(sub)

    cfg = sub.add_parser("config", help="the effective configuration: `isoswitch config show` (secrets hidden)")
    actions = cfg.add_subparsers(dest="_action", required=True, metavar="{show}")
    show = actions.add_parser(
        "show",
        help="print the effective configuration as TOML, secrets hidden",
        description="The effective configuration: the TOML file, then ISOSWITCH_<SECTION>__<KEY> "
        "variables and DATABASE_URL, then these flags.",
    )
    options.add_serving(show)
    show.add_argument("--workers", type=int)
    show.add_argument("--node-id", type=int)
    _runs(cfg, "isoswitch.admin", "cmd_config")


def _report_day(raw: str) -> datetime.date:
    """``--date``: an ISO date in 1900..2999 (the day's bounds must stay inside what dates can count)."""
    day = datetime.date.fromisoformat(raw)
    if not 1900 <= day.year <= 2999:
        raise ValueError(raw)
    return day


_report_day.__name__ = "date"  # argparse's message: "invalid date value"


def _report_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``isoswitch report daily --project NAME --date D [--tz ZONE] [--out FILE]``."""
    report = sub.add_parser("report", help="reports over a project's books: `isoswitch report daily`")
    actions = report.add_subparsers(dest="_action", required=True, metavar="{daily}")
    daily = actions.add_parser(
        "daily",
        help="a CSV of a project's day: its orders, operations, fees and totals per currency (masked PANs only)",
        description="A CSV of one project's day: every order and operation created that day (amounts, cash flow "
        "and fees, status, masked PAN), then totals per currency. Written to --out (and a JSON line saying so "
        "on stdout), or to stdout.",
    )
    daily.add_argument("--project", required=True, metavar="NAME", help="the project's name (its login)")
    daily.add_argument("--date", required=True, type=_report_day, metavar="YYYY-MM-DD", help="the day")
    daily.add_argument("--tz", default="UTC", metavar="ZONE", help="the day's time zone, IANA name (default UTC)")
    daily.add_argument("--out", type=Path, metavar="FILE", help="write the CSV here (default: stdout)")
    options.add_database(daily)
    _runs(report, "isoswitch.reports", "cmd_report")


def _webhook_endpoint_commands(p: argparse.ArgumentParser) -> None:
    """``isoswitch project webhook add|list|remove|secret``."""
    actions = p.add_subparsers(dest="_webhook_action", required=True, metavar="{add,list,remove,secret}")
    add = actions.add_parser(
        "add", help='add an endpoint; prints {"id": ..., "secret": "whsec_..."} (the secret only now)'
    )
    add.add_argument("project", metavar="PROJECT", help="the project's login")
    add.add_argument("name", metavar="NAME")
    add.add_argument("url", metavar="URL", help="http(s) URL; private addresses refused unless [webhooks] allows")
    lst = actions.add_parser("list", help="the project's endpoints (no secrets)")
    lst.add_argument("project", metavar="PROJECT")
    rm = actions.add_parser("remove", help="remove an endpoint (its delivery log stays)")
    rm.add_argument("project", metavar="PROJECT")
    rm.add_argument("endpoint", metavar="NAME|ID")
    sec = actions.add_parser(
        "secret", help="a new secret for callbacks to orders' notification_url (printed only now; the old stops)"
    )
    sec.add_argument("project", metavar="PROJECT")
    for sp in (add, lst, rm, sec):
        options.add_database(sp)


def _tool_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from acquirer_sim import cli as sim_cli
    from bench import cli as bench_cli

    keys = sub.add_parser(
        "keys",
        help="make the simulator's test keys (3-D Secure ACS, wallet) for a simulator and a switch run apart",
        description="Make, if missing, the key pairs `isoswitch up` makes for itself, for a simulator and a "
        "switch that do not share a directory (docker-compose.yml): each directory gets only the private keys "
        "of its side and the other side's public keys. Prints the paths as JSON.",
    )
    keys.add_argument(
        "--sim-dir", type=Path, required=True, metavar="DIR",
        help="the simulator's: acs_signing.pem, wallet_signing.pem (private), wallet_merchant.pub.pem",
    )  # fmt: skip
    keys.add_argument(
        "--switch-dir", type=Path, required=True, metavar="DIR",
        help="the switch's: wallet_merchant.pem (private), acs_signing.pub.pem, wallet_signing.pub.pem",
    )  # fmt: skip
    _runs(keys, "isoswitch.admin", "cmd_keys")

    sim = sub.add_parser("sim", help="run the simulated issuer host (acquirer_sim)", description=sim_cli.DESCRIPTION)
    sim_cli.add_arguments(sim)
    sim.set_defaults(_run=sim_cli.run)

    bench = sub.add_parser("bench", help="benchmarks: `isoswitch bench iso|suite|rest --help`")
    bench_cli.add_commands(bench)
    # What follows `bench` goes into each result file, as the command that produced it.
    bench.set_defaults(_run=lambda args: bench_cli.run(args, args._argv[args._argv.index("bench") + 1 :]))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="isoswitch",
        description="An ISO 8583 acquiring switch with a REST orders API, a simulated issuer host and a bench.",
        epilog=_EPILOG,
    )
    ap.add_argument("--version", action=_Version)
    # Not "command": bench's own sub-commands use that name.
    sub = ap.add_subparsers(dest="_command", metavar="<command>", title="commands")
    _serving_commands(sub)
    _book_commands(sub)
    _tool_commands(sub)
    return ap


def command_parser(*names: str) -> argparse.ArgumentParser:
    """The parser of ``isoswitch NAME...`` (``"serve"``, ``"config", "show"``), for tests and docs."""
    parser = build_parser()
    for name in names:
        (choices,) = (a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = choices[name]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``isoswitch ARGV``; the exit status (argparse's own for --help and wrong flags)."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not words or words == ["help"]:
        parser.print_help()
        return 0
    try:
        args = parser.parse_args(words)
    except SystemExit as e:  # --help, --version, or a wrong flag (argparse printed why)
        return e.code if isinstance(e.code, int) else 2
    if args._command is None:
        parser.print_help()
        return 0
    args._argv = words
    prog = " ".join(["isoswitch", args._command, *([args._action] if getattr(args, "_action", None) else [])])
    try:
        status: int = args._run(args)
    except KeyboardInterrupt:  # Ctrl-C before the loop took over the signals: nothing to say
        return 130
    except Exception as e:
        from isoswitch.failures import exit_status

        code = exit_status(e)
        if code is None:
            raise
        print(f"{prog}: {e}", file=sys.stderr)
        return code
    return status
