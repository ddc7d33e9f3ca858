"""switch.store.writer: group commit."""

from __future__ import annotations

import asyncio

import asyncpg
import pg
import pytest

from switch.store import Database, GroupWriter, WriterClosed

# The store's PostgreSQL fixtures (tests/pg.py), made visible to this module's tests.
database, fresh_dsn, pg_dsn = pg.database, pg.fresh_dsn, pg.pg_dsn

INSERT = "INSERT INTO w (id, v) VALUES ($1, $2)"


@pytest.fixture
async def table(database: Database) -> Database:
    await database.pool.execute("CREATE TABLE w (id int PRIMARY KEY, v text NOT NULL)")
    return database


async def count(db: Database) -> int:
    return int(await db.pool.fetchval("SELECT count(*) FROM w"))


async def test_a_lone_write_is_committed_in_its_own_batch_when_execute_returns(table: Database) -> None:
    writer = GroupWriter(table.pool)
    await writer.execute(INSERT, (1, "a"))
    assert await count(table) == 1  # visible to another connection: committed
    assert (writer.batches, writer.rows, writer.last_batch_size) == (1, 1, 1)
    assert writer.last_commit_seconds > 0
    await writer.close()


async def test_a_thousand_concurrent_writes_share_far_fewer_commits(table: Database) -> None:
    writer = GroupWriter(table.pool, max_batch=512)
    await asyncio.gather(*(writer.execute(INSERT, (i, f"v{i}")) for i in range(1000)))
    assert await count(table) == 1000
    assert writer.rows == 1000
    assert writer.batches <= 10  # 1,000 rows; at most 512 a batch
    assert writer.last_batch_size <= 512
    await writer.close()


async def test_statements_of_different_kinds_share_one_transaction(table: Database) -> None:
    await table.pool.execute("CREATE TABLE w2 (id int PRIMARY KEY)")
    writer = GroupWriter(table.pool)
    await asyncio.gather(
        *(writer.execute(INSERT, (i, "x")) for i in range(50)),
        *(writer.execute("INSERT INTO w2 (id) VALUES ($1)", (i,)) for i in range(50)),
    )
    assert writer.batches == 1
    assert await table.pool.fetchval("SELECT count(*) FROM w2") == 50
    await writer.close()


async def test_a_failing_statement_fails_its_whole_batch_and_later_batches_still_work(table: Database) -> None:
    writer = GroupWriter(table.pool)
    await writer.execute(INSERT, (0, "first"))
    # Queued in one go, so they land in one batch: 10 fine rows and a duplicate key.
    results = await asyncio.gather(
        *(writer.execute(INSERT, (i, "ok")) for i in range(1, 11)),
        writer.execute(INSERT, (0, "duplicate")),
        return_exceptions=True,
    )
    assert all(isinstance(r, asyncpg.UniqueViolationError) for r in results)
    assert await count(table) == 1  # nothing of the failed batch was committed
    assert writer.failed_batches == 1
    await writer.execute(INSERT, (1, "retried"))  # the caller's retry lands in a later batch
    assert await count(table) == 2
    await writer.close()


async def test_run_executes_a_function_in_the_batch_transaction_and_returns_its_result(table: Database) -> None:
    writer = GroupWriter(table.pool)

    async def insert_and_count(conn: asyncpg.Connection) -> int:
        await conn.execute(INSERT, 100, "via run")
        return int(await conn.fetchval("SELECT count(*) FROM w"))

    results = await asyncio.gather(writer.execute(INSERT, (1, "a")), writer.run(insert_and_count))
    assert results == [None, 2]  # run saw the row queued before it, in the same transaction
    assert writer.batches == 1
    await writer.close()


async def test_close_writes_everything_queued_then_refuses_new_writes(table: Database) -> None:
    writer = GroupWriter(table.pool)
    tasks = [asyncio.ensure_future(writer.execute(INSERT, (i, "x"))) for i in range(200)]
    await asyncio.sleep(0)  # queued, not yet written
    await writer.close()
    await asyncio.gather(*tasks)
    assert await count(table) == 200
    with pytest.raises(WriterClosed):
        await writer.execute(INSERT, (999, "late"))


async def test_a_cancelled_caller_does_not_withdraw_its_write(table: Database) -> None:
    writer = GroupWriter(table.pool)
    task = asyncio.ensure_future(writer.execute(INSERT, (7, "x")))
    await asyncio.sleep(0)
    task.cancel()
    await writer.close()
    assert await count(table) == 1
