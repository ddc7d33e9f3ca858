"""`isoswitch project settings`: a project's settings printed and changed from the command line (typed by
the settings' fields, one line and exit 1 for a wrong key or value), and a running front sees a change made
by another process within ``[runtime] project_refresh``. Real processes, the tests' PostgreSQL, the real
simulator and front (tests/secure3d_rig.py)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import secure3d_rig
from pg import database, fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from secure3d_rig import Rig, body
from waiting import wait_for

from switch.store import Database, InvalidSettings, Projects, ProjectSettings

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
VISA = "4111111111111111"
REFRESH = 0.5


async def _isoswitch(dsn: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("ISOSWITCH_")}
    env["DATABASE_URL"] = dsn
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "isoswitch", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_a_setting_typed_on_a_command_line_takes_its_fields_type() -> None:
    parse = ProjectSettings.parse_setting
    assert parse("require_3ds", "true") is True and parse("cvv_required", "False") is False
    assert parse("terminals", "T1,T2") == ("T1", "T2") and parse("terminals", "") == ()
    assert parse("fee_rate", "2.5") == Decimal("2.5") and parse("fee_fixed", "30") == 30
    assert parse("descriptor", "SHOP*ONE") == "SHOP*ONE"
    for key, text in [("require_3ds", "yes"), ("fee_fixed", "1.5"), ("fee_rate", "lots"), ("no_such", "1")]:
        with pytest.raises(InvalidSettings):
            parse(key, text)


async def test_the_command_prints_the_settings_and_changes_them_typed(database: Database, fresh_dsn: str) -> None:  # noqa: F811
    project, _ = await Projects(database.pool).create("shop")
    code, out, err = await _isoswitch(fresh_dsn, "project", "settings", "shop")
    assert code == 0, err
    assert orjson.loads(out) == project.settings.to_json()

    code, out, err = await _isoswitch(
        fresh_dsn, "project", "settings", "shop",
        "--set", "require_3ds=true", "--set", "terminals=T1,T2", "--set", "fee_rate=2.5",
        "--set", "fee_fixed=30", "--set", "cvv_required=false", "--set", "descriptor=SHOP*ONE",
        "--set", "auto_capture=true", "--set", "capture_hours=6", "--set", "page_template=dark",
    )  # fmt: skip
    assert code == 0, err
    shown = orjson.loads(out)
    assert shown["require_3ds"] is True and shown["terminals"] == ["T1", "T2"] and shown["fee_rate"] == "2.5"
    assert shown["fee_fixed"] == 30 and shown["cvv_required"] is False and shown["descriptor"] == "SHOP*ONE"
    assert (shown["auto_capture"], shown["capture_hours"], shown["page_template"]) == (True, 6, "dark")
    stored = await Projects(database.pool).get(project.id)
    assert stored is not None and stored.settings.to_json() == shown


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("no_such=1", "unknown setting 'no_such'"),
        ("require_3ds=yes", "require_3ds must be true or false"),
        ("fee_fixed=ten", "fee_fixed must be an integer"),
        ("mcc=59", "mcc must be 4 digits"),
        ("fee_rate=101", "fee_rate must be a percentage"),
        ("require_3ds", "--set takes KEY=VALUE"),
        ("capture_hours=0", "capture_hours must be 1..720"),
        ("page_template=neon", "page_template must be one of standard, compact, dark"),
        ("notify_emails=nobody", "notify_emails must be at most 5 e-mail addresses"),
    ],
)
async def test_a_wrong_key_or_value_is_one_line_and_changes_nothing(
    database: Database,  # noqa: F811
    fresh_dsn: str,  # noqa: F811
    change: str,
    says: str,
) -> None:
    project, _ = await Projects(database.pool).create("shop")
    code, out, err = await _isoswitch(fresh_dsn, "project", "settings", "shop", "--set", change)
    assert code == 1 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("isoswitch project settings: ") and says in line, err
    assert await Projects(database.pool).get(project.id) == project


async def test_an_unknown_project_is_one_line(database: Database, fresh_dsn: str) -> None:  # noqa: F811
    code, _, err = await _isoswitch(fresh_dsn, "project", "settings", "ghost", "--set", "require_3ds=true")
    assert code == 1 and err.strip() == "isoswitch project settings: no project with login 'ghost'"


async def test_another_process_change_reaches_a_cached_project_within_the_refresh(database: Database) -> None:  # noqa: F811
    here = Projects(database.pool, refresh=REFRESH)
    elsewhere = Projects(database.pool)  # another process: its changes cannot drop this one's cache
    project, password = await here.create("shop")
    assert (await here.authenticate("shop", password)) == project
    await elsewhere.update_settings(project.id, require_3ds=True)
    seen = await wait_for(
        lambda: _settings_of(here, "shop", password), timeout=REFRESH * 6, what="the change within the refresh"
    )
    assert seen.require_3ds is True
    # A password reset elsewhere: the cached one stops working at the next refresh.
    await elsewhere.reset_password("shop")
    await wait_for(lambda: _refused(here, "shop", password), timeout=REFRESH * 6, what="the old password refused")


async def _settings_of(projects: Projects, login: str, password: str) -> ProjectSettings | None:
    found = await projects.authenticate(login, password)
    return found.settings if found is not None and found.settings.require_3ds else None


async def _refused(projects: Projects, login: str, password: str) -> bool:
    return await projects.authenticate(login, password) is None


@pytest.fixture
async def rig(fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Rig]:  # noqa: F811
    async for r in secure3d_rig.open_rig(fresh_dsn, scratch_dir, project_refresh=REFRESH):
        yield r


async def test_a_running_front_honours_require_3ds_set_by_the_command_within_the_refresh(
    rig: Rig,
    fresh_dsn: str,  # noqa: F811
) -> None:
    plain = body(VISA)
    del plain["options"]
    status, answer = await rig.call("POST", "/orders/authorize", plain)
    assert status == 200 and answer["orders"][0]["status"] == "authorized", answer  # cached now

    code, out, err = await _isoswitch(fresh_dsn, "project", "settings", "project", "--set", "require_3ds=true")
    assert code == 0 and orjson.loads(out)["require_3ds"] is True, err
    changed = asyncio.get_running_loop().time()

    async def asks_for_3ds() -> dict[str, object] | None:
        status, answer = await rig.call("POST", "/orders/authorize", plain)
        return answer if status == 201 else None

    answer = await wait_for(asks_for_3ds, timeout=REFRESH + 5.0, interval=0.05, what="a 201 with form3d")
    took = asyncio.get_running_loop().time() - changed
    assert answer["orders"][0]["secure3d"]["reason"] == "require_3ds"  # type: ignore[index]
    assert took < REFRESH + 2.0, took

    code, _, err = await _isoswitch(fresh_dsn, "project", "settings", "project", "--set", "require_3ds=false")
    assert code == 0, err

    async def authorizes_plainly() -> bool:
        status, _ = await rig.call("POST", "/orders/authorize", plain)
        return status == 200

    await wait_for(authorizes_plainly, timeout=REFRESH + 5.0, interval=0.05, what="a plain 200 again")
