"""The one `isoswitch` command tree: --version, --config on every command that opens the database,
one parser each for HOST:PORT, times and log levels, and one line with exit status 1 (never a
traceback) for a port in use, a database that is down or refuses us, and a bad TLS file.
Real processes, sockets on 127.0.0.1 and the tests' PostgreSQL."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
import pg
import pytest
from sim_helpers import free_ports

from acquirer_sim import SimServer
from isoswitch.cli import command_parser, main

fresh_dsn, pg_dsn = pg.fresh_dsn, pg.pg_dsn

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = "postgresql://127.0.0.1:1/x"


def _isoswitch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "isoswitch", *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("ISOSWITCH_")}
    return {**env, **extra}


def _one_line(stderr: str, prefix: str) -> str:
    """The failure line: the last line of stderr, no traceback before it."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith(prefix), stderr
    return lines[-1]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port on 127.0.0.1 that something else listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # The in-process commands read the environment: only what a test sets counts.
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("ISOSWITCH_CONFIG", raising=False)


# -- the tree --------------------------------------------------------------------------------


def test_version_is_the_installed_packages() -> None:
    out = _isoswitch("--version", env=_env())
    assert out.returncode == 0 and out.stdout.strip() == f"isoswitch {version('isoswitch')}"


def test_help_lists_every_command_and_an_unknown_one_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    commands = (
        "up",
        "serve",
        "switch",
        "project",
        "saf",
        "audit",
        "webhook",
        "reconcile",
        "report",
        "config",
        "keys",
        "sim",
        "bench",
    )
    assert all(f"\n    {name}" in text for name in commands)
    assert main(["frobnicate"]) == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["project", "add", "shop"],
        ["project", "list"],
        ["saf", "list"],
        ["audit", "list"],
        ["project", "webhook", "list", "shop"],
        ["project", "settings", "shop"],
        ["webhook", "list"],
        ["webhook", "redeliver", "evt_1_1"],
        ["mail", "list"],
        ["mail", "resend", "1"],
        ["reconcile", "--sim-admin", "http://127.0.0.1:1"],
        ["report", "daily", "--project", "shop", "--date", "2026-01-01"],
    ],
)
def test_every_book_command_opens_the_database_of_its_config(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[database]\nurl = "{UNREACHABLE}"\n')
    assert main([*argv, "--config", str(path)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    prog = "isoswitch " + " ".join(argv[:1] if argv[0] == "reconcile" else argv[:2])
    assert line.startswith(f"{prog}: cannot connect to {UNREACHABLE}: ") and "refused" in line


@pytest.mark.parametrize("command", ["serve", "switch", "up"])
def test_the_serving_commands_open_the_database_of_their_config(command: str, tmp_path: Path) -> None:
    http, sim, admin = free_ports(3)
    path = tmp_path / "c.toml"
    path.write_text(
        f'[database]\nurl = "{UNREACHABLE}"\n[http]\nport = {http}\n'
        f"[simulator]\nport = {sim}\nadmin_port = {admin}\n[runtime]\nready_timeout = 0.1\n[smtp_sink]\nport = 0\n"
    )
    out = _isoswitch(command, "--config", str(path), "--log-level", "WARNING", env=_env())
    assert out.returncode == 1, out.stderr
    assert f"cannot connect to {UNREACHABLE}" in _one_line(out.stderr, f"isoswitch {command}: ")


def test_config_show_reads_its_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[simulator]\nadmin_port = 9999\n")
    out = _isoswitch("config", "show", "--config", str(path), env=_env())
    assert out.returncode == 0 and "admin_port = 9999" in out.stdout


# -- one parser per kind of value --------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["up"], ["serve"], ["switch"], ["config", "show"], ["sim"]],
)
@pytest.mark.parametrize("level", ["warning", "WARNING", "Warning"])
def test_log_level_is_taken_in_any_case_everywhere(argv: list[str], level: str) -> None:
    args = command_parser(*argv).parse_args(["--log-level", level])
    assert args.log_level.lower() == "warning"


def test_audit_and_reconcile_read_since_the_same_way() -> None:
    for text, expected in [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T12:30:00", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01T12:30:00+02:00", datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
        ("2024-05-01T12:30:00Z", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
    ]:
        audit = command_parser("audit", "list").parse_args(["--since", text]).since
        reconcile = command_parser("reconcile").parse_args(["--since", text]).since
        assert audit == reconcile == expected, text
    before = datetime.now(UTC)
    ago = command_parser("reconcile").parse_args(["--since", "2h"]).since
    assert before - timedelta(hours=2, seconds=5) < ago <= before - timedelta(hours=2) + timedelta(seconds=5)


def test_host_and_port_are_read_the_same_way_by_every_command() -> None:
    for argv in (["serve", "--target"], ["switch", "--target"], ["bench", "iso", "--target"]):
        args = command_parser(*argv[:-1]).parse_args([argv[-1], "[::1]:8583"])
        assert args.target == ("::1", 8583), argv
    rest = command_parser("bench", "rest").parse_args(["--url", "http://h", "--sim", "sim.example:8583"])
    assert rest.sim == ("sim.example", 8583)


@pytest.mark.parametrize("bad", ["8583", "host:", "host:port", "host:70000", "host:0"])
def test_a_wrong_host_and_port_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--target", bad]) == 2
    assert f"expected HOST:PORT with a port 1..65535, got {bad!r}" in capsys.readouterr().err


# -- one line, exit status 1 -----------------------------------------------------------------


def test_up_on_a_busy_port_says_which_in_one_line(listening: int, tmp_path: Path) -> None:
    sim, admin = free_ports(2)
    out = _isoswitch(
        "up", "--http-port", str(listening), "--sim-port", str(sim), "--sim-admin-port", str(admin),
        "--data-dir", str(tmp_path / "data"), env=_env(),
    )  # fmt: skip
    assert out.returncode == 1
    assert (
        out.stderr.strip()
        == f"isoswitch up: cannot listen on 127.0.0.1:{listening} ([http] port): Address already in use"
    )
    assert not (tmp_path / "data").exists(), "nothing started"


async def test_serve_on_a_busy_port_ends_with_one_line(
    listening: int, sim: SimServer, fresh_dsn: str, tmp_path: Path
) -> None:
    assert sim.address is not None
    target = f"{sim.address[0]}:{sim.address[1]}"
    out = _isoswitch(
        "serve", "--http-port", str(listening), "--target", target, "--log-level", "warning",
        "--data-dir", str(tmp_path), env=_env(DATABASE_URL=fresh_dsn),
    )  # fmt: skip
    assert out.returncode == 1
    line = _one_line(out.stderr, "isoswitch serve: ")
    assert str(listening) in line and "address already in use" in line.lower()


async def test_switch_on_a_busy_iso_port_ends_with_one_line(
    listening: int, sim: SimServer, fresh_dsn: str, tmp_path: Path
) -> None:
    assert sim.address is not None
    out = _isoswitch(
        "switch", "--iso-port", str(listening), "--target", f"{sim.address[0]}:{sim.address[1]}",
        "--log-level", "warning", "--data-dir", str(tmp_path), env=_env(DATABASE_URL=fresh_dsn),
    )  # fmt: skip
    assert out.returncode == 1
    line = _one_line(out.stderr, "isoswitch switch: ")
    assert str(listening) in line and "address already in use" in line.lower()


def test_an_unreachable_database_is_one_line() -> None:
    for argv in (["project", "list"], ["serve", "--http-port", "0", "--log-level", "warning"]):
        out = _isoswitch(*argv, env=_env(DATABASE_URL=UNREACHABLE))
        assert out.returncode == 1
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith(f"isoswitch {argv[0]}") and f"cannot connect to {UNREACHABLE}: " in line


async def test_a_database_that_refuses_us_is_one_line(pg_dsn: str) -> None:
    parts = urlsplit(pg_dsn)
    host = parts.netloc.rpartition("@")[2]
    intruder = urlunsplit(parts._replace(netloc=f"intruder:wrong@{host}"))
    out = _isoswitch("project", "list", env=_env(DATABASE_URL=intruder))
    assert out.returncode == 1
    line = _one_line(out.stderr, "isoswitch project list: cannot connect to ")
    assert "intruder" in line and "wrong" not in line, "the password never shows"


def test_project_add_prints_the_test_public_key_beside_login_and_password(fresh_dsn: str) -> None:
    out = _isoswitch("project", "add", "keyshop", env=_env(DATABASE_URL=fresh_dsn))
    assert out.returncode == 0, out.stderr
    doc = orjson.loads(out.stdout)
    assert sorted(doc) == ["login", "password", "public_key"]
    assert doc["login"] == "keyshop" and re.fullmatch(r"pk_test_[A-Za-z0-9]{43}", doc["public_key"])
    listed = _isoswitch("project", "list", env=_env(DATABASE_URL=fresh_dsn))
    assert doc["public_key"] not in listed.stdout and doc["password"] not in listed.stdout


@pytest.mark.parametrize("flag", ["--tls-cert", "--iso-tls-cert"])
@pytest.mark.parametrize("command", ["serve", "up"])
def test_a_tls_file_that_is_missing_or_garbage_is_one_line(
    flag: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    for path, says in [(tmp_path / "missing.pem", "not found"), (garbage, "cannot load")]:
        argv = [command, flag, str(path), "--http-port", "0", "--iso-port", "0", "--data-dir", str(tmp_path / "d")]
        assert main(argv) == 1
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"isoswitch {command}: ") and says in line and str(path) in line
    assert not (tmp_path / "d").exists(), "nothing started"


def test_the_simulator_with_a_garbage_tls_file_is_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    out = _isoswitch("sim", "--port", "0", "--tls-cert", str(garbage), env=_env())
    assert out.returncode == 1
    assert _one_line(out.stderr, "sim: cannot load TLS certificate")
