"""switch.store.projects: credentials, the verified-credentials cache, settings."""

from __future__ import annotations

import asyncio
import re
import shutil
from decimal import Decimal
from pathlib import Path

import asyncpg
import pg
import pytest

from schemas import SCHEMAS_DIR
from switch.store import Database, InvalidSettings, ProjectExists, Projects, ProjectSettings
from switch.store import projects as projects_module
from switch.store.migrations import migrate
from switch.store.projects import hash_password, verify_password

# The store's PostgreSQL fixtures (tests/pg.py), made visible to this module's tests.
database, fresh_dsn, pg_dsn = pg.database, pg.fresh_dsn, pg.pg_dsn


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts scrypt evaluations (each is one password hash or check)."""
    calls: list[int] = []
    real = projects_module._scrypt

    def counting(*args: object, **kwargs: object) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(projects_module, "_scrypt", counting)
    return calls


async def test_create_returns_the_login_and_a_password_shown_only_then(database: Database) -> None:
    projects = Projects(database.pool)
    project, password = await projects.create("shop")
    assert (project.name, project.login) == ("shop", "shop")
    assert len(password) >= 32
    row = await database.pool.fetchrow("SELECT * FROM projects WHERE id = $1", project.id)
    assert row["password_hash"].startswith("scrypt$16384$8$1$")
    dump = str(list(await database.pool.fetch("SELECT * FROM projects")))
    assert password not in dump


async def test_authenticate_accepts_the_right_password_only(database: Database) -> None:
    projects = Projects(database.pool)
    project, password = await projects.create("shop")
    assert await projects.authenticate("shop", password) == project
    assert await projects.authenticate("shop", password + "x") is None
    assert await projects.authenticate("shop", "") is None
    assert await projects.authenticate("nobody", password) is None


async def test_verified_credentials_are_cached_and_failures_never_are(
    database: Database, scrypt_calls: list[int]
) -> None:
    projects = Projects(database.pool)
    _, password = await projects.create("shop")
    scrypt_calls.clear()
    for _ in range(5):
        assert await projects.authenticate("shop", password) is not None
    assert len(scrypt_calls) == 1  # verified once, then served from the cache
    for _ in range(3):
        assert await projects.authenticate("shop", "wrong") is None
    assert len(scrypt_calls) == 4  # every failed attempt pays scrypt again
    assert await projects.authenticate("ghost", "wrong") is None
    assert len(scrypt_calls) == 5  # an unknown login costs the same as a wrong password


async def test_an_expired_cache_entry_is_verified_again(database: Database, scrypt_calls: list[int]) -> None:
    projects = Projects(database.pool, cache_ttl=0.0)
    _, password = await projects.create("shop")
    scrypt_calls.clear()
    await projects.authenticate("shop", password)
    await projects.authenticate("shop", password)
    assert len(scrypt_calls) == 2


async def test_new_projects_get_distinct_wire_ids_and_a_descriptor_from_their_name(database: Database) -> None:
    projects = Projects(database.pool)
    a, _ = await projects.create("alpha")
    b, _ = await projects.create("beta-shop")
    assert a.settings.terminal_id != b.settings.terminal_id
    assert a.settings.merchant_id != b.settings.merchant_id
    assert len(a.settings.terminal_id) == 8 and len(a.settings.merchant_id) == 15
    assert b.settings.descriptor == "ISOSWITCH*BETA-SHOP"
    assert (a.settings.mcc, a.settings.currency, a.settings.auto_charge) == ("5999", "USD", False)
    assert await projects.get(a.id) == a
    assert await projects.by_login("beta-shop") == b
    assert await projects.get(9999) is None
    assert [p.name for p in await projects.list_all()] == ["alpha", "beta-shop"]
    a.settings.merchant()  # valid for the ISO translator


async def test_a_taken_or_malformed_name_is_refused(database: Database) -> None:
    projects = Projects(database.pool)
    await projects.create("shop")
    with pytest.raises(ProjectExists):
        await projects.create("shop")
    for bad in ["", "a:b", "has space", "-leading", "x" * 64, "ünï"]:
        with pytest.raises(InvalidSettings):
            await projects.create(bad)


async def test_update_settings_validates_persists_and_refreshes_the_cache(database: Database) -> None:
    projects = Projects(database.pool)
    project, password = await projects.create("shop")
    await projects.authenticate("shop", password)  # cached with the old settings
    updated = await projects.update_settings(project.id, fee_rate=Decimal("3"), auto_charge=True, terminal_id="T1")
    assert (updated.settings.fee_rate, updated.settings.auto_charge) == (Decimal("3"), True)
    assert (await projects.get(project.id)) == updated
    cached = await projects.authenticate("shop", password)
    assert cached is not None and cached.settings.fee_rate == Decimal("3")
    with pytest.raises(InvalidSettings):
        await projects.update_settings(project.id, mcc="59")
    with pytest.raises(InvalidSettings):
        await projects.update_settings(project.id, no_such_setting=1)
    with pytest.raises(LookupError):
        await projects.update_settings(9999, mcc="5411")


def test_settings_round_trip_through_json_with_exact_decimals() -> None:
    s = ProjectSettings(terminal_id="T1", merchant_id="M1", fee_rate=Decimal("2.95"), reserve_rate=Decimal("10"))
    doc = s.to_json()
    assert doc["fee_rate"] == "2.95"
    assert ProjectSettings.from_json(doc) == s
    assert ProjectSettings.from_json({**doc, "future_field": 1}, strict=False) == s


@pytest.mark.parametrize(
    "change",
    [
        {"terminal_id": "123456789"},
        {"merchant_id": ""},
        {"descriptor": "x" * 26},
        {"city": "c" * 14},
        {"country": "USA"},
        {"currency": "US"},
        {"fee_rate": Decimal("-1")},
        {"reserve_rate": Decimal("101")},
        {"fee_fixed": -1},
        {"acquirer_id": "12a"},
    ],
)
def test_out_of_range_settings_are_refused(change: dict[str, object]) -> None:
    base = ProjectSettings(terminal_id="T1", merchant_id="M1").to_json()
    base.update({k: str(v) if isinstance(v, Decimal) else v for k, v in change.items()})
    with pytest.raises(InvalidSettings):
        ProjectSettings.from_json(base)


def test_hashes_keep_their_parameters_so_stronger_ones_can_come_later() -> None:
    weak = hash_password("pw", n=2**10)
    assert weak.startswith("scrypt$1024$8$1$")
    assert verify_password("pw", weak) and not verify_password("px", weak)
    assert not verify_password("pw", "bcrypt$whatever")
    assert not verify_password("pw", "scrypt$x$8$1$AA==$AA==")


async def test_reset_password_replaces_the_old_one_and_drops_cached_credentials(database: Database) -> None:
    projects = Projects(database.pool)
    project, old = await projects.create("resettable")
    assert await projects.authenticate("resettable", old) is not None  # now cached
    new = await projects.reset_password("resettable")
    assert new != old
    assert await projects.authenticate("resettable", old) is None
    found = await projects.authenticate("resettable", new)
    assert found is not None and found.id == project.id
    with pytest.raises(LookupError):
        await projects.reset_password("nobody")


async def test_concurrent_logins_with_the_same_credentials_share_one_scrypt(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects = Projects(database.pool)
    _, password = await projects.create("burst")
    calls = 0
    real = projects_module.verify_password

    def counting(pw: str, stored: str) -> bool:
        nonlocal calls
        calls += 1
        return real(pw, stored)

    monkeypatch.setattr(projects_module, "verify_password", counting)
    found = await asyncio.gather(*(projects.authenticate("burst", password) for _ in range(64)))
    assert all(p is not None and p.name == "burst" for p in found)
    assert calls == 1


async def test_each_project_gets_a_test_and_a_live_public_key_that_name_it(database: Database) -> None:
    projects = Projects(database.pool)
    shop, _ = await projects.create("keys-shop")
    other, _ = await projects.create("keys-other")
    keys = await projects.public_keys(shop.id)
    assert keys is not None
    assert re.fullmatch(r"pk_test_[A-Za-z0-9]{43}", keys.test) and re.fullmatch(r"pk_live_[A-Za-z0-9]{43}", keys.live)
    found = await projects.by_public_key(keys.test)
    assert found is not None and found[0].id == shop.id and found[1] is True
    live = await projects.by_public_key(keys.live)
    assert live is not None and live[0].id == shop.id and live[1] is False
    other_keys = await projects.public_keys(other.id)
    assert other_keys is not None and {other_keys.test, other_keys.live}.isdisjoint({keys.test, keys.live})
    assert await projects.by_public_key("pk_test_" + "x" * 43) is None
    assert await projects.by_public_key("not a key") is None


async def test_projects_made_before_the_keys_migration_get_their_keys_from_it(fresh_dsn: str, tmp_path: Path) -> None:
    sql = SCHEMAS_DIR / "sql"
    for path in sql.glob("*.sql"):
        if int(path.name[:3]) < 20:
            shutil.copy(path, tmp_path / path.name)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await migrate(conn, tmp_path)
        await conn.execute("INSERT INTO projects (name, login, password_hash) VALUES ('old', 'old', 'x')")
        shutil.copy(sql / "020_project_keys.sql", tmp_path)
        await migrate(conn, tmp_path)
        rows = await conn.fetch("SELECT public_key, test_mode FROM project_keys ORDER BY test_mode")
    finally:
        await conn.close()
    assert [r["test_mode"] for r in rows] == [False, True]
    assert re.fullmatch(r"pk_live_[0-9a-f]{64}", rows[0]["public_key"])
    assert re.fullmatch(r"pk_test_[0-9a-f]{64}", rows[1]["public_key"])
