"""Crash recovery: pending operations a stopped process left behind get their reversal queued.

At start, then every ``recovery_interval``, :meth:`Recovery.recover` takes
operations left ``pending`` for longer than ``recovery_grace`` by another
process (``owner`` differs), or by this one when no task of it works on them
any more (its result write failed), queues their reversal (the STAN was
reserved and written with the intent) and marks operation and order
``error``, all in one transaction with the rows locked (SKIP LOCKED, and the
unique ``(order_id, operation_id)`` of ``saf``), so two recovering nodes do
not both queue it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Collection
from typing import Any

import asyncpg

from switch.saf.config import SafConfig
from switch.saf.entry import Tally
from switch.store.saf import SafStore, SafTransaction

__all__ = ["Recovery", "new_owner"]

log = logging.getLogger("isoswitch.saf")

_RECOVERED_MESSAGE = "Outcome unknown: the process sending it stopped"


def new_owner(node_id: int) -> str:
    """This process's owner id for intents: node, host, pid, start time and a nonce (two runtimes in one process)."""
    return f"{node_id}:{socket.gethostname()}:{os.getpid()}:{int(time.time())}:{secrets.token_hex(3)}"


class Recovery:
    """Finds orphaned pending operations and queues their reversals (module doc)."""

    def __init__(
        self,
        store: SafStore,
        *,
        owner: str,
        config: SafConfig,
        working: Collection[tuple[str, int]],
        tally: Tally,
        projects: Any = None,
        on_recovered: Callable[[], None] = lambda: None,
    ) -> None:
        """``working``: (order id, operation id) this process is exchanging, kept up to date by the caller.

        ``projects`` (``switch.store.Projects``) gives the DE 42 of an orphan's project.
        """
        self._store = store
        self.owner = owner
        self.config = config
        self._working = working
        self._tally = tally
        self._projects = projects
        self._on_recovered = on_recovered

    async def recover(self, *, grace: float | None = None, limit: int = 500) -> int:
        """Queue the reversal of every orphaned pending operation and mark it and its order error; how many."""
        grace = self.config.recovery_grace if grace is None else grace
        total = 0
        while True:
            n = await self._recover_batch(grace, limit)
            total += n
            if n < limit:
                break
        if total:
            self._tally.recovered += total
            log.warning("pending operations of a stopped process reversed", extra={"operations": total})
            self._on_recovered()
        return total

    async def _recover_batch(self, grace: float, limit: int) -> int:
        async with self._store.transaction() as tx:
            rows = await tx.orphans(self.owner, grace, limit, self._working)
            for r in rows:
                original = await _original(tx, r)
                original["merchant_id"] = await self._merchant_id(r["project_id"])
                complete = original.get("stan") is not None and original.get("transmission_time") is not None
                await tx.queue(
                    r["order_id"],
                    r["id"],
                    r["destination"],
                    original,
                    state="pending" if complete else "manual",
                    delay=0.0,
                    last_error=None if complete else "original STAN/DE 7 not recorded: reverse by hand",
                )
                await tx.orphan_to_error(r["order_id"], r["id"], _RECOVERED_MESSAGE, _zero_cashflow(r["currency"]))
        return len(rows)

    async def _merchant_id(self, project_id: int) -> str | None:
        if self._projects is None:
            return None
        project = await self._projects.get(project_id)
        return None if project is None else str(project.settings.merchant_id)


async def _original(tx: SafTransaction, r: asyncpg.Record) -> dict[str, Any]:
    """The fields of what the orphan's reversal undoes, in the queue's column names."""
    original = dict(r)
    if r["type"] == "reverse" or r["mti"] == "0400":
        # A merchant's reversal: its advice reverses the authorization it named.
        auth = await tx.last_authorization(r["order_id"])
        if auth is not None:
            original.update(dict(auth))
    elif r["mti"] == "0220":
        original["auth_code"] = await tx.last_auth_code(r["order_id"])
    original["mti"] = original["mti"] or "0100"
    original["currency"] = r["currency"]
    original["terminal_id"] = r["terminal_id"]
    return original


def _zero_cashflow(cur: str) -> dict[str, Any]:
    return {"amount": 0, "fee": 0, "incoming": 0, "reserve": 0, "receivable": 0, "currency": cur}
