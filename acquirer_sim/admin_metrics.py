"""The simulator's Prometheus metrics, served as ``GET /metrics`` on its admin port.

A collector reads the counters the server keeps anyway (:class:`SimStats`,
the issuer's repeats, the ledger's sizes) when scraped, so the message path
pays nothing for them. Each simulator has its own registry (several may run
in one process, next to a switch with its own).

>>> "acquirer_sim_requests" in METRIC_NAMES
True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from acquirer_sim.server import SimServer

__all__ = ["METRIC_NAMES", "SimCollector", "sim_registry"]

#: Every family the collector gives; counters without their ``_total`` suffix (as prometheus_client names them).
METRIC_NAMES: tuple[str, ...] = (
    "acquirer_sim_requests",
    "acquirer_sim_responses",
    "acquirer_sim_frames_sent",
    "acquirer_sim_connections",
    "acquirer_sim_connections_accepted",
    "acquirer_sim_decode_errors",
    "acquirer_sim_framing_errors",
    "acquirer_sim_faults",
    "acquirer_sim_repeats",
    "acquirer_sim_ledger_records",
    "acquirer_sim_ledger_records_dropped",
    "acquirer_sim_ledger_cards",
)


class SimCollector(Collector):
    """``sim``'s counters as Prometheus families, read at each collect."""

    def __init__(self, sim: SimServer) -> None:
        self._sim = sim

    def collect(self) -> Iterator[Metric]:
        sim = self._sim
        stats = sim.stats
        requests = CounterMetricFamily(
            "acquirer_sim_requests", "Messages decoded, by MTI ('other' past 64 distinct)", labels=["mti"]
        )
        for mti, n in sorted(stats.by_mti.items()):
            requests.add_metric([mti], n)
        yield requests
        responses = CounterMetricFamily(
            "acquirer_sim_responses", "Answers by DE 39 (fault and format-error answers aside)", labels=["rc"]
        )
        for rc, n in sorted(stats.by_rc.items()):
            responses.add_metric([rc], n)
        yield responses
        yield CounterMetricFamily("acquirer_sim_frames_sent", "Frames written back, of any kind", stats.responses)
        yield GaugeMetricFamily("acquirer_sim_connections", "ISO 8583 connections open", stats.connections)
        yield CounterMetricFamily(
            "acquirer_sim_connections_accepted", "ISO 8583 connections accepted", stats.connections_total
        )
        yield CounterMetricFamily("acquirer_sim_decode_errors", "Frames that did not decode", stats.decode_errors)
        yield CounterMetricFamily(
            "acquirer_sim_framing_errors", "Connections closed for a framing error", stats.framing_errors
        )
        yield CounterMetricFamily("acquirer_sim_faults", "Requests a fault rule took over", stats.faults)
        yield CounterMetricFamily(
            "acquirer_sim_repeats", "Requests answered as repeats of earlier ones", sim.issuer.repeats
        )
        ledger = sim.ledger
        yield GaugeMetricFamily("acquirer_sim_ledger_records", "Answered requests remembered", ledger.records)
        yield CounterMetricFamily(
            "acquirer_sim_ledger_records_dropped", "Records forgotten to stay within max_records", ledger.dropped
        )
        yield GaugeMetricFamily("acquirer_sim_ledger_cards", "Cards with books", len(ledger.accounts))


def sim_registry(sim: SimServer) -> CollectorRegistry:
    """A registry of ``sim``'s collector and the process collector (the simulator's own process when
    it runs alone)."""
    registry = CollectorRegistry()
    registry.register(SimCollector(sim))
    ProcessCollector(registry=registry)
    return registry
