"""The hot-path writes' plans on the group writer's connections: index lookups at any table size.

The writer plans each statement once per connection (a generic plan, issue 10);
one made while the tables are empty must not be a sequential scan or a hash
join that would then be kept as the tables grow.
"""

from __future__ import annotations

import asyncpg
import pg
import pytest

from switch.orders import repo
from switch.store import Database, GroupWriter, audit, idempotency

pytestmark = pytest.mark.timeout(60)

database, fresh_dsn, pg_dsn = pg.database, pg.fresh_dsn, pg.pg_dsn

# The foreign key check PostgreSQL runs for each operation row (ri_triggers.c's query).
_FK_CHECK = 'SELECT 1 FROM ONLY "public"."orders" x WHERE "id" OPERATOR(pg_catalog.=) $1 FOR KEY SHARE OF x'


def _sql(statement: str | repo.Columns) -> str:
    return statement.sql if isinstance(statement, repo.Columns) else statement


async def _generic_plan(writer: GroupWriter, sql: str) -> str:
    async def explain(conn: asyncpg.Connection) -> str:
        stmt = await conn.prepare(sql)
        nulls = ", ".join("NULL" for _ in stmt.get_parameters())
        await conn.execute(f"PREPARE plan_probe AS {sql}")
        try:
            rows = await conn.fetch(f"EXPLAIN EXECUTE plan_probe({nulls})")
        finally:
            await conn.execute("DEALLOCATE plan_probe")
        return "\n".join(r[0] for r in rows)

    return await writer.run(explain)


# Every statement the writer runs on the hot path, and the foreign key check the create fires.
_STATEMENTS: dict[str, str | repo.Columns] = {
    "create": repo._CREATE,
    "add": repo._ADD_OPERATION,
    "finish": repo._FINISH,
    "finish-with-event": repo._FINISH_NOTIFY,  # webhooks: the outbox rows written with the result
    "fk": _FK_CHECK,
    "idempotency-finish": idempotency._FINISH,
    "idempotency-abandon": idempotency._ABANDON,
    "audit": audit._INSERT,
}


@pytest.mark.parametrize("name", list(_STATEMENTS))
async def test_writes_on_empty_tables_are_planned_as_index_lookups(database: Database, name: str) -> None:
    sql = _sql(_STATEMENTS[name])
    writer = GroupWriter(database.pool)
    try:
        plan = await _generic_plan(writer, sql)
    finally:
        await writer.close()
    assert "Seq Scan on orders" not in plan and "Seq Scan on operations" not in plan, plan
    assert "Seq Scan on webhook_endpoints" not in plan, plan
    assert "Hash Join" not in plan and "Merge Join" not in plan, plan
