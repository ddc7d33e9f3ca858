"""The copy into prometheus_client: its families, made at the first flush, and :func:`flush` itself.

**Import-order rule.** prometheus_client chooses single- or multi-process
mode once per process, when its ``values`` module is first imported, from
``PROMETHEUS_MULTIPROC_DIR``. It is imported here only at the first
:func:`flush` / :func:`set_saf` / scrape (never at import, never on the hot
path); :func:`switch.metrics.prepare_multiprocess` must come before those.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from switch.metrics.catalogue import _SPECS
from switch.metrics.cells import _cells
from switch.metrics.gauges import Sample, _link_samples, _listener_samples, _samplers
from switch.metrics.process import ProcessSampler, add_standard_collectors, per_worker

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["flush", "set_mail_depth", "set_saf", "set_webhook_depth"]

log = logging.getLogger("isoswitch.metrics")

_lock = threading.Lock()  # flushes (a scrape may come from another thread); never taken on the hot path
_gauges_set: dict[str, set[tuple[str, ...]]] = {}  # series set by the last flush, to zero the vanished


class _Families:
    """The prometheus_client metric objects (one per family) and the registry a scrape reads."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, values

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
            elif per_worker(name) and not self.multiprocess:
                continue  # the standard process collector below says it
            else:
                mode: Any = spec.mode
                self.metrics[name] = Gauge(name, spec.help, spec.labels, registry=reg, multiprocess_mode=mode)
        if reg is not None:
            add_standard_collectors(reg)
        self._process = ProcessSampler()

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
        return self._process() if self.multiprocess else ()


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


def set_mail_depth(pending: int, failed: int) -> None:
    """The mail outbox gauges (from ``Runtime.mail_counts()``), set when read: the latest read wins."""
    fams = _families()
    with _lock:
        fams.child("isoswitch_mail_outbox_depth", ("pending",)).set(pending)
        fams.child("isoswitch_mail_outbox_depth", ("failed",)).set(failed)


def set_webhook_depth(pending: int, failed: int) -> None:
    """The webhook outbox gauges (from ``Runtime.webhook_counts()``), set when read: the latest read wins."""
    fams = _families()
    with _lock:
        fams.child("isoswitch_webhook_outbox_depth", ("pending",)).set(pending)
        fams.child("isoswitch_webhook_outbox_depth", ("failed",)).set(failed)
