"""The catalogue: every isoswitch_* family, its kind, help text, labels, buckets and multi-process mode.

Data, not code: the cells (:mod:`.cells`) refuse a name or a label count it
does not list, prometheus_client's families are made from it at the first
flush (:mod:`.export`), and the dashboards are checked against it
(tests/test_deploy.py reads ``_SPECS`` and ``METRIC_NAMES``).

>>> "isoswitch_http_requests" in METRIC_NAMES, _spec("isoswitch_reversals", "counter", ("0400",)).labels
(True, ('mti',))
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS", "METRIC_NAMES"]

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
    # store-and-forward (switch.saf)
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
    # webhooks (switch.webhooks)
    "isoswitch_webhook_outbox_depth": _Spec(
        "gauge", "Webhook deliveries by state, pending or failed (read from the database at scrape)", ("state",),
        mode="mostrecent",
    ),
    "isoswitch_webhook_deliveries": _Spec(
        "counter", "Webhook delivery attempts by outcome: delivered (2xx), retried (to be tried again), failed "
        "(given up: retry window over or destination gone)", ("outcome",),
    ),
    "isoswitch_webhook_delivery_duration_seconds": _Spec(
        "histogram", "Round trip of a webhook POST, answered or not (timeouts at the configured timeout)",
        buckets=LATENCY_BUCKETS,
    ),
    # mail (switch.mail)
    "isoswitch_mail_outbox_depth": _Spec(
        "gauge", "Mails by state, pending or failed (read from the database at scrape)", ("state",),
        mode="mostrecent",
    ),
    "isoswitch_mail_attempts": _Spec(
        "counter", "Mail attempts by outcome: sent (the SMTP server took it), retried (to be tried again), failed "
        "(given up: refused for good or attempts used up)", ("outcome",),
    ),
    # 3-D Secure (switch.secure3d)
    "isoswitch_secure3d_sessions": _Spec(
        "counter", "3-D Secure begun, by protocol version (1, 2)", ("version",)
    ),
    "isoswitch_secure3d_outcomes": _Spec(
        "counter", "3-D Secure results by scenario (full, attempt, not_enrolled, unable_to_verify, failed, rejected, "
        "expired) and transStatus (Y, A, N, U, R; none)", ("scenario", "status"),
    ),
    "isoswitch_secure3d_refused": _Spec(
        "counter", "3-D Secure completions (PaRes, CRes, RReq, resume) refused, by reason", ("reason",)
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


def _spec(name: str, kind: str, labels: tuple[str, ...]) -> _Spec:
    spec = _SPECS.get(name)
    if spec is None or spec.kind != kind:
        raise ValueError(f"{name} is not a {kind} of the catalogue")
    if len(labels) != len(spec.labels):
        raise ValueError(f"{name} takes labels {spec.labels}, got {labels}")
    return spec
