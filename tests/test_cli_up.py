"""The README's promise: `isoswitch up` starts everything, prints credentials
and a curl that works, and Ctrl-C stops it all; `isoswitch project add` prints
one JSON line. Real processes, real ports on 127.0.0.1, embedded PostgreSQL."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.timeout(120)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _isoswitch(*args: str) -> list[str]:
    return [sys.executable, "-m", "http_front.cli", *args]


def _read_until(proc: subprocess.Popen[str], marker: str, deadline: float) -> list[str]:
    lines: list[str] = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} not printed; got {lines}")


def test_up_prints_a_curl_that_authorizes_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    http, sim, admin = _free_ports(3)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen(
        _isoswitch(
            "up",
            "--data-dir", str(tmp_path / "data"),
            "--http-port", str(http),
            "--sim-port", str(sim),
            "--sim-admin-port", str(admin),
            "--log-level", "warning",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )  # fmt: skip
    try:
        lines = _read_until(proc, "--concurrency", time.monotonic() + 90)
        creds = next(orjson.loads(x.strip()) for x in lines if x.strip().startswith('{"login"'))
        assert creds["login"] == "demo" and len(creds["password"]) >= 20
        curl = next(x.strip() for x in lines if x.strip().startswith("curl "))
        out = subprocess.run([*shlex.split(curl), "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30)
        body, _, code = out.stdout.rpartition("\n")
        assert code == "200", out.stdout
        order = orjson.loads(body)["orders"][0]
        assert order["status"] == "authorized" and re.fullmatch(r"\d{17}", order["id"])
        assert order["pan"] == "411111****1111"
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(60)
        assert proc.stdout is not None
        proc.stdout.close()
    assert rc == 0
    # The simulator (its own process) went down with it: its port is free again.
    with socket.socket() as s:
        s.bind(("127.0.0.1", sim))


def test_project_add_prints_login_and_password_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    data = str(tmp_path / "data")
    out = subprocess.run(
        _isoswitch("project", "add", "shop1", "--data-dir", data), capture_output=True, text=True, timeout=90, env=env
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    doc = orjson.loads(lines[0])
    assert doc["login"] == "shop1" and len(doc["password"]) >= 20
    again = subprocess.run(
        _isoswitch("project", "add", "shop1", "--data-dir", data), capture_output=True, text=True, timeout=90, env=env
    )
    assert again.returncode == 1 and "already exists" in again.stderr
