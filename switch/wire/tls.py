"""TLS contexts for every socket of the switch: the REST front, ISO links and the ISO listener.

Two builders, one per side, so every listener and every link gets the same
policy (TLS 1.2 at least, the ``ssl`` module's default ciphers, certificate
and host name checked on the client side):

* :func:`server_context` -- a listener's certificate and key; with
  ``client_ca`` the peer must present a certificate signed by it (mutual TLS).
* :func:`client_context` -- a link to a host: ``ca`` to trust (None: the
  system's store), ``cert``/``key`` for mutual TLS, ``server_hostname`` when
  the name in the host's certificate is not the address connected to.

>>> client_context(check_hostname=False).verify_mode.name
'CERT_REQUIRED'
"""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["TlsError", "client_context", "server_context"]

_MIN_VERSION = ssl.TLSVersion.TLSv1_2

StrPath = str | Path


class TlsError(ValueError):
    """A certificate, key or CA file cannot be used; the message names the file, never key material."""


class _NamedClientContext(ssl.SSLContext):
    """A client context that checks the host's certificate against a fixed name.

    ``loop.create_connection(host, port, ssl=ctx)`` sends and verifies
    ``host`` unless the caller passes ``server_hostname``; the link only
    knows the address. Overriding the name here keeps the override in the
    config object (one context per destination) instead of in every caller.
    """

    _isoswitch_hostname: str

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(
            incoming, outgoing, server_side=server_side, server_hostname=self._isoswitch_hostname, session=session
        )


def _load_chain(ctx: ssl.SSLContext, cert: StrPath, key: StrPath | None) -> None:
    try:
        ctx.load_cert_chain(str(cert), None if key is None else str(key))
    except FileNotFoundError as e:
        # OpenSSL's FileNotFoundError carries no file name: find which one is missing.
        missing = e.filename or next((p for p in (cert, key) if p is not None and not Path(p).exists()), cert)
        raise TlsError(f"TLS certificate or key not found: {missing}") from None
    except (ssl.SSLError, OSError) as e:
        # The SSLError text is OpenSSL's reason ("PEM lib", "key values mismatch"): no key bytes.
        raise TlsError(f"cannot load TLS certificate {cert} with key {key}: {e}") from None


def _load_ca(ctx: ssl.SSLContext, ca: StrPath) -> None:
    try:
        ctx.load_verify_locations(cafile=str(ca))
    except FileNotFoundError:
        raise TlsError(f"TLS CA file not found: {ca}") from None
    except (ssl.SSLError, OSError) as e:
        raise TlsError(f"cannot load TLS CA file {ca}: {e}") from None


def server_context(cert: StrPath, key: StrPath | None = None, client_ca: StrPath | None = None) -> ssl.SSLContext:
    """A listener's context: ``cert`` (PEM chain) and ``key`` (None: in ``cert``'s file).

    With ``client_ca``, clients must present a certificate it signed (mutual TLS).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _MIN_VERSION
    _load_chain(ctx, cert, key)
    if client_ca is not None:
        _load_ca(ctx, client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(
    ca: StrPath | None = None,
    cert: StrPath | None = None,
    key: StrPath | None = None,
    server_hostname: str | None = None,
    *,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A link's context: trust ``ca`` (None: the system's CAs), present ``cert``/``key`` when given.

    ``server_hostname`` is the name checked in (and sent as SNI to) the host,
    whatever address the link connects to. ``check_hostname=False`` still
    verifies the chain; it is for hosts whose certificates name nothing
    useful, and should be rare.
    """
    if key is not None and cert is None:
        raise TlsError("a TLS key needs its certificate (cert_file)")
    ctx: ssl.SSLContext
    if server_hostname:
        named = _NamedClientContext(ssl.PROTOCOL_TLS_CLIENT)
        named._isoswitch_hostname = server_hostname
        ctx = named
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = _MIN_VERSION
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if ca is not None:
        _load_ca(ctx, ca)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert is not None:
        _load_chain(ctx, cert, key)
    return ctx
