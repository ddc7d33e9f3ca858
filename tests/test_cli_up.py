"""The README's promise: `isoswitch up` starts everything, prints credentials
and a curl that works, and Ctrl-C stops it all; `isoswitch project add` prints
one JSON line. Real processes, real ports on 127.0.0.1, embedded PostgreSQL."""

from __future__ import annotations

import base64
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from sim_helpers import free_ports

pytestmark = pytest.mark.timeout(120)


def _isoswitch(*args: str) -> list[str]:
    return [sys.executable, "-m", "isoswitch", *args]


def _interrupt(proc: subprocess.Popen[str]) -> int:
    """Ctrl-C, as a terminal sends it; the exit status."""
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(60)
    assert proc.stdout is not None
    proc.stdout.close()
    return rc


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


def _portal_login(port: int, email: str, password: str) -> str:
    """Log in to the portal as a browser would (its form's CSRF token, its cookies); where it lands."""
    import http.cookiejar
    import urllib.parse

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(f"http://127.0.0.1:{port}/portal/login", timeout=10) as resp:
        match = re.search(r'name="csrf" value="([^"]+)"', resp.read().decode())
    assert match is not None
    form = urllib.parse.urlencode({"csrf": match[1], "email": email, "password": password}).encode()
    with opener.open(f"http://127.0.0.1:{port}/portal/login", data=form, timeout=30) as resp:
        return str(resp.geturl())


def test_up_prints_a_curl_that_authorizes_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    http, sim, admin = free_ports(3)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen(
        _isoswitch(
            "up",
            "--data-dir", str(tmp_path / "data"),
            "--http-port", str(http),
            "--sim-port", str(sim),
            "--sim-admin-port", str(admin), "--smtp-sink-port", "0",
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
        assert re.fullmatch(r"pk_test_[A-Za-z0-9]{43}", creds["public_key"]), creds
        curl = next(x.strip() for x in lines if x.strip().startswith("curl "))
        out = subprocess.run([*shlex.split(curl), "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30)
        body, _, code = out.stdout.rpartition("\n")
        assert code == "200", out.stdout
        order = orjson.loads(body)["orders"][0]
        assert order["status"] == "authorized" and re.fullmatch(r"\d{17}", order["id"])
        assert order["pan"] == "411111****1111"
        # The simulated ACS signs with the key pair kept in <data_dir>/keys (the switch is given the public one).
        keys = tmp_path / "data" / "keys"
        assert stat.S_IMODE((keys / "acs_signing.pem").stat().st_mode) == 0o600
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ds/public-key", timeout=10) as resp:
            assert resp.read() == (keys / "acs_signing.pub.pem").read_bytes()
        # The wallet keys are in <data_dir>/keys: the simulator mints a token the switch opens (token_pay).
        mint = [x.strip() for x in lines if x.strip().startswith("curl ")][1]
        out = subprocess.run(shlex.split(mint), capture_output=True, text=True, timeout=30)
        token = orjson.loads(out.stdout)["token"]
        pay = {"amount": "9.99", "dsrp": {"type": "apple_pay", "token": token}, "location": {"ip": "6.6.6.6"}}
        request = urllib.request.Request(
            f"http://127.0.0.1:{http}/orders/token_pay",
            data=orjson.dumps(pay),
            headers={"Content-Type": "application/json", "Authorization": "Basic " + base64.b64encode(
                f"demo:{creds['password']}".encode()).decode()},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as resp:
            paid = orjson.loads(resp.read())["orders"][0]
        assert (paid["status"], paid["secure3d"]["reason"]) == ("authorized", "dsrp")
        # An invoice by e-mail reaches the SMTP sink `up` started: an .eml file in DATA_DIR/mail (the banner says).
        mails = tmp_path / "data" / "mail"
        assert any(f"(mails: {mails})" in x for x in lines), lines
        attrs = {"service": "payment_card_usd_hpp", "currency": "USD", "amount": 10, "send_email": True}
        attrs["customer"] = {"reference_id": "c1", "email": "ann@example.com"}
        request = urllib.request.Request(
            f"http://127.0.0.1:{http}/api/payment-invoices",
            data=orjson.dumps({"data": {"type": "payment-invoices", "attributes": attrs}}),
            headers={**request.headers, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert resp.status == 201
        deadline = time.monotonic() + 30
        while not list(mails.glob("*.eml")) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the sink's directory (a sync test: no event loop to wait in)
        (eml,) = mails.glob("*.eml")
        assert b"To: ann@example.com" in eml.read_bytes()
        # The portal's URL and the demo owner's one-time password: it logs in, and is sent to change it first.
        assert f"http://127.0.0.1:{http}/portal/" in "\n".join(lines)
        owner = next(orjson.loads(x.strip()) for x in lines if x.strip().startswith('{"email"'))
        assert owner["role"] == "owner" and owner["password"]
        assert _portal_login(http, owner["email"], owner["password"]) == f"http://127.0.0.1:{http}/portal/password"
    finally:
        rc = _interrupt(proc)
    assert rc == 0
    # The simulator (its own process) went down with it: its port is free again.
    with socket.socket() as s:
        s.bind(("127.0.0.1", sim))


def test_project_add_prints_login_password_and_test_public_key_once(tmp_path: Path) -> None:
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
    assert re.fullmatch(r"pk_test_[A-Za-z0-9]{43}", doc["public_key"]), doc
    again = subprocess.run(
        _isoswitch("project", "add", "shop1", "--data-dir", data), capture_output=True, text=True, timeout=90, env=env
    )
    assert again.returncode == 1 and "already exists" in again.stderr


def _get(url: str, auth: tuple[str, str] | None = None, body: bytes | None = None) -> tuple[int, bytes]:
    import base64
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=20) as r:  # one connection per call: spread over the workers
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _sample(text: str, name: str, **labels: str) -> list[float]:
    """Values of ``name`` whose labels include ``labels`` in a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            out.append(float(value))
    return out


def _ready_pids(text: bytes) -> set[str]:
    """Processes with a ready link, from ``isoswitch_link_state`` (multi-process mode labels each with its pid)."""
    lines = [x for x in text.decode().splitlines() if x.startswith("isoswitch_link_state{")]
    ready = [x for x in lines if 'state="ready"' in x and x.endswith(" 1.0")]
    return {m.group(1) for x in ready if (m := re.search(r'pid="(\d+)"', x)) is not None}


@pytest.mark.timeout(180)
def test_two_workers_share_the_ports_one_scrape_sums_them_and_a_killed_worker_is_replaced(tmp_path: Path) -> None:
    from sim_helpers import MessageFactory

    from switch.wire.dialect import Dialect

    http, sim, admin, iso = free_ports(4)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ISOSWITCH_HTTP__RATE_LIMIT": "0"}
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen(
        _isoswitch(
            "up", "--workers", "2", "--iso-port", str(iso),
            "--data-dir", str(tmp_path / "data"),
            "--http-port", str(http), "--sim-port", str(sim), "--sim-admin-port", str(admin), "--smtp-sink-port", "0",
            "--log-level", "warning",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{http}"
    try:
        lines = _read_until(proc, "--concurrency", time.monotonic() + 120)
        creds = next(orjson.loads(x.strip()) for x in lines if x.strip().startswith('{"login"'))
        auth = (creds["login"], creds["password"])
        body = orjson.dumps(
            {
                "amount": "1.00",
                "pan": "4111111111111111",
                "card": {"cvv": "123", "holder": "J S", "expiration_month": "12", "expiration_year": "2035"},
                "location": {"ip": "8.8.8.8"},
            }
        )
        pids: set[str] = set()
        ok = 0
        deadline = time.monotonic() + 60
        while len(pids) < 2 and time.monotonic() < deadline:  # the second worker may still be starting
            for _ in range(10):
                status, _ = _get(f"{base}/orders/authorize", auth, body)
                assert status == 200
                ok += 1
            time.sleep(2.5)  # each worker flushes its samples every 2 s
            pids = _ready_pids(_get(f"{base}/metrics")[1])
        assert len(pids) == 2, "both workers' links are ready, in one scrape"
        time.sleep(2.5)
        _, text = _get(f"{base}/metrics")
        counted = _sample(text.decode(), "isoswitch_http_requests_total", route="/orders/authorize", status="200")
        assert sum(counted) == ok, "one scrape counts every worker's requests"
        # A worker killed outright is noticed, dropped from the metrics and started again.
        worker = next(int(p) for p in pids if int(p) != proc.pid)
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(1.0)
            up = _ready_pids(_get(f"{base}/metrics")[1])
            if len(up) == 2 and str(worker) not in up:
                break
        else:
            raise AssertionError("the killed worker was not replaced")
        # The ISO port is shared too: connections land on either worker, and each is answered.
        dialect = Dialect.named("ascii", "binary2")
        codec, framing = dialect.codec, dialect.framing
        mf = MessageFactory()
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", iso), timeout=10) as s:
                s.sendall(framing.pack(codec.encode(mf.network("301"))))
                head = s.recv(2)
                frame = b""
                while len(frame) < int.from_bytes(head, "big"):
                    frame += s.recv(4096)
                assert codec.decode(frame)["39"] == "00"
    finally:
        rc = _interrupt(proc)
    assert rc == 0
    for port in (http, iso):  # the workers are gone with it: nobody listens (TIME_WAIT remnants may stay)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
