"""switch.store.db: pools, migrations, and the embedded server's lifecycle."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg
import pg
import psutil
import pytest

from switch.store import Database, DatabaseUnavailable, DbConfig, MigrationError, open_database
from switch.store.db import MIGRATIONS_DIR
from switch.store.migrations import discover

# The store's PostgreSQL fixtures (tests/pg.py), made visible to this module's tests.
database, fresh_dsn, pg_dsn, scratch_dir = pg.database, pg.fresh_dsn, pg.pg_dsn, pg.scratch_dir


async def migration_rows(db: Database) -> list[tuple[int, str]]:
    rows = await db.pool.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    return [(r["version"], r["name"]) for r in rows]


# -- migrations ------------------------------------------------------------


async def test_migrations_apply_once_and_reopening_changes_nothing(fresh_dsn: str) -> None:
    shipped = [(m.version, m.name) for m in discover(MIGRATIONS_DIR)]
    assert shipped[0] == (1, "store")
    async with await open_database(DbConfig(url=fresh_dsn, min_size=1)) as db:
        assert await migration_rows(db) == shipped
        first = await db.pool.fetch("SELECT version, applied_at FROM schema_migrations ORDER BY version")
        tables = {r["tablename"] for r in await db.pool.fetch("SELECT tablename FROM pg_tables")}
        assert {"id_blocks", "projects", "idempotency_keys", "schema_migrations"} <= tables
    async with await open_database(DbConfig(url=fresh_dsn, min_size=1)) as db:
        again = await db.pool.fetch("SELECT version, applied_at FROM schema_migrations ORDER BY version")
        assert again == first


async def test_concurrent_opens_of_a_fresh_database_all_succeed(fresh_dsn: str) -> None:
    dbs = await asyncio.gather(*(open_database(DbConfig(url=fresh_dsn, min_size=1)) for _ in range(4)))
    try:
        assert await migration_rows(dbs[0]) == [(m.version, m.name) for m in discover(MIGRATIONS_DIR)]
    finally:
        await asyncio.gather(*(db.close() for db in dbs))


def write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text))


async def test_migrations_run_in_version_order_and_each_only_once(fresh_dsn: str, tmp_path: Path) -> None:
    write(tmp_path / "002_fill.sql", "INSERT INTO t VALUES (2);")
    write(tmp_path / "001_create.sql", "CREATE TABLE t (x int); INSERT INTO t VALUES (1);")
    cfg = DbConfig(url=fresh_dsn, min_size=1, migrations_dir=tmp_path)
    async with await open_database(cfg) as db:
        assert await db.pool.fetchval("SELECT array_agg(x ORDER BY x) FROM t") == [1, 2]
    write(tmp_path / "010_more.sql", "INSERT INTO t VALUES (10);")
    async with await open_database(cfg) as db:
        assert await db.pool.fetchval("SELECT array_agg(x ORDER BY x) FROM t") == [1, 2, 10]
        assert await migration_rows(db) == [(1, "create"), (2, "fill"), (10, "more")]


async def test_a_failed_migration_leaves_no_trace_and_runs_again_once_fixed(fresh_dsn: str, tmp_path: Path) -> None:
    write(tmp_path / "001_ok.sql", "CREATE TABLE t (x int);")
    write(tmp_path / "002_bad.sql", "INSERT INTO t VALUES (1); INSERT INTO nowhere VALUES (1);")
    cfg = DbConfig(url=fresh_dsn, min_size=1, migrations_dir=tmp_path)
    with pytest.raises(MigrationError, match=r"002_bad\.sql"):
        await open_database(cfg)
    write(tmp_path / "002_bad.sql", "INSERT INTO t VALUES (1);")
    async with await open_database(cfg) as db:
        assert await db.pool.fetchval("SELECT count(*) FROM t") == 1
        assert await migration_rows(db) == [(1, "ok"), (2, "bad")]


async def test_a_renamed_applied_migration_is_refused(fresh_dsn: str, tmp_path: Path) -> None:
    write(tmp_path / "001_first.sql", "SELECT 1;")
    cfg = DbConfig(url=fresh_dsn, min_size=1, migrations_dir=tmp_path)
    await (await open_database(cfg)).close()
    (tmp_path / "001_first.sql").rename(tmp_path / "001_renamed.sql")
    with pytest.raises(MigrationError, match="renamed"):
        await open_database(cfg)


@pytest.mark.parametrize("name", ["1_short.sql", "001-dash.sql", "001_Upper.sql"])
def test_misnamed_migration_files_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError):
        discover(tmp_path)


def test_two_files_with_one_version_are_refused(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="version 1"):
        discover(tmp_path)


# -- pool ------------------------------------------------------------------


async def test_json_and_jsonb_round_trip_through_orjson(database: Database) -> None:
    doc = {"a": [1, 2.5, None, True], "b": {"c": "ü"}}
    assert await database.pool.fetchval("SELECT $1::jsonb", doc) == doc
    assert await database.pool.fetchval("SELECT $1::json", doc) == doc
    assert await database.pool.fetchval("""SELECT '{"x": 1}'::jsonb""") == {"x": 1}


async def test_synchronous_commit_is_left_on(database: Database) -> None:
    assert await database.pool.fetchval("SHOW synchronous_commit") == "on"


async def test_an_unreachable_server_raises_database_unavailable_without_the_password() -> None:
    with pytest.raises(DatabaseUnavailable) as e:
        await open_database(DbConfig(url="postgresql://u:hunter2@127.0.0.1:1/x", min_size=1))
    assert "hunter2" not in str(e.value)


def test_database_url_comes_from_the_environment() -> None:
    assert DbConfig.from_env({}).url is None
    assert DbConfig.from_env({"DATABASE_URL": ""}).url is None
    cfg = DbConfig.from_env({"DATABASE_URL": "postgresql://h/db"}, data_dir=Path("/x"))
    assert (cfg.url, cfg.data_dir) == ("postgresql://h/db", Path("/x"))


# -- embedded server ---------------------------------------------------------


def postmaster(pgdata: Path) -> psutil.Process | None:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        return psutil.Process(pid)
    except (FileNotFoundError, psutil.NoSuchProcess):
        return None


async def test_embedded_server_is_shared_in_process_and_stopped_by_the_last_close(scratch_dir: Path) -> None:
    cfg = DbConfig(data_dir=scratch_dir / "data", min_size=1)
    a = await open_database(cfg)
    b = await open_database(cfg)
    assert a.embedded and b.embedded
    assert await a.pool.fetchval("SELECT current_database()") == "isoswitch"
    assert (scratch_dir / "data" / "pg" / "PG_VERSION").exists()
    await a.close()
    assert await b.pool.fetchval("SELECT 1") == 1  # a's close did not stop b's server
    proc = postmaster(scratch_dir / "data" / "pg")
    assert proc is not None
    await b.close()
    assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    # And it starts again on the same directory.
    async with await open_database(cfg) as c:
        assert await c.pool.fetchval("SELECT count(*) FROM schema_migrations") >= 1


async def test_embedded_server_starts_over_a_crashed_ones_stale_pid_file(scratch_dir: Path) -> None:
    cfg = DbConfig(data_dir=scratch_dir / "data", min_size=1)
    pgdata = scratch_dir / "data" / "pg"
    db = await open_database(cfg)
    proc = postmaster(pgdata)
    assert proc is not None
    children = proc.children()
    # A crash: the postmaster dies without cleaning up ...
    proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(psutil.wait_procs, [proc, *children], 10)
    await db.pool.close()
    # ... and after a restart its pid belongs to an unrelated live process,
    # which PostgreSQL alone would take for a running postmaster.
    squatter = subprocess.Popen(["sleep", "30"])  # noqa: ASYNC220 (returns at once)
    try:
        pid_file = pgdata / "postmaster.pid"
        lines = pid_file.read_text().splitlines()
        pid_file.write_text("\n".join([str(squatter.pid), *lines[1:]]) + "\n")
        for lock in pgdata.glob(".s.PGSQL.*.lock"):
            lock.write_text("\n".join([str(squatter.pid), *lock.read_text().splitlines()[1:]]) + "\n")
        # The crashed handle is gone: release it the way a new process would not see it.
        await db.close()
        async with await open_database(cfg) as again:
            assert await again.pool.fetchval("SELECT count(*) FROM schema_migrations") >= 1
    finally:
        squatter.kill()
        squatter.wait()


CHILD = """
import asyncio, sys
from pathlib import Path
from switch.store import DbConfig, open_database

async def main():
    async with await open_database(DbConfig(data_dir=Path(sys.argv[1]), min_size=1)) as db:
        print(await db.pool.fetchval("SELECT pg_postmaster_start_time()::text"))

asyncio.run(main())
"""


async def test_a_second_process_joins_the_running_embedded_server(scratch_dir: Path) -> None:
    data_dir = scratch_dir / "data"
    async with await open_database(DbConfig(data_dir=data_dir, min_size=1)) as db:
        started = await db.pool.fetchval("SELECT pg_postmaster_start_time()::text")
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-W",
            "error",
            "-c",
            CHILD,
            str(data_dir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await child.communicate()
        assert child.returncode == 0, err.decode()
        assert out.decode().strip() == started  # the same server, not a second one
        # The child's exit did not stop the server we still use.
        assert await db.pool.fetchval("SELECT pg_postmaster_start_time()::text") == started


async def test_two_processes_starting_on_a_fresh_directory_share_one_server(scratch_dir: Path) -> None:
    data_dir = scratch_dir / "data"
    # Both children hold the server at once: each waits, connected, until the other is too.
    barrier = (
        "here = Path(sys.argv[1]).parent / 'connected'; here.mkdir(exist_ok=True); "
        "(here / str(__import__('os').getpid())).touch()\n"
        "        while len(list(here.iterdir())) < 2: await asyncio.sleep(0.01)\n"
        "        print("
    )
    script = CHILD.replace("print(", barrier)
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-W", "error", "-c", script, str(data_dir), stdout=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    outs = [(await c.communicate())[0].decode().strip() for c in children]
    assert [c.returncode for c in children] == [0, 0]
    assert outs[0] == outs[1] != ""
    # The last one out stopped it (pg_ctl stop -w returns once the server is down).
    assert postmaster(data_dir / "pg") is None


async def test_a_database_url_is_used_as_is(fresh_dsn: str) -> None:
    async with await open_database(DbConfig(url=fresh_dsn, min_size=1)) as db:
        assert not db.embedded
        assert db.dsn == fresh_dsn
        conn = await asyncpg.connect(fresh_dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") >= 1
        finally:
            await conn.close()
