"""The large schemathesis run against the running REST front (``make fuzz``); the small one is
tests/test_openapi.py's, with the same rig and checks."""

from __future__ import annotations

import os

import pytest
from pg import pg_dsn  # noqa: F401  (fixture)
from test_openapi import RunningFront, run_schemathesis, running_front  # noqa: F401  (fixture)

EXAMPLES_ENV = "ISOSWITCH_FUZZ_EXAMPLES"


@pytest.mark.fuzz
@pytest.mark.timeout(1800)
def test_the_running_front_survives_a_large_schemathesis_run(
    running_front: RunningFront,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    examples = int(os.environ.get(EXAMPLES_ENV, "200"))
    report = run_schemathesis(running_front, max_examples=examples)
    with capsys.disabled():
        print(f"\n{report.summary()} (max_examples={examples} per operation and mode)")
    assert report.cases >= 16 * examples
