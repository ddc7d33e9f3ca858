"""Idempotency keys: the first request with a key runs, its repeats get its response.

``begin`` decides atomically with ``INSERT ... ON CONFLICT DO NOTHING
RETURNING``: of any number of concurrent requests with one key (in any
processes), exactly one inserts the row and proceeds (NEW); the others see
the row and get, by its state:

- MISMATCH: a different request body (fingerprint) under the same key (422);
- REPLAY: the first one finished: its stored status and body (no second ISO
  message);
- IN_FLIGHT: the first one is still running (409).

An in-flight row older than ``in_flight_timeout`` belongs to a process that
died mid-request; the next ``begin`` takes it over (one winner, by a
conditional UPDATE) and proceeds as NEW. The timeout must exceed the longest
request, or a slow first request and its takeover both run. On an
unexpected error the caller calls ``abandon`` so a retry can run at once.
Keys are kept at least 24 hours (``purge`` refuses less).
"""

from __future__ import annotations

import enum
import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from switch.store.writer import GroupWriter

__all__ = ["Idempotency", "Begin", "BeginState", "request_fingerprint", "MIN_RETENTION"]

log = logging.getLogger("isoswitch.store")

MIN_RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 255

_INSERT = """
INSERT INTO idempotency_keys (project_id, key, fingerprint) VALUES ($1, $2, $3)
ON CONFLICT (project_id, key) DO NOTHING
RETURNING 1
"""
_READ = """
SELECT fingerprint, status_code, body, created < now() - $3::interval AS stale
FROM idempotency_keys WHERE project_id = $1 AND key = $2
"""
# Re-checked under the row lock, so of concurrent takeovers exactly one matches.
_TAKE_OVER = """
UPDATE idempotency_keys SET created = now()
WHERE project_id = $1 AND key = $2 AND fingerprint = $3 AND status_code IS NULL
  AND created < now() - $4::interval
RETURNING 1
"""
_FINISH = "UPDATE idempotency_keys SET status_code = $3, body = $4 WHERE project_id = $1 AND key = $2"
_ABANDON = "DELETE FROM idempotency_keys WHERE project_id = $1 AND key = $2 AND status_code IS NULL"
# In slices, so a large purge never holds many row locks or one long transaction.
_PURGE = """
DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM idempotency_keys WHERE created < now() - $1::interval LIMIT $2))
"""
_PURGE_SLICE = 5000


class BeginState(enum.Enum):
    NEW = "new"  # this request runs; finish() or abandon() later
    REPLAY = "replay"  # answer with status and body
    MISMATCH = "mismatch"  # same key, different request: 422
    IN_FLIGHT = "in_flight"  # same request still running: 409


@dataclass(frozen=True, slots=True)
class Begin:
    state: BeginState
    status: int | None = None  # REPLAY only
    body: bytes | None = None  # REPLAY only


_NEW = Begin(BeginState.NEW)
_MISMATCH = Begin(BeginState.MISMATCH)
_IN_FLIGHT = Begin(BeginState.IN_FLIGHT)


def request_fingerprint(*parts: bytes | str) -> bytes:
    """SHA-256 over the parts that make a request "the same" (method, path, body), length-prefixed.

    >>> a = request_fingerprint("POST", "/orders/authorize", b'{"amount": "1.00"}')
    >>> a == request_fingerprint("POST", "/orders/authorize", b'{"amount": "1.00"}'), len(a)
    (True, 32)
    >>> a == request_fingerprint("POST", "/orders/authorize", b'{"amount": "2.00"}')
    False
    """
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.digest()


class Idempotency:
    """Idempotency-Key bookkeeping. With a ``writer``, finish/abandon ride on group commit."""

    __slots__ = ("_pool", "_timeout", "_writer")

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        writer: GroupWriter | None = None,
        in_flight_timeout: timedelta = timedelta(seconds=60),
    ) -> None:
        self._pool = pool
        self._writer = writer
        self._timeout = in_flight_timeout

    async def begin(self, project_id: int, key: str, fingerprint: bytes) -> Begin:
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            raise ValueError(f"idempotency key must be 1-{MAX_KEY_LENGTH} characters")
        pool = self._pool
        # The row can vanish between the insert and the read (abandoned or
        # purged meanwhile): then the insert is tried again.
        for _ in range(5):
            if await pool.fetchval(_INSERT, project_id, key, fingerprint):
                return _NEW
            row = await pool.fetchrow(_READ, project_id, key, self._timeout)
            if row is None:
                continue
            if bytes(row["fingerprint"]) != fingerprint:
                return _MISMATCH
            if row["status_code"] is not None:
                return Begin(BeginState.REPLAY, row["status_code"], bytes(row["body"] or b""))
            if not row["stale"]:
                return _IN_FLIGHT
            if await pool.fetchval(_TAKE_OVER, project_id, key, fingerprint, self._timeout):
                log.warning("idempotency key taken over from a stalled request", extra={"project_id": project_id})
                return _NEW
            # Someone else took it over or finished it: look again.
        return _IN_FLIGHT  # still racing after several rounds: let the client retry

    async def finish(self, project_id: int, key: str, status: int, body: bytes) -> None:
        """Store the response a repeat will get."""
        await self._write(_FINISH, (project_id, key, status, body))

    async def abandon(self, project_id: int, key: str) -> None:
        """Forget an unfinished key (the request failed unexpectedly), so a retry runs."""
        await self._write(_ABANDON, (project_id, key))

    async def purge(self, older_than: timedelta = MIN_RETENTION) -> int:
        """Delete keys older than ``older_than`` (at least 24 h); how many were deleted."""
        if older_than < MIN_RETENTION:
            raise ValueError("idempotency keys are kept at least 24 hours")
        total = 0
        while True:
            status = await self._pool.execute(_PURGE, older_than, _PURGE_SLICE)
            n = int(status.split()[-1])
            total += n
            if n < _PURGE_SLICE:
                return total

    async def _write(self, sql: str, args: tuple[object, ...]) -> None:
        if self._writer is not None:
            await self._writer.execute(sql, args)
        else:
            await self._pool.execute(sql, *args)
