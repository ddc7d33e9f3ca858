"""HTTP/1.1 on the bench's side of the wire: the target, pre-built requests, response heads and framing.

Responses are framed as RFC 9112 section 6.3 says: no body for 1xx, 204 and
304; ``Transfer-Encoding: chunked``; ``Content-Length``; otherwise the body
runs to the end of the connection. ``Connection: close`` (or an HTTP/1.0
answer without keep-alive) retires the connection after that response and
a fresh one takes its place; so does a timeout or a response that cannot be
parsed, which counts as an error.

>>> parse_head(b"HTTP/1.1 402 Payment Required\\r\\nContent-Type: application/json\\r\\nContent-Length: 97")
(402, 97, False, False)
>>> parse_head(b"HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\nConnection: close")
(200, -1, True, True)
>>> parse_head(b"HTTP/1.0 200 OK\\r\\nContent-Length: 2")
(200, 2, False, True)
>>> chunked_end(b"5\\r\\nhello\\r\\n0\\r\\n\\r\\nHTTP/1.1", 0), chunked_end(b"5\\r\\nhel", 0)
(15, -1)
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = [
    "HttpTarget",
    "ProtocolError",
    "basic_auth",
    "build_post",
    "chunked_end",
    "connect_error_kind",
    "parse_head",
]


class ProtocolError(ValueError):
    """The peer's bytes are not an HTTP/1.x response this client can frame."""


@dataclass(frozen=True, slots=True)
class HttpTarget:
    """Where requests go, from a URL such as ``http://login:password@127.0.0.1:8080/`` (or ``https://``).

    >>> t = HttpTarget.parse("http://shop:s3cret@127.0.0.1:8080")
    >>> t.host, t.port, t.path, t.host_header, t.login, t.password
    ('127.0.0.1', 8080, '', '127.0.0.1:8080', 'shop', 's3cret')
    >>> HttpTarget.parse("http://[::1]/api/").host_header
    '[::1]:80'
    >>> HttpTarget.parse("http://h:1/orders/authorize?x=1").redacted()
    'http://h:1/orders/authorize?x=1'
    >>> t = HttpTarget.parse("https://h/api")
    >>> t.port, t.tls, t.redacted()
    (443, True, 'https://h:443/api')
    """

    host: str
    port: int
    path: str  # the URL's path without a trailing slash ("" for the root)
    query: str = ""
    login: str | None = None
    password: str | None = None
    scheme: str = "http"  # or "https": TLS on each connection

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @classmethod
    def parse(cls, url: str) -> HttpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"expected an http:// or https:// URL (the load generator speaks HTTP/1.1), got {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"bad port in {url!r}") from None
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        login = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(parts.hostname, port, parts.path.rstrip("/"), parts.query, login, password, parts.scheme)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def redacted(self) -> str:
        """The URL without its credentials (what reports and JSON show)."""
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.host_header}{self.path}{query}"


def basic_auth(login: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP Basic.

    >>> basic_auth("project", "password")
    'Basic cHJvamVjdDpwYXNzd29yZA=='
    """
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


def build_post(target: HttpTarget, path: str, body: bytes, *, authorization: str | None = None) -> bytes:
    """One complete ``POST`` request, headers and body, ready to write as is.

    >>> build_post(HttpTarget("h", 80, ""), "/p", b"{}").decode()
    'POST /p HTTP/1.1\\r\\nHost: h:80\\r\\nContent-Type: application/json\\r\\nContent-Length: 2\\r\\n\\r\\n{}'
    """
    lines = [f"POST {path} HTTP/1.1", f"Host: {target.host_header}"]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    lines += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def _header(lower: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower case, with its colon) in a lower-cased head; the first one wins."""
    i = lower.find(name)
    if i < 0:
        return None
    start = i + len(name)
    j = lower.find(b"\r\n", start)
    return lower[start:j] if j >= 0 else lower[start:]


def parse_head(head: bytes) -> tuple[int, int, bool, bool]:
    """``(status, content_length or -1, chunked, close)`` from a status line and headers (no final CRLFCRLF)."""
    if head[:7] != b"HTTP/1." or head[8:9] != b" " or not head[9:12].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {head[:40]!r}")
    status = int(head[9:12])
    lower = head.lower()
    length = -1
    value = _header(lower, b"\r\ncontent-length:")
    if value is not None:
        value = value.strip()
        if not value.isdigit():
            raise ProtocolError(f"bad Content-Length: {value[:20]!r}")
        length = int(value)
    value = _header(lower, b"\r\ntransfer-encoding:")
    chunked = value is not None and b"chunked" in value
    close = head[7:8] == b"0"  # HTTP/1.0 closes unless it says keep-alive
    value = _header(lower, b"\r\nconnection:")
    if value is not None:
        if b"close" in value:
            close = True
        elif b"keep-alive" in value:
            close = False
    return status, length, chunked, close


def chunked_end(buf: bytes, pos: int) -> int:
    """Where a chunked body starting at ``pos`` ends (after its trailers); -1 while incomplete."""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return -1
        size_field = buf[pos:eol].split(b";", 1)[0].strip()  # chunk extensions are ignored
        try:
            size = int(size_field, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size: {size_field[:20]!r}") from None
        if size < 0:
            raise ProtocolError(f"bad chunk size: {size_field[:20]!r}")
        pos = eol + 2
        if size == 0:
            while True:  # trailer lines, up to an empty one
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return -1
                if eol == pos:
                    return pos + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return -1
        if buf[pos + size : pos + size + 2] != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
        pos += size + 2


def connect_error_kind(exc: BaseException) -> str:
    """The report's name for a failed connect.

    >>> connect_error_kind(ConnectionRefusedError()), connect_error_kind(TimeoutError())
    ('connect_refused', 'connect_timeout')
    """
    if isinstance(exc, ConnectionRefusedError):
        return "connect_refused"
    if isinstance(exc, TimeoutError):
        return "connect_timeout"
    return "connect_error"
