"""3-D Secure sessions in PostgreSQL (``schemas/sql/007_secure3d.sql``): what a completion checks and takes once.

A session is found by its order, by the hash of the token the browser
carries (MD, threeDSSessionData) or by its transaction id (the RReq, the 3DS
Method notification). :meth:`SessionRepo.take` is the exactly-once step: one
statement moves a waiting session to ``completed`` and clears the CAVV it
held, handing that CAVV to the caller alone; a second completion finds the
session completed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

__all__ = ["Session", "SessionRepo", "token_hash"]

_COLUMNS = (
    "order_id, project_id, version, trans_id, acs_trans_id, ds_trans_id, amount, currency, reason, return_url, "
    "return_url_3ds2, method_done, force_challenge, extra, state, trans_status, eci, authentication_value, "
    "expires_at, created, updated"
)

_INSERT = f"""
INSERT INTO secure3d_sessions ({_COLUMNS}, md_hash, session_data_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
"""

# The session's CAVV leaves the table in the statement that takes it: the caller alone holds it then.
_TAKE = f"""
WITH old AS (
    SELECT order_id, authentication_value FROM secure3d_sessions
    WHERE order_id = $1 AND state = ANY($2::text[]) AND expires_at > $3
    FOR UPDATE
)
UPDATE secure3d_sessions AS s
SET state = 'completed', authentication_value = NULL, updated = $3
FROM old WHERE s.order_id = old.order_id
RETURNING {", ".join("s." + c.strip() for c in _COLUMNS.split(",") if c.strip() != "authentication_value")},
          old.authentication_value
"""


# Abandoned sessions, oldest deadline first (the partial index of 007 on expires_at serves it).
_DUE = """
SELECT order_id, project_id FROM secure3d_sessions
WHERE state IN ('pending', 'method', 'challenge') AND expires_at <= $1
ORDER BY expires_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""

_EXPIRE_MANY = """
UPDATE secure3d_sessions SET state = 'expired', authentication_value = NULL, updated = $2
WHERE order_id = ANY($1::text[]) AND state IN ('pending', 'method', 'challenge')
"""


def token_hash(token: str) -> bytes:
    """What the table keeps of a browser token (SHA-256): a database read gives nothing to post back."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(slots=True, kw_only=True)
class Session:
    """One order's 3-D Secure: ids the ACS's answers must carry, the amount, where the cardholder goes after."""

    order_id: str
    project_id: int
    version: int  # 1 or 2
    trans_id: str  # 3DS1 XID, 3DS2 threeDSServerTransID
    amount: int
    currency: str
    reason: str
    state: str
    expires_at: datetime
    created: datetime
    updated: datetime
    acs_trans_id: str | None = None
    ds_trans_id: str | None = None
    return_url: str | None = None
    return_url_3ds2: str | None = None
    method_done: bool = False
    force_challenge: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    trans_status: str | None = None  # the RReq's (3DS2 challenge)
    eci: str | None = None
    authentication_value: str | None = None  # the CAVV, between the RReq and the 0100 only

    @property
    def browser_return(self) -> str | None:
        """Where a browser completion sends the cardholder (3DS2: ``secure3d20_return_url`` first)."""
        if self.version == 2 and self.return_url_3ds2:
            return self.return_url_3ds2
        return self.return_url


def _session(row: asyncpg.Record) -> Session:
    values = dict(row)
    return Session(**values)


class SessionRepo:
    """The ``secure3d_sessions`` table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, s: Session, *, md_hash: bytes | None = None, session_data_hash: bytes | None = None) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                _INSERT,
                s.order_id,
                s.project_id,
                s.version,
                s.trans_id,
                s.acs_trans_id,
                s.ds_trans_id,
                s.amount,
                s.currency,
                s.reason,
                s.return_url,
                s.return_url_3ds2,
                s.method_done,
                s.force_challenge,
                s.extra,
                s.state,
                s.trans_status,
                s.eci,
                s.authentication_value,
                s.expires_at,
                s.created,
                s.updated,
                md_hash,
                session_data_hash,
            )

    async def _one(self, where: str, *args: Any) -> Session | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM secure3d_sessions WHERE {where}", *args)
        return None if row is None else _session(row)

    async def by_order(self, order_id: str) -> Session | None:
        return await self._one("order_id = $1", order_id)

    async def by_md(self, md: str) -> Session | None:
        return await self._one("md_hash = $1", token_hash(md))

    async def by_session_data(self, token: str) -> Session | None:
        return await self._one("session_data_hash = $1", token_hash(token))

    async def by_trans_id(self, trans_id: str) -> Session | None:
        return await self._one("trans_id = $1", trans_id)

    async def _change(self, sql: str, *args: Any) -> bool:
        async with self._pool.acquire() as conn:
            status: str = await conn.execute(sql, *args)
        return status == "UPDATE 1"

    async def method_done(self, trans_id: str, now: datetime) -> bool:
        """The ACS's 3DS Method page came back to us (threeDSCompInd Y), while the session waits for it."""
        return await self._change(
            "UPDATE secure3d_sessions SET method_done = true, updated = $2 WHERE trans_id = $1 AND state = 'method'",
            trans_id,
            now,
        )

    async def claim(self, order_id: str, states: Sequence[str], to: str, now: datetime) -> bool:
        """``states`` -> ``to`` if the session is in one of them and not expired (one resume at a time)."""
        return await self._change(
            "UPDATE secure3d_sessions SET state = $3, updated = $4 "
            "WHERE order_id = $1 AND state = ANY($2::text[]) AND expires_at > $4",
            order_id,
            list(states),
            to,
            now,
        )

    async def to_challenge(
        self, order_id: str, acs_trans_id: str, ds_trans_id: str | None, session_data_hash: bytes, now: datetime
    ) -> bool:
        return await self._change(
            "UPDATE secure3d_sessions SET state = 'challenge', acs_trans_id = $2, ds_trans_id = $3, "
            "session_data_hash = $4, updated = $5 WHERE order_id = $1 AND state = 'pending'",
            order_id,
            acs_trans_id,
            ds_trans_id,
            session_data_hash,
            now,
        )

    async def store_rreq(
        self, trans_id: str, acs_trans_id: str, status: str, eci: str | None, cavv: str | None, now: datetime
    ) -> bool:
        """The RReq's result, once, while the challenge runs (a second RReq changes nothing)."""
        return await self._change(
            "UPDATE secure3d_sessions SET trans_status = $3, eci = $4, authentication_value = $5, updated = $6 "
            "WHERE trans_id = $1 AND acs_trans_id = $2 AND state = 'challenge' AND trans_status IS NULL",
            trans_id,
            acs_trans_id,
            status,
            eci,
            cavv,
            now,
        )

    async def take(self, order_id: str, states: Sequence[str], now: datetime) -> tuple[Session, str | None] | None:
        """The session moved to ``completed`` and its CAVV (cleared in the table), or None if not in ``states``
        any more (completed by someone else, expired)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_TAKE, order_id, list(states), now)
        if row is None:
            return None
        values = dict(row)
        cavv = values.pop("authentication_value")
        return Session(**values), cavv

    async def sweep(self, now: datetime, limit: int, decline: Callable[[str, int], Awaitable[bool]]) -> int:
        """Up to ``limit`` sessions past their deadline and still waiting, each ended once: ``decline(order_id,
        project_id)`` ends the order (True: done, or nothing left to do), then the session is ``expired``.

        One transaction holds the rows (``FOR UPDATE SKIP LOCKED``: every process sweeps, none takes another's
        rows) until each order is declined, so a crash in between leaves the session waiting and the next
        sweep finishes it. A completion coming back meanwhile waits for the lock, then finds it expired.
        How many sessions were ended.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_DUE, now, limit)
            ended = [r["order_id"] for r in rows if await decline(r["order_id"], r["project_id"])]
            if ended:
                await conn.execute(_EXPIRE_MANY, ended, now)
        return len(ended)

    async def expire(self, order_id: str, now: datetime) -> bool:
        return await self._change(
            "UPDATE secure3d_sessions SET state = 'expired', authentication_value = NULL, updated = $2 "
            "WHERE order_id = $1 AND state IN ('pending', 'method', 'challenge')",
            order_id,
            now,
        )
