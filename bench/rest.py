"""The REST bench: ``POST /orders/authorize`` at the orders API, and optionally at the bare path.

``run_rest(config)`` runs the bench and returns its result document::

    {"benchmark": "rest", "command": ..., "date": ..., "machine": {...}, "parameters": {...},
     "figures": {"requests", "responses", "elapsed_s", "throughput_per_s",
                 "latency_us": {"count", "min", "mean", "p50", "p90", "p99", "p99.9", "max", "hdr", ...},
                 "errors": {kind: n}, "errors_total", "status_codes": {"200": n, ...},
                 "unexpected_statuses", "cards": {masked PAN: {"expect", "statuses"}}, "cpu": {...},
                 "connections", "connections_opened", "connections_closed_by_server", ...,
                 "series": {"interval_s", "unit", "points": [...]}},  # per interval, as in bench.iso
     # with a simulator to point it at (``bare_sim``):
     "bare": {"url", "server_pid", "figures": {... as above}} or {"error": ...},
     "ratio": {"throughput": full / bare, "p99": full / bare},
     "targets": {name: {"target", "value", "met"}}}

The load is a closed loop of ``concurrency`` keep-alive connections, one
request in flight on each (:mod:`bench.http_load`), or with ``rate`` an
open loop: requests on a fixed schedule, latency measured from each one's
intended send time (coordinated omission corrected, as wrk2 does), the
connections only capping what is in flight. ``rates`` runs one open loop
per rate and reports the curve and the highest rate whose p99 met
``slo_p99_us`` (``curve``; ``figures`` are then that rate's run, or the
lowest rate's when none met it). ``https://`` URLs get TLS (``insecure``:
no certificate check, for a self-signed test server; ``cafile``: trust
that CA). With ``procs`` (:mod:`bench.procs`) the CPU of each server
process group is read too (``cpu.processes``: the front, its workers,
PostgreSQL, the simulator, and their sum). The bodies are the
``Authorize`` example of the orders API documentation (seeds/003) with the
test cards of :data:`bench.workload.TEST_CARDS`, mixed as ``mix`` says, an
expiry two years ahead and a small amount. Each card has the HTTP status the
orders API gives it (:data:`EXPECTED_STATUS`); answers with another status
are counted as unexpected.

The bare path (JSON -> ISO 8583 -> simulator -> JSON: no database, no
validation, no auth) is served by ``python -m bench.bare_server``, started
after the main run, loaded the same way, and stopped with SIGTERM however
the run ends. The report gives the ratio of the two.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ssl
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson

from bench.http_load import HttpTarget, basic_auth, build_post, run_http
from bench.measure import BenchError, Tally, Window, head_figures, machine_info
from bench.procs import ProcSpec
from bench.progress import progress_bar
from bench.stats import fmt_counts, fmt_cpu, fmt_processes, fmt_rate, fmt_us
from bench.suite import SimProcess, listening_process
from bench.workload import DEFAULT_MIX, TEST_CARDS, by_card, card_cycle
from switch.wire.cards import mask_pan

__all__ = [
    "AUTHORIZE_PATH",
    "EXPECTED_STATUS",
    "TARGETS",
    "RestBenchConfig",
    "ServerProcess",
    "authorize_requests",
    "bare_server",
    "bare_server_command",
    "format_report",
    "run_rest",
]

AUTHORIZE_PATH = "/orders/authorize"

# DE 39 the simulator gives a test card -> the orders API's HTTP status for it (DESIGN.md).
EXPECTED_STATUS: dict[str, int] = {"00": 200, "05": 402, "59": 402, "96": 500}

# The targets for the full path (issue 3, Performance), judged at 64 connections.
TARGETS = {"min_throughput": 5_000.0, "max_p99_us": 25_000, "min_share_of_bare": 0.60}

_START_TIMEOUT = 30.0  # seconds for the bare server to print its address (its links sign on first)


@dataclass(frozen=True, slots=True)
class RestBenchConfig:
    """One bench run. Every default is what ``isoswitch bench rest`` uses."""

    url: str  # the API's base URL (http://host:port), or the authorize URL itself
    login: str | None = None  # HTTP Basic; None: taken from the URL, or no Authorization header
    password: str | None = dataclasses.field(default=None, repr=False)
    concurrency: int = 64  # keep-alive connections, one request in flight on each
    duration: float = 15.0  # measured seconds, after the warmup
    warmup: float = 2.0  # seconds of load before measuring starts
    max_requests: int = 100_000_000  # measured requests; the run ends when they are all answered
    timeout: float = 5.0  # seconds before a request counts as a timeout (and its connection is dropped)
    amount: str = "0.01"  # order amount, major units: small, so no run exhausts a test card's balance
    currency: str = "USD"
    mix: tuple[int, ...] = DEFAULT_MIX  # card weights, in TEST_CARDS order
    target_pid: int | None = None  # also report this local process's CPU time (the front's)
    bare_sim: tuple[str, int] | None = None  # run the bare path too, against this simulator
    rate: float = 0.0  # requests/s on a fixed schedule (open loop); 0: closed loop
    rates: tuple[float, ...] = ()  # a curve: one open-loop run per rate (then ``rate`` is ignored)
    slo_p99_us: int = 25_000  # the curve's SLO: the highest rate whose p99 is at most this
    insecure: bool = False  # https: no certificate or host name check (self-signed test servers)
    cafile: str | None = None  # https: trust this CA bundle instead of the system's
    procs: ProcSpec | None = None  # server processes whose CPU to read (with target_pid: the front)

    def __post_init__(self) -> None:
        HttpTarget.parse(self.url)  # raises ValueError with the reason
        if self.concurrency < 1 or self.max_requests < 1:
            raise ValueError("concurrency and max_requests must be at least 1")
        if self.duration <= 0 or self.timeout <= 0 or self.warmup < 0:
            raise ValueError("duration and timeout must be positive, warmup not negative")
        try:
            amount = Decimal(self.amount)
        except InvalidOperation:
            raise ValueError(f"amount must be a decimal number, not {self.amount!r}") from None
        if not amount.is_finite() or amount <= 0:
            raise ValueError("amount must be positive")
        if len(self.mix) != len(TEST_CARDS) or any(w < 0 for w in self.mix) or not any(self.mix):
            raise ValueError(f"mix needs {len(TEST_CARDS)} non-negative weights, not all zero")
        if (self.login is None) != (self.password is None):
            raise ValueError("give both login and password, or neither")
        if self.rate < 0 or any(r <= 0 for r in self.rates) or self.slo_p99_us <= 0:
            raise ValueError("rates must be positive (rate 0 is the closed loop), the SLO too")
        if self.rates and self.bare_sim is not None:
            raise ValueError("a rate curve runs against the API only, not with the bare path")

    @property
    def target(self) -> HttpTarget:
        return HttpTarget.parse(self.url)

    def credentials(self) -> tuple[str, str] | None:
        if self.login is not None and self.password is not None:
            return self.login, self.password
        t = self.target
        if t.login is not None:
            return t.login, t.password or ""
        return None

    def parameters(self) -> dict[str, Any]:
        """The run's parameters for the result document: never the password."""
        creds = self.credentials()
        return {
            "url": self.target.redacted(),
            "endpoint": f"{self.target.scheme}://{self.target.host_header}{authorize_path(self.target)}",
            "login": creds[0] if creds else None,
            "concurrency": self.concurrency,
            "duration": self.duration,
            "warmup": self.warmup,
            "max_requests": self.max_requests,
            "timeout": self.timeout,
            "amount": self.amount,
            "currency": self.currency,
            "mix": {mask_pan(c.pan): w for c, w in zip(TEST_CARDS, self.mix, strict=True)},
            "target_pid": self.target_pid,
            "bare_sim": f"{self.bare_sim[0]}:{self.bare_sim[1]}" if self.bare_sim else None,
            "loop": "open" if self.rate or self.rates else "closed",
            "rate": self.rate,
            "rates": list(self.rates),
            "slo_p99_us": self.slo_p99_us,
            "tls": self.target.tls,
            "insecure": self.insecure,
            "processes": _procs_parameters(self.procs),
        }

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context for an https URL; None for http."""
        if not self.target.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.cafile)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def _procs_parameters(spec: ProcSpec | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    return {
        "pg_pid": spec.pg_pid,
        "pg_data": str(spec.pg_data) if spec.pg_data is not None else None,
        "sim_pid": spec.sim_pid,
    }


def authorize_path(target: HttpTarget) -> str:
    """The request path: the URL's own when it already names the endpoint, else the endpoint under it.

    >>> authorize_path(HttpTarget("h", 1, "")), authorize_path(HttpTarget("h", 1, "/api/orders/authorize"))
    ('/orders/authorize', '/api/orders/authorize')
    """
    path = target.path if target.path.endswith(AUTHORIZE_PATH) else target.path + AUTHORIZE_PATH
    return f"{path}?{target.query}" if target.query else path


def authorize_body(pan: str, amount: str, currency: str, expiry_year: int) -> bytes:
    """The seed's ``Authorize`` example (required fields and currency) for one card.

    >>> orjson.loads(authorize_body("4111111111111111", "0.01", "USD", 2030))["card"]["expiration_year"]
    2030
    """
    doc = {
        # A JSON number, as in the documentation; float() keeps a short decimal like 0.01 exact on the wire.
        "amount": float(Decimal(amount)),
        "currency": currency,
        "pan": pan,
        "card": {"cvv": "123", "holder": "John Smith", "expiration_month": 12, "expiration_year": expiry_year},
        "location": {"ip": "6.6.6.6"},
    }
    return orjson.dumps(doc)


def authorize_requests(cfg: RestBenchConfig, target: HttpTarget | None = None) -> list[tuple[bytes, int]]:
    """Complete requests (bytes, card index), in the order of the card cycle; built once per run."""
    target = target or cfg.target
    creds = cfg.credentials()
    auth = basic_auth(*creds) if creds else None
    path = authorize_path(target)
    year = datetime.now(UTC).year + 2  # valid for two more years, whatever the date of the run
    per_card = [
        build_post(target, path, authorize_body(c.pan, cfg.amount, cfg.currency, year), authorization=auth)
        for c in TEST_CARDS
    ]
    return [(per_card[i], i) for i in card_cycle(cfg.mix)]


async def _measure(
    cfg: RestBenchConfig,
    target: HttpTarget,
    target_pid: int | None,
    progress: str | None = None,
    procs: ProcSpec | None = None,
) -> dict[str, Any]:
    """One measured run against ``target`` (at ``cfg.rate``, 0: closed loop); its figures.
    ``progress``: a progress bar's label, or None."""
    tally = Tally(cfg.max_requests)
    window = Window(target_pid, procs=procs)
    try:
        async with progress_bar(progress, tally, window, cfg.warmup + cfg.duration):
            extra = await run_http(
                host=target.host,
                port=target.port,
                requests=authorize_requests(cfg, target),
                concurrency=cfg.concurrency,
                duration=cfg.duration,
                warmup=cfg.warmup,
                timeout=cfg.timeout,
                tally=tally,
                window=window,
                rate=cfg.rate,
                tls=cfg.ssl_context() if target.tls else None,
            )
    finally:
        window.close(tally)
    statuses, cards, unexpected = by_card(tally.codes, "statuses", lambda card: EXPECTED_STATUS.get(card.expect, 500))
    responses = tally.responses
    return {
        **head_figures(tally, window),
        "status_codes": dict(sorted(statuses.items())),
        "unexpected_statuses": unexpected,  # answers other than the card's status (EXPECTED_STATUS)
        "cards": cards,
        "responses_outside_window": tally.responses_outside_window,
        "errors_outside_window": tally.outside_errors,
        "cpu": window.cpu(responses),
        "requests_per_connection": round(responses / extra["connections_opened"], 1)
        if extra["connections_opened"]
        else 0.0,
        **extra,
        "series": window.series(tally),  # per interval; last, as it is the longest part
    }


# The bare server is run like the simulator: same lifecycle, same record.
ServerProcess = SimProcess


def bare_server_command(sim: tuple[str, int], host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "bench.bare_server", "--host", host, "--port", "0", "--sim", f"{sim[0]}:{sim[1]}"]


@contextlib.asynccontextmanager
async def bare_server(
    sim: tuple[str, int], log_path: Path, *, command: list[str] | None = None
) -> AsyncIterator[ServerProcess]:
    """Run the bare server (or ``command``, which must print ``listening on HOST:PORT``) for the block."""
    async with listening_process(command or bare_server_command(sim), log_path, "bare server") as server:
        yield server


def _ratio(full: float, bare: float) -> float | None:
    return round(full / bare, 3) if bare else None


def _targets(full: Mapping[str, Any], share: float | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {
        "throughput": {
            "target": f">= {fmt_rate(TARGETS['min_throughput'])}",
            "value": full["throughput_per_s"],
            "met": full["throughput_per_s"] >= TARGETS["min_throughput"],
        },
        "p99": {
            "target": f"<= {fmt_us(TARGETS['max_p99_us'])}",
            "value": full["latency_us"]["p99"],
            "met": 0 < full["latency_us"]["p99"] <= TARGETS["max_p99_us"],
        },
    }
    if share is not None:
        out["share_of_bare"] = {
            "target": f">= {TARGETS['min_share_of_bare']:.0%} of the bare throughput",
            "value": share,
            "met": share >= TARGETS["min_share_of_bare"],
        }
    return out


async def run_rest(
    cfg: RestBenchConfig, *, command: str = "", bare_log: Path | None = None, progress: bool = False
) -> dict[str, Any]:
    """Run the bench (and the bare run when ``cfg.bare_sim``); the result document (module docstring).

    Raises BenchError when the main target cannot be reached. A bare run
    that cannot run is reported in the document (``bare.error``) instead,
    so the main run's figures are kept. ``progress``: a progress bar on
    stderr for each run.
    """
    started = datetime.now(UTC)
    doc: dict[str, Any] = {
        "benchmark": "rest",
        "command": command,
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_info(),
        "parameters": cfg.parameters(),
    }
    procs = cfg.procs or (ProcSpec(cfg.target_pid) if cfg.target_pid is not None else None)
    if cfg.rates:
        doc["figures"], doc["curve"] = await _curve(cfg, procs, progress)
        doc["targets"] = {}
        return doc
    doc["figures"] = await _measure(cfg, cfg.target, cfg.target_pid, "rest" if progress else None, procs)
    share: float | None = None
    if cfg.bare_sim is not None:
        log = bare_log or Path("bench") / "results" / f"bare-{started.strftime('%Y%m%dT%H%M%SZ')}.log"
        try:
            async with bare_server(cfg.bare_sim, log) as srv:
                target = HttpTarget(srv.host, srv.port, "")
                figures = await _measure(cfg, target, srv.pid, "rest bare" if progress else None)
                doc["bare"] = {"url": target.redacted(), "server_pid": srv.pid, "log": str(log), "figures": figures}
        except BenchError as e:
            doc["bare"] = {"error": str(e), "log": str(log)}
        else:
            full = doc["figures"]
            share = _ratio(full["throughput_per_s"], figures["throughput_per_s"])
            doc["ratio"] = {"throughput": share, "p99": _ratio(full["latency_us"]["p99"], figures["latency_us"]["p99"])}
    # The targets are judged on the closed loop (64 connections); an open loop's by --threshold.
    doc["targets"] = _targets(doc["figures"], share) if not cfg.rate else {}
    return doc


async def _curve(cfg: RestBenchConfig, procs: ProcSpec | None, progress: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """One open-loop run per rate, lowest first: (the figures at the highest rate meeting the SLO, or at the
    lowest rate when none did; the ``curve`` of the result document)."""
    points: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    for rate in sorted(cfg.rates):
        run_cfg = dataclasses.replace(cfg, rate=rate, rates=())
        label = f"rest {rate:g}/s" if progress else None
        figures = await _measure(run_cfg, cfg.target, cfg.target_pid, label, procs)
        lat = figures["latency_us"]
        met = figures["responses"] > 0 and lat["p99"] <= cfg.slo_p99_us
        points.append({"rate": rate, "met": met, "figures": figures})
        if met:
            best = points[-1]
    chosen = best or points[0]
    curve = {
        "slo_p99_us": cfg.slo_p99_us,
        "slo_rate": best["rate"] if best else None,
        "points": points,
    }
    return chosen["figures"], curve


def _curve_lines(curve: Mapping[str, Any]) -> list[str]:
    from bench.stats import render_table

    rows = []
    for pt in curve["points"]:
        f, lat = pt["figures"], pt["figures"]["latency_us"]
        rows.append(
            [
                fmt_rate(pt["rate"]),
                fmt_rate(f["throughput_per_s"]),
                *(fmt_us(lat[k]) for k in ("p50", "p90", "p99", "p99.9", "max")),
                f"{f['errors_total']:,}",
                f"{f.get('pacer_max_backlog', 0):,}",
                "met" if pt["met"] else "missed",
            ]
        )
    headers = ["offered", "answered", "p50", "p90", "p99", "p99.9", "max", "errors", "backlog", "p99 SLO"]
    table = render_table(headers, rows)
    slo = fmt_us(curve["slo_p99_us"])
    best = curve["slo_rate"]
    verdict = f"highest rate with p99 <= {slo}: " + (fmt_rate(best) if best is not None else "none of them")
    return ["  " + line for line in table.splitlines()] + [f"  {verdict}"]


def _figure_lines(f: Mapping[str, Any]) -> list[str]:
    lat = f["latency_us"]
    lines = [
        f"  responses       {f['responses']:,} in {f['elapsed_s']:.2f} s = {fmt_rate(f['throughput_per_s'])}",
        "  latency         "
        + "  ".join(f"{k} {fmt_us(lat[k])}" for k in ("p50", "p90", "p99", "p99.9", "max"))
        + f"  (mean {fmt_us(lat['mean'])})",
        f"  status codes    {fmt_counts(f['status_codes'])}"
        + (f"  ({f['unexpected_statuses']:,} not the card's status)" if f["unexpected_statuses"] else ""),
        f"  errors          {fmt_counts(f['errors'])}",
        f"  connections     {f['connections_opened']:,} opened for {f['connections']} slots "
        f"({f['requests_per_connection']:,.0f} responses each), "
        f"{f['connections_closed_by_server']:,} closed by the server",
    ]
    if "pacer_max_backlog" in f:
        lines.append(
            f"  open loop       latency from each request's intended send time; "
            f"max backlog {f['pacer_max_backlog']:,} requests waiting for a connection"
        )
    lines.append(f"  cpu             {fmt_cpu(f['cpu'])}")
    by_process = fmt_processes(f["cpu"])
    if by_process:
        lines.append(f"  cpu by process  {by_process}")
    return lines


def format_report(doc: Mapping[str, Any]) -> str:
    """The human summary of a result document."""
    p = doc["parameters"]
    span = f"{p['duration']:g} s (+{p['warmup']:g} s warmup)"
    if p.get("rates"):
        load = f"open loop at {', '.join(f'{r:g}' for r in sorted(p['rates']))}/s, <= {p['concurrency']} in flight"
        span += " per rate"
    elif p.get("rate"):
        load = f"open loop at {fmt_rate(p['rate'])}, <= {p['concurrency']} keep-alive connections"
    else:
        load = f"{p['concurrency']} keep-alive connections"
    lines = [f"rest bench, POST {p['endpoint']}: {load}, {span}"]
    curve = doc.get("curve")
    if curve is not None:
        lines += _curve_lines(curve)
        best = curve["slo_rate"]
        lines.append(f"at {fmt_rate(best)}:" if best is not None else "at the lowest rate (none met the SLO):")
    lines += _figure_lines(doc["figures"])
    bare = doc.get("bare")
    if bare is not None:
        if "error" in bare:
            lines.append(f"bare path: FAILED: {bare['error']}")
        else:
            lines.append(f"bare path (no database, validation or auth), {bare['url']}:")
            lines += _figure_lines(bare["figures"])
    ratio = doc.get("ratio")
    if ratio:
        t, p99 = ratio["throughput"], ratio["p99"]
        lines.append(
            "full / bare     throughput "
            + (f"{t:.0%}" if t is not None else "n/a")
            + ", p99 "
            + (f"{p99:.2f}x" if p99 is not None else "n/a")
        )
    targets = doc.get("targets", {})
    if targets:
        parts = [f"{name} {t['target']}: {'met' if t['met'] else 'MISSED'}" for name, t in targets.items()]
        lines.append(
            "targets         " + "; ".join(parts) + f" (the issue's, at 64 connections; here {p['concurrency']})"
        )
    return "\n".join(lines)
