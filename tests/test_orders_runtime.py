"""switch.runtime: the whole core opened from one config, used, and closed in order."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pg
import pytest
from json_orders import JsonOrders
from test_orders_fixtures import body

from acquirer_sim import SimServer
from switch.link import LinkState
from switch.orders import OrderError, OrderStatus
from switch.runtime import RuntimeConfig, open_runtime
from switch.settings import load_settings
from switch.store import Database, DbConfig, WriterClosed

# The PostgreSQL fixtures (tests/pg.py), made visible to this module's tests.
fresh_dsn, pg_dsn = pg.fresh_dsn, pg.pg_dsn

pytestmark = pytest.mark.timeout(30)


def config(dsn: str, data_dir: Path, host: str, port: int, **kw: object) -> RuntimeConfig:
    return RuntimeConfig(
        db=DbConfig(url=dsn, data_dir=data_dir, min_size=1, max_size=4),
        switch=load_settings(env={}).switch.with_target(host, port),
        env={},  # no PAN key in the environment: one is generated into data_dir
        **kw,  # type: ignore[arg-type]
    )


async def test_open_runtime_serves_orders_and_close_shuts_everything_down(
    sim: SimServer, fresh_dsn: str, tmp_path: Path
) -> None:
    assert sim.address is not None
    rt = await open_runtime(config(fresh_dsn, tmp_path, *sim.address, node_id=3, request_timeout=2.0))
    try:
        assert (tmp_path / "pan.key").exists()
        assert rt.config.switch_config().node_id == 3
        project, password = await rt.projects.create("shop")
        assert await rt.projects.authenticate("shop", password) == project
        order = await JsonOrders(rt.orders).authorize(project, body(options={"auto_charge": 1}))
        assert order.status is OrderStatus.CHARGED
        assert (await rt.orders.get_order(project, order.id)).amount_charged == 999
    finally:
        await rt.close()
    await rt.close()  # idempotent
    assert all(link.state is LinkState.CLOSED for pool in rt.router.pools.values() for link in pool.links)
    with pytest.raises(WriterClosed):
        await rt.writer.execute("SELECT 1")
    assert rt.db.pool.is_closing()


async def test_the_runtime_starts_without_a_host_and_orders_fail_as_errors(fresh_dsn: str, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rt = await open_runtime(config(fresh_dsn, tmp_path, "127.0.0.1", port, ready_timeout=0.2))
    try:
        project, _ = await rt.projects.create("shop")
        with pytest.raises(OrderError) as e:
            await JsonOrders(rt.orders).authorize(project, body())
        assert (e.value.failure_type, e.value.message) == ("error", "Issuer unavailable")
    finally:
        await rt.close()


async def test_the_runtime_purges_idempotency_keys_older_than_a_day_by_itself(database: Database) -> None:
    await database.pool.execute(
        "INSERT INTO idempotency_keys (project_id, key, fingerprint, created) VALUES"
        " (1, 'old', '\\x00', now() - interval '25 hours'), (1, 'new', '\\x00', now())"
    )
    rt = await open_runtime(RuntimeConfig(db=DbConfig(url=database.dsn), ready_timeout=0.1, purge_interval=0.05))
    try:
        for _ in range(100):
            keys = {r["key"] for r in await database.pool.fetch("SELECT key FROM idempotency_keys")}
            if keys == {"new"}:
                break
            await asyncio.sleep(0.05)
        assert keys == {"new"}
    finally:
        await rt.close()
