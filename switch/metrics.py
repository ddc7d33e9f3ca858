"""Prometheus metrics of the switch and its REST front: the catalogue, cheap recording, exposition.

**Recording.** The hot paths (a link's request, the front's middleware) never
call prometheus_client. They add to plain cells -- :class:`Count` is an int,
:class:`Histo` a list of bucket counts filled by ``bisect`` -- which
:func:`flush` copies into prometheus_client's metrics: at each scrape
(:func:`render`) and, with several worker processes, every
``REFRESH_INTERVAL`` seconds (:func:`refresh_forever`, run by the runtime).
A cell costs about 0.1 µs; prometheus_client's own ``inc``/``observe`` cost
0.3/0.7 µs under its lock, and 0.8/1.7 µs in multi-process mode, where each
one writes a memory-mapped file. Cells are cached per label set (by
:func:`counter`, :func:`histogram`, :func:`iso`), so the hot path allocates
nothing. Gauges are read when flushed: links' states and requests in
flight (:func:`watch_link`), listener connections (:func:`watch_listener`),
anything else through :func:`add_sampler`; a series that disappears (its
link was collected) goes to 0.

**Names.** :data:`METRIC_NAMES` lists every family this module defines, as
prometheus_client names them: a counter *without* its ``_total`` suffix
(``isoswitch_http_requests``; a query reads ``isoswitch_http_requests_total``),
a histogram without ``_bucket``/``_sum``/``_count``. The per-worker process
gauges of multi-process mode are gauges, so their ``_total`` is part of the name.

**Multi-process mode** (``isoswitch up --workers N``: N processes share the
REST port, a scrape reaches any one of them and must see the sum). It is
prometheus_client's: each process writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` and a scrape merges them. Counters and
histograms add up; gauges combine per family (``mode`` below: in-flight
gauges ``livesum``, link states ``liveall`` with a ``pid`` label, the
store-and-forward gauges ``mostrecent``, so they are never summed across
workers). The default process collector describes one process only, so it is
replaced by per-worker ``isoswitch_process_*{pid}`` gauges.

**Import-order rule.** prometheus_client chooses single- or multi-process
mode once per process, when its ``values`` module is first imported, from
``PROMETHEUS_MULTIPROC_DIR``. This module imports prometheus_client only at
the first :func:`flush`/:func:`render`/:func:`set_saf` (never at import,
never on the hot path), so the process that starts the workers calls
:func:`prepare_multiprocess` before any of those -- first thing in the CLI,
before the runtime opens -- and starts the workers after it, so that they
inherit the variable. :func:`prepare_multiprocess` raises if
prometheus_client was already loaded in single-process mode. When a worker
exits, the parent calls :func:`mark_process_dead` with its pid.

>>> c = counter("isoswitch_reversals", "0400")
>>> c is counter("isoswitch_reversals", "0400"), "isoswitch_http_requests" in METRIC_NAMES
(True, True)
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import sys
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "BATCH_BUCKETS",
    "LATENCY_BUCKETS",
    "METRIC_NAMES",
    "MULTIPROC_ENV",
    "REFRESH_INTERVAL",
    "Count",
    "Histo",
    "IsoMetrics",
    "IsoRequest",
    "add_sampler",
    "counter",
    "flush",
    "histogram",
    "iso",
    "mark_process_dead",
    "multiprocess_dir",
    "prepare_multiprocess",
    "refresh_forever",
    "render",
    "set_saf",
    "watch_link",
    "watch_listener",
]

log = logging.getLogger("isoswitch.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Seconds between flushes of each worker in multi-process mode (what a scrape may lag behind).
REFRESH_INTERVAL = 2.0

#: Seconds; from well under a loopback round trip (~1 ms) to the longest timeout (10 s).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Writes per group commit (GroupWriter.max_batch defaults to 512).
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)


@dataclass(frozen=True, slots=True)
class _Spec:
    kind: str  # counter | histogram | gauge
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    mode: str = "all"  # gauges: how values of several processes combine (prometheus_client multiprocess_mode)


_SPECS: dict[str, _Spec] = {
    # REST front (http_front.metrics)
    "isoswitch_http_requests": _Spec(
        "counter", "HTTP requests answered, by route template ('unmatched': no route), method and status",
        ("route", "method", "status"),
    ),
    "isoswitch_http_request_duration_seconds": _Spec(
        "histogram", "Time from receiving an HTTP request to its response", ("route", "method"), LATENCY_BUCKETS
    ),
    "isoswitch_http_requests_in_flight": _Spec("gauge", "HTTP requests being handled", mode="livesum"),
    # links (switch.link)
    "isoswitch_iso_request_duration_seconds": _Spec(
        "histogram", "Round trip of answered ISO 8583 requests, by request MTI", ("destination", "mti"),
        LATENCY_BUCKETS,
    ),
    "isoswitch_iso_responses": _Spec(
        "counter", "ISO 8583 responses to our requests, by response MTI and DE 39 ('none': absent)",
        ("destination", "mti", "rc"),
    ),
    "isoswitch_iso_timeouts": _Spec(
        "counter", "ISO 8583 requests that got no response in time, by request MTI", ("destination", "mti")
    ),
    "isoswitch_iso_late_responses": _Spec(
        "counter", "Financial responses that arrived after their request timed out (never applied)", ("destination",)
    ),
    "isoswitch_iso_in_flight": _Spec(
        "gauge", "ISO 8583 requests awaiting a response", ("destination",), mode="livesum"
    ),
    "isoswitch_link_state": _Spec(
        "gauge", "1 for the link's current state, 0 for the others", ("destination", "link", "state"), mode="liveall"
    ),
    # store-and-forward (switch.orders.saf)
    "isoswitch_reversals": _Spec(
        "counter", "Reversals of unknown outcomes sent: the immediate 0400, then 0420/0421 advices", ("mti",)
    ),
    "isoswitch_saf_depth": _Spec(
        "gauge", "Store-and-forward rows by state (read from the database at scrape)", ("state",), mode="mostrecent"
    ),
    "isoswitch_saf_oldest_age_seconds": _Spec(
        "gauge", "Age of the oldest pending store-and-forward row (0: none)", mode="mostrecent"
    ),
    # database (switch.store.writer)
    "isoswitch_db_write_batch_size": _Spec(
        "histogram", "Writes per group commit of the group writer", buckets=BATCH_BUCKETS
    ),
    "isoswitch_db_write_duration_seconds": _Spec(
        "histogram", "Time a group commit takes, statements and commit", buckets=LATENCY_BUCKETS
    ),
    # ISO listener (switch.listener)
    "isoswitch_listener_connections": _Spec("gauge", "Open connections of the ISO listener", mode="livesum"),
    "isoswitch_listener_messages": _Spec(
        "counter", "Requests received by the ISO listener, by MTI ('other': unsupported) and the DE 39 answered",
        ("mti", "rc"),
    ),
    # multi-process mode only (single-process mode exports the standard process_* collector instead)
    "isoswitch_process_cpu_seconds_total": _Spec(
        "gauge", "CPU time (user + system) of one worker process", mode="liveall"
    ),
    "isoswitch_process_resident_memory_bytes": _Spec(
        "gauge", "Resident memory of one worker process", mode="liveall"
    ),
}  # fmt: skip

#: Every isoswitch_* family, as prometheus_client names it: counters without ``_total``, histograms
#: without ``_bucket``/``_sum``/``_count`` (the dashboards and tests/test_deploy.py check against it).
METRIC_NAMES: tuple[str, ...] = tuple(_SPECS)

# -- cells --------------------------------------------------------------------------------------

_lock = threading.Lock()  # flushes (a scrape may come from another thread); never taken on the hot path
_cells: list[Count | Histo] = []


class Count:
    """A counter's value in this process since start; ``inc`` is an integer add."""

    __slots__ = ("_child", "_done", "_labels", "_name", "value")

    def __init__(self, name: str, labels: tuple[str, ...]) -> None:
        self.value = 0
        self._name = name
        self._labels = labels
        self._done = 0  # what flush already added to the prometheus counter
        self._child: Any = None

    def inc(self, n: int = 1) -> None:
        self.value += n

    def _flush(self, fams: _Families) -> None:
        value = self.value
        delta = value - self._done
        if delta:
            if self._child is None:
                self._child = fams.child(self._name, self._labels)
            self._child.inc(delta)
            self._done = value


class Histo:
    """A histogram's bucket counts and sum in this process; ``observe`` is one bisect and two adds."""

    __slots__ = ("_bounds", "_child", "_done", "_done_sum", "_labels", "_name", "counts", "sum")

    def __init__(self, name: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> None:
        self._bounds = [*buckets, float("inf")]
        self.counts = [0] * len(self._bounds)  # per bucket, not cumulative (as prometheus_client keeps them)
        self.sum = 0.0
        self._name = name
        self._labels = labels
        self._done = [0] * len(self._bounds)
        self._done_sum = 0.0
        self._child: Any = None

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, i.e. prometheus' "value <= le" bucket.
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def _flush(self, fams: _Families) -> None:
        counts, total = list(self.counts), self.sum
        if counts == self._done:
            return
        if self._child is None:
            self._child = fams.child(self._name, self._labels)
        # prometheus_client has no public "add n observations" call: its histogram keeps one value per
        # bucket (``_buckets``) and ``_sum``, which observe() increments; we increment them by the deltas.
        # tests/test_metrics.py checks the result against observe() so an upgrade that changes this shows.
        buckets = self._child._buckets
        for i, n in enumerate(counts):
            delta = n - self._done[i]
            if delta:
                buckets[i].inc(delta)
        self._child._sum.inc(total - self._done_sum)
        self._done = counts
        self._done_sum = total


_counters: dict[tuple[str, tuple[str, ...]], Count] = {}
_histograms: dict[tuple[str, tuple[str, ...]], Histo] = {}


def _spec(name: str, kind: str, labels: tuple[str, ...]) -> _Spec:
    spec = _SPECS.get(name)
    if spec is None or spec.kind != kind:
        raise ValueError(f"{name} is not a {kind} of the catalogue")
    if len(labels) != len(spec.labels):
        raise ValueError(f"{name} takes labels {spec.labels}, got {labels}")
    return spec


def counter(name: str, *labels: str) -> Count:
    """The cell of counter ``name`` (without ``_total``) for these label values, made once and kept."""
    key = (name, labels)
    cell = _counters.get(key)
    if cell is None:
        _spec(name, "counter", labels)
        cell = _counters.setdefault(key, Count(name, labels))
        _cells.append(cell)
    return cell


def histogram(name: str, *labels: str) -> Histo:
    """The cell of histogram ``name`` for these label values, made once and kept."""
    key = (name, labels)
    cell = _histograms.get(key)
    if cell is None:
        spec = _spec(name, "histogram", labels)
        cell = _histograms.setdefault(key, Histo(name, labels, spec.buckets))
        _cells.append(cell)
    return cell


class IsoRequest:
    """The cells of one destination's requests of one MTI."""

    __slots__ = ("duration", "timeouts")

    def __init__(self, destination: str, mti: str) -> None:
        self.duration = histogram("isoswitch_iso_request_duration_seconds", destination, mti)
        self.timeouts = counter("isoswitch_iso_timeouts", destination, mti)


class IsoMetrics:
    """The cells of one destination's links, by MTI (shared by every link of the destination)."""

    __slots__ = ("_requests", "_responses", "destination", "late")

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self.late = counter("isoswitch_iso_late_responses", destination)
        self._requests: dict[str, IsoRequest] = {}
        self._responses: dict[str, dict[str | None, Count]] = {}

    def request(self, mti: str) -> IsoRequest:
        """Round-trip histogram and timeout counter of requests with this MTI."""
        try:
            return self._requests[mti]
        except KeyError:
            cells = self._requests[mti] = IsoRequest(self.destination, mti)
            return cells

    def response(self, mti: str, rc: str | None) -> Count:
        """The counter of responses with this MTI and DE 39 (None: absent)."""
        by_rc = self._responses.get(mti)
        if by_rc is None:
            by_rc = self._responses[mti] = {}
        cell = by_rc.get(rc)
        if cell is None:
            cell = by_rc[rc] = counter("isoswitch_iso_responses", self.destination, mti, rc_label(rc))
        return cell


_iso: dict[str, IsoMetrics] = {}

_RC_SEEN: set[str] = set()
_RC_MAX = 64  # distinct response-code labels; the table has ~30, so past this a peer is making them up


def rc_label(rc: str | None) -> str:
    """DE 39 as a label value: two digits/capitals, at most ``_RC_MAX`` distinct ones, else ``other``.

    The code comes from a remote host (or peer): unchecked, it could make up label values without end.
    """
    if rc is None:
        return "none"
    if rc in _RC_SEEN:
        return rc
    if len(rc) != 2 or not rc.isascii() or not rc.isalnum() or (not rc.isupper() and not rc.isdigit()):
        return "other"
    if len(_RC_SEEN) >= _RC_MAX:
        return "other"
    _RC_SEEN.add(rc)
    return rc


def iso(destination: str) -> IsoMetrics:
    """The cells of ``destination`` (a pool's name), made once and kept."""
    m = _iso.get(destination)
    if m is None:
        m = _iso.setdefault(destination, IsoMetrics(destination))
    return m


# -- gauges, read at flush ---------------------------------------------------------------------


class _LinkLike(Protocol):
    @property
    def label(self) -> str: ...
    @property
    def destination(self) -> str: ...
    @property
    def state(self) -> enum.Enum: ...
    @property
    def in_flight(self) -> int: ...


class _ListenerStats(Protocol):
    @property
    def connections(self) -> int: ...


class _ListenerLike(Protocol):
    @property
    def stats(self) -> _ListenerStats: ...


Sample = tuple[str, tuple[str, ...], float]
_links: weakref.WeakSet[Any] = weakref.WeakSet()
_listeners: weakref.WeakSet[Any] = weakref.WeakSet()
_samplers: list[Callable[[], Iterable[Sample]]] = []
_gauges_set: dict[str, set[tuple[str, ...]]] = {}  # series set by the last flush, to zero the vanished


def watch_link(link: _LinkLike) -> None:
    """Export the link's state and requests in flight while it lives (weakly referenced)."""
    _links.add(link)


def watch_listener(listener: _ListenerLike) -> None:
    """Export the listener's open connections while it lives (weakly referenced)."""
    _listeners.add(listener)


def add_sampler(sampler: Callable[[], Iterable[Sample]]) -> None:
    """``sampler()`` gives (gauge name, label values, value) at each flush; values of one series add up."""
    _samplers.append(sampler)


def _link_samples() -> Iterable[Sample]:
    # Two links may share a name (a closed one not yet collected, and its successor): the live one counts.
    shown: dict[tuple[str, str], _LinkLike] = {}
    in_flight: dict[str, float] = {}
    for link in list(_links):
        key = (link.destination, link.label)
        other = shown.get(key)
        if other is None or (other.state.value == "closed" and link.state.value != "closed"):
            shown[key] = link
        in_flight[link.destination] = in_flight.get(link.destination, 0.0) + link.in_flight
    for (destination, label), link in shown.items():
        for state in type(link.state):
            yield "isoswitch_link_state", (destination, label, str(state.value)), float(state is link.state)
    for destination, n in in_flight.items():
        yield "isoswitch_iso_in_flight", (destination,), n


def _listener_samples() -> Iterable[Sample]:
    yield "isoswitch_listener_connections", (), float(sum(lst.stats.connections for lst in list(_listeners)))


# -- prometheus_client, loaded at the first flush ------------------------------------------------


class _Families:
    """The prometheus_client metric objects (one per family) and the registry a scrape reads."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, values
        from prometheus_client.gc_collector import GCCollector
        from prometheus_client.platform_collector import PlatformCollector
        from prometheus_client.process_collector import ProcessCollector

        # No *_created series: the text format does not need them and they would double the series count.
        disable_created_metrics()
        self.multiprocess: bool = bool(getattr(values.ValueClass, "_multiprocess", False))
        # Multi-process mode: values go to files and a scrape reads the files (render()), not this registry.
        self.registry: CollectorRegistry | None = None if self.multiprocess else CollectorRegistry()
        reg = self.registry
        self.metrics: dict[str, Any] = {}
        for name, spec in _SPECS.items():
            if spec.kind == "counter":
                self.metrics[name] = Counter(name, spec.help, spec.labels, registry=reg)
            elif spec.kind == "histogram":
                self.metrics[name] = Histogram(name, spec.help, spec.labels, registry=reg, buckets=spec.buckets)
            elif name.startswith("isoswitch_process_") and not self.multiprocess:
                continue  # the standard process collector below says it
            else:
                mode: Any = spec.mode
                self.metrics[name] = Gauge(name, spec.help, spec.labels, registry=reg, multiprocess_mode=mode)
        if reg is not None:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
            GCCollector(registry=reg)
        self._process: Any = None

    def child(self, name: str, labels: tuple[str, ...]) -> Any:
        metric = self.metrics[name]
        return metric.labels(*labels) if labels else metric

    def set_gauges(self, samples: Iterable[Sample]) -> None:
        series: dict[str, dict[tuple[str, ...], float]] = {}
        for name, labels, value in samples:
            by_labels = series.setdefault(name, {})
            by_labels[labels] = by_labels.get(labels, 0.0) + value
        for name, by_labels in series.items():
            for labels, value in by_labels.items():
                self.child(name, labels).set(value)
        for name, before in _gauges_set.items():
            for labels in before - series.get(name, {}).keys():
                self.child(name, labels).set(0.0)
        _gauges_set.clear()
        _gauges_set.update({name: set(by_labels) for name, by_labels in series.items()})

    def process_samples(self) -> Iterable[Sample]:
        if not self.multiprocess:
            return
        try:
            import psutil

            if self._process is None:
                self._process = psutil.Process()
            cpu = self._process.cpu_times()
            rss = self._process.memory_info().rss
        except Exception:  # psutil missing or /proc unreadable: the gauges stay as they were
            return
        yield "isoswitch_process_cpu_seconds_total", (), float(cpu.user + cpu.system)
        yield "isoswitch_process_resident_memory_bytes", (), float(rss)


_families_obj: _Families | None = None


def _families() -> _Families:
    global _families_obj
    if _families_obj is None:
        with _lock:
            if _families_obj is None:
                _families_obj = _Families()
    return _families_obj


def flush() -> None:
    """Copy every cell's news and every gauge's current value into prometheus_client."""
    fams = _families()
    with _lock:
        for cell in list(_cells):
            cell._flush(fams)
        samples: list[Sample] = [*_link_samples(), *_listener_samples(), *fams.process_samples()]
        for sampler in list(_samplers):
            try:
                samples.extend(sampler())
            except Exception:
                log.warning("metrics sampler failed", exc_info=True)
        fams.set_gauges(samples)


def set_saf(pending: int, manual: int, oldest_pending_seconds: float) -> None:
    """The store-and-forward gauges (from ``Runtime.saf_counts()``), set when read: the latest read wins."""
    fams = _families()
    with _lock:
        fams.child("isoswitch_saf_depth", ("pending",)).set(pending)
        fams.child("isoswitch_saf_depth", ("manual",)).set(manual)
        fams.child("isoswitch_saf_oldest_age_seconds", ()).set(oldest_pending_seconds)


def render() -> tuple[bytes, str]:
    """(body, content type) of a scrape: this process's values flushed, then the registry (or every
    worker's files in multi-process mode) in Prometheus text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    flush()
    fams = _families()
    if fams.registry is not None:
        return generate_latest(fams.registry), CONTENT_TYPE_LATEST
    # Per scrape, as prometheus_client's documentation does: the collector reads the files when collected.
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(multiprocess_dir()))
    return generate_latest(registry), CONTENT_TYPE_LATEST


# -- multi-process mode ------------------------------------------------------------------------


def multiprocess_dir() -> Path | None:
    """The directory of multi-process mode, or None in single-process mode."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_multiprocess(directory: Path) -> None:
    """Make this process and the workers it starts afterwards (they inherit the environment) share
    metrics through ``directory``: created, its ``*.db`` sample files of an earlier run removed (they
    would add up), and ``PROMETHEUS_MULTIPROC_DIR`` set. Call before the first flush/render/set_saf.

    Only prometheus_client's own files are removed: the directory is configurable, and pointing it
    at the data directory must not cost the database or the PAN key. Raises RuntimeError when
    prometheus_client is already loaded in single-process mode.
    """
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
        raise RuntimeError("prometheus_client is already loaded in single-process mode: prepare earlier")
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.db"):
        old.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)


def mark_process_dead(pid: int) -> None:
    """A worker exited: drop its live gauges (link states, in flight, process); its counts stay in the sums."""
    directory = multiprocess_dir()
    if directory is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(directory))


async def refresh_forever(interval: float = REFRESH_INTERVAL) -> None:
    """In multi-process mode, flush every ``interval`` seconds and once more when cancelled (so a
    scrape of another worker sees this one's values); in single-process mode return at once (the
    scrape flushes)."""
    if multiprocess_dir() is None:
        return
    try:
        while True:
            await asyncio.sleep(interval)
            _flush_logged()
    finally:
        _flush_logged()


def _flush_logged() -> None:
    try:
        flush()
    except Exception:
        # A full disk or a removed directory must not stop the worker: the next round tries again.
        log.warning("metrics flush failed", exc_info=True)
