"""Process metrics: the standard collectors in single-process mode, per-worker gauges in multi-process mode.

prometheus_client's process collector describes the one process it runs in,
which is wrong once several workers answer scrapes of one port; there each
worker exports ``isoswitch_process_*{pid}`` gauges (``liveall``) instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from switch.metrics.gauges import Sample

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["ProcessSampler", "add_standard_collectors", "per_worker"]


def per_worker(name: str) -> bool:
    """Whether family ``name`` is one of the multi-process mode's per-worker process gauges."""
    return name.startswith("isoswitch_process_")


def add_standard_collectors(registry: CollectorRegistry) -> None:
    """Single-process mode: prometheus_client's process, platform and GC collectors."""
    from prometheus_client.gc_collector import GCCollector
    from prometheus_client.platform_collector import PlatformCollector
    from prometheus_client.process_collector import ProcessCollector

    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class ProcessSampler:
    """CPU time and resident memory of this process, read through psutil at each flush."""

    __slots__ = ("_process",)

    def __init__(self) -> None:
        self._process: Any = None

    def __call__(self) -> Iterable[Sample]:
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
