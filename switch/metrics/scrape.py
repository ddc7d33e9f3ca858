"""The scrape, and multi-process mode (``isoswitch up --workers N``).

N processes share the REST port, a scrape reaches any one of them and must
see the sum. The mechanism is prometheus_client's: each process writes its
values to files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape merges them.
Counters and histograms add up; gauges combine per family (the catalogue's
``mode``: in-flight gauges ``livesum``, link states ``liveall`` with a
``pid`` label, the store-and-forward gauges ``mostrecent``, so they are never
summed across workers).

The process that starts the workers calls :func:`prepare_multiprocess`
before the first flush/render/set_saf -- first thing in the CLI, before the
runtime opens -- and starts the workers after it, so that they inherit the
variable. When a worker exits, the parent calls :func:`mark_process_dead`
with its pid.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from switch.metrics.export import _families, flush

__all__ = [
    "MULTIPROC_ENV",
    "REFRESH_INTERVAL",
    "mark_process_dead",
    "multiprocess_dir",
    "prepare_multiprocess",
    "refresh_forever",
    "render",
]

log = logging.getLogger("isoswitch.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Seconds between flushes of each worker in multi-process mode (what a scrape may lag behind).
REFRESH_INTERVAL = 2.0


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
