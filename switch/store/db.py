"""The database: an asyncpg pool on PostgreSQL, embedded or given by URL, migrated at open.

One code path for both: without a URL an embedded server (:mod:`switch.store.embedded`) is
started in ``data_dir/pg`` and the switch uses its own ``isoswitch`` database
there; with a URL (``DATABASE_URL``) that server is used as it is.

>>> dsn_with_database("postgresql://u:p@db:5432/postgres?sslmode=require", "isoswitch")
'postgresql://u:p@db:5432/isoswitch?sslmode=require'
>>> redact_dsn("postgresql://u:secret@db/x")
'postgresql://u:***@db/x'
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import asyncpg
import orjson

from schemas import SCHEMAS_DIR
from switch.store import embedded
from switch.store.errors import DatabaseUnavailable, WriterClosed
from switch.store.migrations import migrate

__all__ = [
    "DATABASE_DOWN",
    "DbConfig",
    "Database",
    "open_database",
    "dsn_with_database",
    "redact_dsn",
    "MIGRATIONS_DIR",
]

# What a query raises when the database is down or gone, not wrong: a connection refused or lost, the pool
# closed, the server shutting down (57P01 ...), the group writer closed. Callers answer "unavailable" (503).
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
    WriterClosed,
)

log = logging.getLogger("isoswitch.store")

#: Seconds :meth:`Database.close` waits for checked-out connections when no timeout is passed.
CLOSE_TIMEOUT = 10.0

MIGRATIONS_DIR = SCHEMAS_DIR / "sql"


@dataclass(frozen=True, slots=True)
class DbConfig:
    """Where the data lives and how many connections to keep."""

    url: str | None = None  # DATABASE_URL; None: embedded server in data_dir/pg
    data_dir: Path = Path(".data")  # embedded server, PAN key file
    min_size: int = 2  # pool connections kept open
    max_size: int = 10  # pool connections at most
    database: str = "isoswitch"  # the database created in the embedded server (unused with a URL)
    migrations_dir: Path = MIGRATIONS_DIR

    def __post_init__(self) -> None:
        if not 0 <= self.min_size <= self.max_size or self.max_size < 1:
            raise ValueError("pool sizes must satisfy 0 <= min_size <= max_size, max_size >= 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, **overrides: Any) -> DbConfig:
        """``DATABASE_URL`` (empty or unset: embedded), then explicit ``overrides`` (e.g. ``data_dir``)."""
        values: dict[str, Any] = {"url": env.get("DATABASE_URL") or None}
        values.update(overrides)
        return cls(**values)


class Database:
    """An open pool plus, on the embedded default, our reference to the server."""

    __slots__ = ("_closed", "_server", "dsn", "embedded", "pool")

    def __init__(self, pool: asyncpg.Pool, dsn: str, server: embedded.EmbeddedServer | None) -> None:
        self.pool = pool
        self.dsn = dsn  # may hold a password: never log it, use redact_dsn()
        self.embedded = server is not None
        self._server = server
        self._closed = False

    async def close(self, *, timeout: float | None = None) -> None:
        """Close the pool, then stop the embedded server if nobody else uses it. Idempotent.

        Connections still checked out after ``timeout`` seconds (None: ``CLOSE_TIMEOUT``) are cut
        (``pool.close`` alone would wait for them forever).
        """
        timeout = CLOSE_TIMEOUT if timeout is None else timeout
        if self._closed:
            return
        self._closed = True
        try:
            try:
                await asyncio.wait_for(self.pool.close(), timeout)
            except TimeoutError:
                log.warning("database pool did not close in time; terminating its connections")
                self.pool.terminate()
        finally:
            if self._server is not None:
                await asyncio.to_thread(self._server.release)

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Database {redact_dsn(self.dsn)} embedded={self.embedded}>"


async def open_database(cfg: DbConfig) -> Database:
    """Start or reach the server, open the pool, apply pending migrations."""
    if cfg.url is not None:
        return await _open(cfg, cfg.url, None)
    server = await asyncio.to_thread(embedded.acquire, Path(cfg.data_dir) / "pg")
    try:
        return await _open(cfg, await _ensure_database(server.dsn, cfg.database), server)
    except BaseException:
        await asyncio.to_thread(server.release)
        raise


async def _open(cfg: DbConfig, dsn: str, server: embedded.EmbeddedServer | None) -> Database:
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=cfg.min_size,
            max_size=cfg.max_size,
            init=_init_connection,
            server_settings={"application_name": "isoswitch"},
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        raise DatabaseUnavailable(f"cannot connect to {redact_dsn(dsn)}: {e}") from e
    try:
        async with pool.acquire() as conn:
            await migrate(conn, cfg.migrations_dir)
            await _check_durability(conn)
    except BaseException:
        await pool.close()
        raise
    return Database(pool, dsn, server)


async def _ensure_database(admin_dsn: str, name: str) -> str:
    """Create ``name`` in the embedded server on first use; its DSN."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            try:
                # Identifiers cannot be bound parameters; quote it.
                await conn.execute(f'CREATE DATABASE "{name.replace(chr(34), chr(34) * 2)}"')
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                # Another process created it first (caught by the check, or,
                # when both passed the check, by the catalog's unique index).
                pass
    finally:
        await conn.close()
    return dsn_with_database(admin_dsn, name)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # orjson both ways, binary format: jsonb's binary form is a version byte
    # (1) and the JSON text, so no str round trip on either side.
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", format="binary", encoder=_jsonb_encode, decoder=_jsonb_decode
    )
    await conn.set_type_codec("json", schema="pg_catalog", format="binary", encoder=orjson.dumps, decoder=orjson.loads)


def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)


def _jsonb_decode(data: bytes) -> Any:
    return orjson.loads(memoryview(data)[1:])


async def _check_durability(conn: asyncpg.Connection) -> None:
    # We never turn synchronous_commit off (a "durable" write must survive a
    # crash); a server configured with it off gets a loud warning, not a fix:
    # forcing "on" could downgrade remote_apply on a replicated cluster.
    setting = await conn.fetchval("SHOW synchronous_commit")
    if setting == "off":
        log.warning("synchronous_commit is off on this server: committed writes may be lost in a crash")


def dsn_with_database(dsn: str, database: str) -> str:
    """The same DSN naming another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + quote(database, safe="")))


def redact_dsn(dsn: str) -> str:
    """The DSN with its password replaced (in the authority and as ``?password=``), for logs and error texts.

    >>> redact_dsn("postgresql://u:pw@h:5432/db?sslmode=require&password=pw2")
    'postgresql://u:***@h:5432/db?sslmode=require&password=***'
    """
    parts = urlsplit(dsn)
    if parts.password is not None:
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}:***@{netloc[1]}")
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = [(k, "***" if k.lower() == "password" else v) for k, v in pairs]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)
