"""switch.store.idempotency: one request per key runs, repeats replay its response."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pg
import pytest

from switch.store import BeginState, Database, GroupWriter, Idempotency, request_fingerprint

# The store's PostgreSQL fixtures (tests/pg.py), made visible to this module's tests.
database, fresh_dsn, pg_dsn = pg.database, pg.fresh_dsn, pg.pg_dsn

FP = request_fingerprint("POST", "/orders/authorize", b'{"amount": "9.99"}')
OTHER = request_fingerprint("POST", "/orders/authorize", b'{"amount": "1.00"}')


async def test_first_begin_is_new_and_a_repeat_after_finish_replays(database: Database) -> None:
    idem = Idempotency(database.pool)
    assert (await idem.begin(1, "k", FP)).state is BeginState.NEW
    await idem.finish(1, "k", 402, b'{"failure_type": "declined"}')
    again = await idem.begin(1, "k", FP)
    assert (again.state, again.status, again.body) == (BeginState.REPLAY, 402, b'{"failure_type": "declined"}')


async def test_same_key_with_another_body_is_a_mismatch(database: Database) -> None:
    idem = Idempotency(database.pool)
    await idem.begin(1, "k", FP)
    assert (await idem.begin(1, "k", OTHER)).state is BeginState.MISMATCH
    await idem.finish(1, "k", 200, b"{}")
    assert (await idem.begin(1, "k", OTHER)).state is BeginState.MISMATCH


async def test_a_repeat_while_the_first_runs_is_in_flight(database: Database) -> None:
    idem = Idempotency(database.pool)
    await idem.begin(1, "k", FP)
    assert (await idem.begin(1, "k", FP)).state is BeginState.IN_FLIGHT


async def test_keys_are_per_project(database: Database) -> None:
    idem = Idempotency(database.pool)
    assert (await idem.begin(1, "k", FP)).state is BeginState.NEW
    assert (await idem.begin(2, "k", OTHER)).state is BeginState.NEW


async def test_of_twenty_concurrent_duplicates_exactly_one_is_new(database: Database) -> None:
    idem = Idempotency(database.pool)
    results = await asyncio.gather(*(idem.begin(1, "dup", FP) for _ in range(20)))
    states = [r.state for r in results]
    assert states.count(BeginState.NEW) == 1
    assert states.count(BeginState.IN_FLIGHT) == 19


async def test_abandon_lets_a_retry_run_but_never_drops_a_finished_response(database: Database) -> None:
    idem = Idempotency(database.pool)
    await idem.begin(1, "k", FP)
    await idem.abandon(1, "k")
    assert (await idem.begin(1, "k", OTHER)).state is BeginState.NEW  # the key is free again
    await idem.finish(1, "k", 200, b"done")
    await idem.abandon(1, "k")
    assert (await idem.begin(1, "k", OTHER)).state is BeginState.REPLAY


async def test_a_stalled_in_flight_key_is_taken_over_by_exactly_one_retry(database: Database) -> None:
    idem = Idempotency(database.pool, in_flight_timeout=timedelta(seconds=60))
    await idem.begin(1, "k", FP)
    await database.pool.execute("UPDATE idempotency_keys SET created = now() - interval '61 seconds'")
    results = await asyncio.gather(*(idem.begin(1, "k", FP) for _ in range(10)))
    states = [r.state for r in results]
    assert states.count(BeginState.NEW) == 1
    assert states.count(BeginState.IN_FLIGHT) == 9
    # A different body never takes a key over.
    await database.pool.execute("UPDATE idempotency_keys SET created = now() - interval '61 seconds'")
    assert (await idem.begin(1, "k", OTHER)).state is BeginState.MISMATCH


async def test_purge_keeps_a_day_and_removes_older_keys(database: Database) -> None:
    idem = Idempotency(database.pool)
    for key in ("old1", "old2", "new"):
        await idem.begin(1, key, FP)
        await idem.finish(1, key, 200, b"{}")
    await database.pool.execute(
        "UPDATE idempotency_keys SET created = now() - interval '25 hours' WHERE key LIKE 'old%'"
    )
    with pytest.raises(ValueError):
        await idem.purge(older_than=timedelta(hours=1))
    assert await idem.purge() == 2
    assert (await idem.begin(1, "new", FP)).state is BeginState.REPLAY
    assert (await idem.begin(1, "old1", FP)).state is BeginState.NEW


async def test_finish_and_abandon_can_ride_on_group_commit(database: Database) -> None:
    writer = GroupWriter(database.pool)
    idem = Idempotency(database.pool, writer=writer)
    await asyncio.gather(*(idem.begin(1, f"k{i}", FP) for i in range(50)))
    await asyncio.gather(*(idem.finish(1, f"k{i}", 200, b"ok") for i in range(50)))
    assert writer.rows == 50 and writer.batches < 50
    assert (await idem.begin(1, "k7", FP)).state is BeginState.REPLAY
    await writer.close()


async def test_keys_must_be_1_to_255_characters(database: Database) -> None:
    idem = Idempotency(database.pool)
    for bad in ("", "x" * 256):
        with pytest.raises(ValueError):
            await idem.begin(1, bad, FP)
