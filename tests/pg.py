"""PostgreSQL fixtures: one server per test session, one fresh database per test.

The server is the embedded one the switch itself uses
(``switch.store.embedded``) in a temporary directory, started once; set
``ISOSWITCH_TEST_DATABASE_URL`` (a URL of a server whose user may CREATE
DATABASE) to use another server instead. Each test gets its own database,
``CREATE DATABASE``-d before and dropped after, so tests are isolated and
can run against one server.

Use from a test module::

    from pg import database, fresh_dsn, pg_dsn  # noqa: F401  (fixtures)

    async def test_something(database: Database) -> None:
        await database.pool.fetchval("SELECT 1")
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from switch.store import Database, DbConfig, dsn_with_database, embedded, open_database

__all__ = ["pg_dsn", "fresh_dsn", "database", "scratch_dir", "create_database", "drop_database"]

ENV_URL = "ISOSWITCH_TEST_DATABASE_URL"


# Not pytest's tmp_path: a concurrent pytest run prunes the older basetemp
# directories, and PostgreSQL shuts down when its data directory vanishes.
_SESSION_DIR = Path(tempfile.gettempdir()) / f"isoswitch-test-pg-{os.getpid()}"


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of the session's server (its maintenance database ``postgres``)."""
    url = os.environ.get(ENV_URL)
    if url:
        yield url
        return
    # One fixed path per session: when several modules import this fixture,
    # pytest makes one instance per module, and they all acquire
    # (reference-count) the same server instead of starting more.
    server = embedded.acquire(_SESSION_DIR / "pg")
    try:
        yield server.dsn
    finally:
        server.release()
        if not server.pgdata.joinpath("postmaster.pid").exists():
            shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    """A private temporary directory (for embedded servers: see _SESSION_DIR), removed after."""
    path = Path(tempfile.mkdtemp(prefix="isoswitch-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def fresh_dsn(pg_dsn: str) -> AsyncIterator[str]:
    """DSN of a new, empty database (no migrations applied), dropped after the test."""
    name = await create_database(pg_dsn)
    try:
        yield dsn_with_database(pg_dsn, name)
    finally:
        await drop_database(pg_dsn, name)


@pytest.fixture
async def database(fresh_dsn: str) -> AsyncIterator[Database]:
    """An open :class:`Database` on a fresh database, migrations applied."""
    db = await open_database(DbConfig(url=fresh_dsn, min_size=1, max_size=10))
    try:
        yield db
    finally:
        await db.close()


async def create_database(admin_dsn: str) -> str:
    name = "test_" + secrets.token_hex(6)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return name


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        # FORCE: a test that leaked a connection must not break the next ones.
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()
