"""``python -m acquirer_sim`` as a separate process, and ``acquirer_sim.cli.main``."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from sim_helpers import IsoClient, MessageFactory

from acquirer_sim.cli import main
from acquirer_sim.gcpolicy import IdleCollector

ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def sim_process(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "acquirer_sim",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()


async def read_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    return (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()


def address_of(line: str, prefix: str) -> tuple[str, int]:
    assert line.startswith(prefix), line
    host, _, port = line.removeprefix(prefix).strip().rpartition(":")
    return host, int(port)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_process_announces_its_port_serves_and_exits_0_on_signal(sig: signal.Signals) -> None:
    async with sim_process("--port", "0", "--host", "127.0.0.1", "--admin-port", "0", "--seed", "7") as proc:
        address = address_of(await read_line(proc), "listening on ")
        admin = address_of(await read_line(proc), "admin on ")
        assert address[0] == "127.0.0.1" and address[1] > 0
        client = await IsoClient.connect(address)
        try:
            resp = await client.request(MessageFactory().auth("4276990011343663"))
            assert (resp["t"], resp["39"]) == ("0110", "05")
        finally:
            await client.close()
        async with aiohttp.ClientSession() as s, s.get(f"http://{admin[0]}:{admin[1]}/health") as r:
            assert (await r.json())["status"] == "ok"
        proc.send_signal(sig)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0, err.decode()
        assert out == b""  # nothing after the two address lines
        assert b"4276990011343663" not in err


async def test_process_with_a_rules_file_and_other_dialect(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[cards]]\npan = "4111111111111111"\nresponse = "05"\n', encoding="utf-8")
    async with sim_process(
        "--port", "0", "--rules", str(rules), "--dialect", "binary-bitmap", "--framing", "ascii4"
    ) as proc:
        address = address_of(await read_line(proc), "listening on ")
        client = await IsoClient.connect(address, "binary-bitmap", "ascii4")
        try:
            assert (await client.request(MessageFactory().auth("4111111111111111")))["39"] == "05"
        finally:
            await client.close()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0


async def test_process_exits_1_when_the_port_is_taken() -> None:
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    try:
        async with sim_process("--port", str(port)) as proc:
            _, err = await asyncio.wait_for(proc.communicate(), 10)
            assert proc.returncode == 1
            assert b"cannot listen" in err
    finally:
        blocker.close()
        await blocker.wait_closed()


def test_bad_rules_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[cards]]\npan = "4111111111111111"\nresponse = "TOO LONG"\n', encoding="utf-8")
    assert main(["--port", "0", "--rules", str(rules)]) == 2
    assert "response" in capsys.readouterr().err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dialect", "ebcdic"]) == 2
    assert main(["--port", "70000"]) == 2
    assert main(["--help"]) == 0
    assert "--admin-port" in capsys.readouterr().out


async def test_idle_collector_defers_full_collections_to_quiet_moments() -> None:
    saved = gc.get_threshold()
    activity = [0]
    collector = IdleCollector(lambda: activity[0], idle_s=3600)  # ticks driven by hand below
    collector.start()
    try:
        assert gc.get_threshold()[2] > saved[2]
        for _ in range(5):  # busy: the counter moves between ticks
            activity[0] += 1
            collector._tick()
        assert collector.collections == 0
        for _ in range(5):  # quiet: one collection, not one per tick
            collector._tick()
        assert collector.collections == 1
    finally:
        collector.stop()
    assert gc.get_threshold() == saved
