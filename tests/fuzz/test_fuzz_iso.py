"""Hostile ISO 8583 input over real TCP: the target keeps serving, its memory stays bounded.

Targets run as their own processes (see :mod:`isofuzz`). The small runs are
part of ``make test``; the marked ones are ``make fuzz``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isofuzz import FuzzReport, Target, error_lines, run_campaign, settle_and_reconcile, start_listener, start_sim

from switch.wire.codec import EncodeError

# The target's RSS after the run may exceed the one before by at most this
# (its bounded stores included: --max-records 20000 answered requests ~16 MB).
RSS_BOUND = 50_000_000

DIALECTS = [("ascii", "binary2"), ("binary-bitmap", "ascii4")]


@pytest.fixture(params=DIALECTS, ids=lambda p: f"{p[0]}-{p[1]}")
def sim_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    dialect, framing = request.param
    target = start_sim(tmp_path / "sim.log", dialect=dialect, framing=framing)
    try:
        yield target
    finally:
        status = target.stop()
    assert status == 0, f"the sim did not stop cleanly (status {status}); log: {target.log_errors()}"


@pytest.fixture(params=DIALECTS, ids=lambda p: f"{p[0]}-{p[1]}")
def listener_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """``isoswitch serve --iso-port`` (its own process, embedded PostgreSQL) routed to a sim process."""
    dialect, framing = request.param
    workdir = Path(tempfile.mkdtemp(prefix="isofuzz-"))
    target = start_listener(workdir, dialect=dialect, framing=framing)
    try:
        yield target
    finally:
        status = target.stop(30)
    assert status == 0, f"isoswitch serve did not stop cleanly (status {status})"


def _check(report: FuzzReport, target: Target, frames: int, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\n{report.summary()} dialect={target.dialect.name}/{target.dialect.framing.name}")
    assert report.crashes == 0 and target.alive()
    assert report.frames + report.framing_attacks >= frames
    assert report.control_failures == [], report.control_failures[:10]
    assert report.control_checks >= 2
    assert report.undecodable_answers == 0
    assert report.unexpected_closes == [], report.unexpected_closes[:10]
    assert report.framing_failures == [], report.framing_failures[:10]
    # Every frame is confirmed: a readable one by its batch's sync 0810 on the same connection (the
    # target closing it instead is an unexpected close, above), an unreadable one, sent alone, by
    # the hang-up. Nothing is left to chance, so nothing less than all of them will do.
    assert report.frames_confirmed == report.frames, report.summary()
    assert report.rss_growth_mb * 1e6 < RSS_BOUND, report.summary()
    assert target.log_errors() == []
    for companion in target.companions:
        assert companion.alive() and companion.log_errors() == [], companion.name


@pytest.mark.timeout(120)
async def test_sim_keeps_serving_through_a_small_fuzz_run(
    sim_target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    report = await run_campaign(sim_target, 2000, warmup=500, control_every=250)
    _check(report, sim_target, 2000, capsys)


@pytest.mark.fuzz
@pytest.mark.timeout(1800)
async def test_sim_keeps_serving_through_the_full_fuzz_run(
    sim_target: Target, fuzz_frames: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # The default dialect gets the full count; the other one a fifth (its code paths are fewer).
    frames = fuzz_frames if sim_target.dialect.name == "ascii" else fuzz_frames // 5
    report = await run_campaign(sim_target, frames, seed=2)
    _check(report, sim_target, frames, capsys)


@pytest.mark.timeout(300)
async def test_iso_listener_keeps_serving_through_a_small_fuzz_run(
    listener_target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    report = await run_campaign(listener_target, 2000, warmup=500, control_every=250)
    _check(report, listener_target, 2000, capsys)
    await _reconciled(listener_target, capsys)


@pytest.mark.fuzz
@pytest.mark.timeout(1800)
async def test_iso_listener_keeps_serving_through_the_full_fuzz_run(
    listener_target: Target, fuzz_frames: int, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = fuzz_frames if listener_target.dialect.name == "ascii" else fuzz_frames // 5
    report = await run_campaign(listener_target, frames, seed=3)
    _check(report, listener_target, frames, capsys)
    await _reconciled(listener_target, capsys)


async def _reconciled(target: Target, capsys: pytest.CaptureFixture[str]) -> None:
    """What the fuzzed frames did through the listener is in the switch's books as at the issuer."""
    recon = await settle_and_reconcile(target)
    with capsys.disabled():
        print(recon.summary())
    assert [str(d) for d in recon.differences] == [], "\n".join([recon.summary(), *map(str, recon.differences)])
    assert recon.matched > 0


# -- the log scan of the oracle ------------------------------------------------------

_REAL_LINES = """
import logging, sys
from switch.logs import setup_logging
setup_logging("info")
log = logging.getLogger("isoswitch.listener")
log.info("a fine line that quotes ERROR and CRITICAL")
log.warning("a warning")
log.error("connection %s broke", 7)
try:
    raise ValueError("boom")
except ValueError:
    log.warning("handled, with its traceback", exc_info=True)
"""


def test_the_log_scan_finds_the_error_lines_isoswitch_really_writes(tmp_path: Path) -> None:
    # Lines from the real formatter (switch.logs, JSON), in a process of their own as serve writes them.
    done = subprocess.run([sys.executable, "-c", _REAL_LINES], capture_output=True, text=True, timeout=60, check=True)
    lines = done.stderr.splitlines()
    assert len(lines) == 4 and '"level":"error"' in lines[2]
    assert error_lines(done.stderr) == lines[2:]


def test_the_log_scan_finds_the_sims_text_errors_and_asyncios_complaints() -> None:
    text = (
        "2026-01-01 10:00:00,001 isoswitch.sim INFO listening\n"
        "2026-01-01 10:00:00,002 isoswitch.sim ERROR handler failed\n"
        "2026-01-01 10:00:00,003 asyncio ERROR Fatal error on transport\n"
        "Traceback (most recent call last):\n"
    )
    assert error_lines(text) == text.splitlines()[1:]


# -- structured input: well-encoded messages with hostile field values --------------

_FIELDS = ["2", "3", "4", "7", "11", "12", "13", "14", "22", "32", "37", "38", "39", "41", "42", "43", "49", "90"]
_MTIS = ["0100", "0110", "0200", "0220", "0400", "0420", "0421", "0800", "0810", "0120", "0190", "1100"]


@st.composite
def _messages(draw: st.DrawFn) -> dict[str, str]:
    text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
    digits = st.text(st.sampled_from("0123456789"), min_size=0, max_size=20)
    msg = {"t": draw(st.sampled_from(_MTIS))}
    for key in draw(st.lists(st.sampled_from(_FIELDS), unique=True, max_size=12)):
        msg[key] = draw(st.one_of(digits, text))
    return msg


@pytest.fixture(scope="module")
def ascii_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    target = start_sim(tmp_path_factory.mktemp("sim") / "sim.log")
    try:
        yield target
    finally:
        target.stop()
    assert target.log_errors() == []


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msgs=st.lists(_messages(), min_size=1, max_size=5))
def test_sim_answers_an_echo_after_any_well_encoded_message(ascii_sim: Target, msgs: list[dict[str, str]]) -> None:
    codec, framing = ascii_sim.dialect.codec, ascii_sim.dialect.framing
    frames = []
    for m in msgs:
        try:
            frames.append(framing.pack(codec.encode(m)))
        except (EncodeError, ValueError):
            continue  # the field does not fit its spec: nothing to send
    echo = {"t": "0800", "7": "0101000000", "11": "999999", "70": "301"}
    with socket.create_connection(ascii_sim.address, timeout=5) as sock:
        sock.sendall(b"".join(frames) + framing.pack(codec.encode(echo)))
        buf = b""
        while True:
            chunk = sock.recv(65536)
            assert chunk, "the sim closed a connection that sent only well-encoded frames"
            buf += chunk
            answers = []
            pos = 0
            while len(buf) - pos >= framing.header_len:
                n = framing.length(buf[pos : pos + framing.header_len])
                if len(buf) - pos - framing.header_len < n:
                    break
                answers.append(codec.decode(buf[pos + framing.header_len : pos + framing.header_len + n]))
                pos += framing.header_len + n
            if any(a.get("t") == "0810" and a.get("11") == "999999" for a in answers):
                break
    assert ascii_sim.alive()
