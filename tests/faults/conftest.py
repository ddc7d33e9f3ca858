"""The fault suite's marker and its results table (bench/results/faults.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from results import RESULTS

ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: long fault-injection cases, run by `make faults` (not `make test`)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not RESULTS:
        return
    out = ROOT / "bench" / "results" / "faults.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: `.venv/bin/pytest -q tests/faults`",
        "",
        "| fault | requests | approved | failed (documented body) | refused/reset | reversed "
        "| approvals checked at the issuer | lost | seconds to recover |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in RESULTS:
        lines.append(
            f"| {r['fault']} | {r['requests']} | {r['approved']} | {r['failed']} | {r['refused']} "
            f"| {r['reversed']} | {r['holds']} | {r['lost']} | {r['recover']:.2f} |"
        )
    out.write_text("\n".join(lines) + "\n")
