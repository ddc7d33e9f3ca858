"""``isoswitch mail list|resend``: the mail outbox (switch/mail) of a switch that may be running.

``list`` prints one JSON line per mail, newest first, with every attempt (``attempt_log``: when, whether
the SMTP server took it, its reply or the error), never the message (sealed: it may hold a pay link).
``resend ID`` sends a mail again (sent, failed, or sooner when still pending) with a new round of attempts;
a serving process's worker sends it.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import orjson

from isoswitch import args as options
from isoswitch.admin import _NoVault, _with_database

if TYPE_CHECKING:
    from switch.store import Database

__all__ = ["cmd_mail"]


def cmd_mail(args: argparse.Namespace) -> int:
    if args._action == "list" and args.limit < 1:
        print("isoswitch mail list: --limit must be at least 1", file=sys.stderr)
        return 2
    attempts = getattr(args, "attempts", None) or options.settings(args).runtime.mail.max_attempts
    if attempts < 1:
        print("isoswitch mail resend: --attempts must be at least 1", file=sys.stderr)
        return 2

    async def work(db: Database) -> int:
        from switch.mail import MailStore

        store = MailStore(db.pool, _NoVault())  # neither the list nor a resend opens a message
        if args._action == "list":
            rows = await store.list(
                state=args.state, reference=args.reference, project=args.project, mail_id=args.mail_id, limit=args.limit
            )
            sys.stdout.write("".join(orjson.dumps(r).decode() + "\n" for r in rows))
            sys.stdout.flush()
            return 0
        if not await store.resend(args.mail_id, attempts):
            print(f"isoswitch mail resend: no mail {args.mail_id}", file=sys.stderr)
            return 1
        print(orjson.dumps({"id": args.mail_id, "state": "pending", "attempts": attempts}).decode(), flush=True)
        return 0

    return _with_database(args, work, pool_size=2)
