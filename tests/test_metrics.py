"""Prometheus metrics: the REST front's /metrics and /health, the switch's families moving with real
traffic, the simulator's admin /metrics, and multi-process mode across real processes.

Everything real: PostgreSQL (tests/pg.py), the simulator on 127.0.0.1 port 0,
the runtime (router, writer, store-and-forward, ISO listener) and the REST
front on a TCP port. The metrics are per process and other tests run in this
one too, so checks compare before and after, and this module's destination
has a name of its own. Multi-process mode is fixed when prometheus_client is
first imported, so its test runs in fresh interpreters.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families
from sim_helpers import IsoClient, MessageFactory
from test_http_e2e import basic
from test_orders_fixtures import body, settings

from acquirer_sim import SimServer
from acquirer_sim.admin_metrics import METRIC_NAMES as SIM_METRIC_NAMES
from http_front import FrontConfig, create_app
from switch import metrics
from switch.config import SwitchConfig
from switch.listener import ListenerConfig
from switch.runtime import Runtime, RuntimeConfig, open_runtime
from switch.saf import SafConfig
from switch.store import DbConfig

fresh_dsn, pg_dsn = pg.fresh_dsn, pg.pg_dsn

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent
DEST = "metrics-sim"  # this module's destination: its iso_* series are its own
KEY = base64.b64encode(secrets.token_bytes(32)).decode()
FAST = SafConfig(poll_interval=0.02, backoff_base=0.02, backoff_cap=0.05, timeout=0.2, recovery_grace=60.0)
PROM_TEXT = "text/plain; version=1.0.0; charset=utf-8"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@dataclass
class Rig:
    http: TestClient[web.Request, web.Application]
    runtime: Runtime
    sim: SimServer
    auth: dict[str, str]

    async def scrape(self) -> Samples:
        resp = await self.http.get("/metrics")  # no credentials
        assert resp.status == 200
        assert resp.headers["Content-Type"] == PROM_TEXT
        return parse(await resp.text())

    async def authorize(self, **changes: Any) -> tuple[int, Any]:
        resp = await self.http.post("/orders/authorize", json=body(**changes), headers=self.auth)
        return resp.status, await resp.json()


@pytest.fixture
async def rig(sim: SimServer, fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Rig]:
    assert sim.address is not None
    host, port = sim.address
    switch = SwitchConfig.from_dict(
        {
            "destinations": [
                {"name": DEST, "host": host, "port": port, "links": 1, "echo_interval": 0.0, "timeout": 0.5}
            ],
            "routing": {"default": DEST},
        }
    )
    runtime = await open_runtime(
        RuntimeConfig(
            db=DbConfig(url=fresh_dsn, data_dir=scratch_dir, min_size=1, max_size=6),
            switch=switch,
            request_timeout=0.2,
            close_timeout=1.0,
            id_block_size=20,
            env={"ISOSWITCH_PAN_KEY": KEY},
            saf=FAST,
            listener=ListenerConfig(port=0, idle_timeout=5.0),
        )
    )
    try:
        _, password = await runtime.projects.create("metrics-shop", settings(1))
        async with TestClient(TestServer(create_app(runtime, FrontConfig(port=0)))) as http:
            yield Rig(http, runtime, sim, basic("metrics-shop", password))
    finally:
        await runtime.close()


async def eventually(check: Callable[[], Awaitable[Any]], seconds: float = 5.0) -> Any:
    for _ in range(int(seconds / 0.05)):
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


# -- the front's endpoints ---------------------------------------------------------------------------------


async def test_metrics_and_health_answer_without_credentials(rig: Rig) -> None:
    samples = await rig.scrape()
    assert value(samples, "isoswitch_link_state", destination=DEST, link=f"{DEST}#0", state="ready") == 1.0
    assert value(samples, "isoswitch_link_state", destination=DEST, link=f"{DEST}#0", state="closed") == 0.0
    assert value(samples, "isoswitch_iso_in_flight", destination=DEST) == 0.0
    assert ("process_cpu_seconds_total", ()) in samples  # the standard process collector (single process)
    assert value(samples, "isoswitch_saf_depth", state="pending") == 0.0

    resp = await rig.http.get("/health")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    assert await resp.json() == {"status": "ok"}


def test_every_family_of_the_catalogue_is_exported() -> None:
    metrics.flush()
    body_, content_type = metrics.render()
    assert content_type == PROM_TEXT
    names = {f.name for f in text_string_to_metric_families(body_.decode())}
    single_process_only = {n for n in metrics.METRIC_NAMES if n.startswith("isoswitch_process_")}
    assert set(metrics.METRIC_NAMES) - single_process_only <= names
    assert all(n.startswith("isoswitch_") and not n.endswith(("_bucket", "_count")) for n in metrics.METRIC_NAMES)


async def test_an_authorization_moves_the_http_iso_and_database_metrics(rig: Rig) -> None:
    before = await rig.scrape()
    status, doc = await rig.authorize()
    assert status == 200, doc
    after = await rig.scrape()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    http = {"route": "/orders/authorize", "method": "POST"}
    assert moved("isoswitch_http_requests_total", status="200", **http) == 1
    assert moved("isoswitch_http_request_duration_seconds_count", **http) == 1
    assert moved("isoswitch_http_request_duration_seconds_sum", **http) > 0
    assert moved("isoswitch_iso_request_duration_seconds_count", destination=DEST, mti="0100") == 1
    assert moved("isoswitch_iso_responses_total", destination=DEST, mti="0110", rc="00") == 1
    assert moved("isoswitch_db_write_batch_size_count") >= 2  # the intent and the result, at least
    assert moved("isoswitch_db_write_duration_seconds_count") >= 2
    # The scrape before this one was counted (under its template) once it had answered.
    assert moved("isoswitch_http_requests_total", route="/metrics", method="GET", status="200") == 1
    assert value(after, "isoswitch_http_requests_in_flight") == 1  # the scrape itself


async def test_http_routes_are_labelled_by_template_and_unrouted_paths_as_unmatched(rig: Rig) -> None:
    before = await rig.scrape()
    order_id = "12345678901234567"
    assert (await rig.http.get(f"/orders/{order_id}", headers=rig.auth)).status == 404  # no such order
    assert (await rig.http.get("/orders/")).status == 401
    assert (await rig.http.get(f"/no/such/{order_id}")).status == 404
    assert (await rig.http.request("PATCH", "/orders/")).status == 405
    assert (await rig.http.request("PROPFIND", "/orders/")).status == 405  # a method without a label of its own
    after = await rig.scrape()

    def moved(**labels: str) -> float:
        return value(after, "isoswitch_http_requests_total", **labels) - value(
            before, "isoswitch_http_requests_total", **labels
        )

    assert moved(route="/orders/{order_id}", method="GET", status="404") == 1
    assert moved(route="/orders/", method="GET", status="401") == 1
    assert moved(route="unmatched", method="GET", status="404") == 1
    assert moved(route="unmatched", method="PATCH", status="405") == 1
    assert moved(route="unmatched", method="other", status="405") == 1
    assert not any(order_id in dict(labels).get("route", "") for _, labels in after)


# -- timeouts, reversals, store-and-forward ---------------------------------------------------------------


async def test_a_timeout_counts_and_its_reversal_shows_in_the_saf_gauges_until_delivered(rig: Rig) -> None:
    unanswered = [{"action": "no_reply", "mti": m} for m in ("0100", "0400", "0420", "0421")]
    rig.sim.set_faults(unanswered)
    before = await rig.scrape()
    status, doc = await rig.authorize()
    assert status == 500 and doc["failure_type"] == "error", doc

    async def advised() -> Samples | None:
        now = await rig.scrape()
        return (
            now
            if value(now, "isoswitch_reversals_total", mti="0420")
            > value(before, "isoswitch_reversals_total", mti="0420")
            else None
        )

    during = await eventually(advised)

    def moved(name: str, **labels: str) -> float:
        return value(during, name, **labels) - value(before, name, **labels)

    assert moved("isoswitch_iso_timeouts_total", destination=DEST, mti="0100") == 1
    assert moved("isoswitch_iso_timeouts_total", destination=DEST, mti="0400") == 1
    assert moved("isoswitch_iso_request_duration_seconds_count", destination=DEST, mti="0100") == 0
    assert moved("isoswitch_reversals_total", mti="0400") == 1
    assert value(during, "isoswitch_saf_depth", state="pending") == 1
    assert value(during, "isoswitch_saf_oldest_age_seconds") > 0

    rig.sim.set_faults([])  # the host answers again: the advice is delivered and the row done

    async def drained() -> bool:
        now = await rig.scrape()
        return value(now, "isoswitch_saf_depth", state="pending") == 0

    await eventually(drained)
    after = await rig.scrape()
    assert value(after, "isoswitch_saf_oldest_age_seconds") == 0
    assert value(after, "isoswitch_saf_depth", state="manual") == 0


async def test_a_response_after_its_timeout_is_counted_late(rig: Rig) -> None:
    rig.sim.set_faults([{"action": "delay", "mti": "0100", "delay_ms": 500, "times": 1}])
    before = await rig.scrape()
    late_before = rig.runtime.late_responses
    status, _ = await rig.authorize()
    assert status == 500

    async def late() -> Samples | None:
        now = await rig.scrape()
        got = value(now, "isoswitch_iso_late_responses_total", destination=DEST)
        return now if got > value(before, "isoswitch_iso_late_responses_total", destination=DEST) else None

    after = await eventually(late)
    assert (
        value(after, "isoswitch_iso_late_responses_total", destination=DEST)
        - value(before, "isoswitch_iso_late_responses_total", destination=DEST)
        == rig.runtime.late_responses - late_before
        == 1
    )
    # Late is not answered: the round-trip histogram only has answered requests.
    assert value(after, "isoswitch_iso_request_duration_seconds_count", destination=DEST, mti="0100") == value(
        before, "isoswitch_iso_request_duration_seconds_count", destination=DEST, mti="0100"
    )


# -- the ISO listener -----------------------------------------------------------------------------------


async def test_the_listener_exports_its_connections_and_answers_by_mti_and_code(rig: Rig, mf: MessageFactory) -> None:
    listener = rig.runtime.listener
    assert listener is not None and listener.address is not None
    before = await rig.scrape()
    peer = await IsoClient.connect(listener.address)
    try:
        assert (await peer.request(mf.network("301")))["39"] == "00"
        stranger = MessageFactory(terminal="TERM9999", merchant="MERCHANT9999999")
        assert (await peer.request(stranger.auth()))["39"] == "03"  # unknown merchant
        during = await rig.scrape()
    finally:
        await peer.close()

    def moved(**labels: str) -> float:
        return value(during, "isoswitch_listener_messages_total", **labels) - value(
            before, "isoswitch_listener_messages_total", **labels
        )

    assert value(during, "isoswitch_listener_connections") == 1
    assert moved(mti="0800", rc="00") == 1
    assert moved(mti="0100", rc="03") == 1

    async def closed() -> bool:
        return value(await rig.scrape(), "isoswitch_listener_connections") == 0

    await eventually(closed)


# -- the simulator ---------------------------------------------------------------------------------------


async def test_the_simulators_admin_port_serves_its_counters(
    sim: SimServer, client: IsoClient, mf: MessageFactory
) -> None:
    assert (await client.request(mf.auth("4111111111111111")))["39"] == "00"
    assert (await client.request(mf.auth("4276990011343663")))["39"] == "05"
    assert (await client.request(mf.network("301")))["39"] == "00"
    assert sim.admin_address is not None
    host, port = sim.admin_address
    async with aiohttp.ClientSession() as session, session.get(f"http://{host}:{port}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == PROM_TEXT
        text = await resp.text()
    samples = parse(text)
    assert {f.name for f in text_string_to_metric_families(text)} >= set(SIM_METRIC_NAMES)
    assert value(samples, "acquirer_sim_requests_total", mti="0100") == 2
    assert value(samples, "acquirer_sim_requests_total", mti="0800") == 1
    assert value(samples, "acquirer_sim_responses_total", rc="00") == 2
    assert value(samples, "acquirer_sim_responses_total", rc="05") == 1
    assert value(samples, "acquirer_sim_connections") == 1
    assert value(samples, "acquirer_sim_ledger_cards") == len(sim.ledger.accounts) == 1  # a decline books nothing
    assert value(samples, "acquirer_sim_ledger_records") == sim.ledger.records > 0
    assert value(samples, "acquirer_sim_decode_errors_total") == 0
    assert not any("isoswitch" in name for name, _ in samples)  # its own registry, not the switch's


# -- recording ---------------------------------------------------------------------------------------


def test_a_flushed_histogram_equals_prometheus_clients_own_observations() -> None:
    # Histo.flush adds to prometheus_client's private bucket values; this pins it to observe()'s result.
    cell = metrics.histogram("isoswitch_iso_request_duration_seconds", "unit-destination", "0100")
    reference = Histogram("ref", "r", registry=CollectorRegistry(), buckets=metrics.LATENCY_BUCKETS)
    for batch in ([0.0001, 0.0005, 0.001, 0.0042], [], [0.5, 10.0, 12.0, 0.0025, 0.0025]):
        for v in batch:
            cell.observe(v)
            reference.observe(v)
        ours = parse(metrics.render()[0].decode())
        want = {
            (s.name.replace("ref", "isoswitch_iso_request_duration_seconds"), s.labels.get("le")): s.value
            for s in reference.collect()[0].samples
            if not s.name.endswith("_created")
        }
        got = {
            (name, dict(labels).get("le")): v
            for (name, labels), v in ours.items()
            if dict(labels).get("destination") == "unit-destination"
        }
        assert got == pytest.approx(want)


def test_cells_refuse_names_and_labels_outside_the_catalogue() -> None:
    with pytest.raises(ValueError):
        metrics.counter("isoswitch_no_such_thing")
    with pytest.raises(ValueError):
        metrics.counter("isoswitch_reversals")  # needs its mti label
    with pytest.raises(ValueError):
        metrics.histogram("isoswitch_reversals", "0400")  # a counter


# -- multi-process mode -----------------------------------------------------------------------------------

# What `isoswitch up --workers 2` does: the parent prepares the directory, then starts a worker that
# inherits it; both record; one scrape of the parent shows the sum; the worker's live gauges go when
# it is marked dead.
_PARENT = """
import json, os, subprocess, sys
from pathlib import Path
from switch import metrics

metrics.prepare_multiprocess(Path(sys.argv[1]))
assert "prometheus_client" not in sys.modules  # nothing loaded it before the first flush
metrics.counter("isoswitch_reversals", "0400").inc(3)
metrics.histogram("isoswitch_iso_request_duration_seconds", "mp", "0100").observe(0.003)
metrics.add_sampler(lambda: [("isoswitch_http_requests_in_flight", (), 2.0)])
metrics.set_saf(1, 0, 5.0)
metrics.flush()
worker = subprocess.run([sys.executable, "-c", sys.argv[2]], capture_output=True, text=True, check=True)
pid = int(worker.stdout)
both = metrics.render()[0].decode()
metrics.mark_process_dead(pid)
alone = metrics.render()[0].decode()
print(json.dumps({"worker": pid, "parent": os.getpid(), "both": both, "alone": alone}))
"""

_WORKER = """
import os
from switch import metrics

metrics.counter("isoswitch_reversals", "0400").inc(4)
metrics.histogram("isoswitch_iso_request_duration_seconds", "mp", "0100").observe(0.2)
metrics.add_sampler(lambda: [("isoswitch_http_requests_in_flight", (), 5.0)])
metrics.set_saf(3, 1, 9.0)  # read after the parent's: the most recent wins, not the sum
metrics.flush()
print(os.getpid())
"""


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != metrics.MULTIPROC_ENV}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=20,
        env={**base, **(env or {})},
        cwd=ROOT,
    )


def test_in_multiprocess_mode_one_scrape_sees_every_workers_sum(scratch_dir: Path) -> None:
    directory = scratch_dir / "stale"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"left by an earlier run")  # prepare_multiprocess empties it
    (directory / "pan.key").write_bytes(b"not ours")  # the directory may be shared: nothing else is touched
    run = _python(_PARENT, str(directory), textwrap.dedent(_WORKER))
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    both, alone = parse(out["both"]), parse(out["alone"])
    parent, worker = out["parent"], out["worker"]

    assert value(both, "isoswitch_reversals_total", mti="0400") == 7
    assert (directory / "pan.key").read_bytes() == b"not ours"
    assert value(both, "isoswitch_iso_request_duration_seconds_count", destination="mp", mti="0100") == 2
    assert value(both, "isoswitch_iso_request_duration_seconds_bucket", destination="mp", mti="0100", le="0.005") == 1
    assert value(both, "isoswitch_http_requests_in_flight") == 7  # livesum
    assert value(both, "isoswitch_saf_depth", state="pending") == 3  # mostrecent, not 4
    assert value(both, "isoswitch_saf_oldest_age_seconds") == 9
    for pid in (parent, worker):
        assert value(both, "isoswitch_process_resident_memory_bytes", pid=str(pid)) > 0
        assert ("isoswitch_process_cpu_seconds_total", (("pid", str(pid)),)) in both
    assert not any(name.startswith("process_") for name, _ in both)  # per-process only, with a pid

    # The worker exited: its counts stay in the sums, its live gauges go.
    assert value(alone, "isoswitch_reversals_total", mti="0400") == 7
    assert value(alone, "isoswitch_http_requests_in_flight") == 2
    assert ("isoswitch_process_resident_memory_bytes", (("pid", str(worker)),)) not in alone
    assert ("isoswitch_process_resident_memory_bytes", (("pid", str(parent)),)) in alone


def test_prepare_multiprocess_refuses_once_prometheus_client_runs_single_process(scratch_dir: Path) -> None:
    run = _python(
        """
        import sys
        from pathlib import Path
        from switch import metrics
        metrics.flush()  # loads prometheus_client in single-process mode
        try:
            metrics.prepare_multiprocess(Path(sys.argv[1]))
        except RuntimeError:
            print("refused")
        """,
        str(scratch_dir / "mp"),
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "refused"


def test_response_codes_from_a_remote_host_cannot_make_up_label_values() -> None:
    assert [metrics.rc_label(rc) for rc in ("00", "N7", None)] == ["00", "N7", "none"]
    assert {metrics.rc_label(rc) for rc in ("0a", "é1", " 1", "\x00\x01", "000", "")} == {"other"}
    before = set(metrics._RC_SEEN)
    try:
        seen = {metrics.rc_label(f"{i // 36:X}{i % 36:X}"[-2:]) for i in range(400)}
        assert len(seen - {"other"}) <= metrics._RC_MAX and "other" in seen
    finally:
        metrics._RC_SEEN.clear()
        metrics._RC_SEEN.update(before)  # later tests' codes must not be "other"
