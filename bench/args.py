"""The bench's command-line values and option groups, shared by ``isoswitch bench iso|suite|rest``.

Numbers that must be positive or non-negative, the card mix, thresholds and
rate lists as argparse types, and the groups of options several sub-commands
take (run length, wire format, reports, thresholds).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from switch.wire.dialect import DIALECTS
from switch.wire.framing import FRAMINGS

__all__ = [
    "judge",
    "latency_us",
    "mix",
    "mix_option",
    "non_negative",
    "positive_int",
    "rate",
    "rates",
    "redact",
    "report_options",
    "run_options",
    "seconds",
    "threshold",
    "threshold_option",
    "wire_options",
]


def positive_int(value: str) -> int:
    try:
        n = int(value.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {n}")
    return n


def non_negative(what: str) -> Callable[[str], float]:
    """An argparse type: a number >= 0, errors naming ``what`` (seconds, a rate)."""

    def parse(value: str) -> float:
        try:
            x = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value!r}") from None
        if x < 0:
            raise argparse.ArgumentTypeError(f"expected {what} >= 0, got {value!r}")
        return x

    return parse


seconds = non_negative("seconds")
rate = non_negative("requests a second")


def mix(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(w) for w in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated weights, got {value!r}") from None


def threshold(value: str) -> Any:
    from bench.thresholds import parse_threshold

    try:
        return parse_threshold(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def rates(value: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(r) for r in value.split(",") if r.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated rates a second, got {value!r}") from None
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError(f"expected positive rates, got {value!r}")
    return rates


def latency_us(value: str) -> int:
    """``25ms``, ``2500us``, ``0.5s`` (ms without a unit) -> µs."""
    return int(threshold(f"p99<={value}").limit)


def threshold_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threshold",
        type=threshold,
        action="append",
        default=[],
        metavar="METRIC<VALUE",
        help="pass/fail on the result, repeatable: p50 p90 p99 p99.9 max mean (us, ms, s), rate (per s), "
        "errors (count), slo_rate (a --rates curve); e.g. --threshold p99<25ms --threshold rate>5000. "
        "Exits 99 when one is missed",
    )


def judge(result: dict[str, Any], thresholds: Sequence[Any]) -> bool:
    """Apply and print the thresholds; True when all pass."""
    from bench.thresholds import apply_thresholds, format_verdicts

    ok = apply_thresholds(result, thresholds)
    if thresholds:
        print("\n".join(format_verdicts(result["thresholds"])))
    return ok


def report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="also write DIR/index.html with charts (throughput, p50/p99 per second, percentiles) and the JSON",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr while it runs (default: when stderr is a terminal)",
    )


def wire_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dialect", choices=DIALECTS, default="ascii", help="field encoding (default: ascii)")
    p.add_argument("--framing", choices=tuple(FRAMINGS), default="binary2", help="length header (default: binary2)")


def run_options(p: argparse.ArgumentParser) -> None:
    """--duration, --warmup and --max-requests of one run (iso, rest)."""
    p.add_argument("--duration", type=seconds, default=15.0, help="measured seconds (default: 15)")
    p.add_argument("--warmup", type=seconds, default=2.0, help="seconds of load not measured (default: 2)")
    p.add_argument(
        "--max-requests",
        type=positive_int,
        default=100_000_000,
        help="stop after this many measured requests (default: 100,000,000)",
    )


def mix_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mix", type=mix, default=None, metavar="W,W,W,W,W", help="card weights, in the order of TEST_CARDS"
    )


def redact(argv: Sequence[str]) -> list[str]:
    """``argv`` without secrets: the password and any credentials in a URL.

    >>> redact(["--url", "http://a:b@h:1", "--password", "pw", "--password=pw"])
    ['--url', 'http://***@h:1', '--password', '***', '--password=***']
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
        elif arg == "--password":
            out.append(arg)
            hide_next = True
        elif arg.startswith("--password="):
            out.append("--password=***")
        elif "://" in arg and "@" in arg.partition("://")[2].partition("/")[0]:
            scheme, _, rest = arg.partition("://")
            out.append(f"{scheme}://***@{rest.partition('@')[2]}")
        else:
            out.append(arg)
    return out
