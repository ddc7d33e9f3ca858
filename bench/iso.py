"""The ISO 8583 bench: 0100 authorizations at a host, directly or through a switch link pool.

``run_iso(config)`` runs one bench and returns its result document::

    {"benchmark": "iso8583", "mode": "direct" | "via-switch", "command": ..., "date": ...,
     "machine": {...}, "parameters": {...},
     "figures": {"requests", "responses", "elapsed_s", "throughput_per_s",
                 "latency_us": {"count", "min", "mean", "p50", "p90", "p99", "p99.9", "max", "hdr", ...},
                 "errors": {kind: n}, "errors_total", "response_codes": {DE 39: n},
                 "cards": {masked PAN: {"expect", "codes"}}, "unexpected_codes", "cpu": {...}, ...,
                 "series": {"interval_s": 1.0, "unit": "us",
                            "points": [{"t_s", "length_s", "responses", "throughput_per_s", "errors",
                                        "p50", "p90", "p99", "p99.9", "max"}, ...]}}}

Two loops (see :mod:`bench.direct` and :mod:`bench.via_switch`): closed
(``rate == 0``: ``concurrency`` requests always in flight, so throughput is
what the system gives and latency follows from it, Little's law: mean
latency = concurrency / throughput) or paced (``rate`` requests a second,
``concurrency`` only capping what is in flight, so latency is measured at a
chosen load). Latency is recorded in microseconds in an HDR histogram;
only answers received inside the measured window count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.direct import run_direct
from bench.measure import Tally, Window, head_figures, machine_info
from bench.progress import progress_bar
from bench.stats import fmt_counts, fmt_cpu, fmt_processes, fmt_rate, fmt_us
from bench.via_switch import run_via_switch
from bench.workload import DEFAULT_MIX, TEST_CARDS, by_card
from switch.wire.cards import mask_pan

__all__ = ["IsoBenchConfig", "format_report", "run_iso"]


@dataclass(frozen=True, slots=True)
class IsoBenchConfig:
    """One bench run. Every default is what ``isoswitch bench iso`` uses."""

    host: str
    port: int
    via_switch: bool = False  # False: straight at the host; True: through a switch link pool
    concurrency: int = 64  # requests in flight (closed loop), or the cap on them (with a rate)
    rate: float = 0.0  # requests/s to offer; 0 = closed loop
    duration: float = 15.0  # measured seconds, after the warmup
    warmup: float = 2.0  # seconds of load before measuring starts
    max_requests: int = 100_000_000  # measured requests; the run ends when they are all answered
    connections: int = 4  # direct mode: TCP connections the concurrency is spread over
    links: int = 2  # via-switch mode: links in the pool
    dialect: str = "ascii"
    framing: str = "binary2"
    timeout: float = 5.0  # seconds before a request counts as a timeout
    amount: int = 1  # DE 4 in minor units: small, so no run exhausts a test card's balance
    currency: str = "USD"
    mix: tuple[int, ...] = DEFAULT_MIX  # card weights, in TEST_CARDS order
    sign_on: bool = True  # direct mode: 0800/001 on each connection first, 0800/002 at the end
    target_pid: int | None = None  # also report this local process's CPU time (Linux /proc)

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.connections < 1 or self.links < 1:
            raise ValueError("concurrency, connections and links must be at least 1")
        if self.duration <= 0 or self.timeout <= 0 or self.warmup < 0 or self.rate < 0:
            raise ValueError("duration and timeout must be positive, warmup and rate not negative")
        if self.max_requests < 1 or self.amount < 0:
            raise ValueError("max_requests must be at least 1, amount not negative")
        if len(self.mix) != len(TEST_CARDS) or any(w < 0 for w in self.mix) or not any(self.mix):
            raise ValueError(f"mix needs {len(TEST_CARDS)} non-negative weights, not all zero")

    @property
    def mode(self) -> str:
        return "via-switch" if self.via_switch else "direct"

    def parameters(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["target"] = f"{self.host}:{self.port}"
        out["mode"] = self.mode
        out["loop"] = "paced" if self.rate else "closed"
        out["mix"] = {mask_pan(c.pan): w for c, w in zip(TEST_CARDS, self.mix, strict=True)}
        return out


async def run_iso(cfg: IsoBenchConfig, *, command: str = "", progress: str | None = None) -> dict[str, Any]:
    """Run one bench; the result document (module docstring). Raises BenchError when it cannot run.

    ``progress``: the label of a progress bar on stderr while it runs; None, no bar.
    """
    tally = Tally(cfg.max_requests)
    window = Window(cfg.target_pid)
    started = datetime.now(UTC)
    try:
        async with progress_bar(progress, tally, window, cfg.warmup + cfg.duration):
            if cfg.via_switch:
                extra = await run_via_switch(cfg, tally, window)
            else:
                extra = await run_direct(cfg, tally, window)
    finally:
        window.close(tally)
    codes, cards, unexpected = by_card(tally.codes, "codes", lambda card: card.expect)
    figures: dict[str, Any] = {
        **head_figures(tally, window),
        "response_codes": dict(sorted(codes.items())),
        "unexpected_codes": unexpected,  # answers other than the card's rule (TEST_CARDS expect)
        "cards": cards,
        "responses_outside_window": tally.responses_outside_window,
        "errors_outside_window": tally.outside_errors,
        "cpu": window.cpu(tally.responses),
        **extra,
    }
    if tally.outcomes:
        figures["outcomes"] = dict(sorted(tally.outcomes.items()))
    figures["series"] = window.series(tally)  # per interval; last, as it is the longest part
    return {
        "benchmark": "iso8583",
        "mode": cfg.mode,
        "command": command,
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_info(),
        "parameters": cfg.parameters(),
        "figures": figures,
    }


def format_report(result: Mapping[str, Any]) -> str:
    """The human summary of a result document."""
    p, f = result["parameters"], result["figures"]
    lat = f["latency_us"]
    spread = f"{p['connections']} connections" if p["mode"] == "direct" else f"{p['links']} switch links"
    load = (
        f"{p['concurrency']} in flight"
        if not p["rate"]
        else f"{fmt_rate(p['rate'])} offered, <= {p['concurrency']} in flight"
    )
    lines = [
        f"iso8583 bench, {p['mode']}, {p['target']}: {load} over {spread}, "
        f"{p['duration']:g} s (+{p['warmup']:g} s warmup), {p['dialect']}/{p['framing']}",
        f"  responses       {f['responses']:,} in {f['elapsed_s']:.2f} s = {fmt_rate(f['throughput_per_s'])}",
        "  latency         "
        + "  ".join(f"{k} {fmt_us(lat[k])}" for k in ("p50", "p90", "p99", "p99.9", "max"))
        + f"  (mean {fmt_us(lat['mean'])})",
        f"  errors          {fmt_counts(f['errors'])}",
        f"  response codes  {fmt_counts(f['response_codes'])}"
        + (f"  ({f['unexpected_codes']:,} not the card's rule)" if f["unexpected_codes"] else ""),
    ]
    if "outcomes" in f:
        lines.append(f"  outcomes        {fmt_counts(f['outcomes'])}")
    lines.append(f"  cpu             {fmt_cpu(f['cpu'])}")
    by_process = fmt_processes(f["cpu"])
    if by_process:
        lines.append(f"  cpu by process  {by_process}")
    if "pacer_max_backlog" in f:
        lines.append(f"  pacer           max backlog {f['pacer_max_backlog']:,} requests")
    return "\n".join(lines)
