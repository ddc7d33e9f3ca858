"""The REST front's configuration: one frozen object, built once by the CLI.

>>> FrontConfig().port, FrontConfig().client_max_size
(8080, 65536)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemas import SCHEMAS_DIR

__all__ = ["FrontConfig"]


@dataclass(frozen=True, slots=True)
class FrontConfig:
    """Where and how the front listens; every field has a documented default."""

    #: Address to bind. Default: loopback only.
    host: str = "127.0.0.1"
    #: TCP port; 0 picks a free one (tests). Default 8080.
    port: int = 8080
    #: Largest request body in bytes; a larger one is answered 413. Default 64 KiB:
    #: the largest legitimate body (authorize with every option) is about 3 KiB.
    client_max_size: int = 64 * 1024
    #: ``SO_REUSEPORT``, so ``--workers N`` processes can share one port. Default on.
    reuse_port: bool = True
    #: Listen backlog. Default 1024 (aiohttp's 128 drops SYNs under a bench's burst).
    backlog: int = 1024
    #: On shutdown, in-flight requests get this many seconds to finish. Default 10 s.
    shutdown_timeout: float = 10.0
    #: One access-log line per request on ``isoswitch.http.access`` (path only,
    #: never the query or headers). Default on.
    access_log: bool = True
    #: ``WWW-Authenticate: Basic realm=...`` of a 401. Default "isoswitch".
    realm: str = "isoswitch"
    #: JSON Schemas of request bodies, one file per body. Default ``schemas/rest``.
    schemas_dir: Path = SCHEMAS_DIR / "rest"
    #: Exchange-rate data of ``GET /exchange_rates/``. Default ``schemas/exchange_rates.json``.
    exchange_rates_path: Path = SCHEMAS_DIR / "exchange_rates.json"
    #: Longest ``date_from``..``date_to`` period, in days. Default 366.
    exchange_rates_max_days: int = 366
    #: HTTPS: PEM certificate chain and private key (None: key in the cert file).
    #: Default None: plain HTTP (loopback, or behind a TLS proxy).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: With TLS, clients must present a certificate this CA signed. Default None.
    tls_client_ca: Path | None = None
    #: Requests per second per project, in each worker process (token bucket).
    #: Beyond it: 429 with ``Retry-After``. Default 1000/s with bursts of 2000; 0 = no limit.
    rate_limit: float = 1000.0
    rate_burst: int = 2000
    #: Failed authentications per second per client address, in each worker:
    #: once spent, that address gets 429 before any password check (slows
    #: guessing). Default 5/s with bursts of 20; 0 = no limit.
    auth_failure_rate: float = 5.0
    auth_failure_burst: int = 20
    #: Longest request line and header field (bytes), most header fields; a
    #: larger request is answered 400 by the parser. Defaults 8190, 8190, 64.
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 64
    #: Seconds a client has to send a request line and its headers: counted from
    #: the connection's opening for its first request, from the request's first
    #: byte for the next ones on a keep-alive connection. Past it the connection
    #: is closed without an answer (slowloris). Default 10 s (a client sends its
    #: headers in milliseconds). With TLS it also bounds the handshake.
    header_timeout: float = 10.0
    #: Seconds from the end of the headers to the end of the body; past it the
    #: connection is closed. Default 30 s (a 64 KiB body at 2.2 KB/s).
    body_timeout: float = 30.0
    #: Seconds an idle keep-alive connection is kept between requests. Default
    #: 75 s: longer than a load balancer's own idle timeout (60 s is common),
    #: so that the balancer, not the front, closes its pooled connections.
    keepalive_timeout: float = 75.0
    #: Open connections per worker process. One more is answered ``503`` with
    #: ``Connection: close`` and closed at once, before anything is read (the
    #: listening socket keeps accepting: a worker that stopped accepting would
    #: leave the kernel's backlog to fill and time out instead). Keep it below
    #: the process's open-file limit (``ulimit -n``) less the database pool and
    #: links. Default 1000.
    max_connections: int = 1000
    #: Lines a second, per worker, of client-side failures (a disconnect
    #: mid-body, a malformed or over-long request line or header, a timeout):
    #: one WARNING line each without a traceback; beyond the rate they are
    #: counted and one line a second gives the count. Default 10.
    client_failure_log_rate: float = 10.0
    #: The URL cardholders' browsers and the issuer's ACS reach this front at (the
    #: hosted payment page's ``Location``, 3-D Secure's ``TermUrl`` and notification
    #: URLs), e.g. ``https://pay.example.com``. Default None: the scheme and ``Host``
    #: of the request being answered, right for a developer's box and the tests;
    #: set it behind a proxy or balancer.
    public_url: str | None = None
    #: ``GET /metrics`` (Prometheus text, no credentials). Default on; the CLI
    #: sets it from ``[metrics] enabled``.
    metrics: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be 0..65535")
        if self.client_max_size < 1024:
            raise ValueError("client_max_size must be at least 1024 bytes")
        if self.shutdown_timeout < 0:
            raise ValueError("shutdown_timeout must not be negative")
        if (self.tls_key is not None or self.tls_client_ca is not None) and self.tls_cert is None:
            raise ValueError("tls_key and tls_client_ca need tls_cert")
        if self.rate_limit < 0 or self.auth_failure_rate < 0:
            raise ValueError("rates must not be negative")
        if self.rate_burst < 1 or self.auth_failure_burst < 1:
            raise ValueError("bursts must be at least 1")
        if min(self.max_line_size, self.max_field_size, self.max_headers) < 1:
            raise ValueError("header limits must be positive")
        if min(self.header_timeout, self.body_timeout, self.keepalive_timeout) <= 0:
            raise ValueError("header_timeout, body_timeout and keepalive_timeout must be positive")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.client_failure_log_rate <= 0:
            raise ValueError("client_failure_log_rate must be positive")
        if self.public_url is not None and not self.public_url.startswith(("http://", "https://")):
            raise ValueError("public_url must be an http:// or https:// URL")

    @property
    def scheme(self) -> str:
        """``https`` with a certificate, else ``http``."""
        return "https" if self.tls_cert is not None else "http"
