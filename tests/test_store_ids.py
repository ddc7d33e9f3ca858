"""switch.store.ids: leased identifier blocks and the identifiers made from them."""

from __future__ import annotations

import asyncio
import itertools
import re
from datetime import UTC, datetime

import asyncpg
import pg
import pytest
from waiting import wait_for

from switch.store import Database, DbConfig, DbIds, LeasedSequence, SequenceExhausted, open_database
from switch.wire.cards import luhn_ok

# The store's PostgreSQL fixtures (tests/pg.py), made visible to this module's tests.
database, fresh_dsn, pg_dsn = pg.database, pg.fresh_dsn, pg.pg_dsn

NOW = datetime(2024, 11, 17, 22, 5, 9, tzinfo=UTC)  # year digit 4, day 322, hour 22


async def test_two_allocators_on_two_pools_never_hand_out_the_same_value(database: Database, fresh_dsn: str) -> None:
    other = await open_database(DbConfig(url=fresh_dsn, min_size=1, max_size=2))
    try:
        a = LeasedSequence(database.pool, "t", block_size=10)
        b = LeasedSequence(other.pool, "t", block_size=10)
        await asyncio.gather(a.start(), b.start())

        async def draw(seq: LeasedSequence, n: int) -> list[int]:
            out = []
            for i in range(n):
                out.append(await seq.next())
                if i % 7 == 0:
                    await asyncio.sleep(0)  # interleave the two allocators' leases
            return out

        got_a, got_b = await asyncio.gather(draw(a, 500), draw(b, 500))
        assert len(set(got_a) | set(got_b)) == 1000  # 50 blocks each, no value twice
        assert got_a == sorted(got_a) and got_b == sorted(got_b)
        await asyncio.gather(a.close(), b.close())
    finally:
        await other.close()


async def test_take_never_awaits_and_refills_in_the_background(database: Database) -> None:
    seq = LeasedSequence(database.pool, "bg", block_size=100)
    await seq.start()
    first = [seq.take() for _ in range(60)]  # past the half: a lease is now in flight
    assert first == list(range(1, 61))
    await wait_for(lambda: seq._spare is not None)  # the background lease lands (no public view of it)
    rest = [seq.take() for _ in range(140)]  # crosses into the spare block without waiting
    assert rest[:40] == list(range(61, 101))
    assert rest[40:] == list(range(101, 201))
    await seq.refill()  # the lease the second block's half started
    assert await database.pool.fetchval("SELECT next FROM id_blocks WHERE kind = 'bg'") >= 301
    await seq.close()


async def test_take_raises_only_when_both_blocks_are_used_up(database: Database) -> None:
    seq = LeasedSequence(database.pool, "burst", block_size=4)
    await seq.start()
    with pytest.raises(SequenceExhausted):
        for _ in range(100):  # no await in between: the refill cannot land
            seq.take()
    await seq.refill()
    assert seq.take() > 4
    assert await seq.next() > 4
    await seq.close()


async def test_a_lost_database_fails_take_with_a_typed_error_not_a_hang(fresh_dsn: str) -> None:
    pool = await asyncpg.create_pool(fresh_dsn, min_size=1, max_size=1)
    try:
        await pool.execute("CREATE TABLE id_blocks (kind text PRIMARY KEY, next bigint NOT NULL)")
        seq = LeasedSequence(pool, "x", block_size=4)
        await seq.start()
        await pool.execute("DROP TABLE id_blocks")  # every later lease fails
        with pytest.raises(SequenceExhausted):
            for _ in range(10):
                seq.take()
                await asyncio.sleep(0.01)  # let the failing background lease run (and log)
        with pytest.raises(asyncpg.UndefinedTableError):
            await seq.refill()
        await seq.close()
    finally:
        await pool.close()


async def test_order_ids_are_17_digits_unique_and_not_sequential(database: Database) -> None:
    ids = DbIds(database.pool, block_size=50)
    await ids.start()
    got = []
    for _ in range(300):
        try:
            got.append(ids.order_id())
        except SequenceExhausted:
            await ids.refill()
    assert all(re.fullmatch(r"[1-9]\d{16}", i) for i in got)
    assert len(set(got)) == len(got)
    gaps = {int(b) - int(a) for a, b in itertools.pairwise(got)}
    assert gaps != {1}
    await ids.close()


async def test_rrn_is_the_utc_hour_and_six_digits(database: Database) -> None:
    ids = DbIds(database.pool)
    await ids.start()
    a, b = ids.rrn(NOW), ids.rrn(NOW)
    assert re.fullmatch(r"432222\d{6}", a) and a != b
    assert ids.rrn(datetime(2025, 1, 1, 0, 0, tzinfo=UTC)).startswith("500100")
    assert len(ids.rrn()) == 12
    with pytest.raises(ValueError):
        ids.rrn(datetime(2024, 11, 17, 22, 5, 9))  # naive: whose hour?
    await ids.close()


async def test_arn_is_23_luhn_valid_digits_with_bin_and_julian_date(database: Database) -> None:
    ids = DbIds(database.pool)
    await ids.start()
    arns = [ids.arn("412345", NOW) for _ in range(50)]
    for arn in arns:
        assert len(arn) == 23 and arn.isdigit() and luhn_ok(arn)
        assert arn.startswith("7" + "412345" + "4322")
    assert len(set(arns)) == 50
    with pytest.raises(ValueError):
        ids.arn("41234", NOW)
    await ids.close()


async def test_restarted_allocators_continue_after_what_was_leased(database: Database) -> None:
    first = DbIds(database.pool, block_size=10)
    await first.start()
    before = {first.order_id() for _ in range(5)}
    await first.close()
    second = DbIds(database.pool, block_size=10)
    await second.start()
    after = {second.order_id() for _ in range(5)}
    assert not before & after
    await second.close()
