"""``isoswitch report daily``: the daily CSV of :mod:`switch.reports`, to a file or to stdout.

With ``--out`` the file is written beside itself and renamed into place when complete (a reader never sees half
a report), and one JSON line on stdout says what was written; without it the CSV goes to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

import orjson

from isoswitch.admin import _with_database

if TYPE_CHECKING:
    from switch.store import Database

__all__ = ["cmd_report"]


def cmd_report(args: argparse.Namespace) -> int:
    from switch.reports import daily_report, write_csv, zone

    prog = "isoswitch report daily"
    try:
        tz = zone(args.tz)
    except ValueError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2

    async def work(db: Database) -> int:
        from switch.store import Projects

        project = await Projects(db.pool).by_login(args.project)
        if project is None:
            print(f"{prog}: no project {args.project!r}", file=sys.stderr)
            return 1
        rows = daily_report(db.pool, project.id, args.date, tz)
        if args.out is None:
            await write_csv(rows, sys.stdout)
            sys.stdout.flush()
            return 0
        out = args.out
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            # A command of its own loop, nothing else on it: blocking writes (as to stdout) hold up no one.
            with open(tmp, "w", encoding="utf-8", newline="") as f:  # noqa: ASYNC230
                n = await write_csv(rows, f)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
        doc = {"project": project.login, "date": args.date.isoformat(), "tz": args.tz, "out": str(out), "rows": n}
        print(orjson.dumps(doc).decode(), flush=True)
        return 0

    return _with_database(args, work, pool_size=2)
