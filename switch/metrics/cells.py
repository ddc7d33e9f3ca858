"""The hot-path cells: a counter is an int, a histogram a list of bucket counts.

A link's request or the front's middleware adds to these and never calls
prometheus_client: a cell costs about 0.1 µs, prometheus_client's own
``inc``/``observe`` 0.3/0.7 µs under its lock (0.8/1.7 µs in multi-process
mode, where each writes a memory-mapped file). Each cell copies its news
into its prometheus_client child when flushed (``_flush``, called by
:func:`switch.metrics.flush`). Cells are made once per label set and kept,
so the hot path allocates nothing.

>>> c = counter("isoswitch_reversals", "0400")
>>> c is counter("isoswitch_reversals", "0400"), rc_label("51"), rc_label("5\\n")
(True, '51', 'other')
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from switch.metrics.catalogue import _spec

if TYPE_CHECKING:
    from switch.metrics.export import _Families

__all__ = ["Count", "Histo", "IsoMetrics", "RequestCells", "counter", "histogram", "iso", "rc_label"]

_cells: list[Count | Histo] = []  # every cell made, in order: what a flush walks


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


class RequestCells:
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
        self._requests: dict[str, RequestCells] = {}
        self._responses: dict[str, dict[str | None, Count]] = {}

    def request(self, mti: str) -> RequestCells:
        """Round-trip histogram and timeout counter of requests with this MTI."""
        try:
            return self._requests[mti]
        except KeyError:
            cells = self._requests[mti] = RequestCells(self.destination, mti)
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
