"""Prometheus metrics of the switch and its REST front: the catalogue, cheap recording, exposition.

**Recording** (:mod:`.cells`). The hot paths (a link's request, the front's
middleware) never call prometheus_client. They add to plain cells --
:class:`Count` is an int, :class:`Histo` a list of bucket counts filled by
``bisect`` -- which :func:`flush` (:mod:`.export`) copies into
prometheus_client's metrics: at each scrape (:func:`render`) and, with
several worker processes, every ``REFRESH_INTERVAL`` seconds
(:func:`refresh_forever`, run by the runtime). Gauges are read when flushed
(:mod:`.gauges`): links' states and requests in flight (:func:`watch_link`),
listener connections (:func:`watch_listener`), anything else through
:func:`add_sampler`.

**Names** (:mod:`.catalogue`). :data:`METRIC_NAMES` lists every family
defined here, as prometheus_client names them: a counter *without* its
``_total`` suffix (``isoswitch_http_requests``; a query reads
``isoswitch_http_requests_total``), a histogram without
``_bucket``/``_sum``/``_count``. The per-worker process gauges of
multi-process mode (:mod:`.process`) are gauges, so their ``_total`` is part
of the name.

**Multi-process mode and the scrape** (:mod:`.scrape`): prometheus_client's
files in ``PROMETHEUS_MULTIPROC_DIR``, merged at each scrape; call
:func:`prepare_multiprocess` before prometheus_client is first loaded (the
import-order rule in :mod:`.export`).

Callers use the package (``from switch import metrics`` then ``metrics.counter(...)``);
the modules are the layout.

>>> c = counter("isoswitch_reversals", "0400")
>>> c is counter("isoswitch_reversals", "0400"), "isoswitch_http_requests" in METRIC_NAMES
(True, True)
"""

from switch.metrics.catalogue import _SPECS as _SPECS  # tests/test_deploy.py checks dashboard labels
from switch.metrics.catalogue import BATCH_BUCKETS, LATENCY_BUCKETS, METRIC_NAMES
from switch.metrics.cells import _RC_MAX as _RC_MAX  # tests/test_metrics.py bounds rc labels
from switch.metrics.cells import _RC_SEEN as _RC_SEEN
from switch.metrics.cells import (
    Count,
    Histo,
    IsoMetrics,
    RequestCells,
    counter,
    histogram,
    iso,
    rc_label,
)
from switch.metrics.export import flush, set_mail_depth, set_saf, set_webhook_depth
from switch.metrics.gauges import Sample, add_sampler, watch_link, watch_listener
from switch.metrics.scrape import (
    MULTIPROC_ENV,
    REFRESH_INTERVAL,
    mark_process_dead,
    multiprocess_dir,
    prepare_multiprocess,
    refresh_forever,
    render,
)

__all__ = [
    "BATCH_BUCKETS",
    "LATENCY_BUCKETS",
    "METRIC_NAMES",
    "MULTIPROC_ENV",
    "REFRESH_INTERVAL",
    "Count",
    "Histo",
    "IsoMetrics",
    "RequestCells",
    "Sample",
    "add_sampler",
    "counter",
    "flush",
    "histogram",
    "iso",
    "mark_process_dead",
    "multiprocess_dir",
    "prepare_multiprocess",
    "rc_label",
    "refresh_forever",
    "render",
    "set_saf",
    "set_mail_depth",
    "set_webhook_depth",
    "watch_link",
    "watch_listener",
]
