"""Versioned schema migrations: ``NNN_name.sql`` files applied in order, each once.

Applied versions are recorded in ``schema_migrations``. The whole run holds a
session advisory lock (per database), so processes starting at once apply
each file exactly once: the others wait, then find nothing left to do. Each
file runs in its own transaction together with its ``schema_migrations`` row,
so a failed migration leaves no trace and is retried at the next start (and
statements that refuse a transaction, like ``CREATE INDEX CONCURRENTLY``,
cannot be used in a migration).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from switch.store.errors import MigrationError

__all__ = ["Migration", "discover", "migrate", "LOCK_KEY"]

log = logging.getLogger("isoswitch.store")

# Any fixed bigint works; this one spells "isoswMig" so it is recognisable in pg_locks.
LOCK_KEY = int.from_bytes(b"isoswMig", "big")

_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path


def discover(directory: Path) -> list[Migration]:
    """The migrations in ``directory``, by version; a misnamed ``.sql`` file is an error, not skipped."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if m is None:
            raise MigrationError(f"{path}: migration files are named NNN_lowercase_name.sql")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"{path}: version {version} is also {found[version].path.name}")
        found[version] = Migration(version, m.group(2), path)
    return [found[v] for v in sorted(found)]


async def migrate(conn: asyncpg.Connection, directory: Path) -> list[Migration]:
    """Apply what is not applied yet; returns the migrations applied by this call."""
    wanted = discover(directory)
    applied_now: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        # Under the lock: concurrent CREATE TABLE IF NOT EXISTS can still collide.
        await conn.execute(_BOOTSTRAP)
        done = {r["version"]: r["name"] for r in await conn.fetch("SELECT version, name FROM schema_migrations")}
        for mig in wanted:
            if mig.version in done:
                if done[mig.version] != mig.name:
                    raise MigrationError(
                        f"migration {mig.version} was applied as {done[mig.version]!r}, the file now says {mig.name!r}"
                    )
                continue
            sql = mig.path.read_text(encoding="utf-8")
            try:
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", mig.version, mig.name
                    )
            except asyncpg.PostgresError as e:
                raise MigrationError(f"{mig.path.name}: {e.__class__.__name__}: {e}") from e
            log.info("migration applied", extra={"version": mig.version, "migration": mig.name})
            applied_now.append(mig)
        newer = sorted(set(done) - {m.version for m in wanted})
        if newer:
            # A newer release migrated this database; an older binary may not understand it.
            log.warning("database has migrations this code does not know", extra={"versions": newer})
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        except BaseException:
            # A lock left on a pooled connection would block every other
            # process's start: end the session, which frees it for sure.
            conn.terminate()
            raise
    return applied_now
