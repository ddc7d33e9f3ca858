"""The ISO listener over TLS: ``ListenerConfig.ssl`` through the runtime, and ``--iso-tls-*`` of the CLI.

Certificates are made at test time with ``cryptography`` (the PKI of
tests/test_security_tls.py): a CA, a server certificate for 127.0.0.1, a
client certificate, and a CA nobody trusts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pg
import pytest
from sim_helpers import IsoClient, MessageFactory
from test_listener import runtime_config
from test_security_tls import Pki, pki  # noqa: F401  (fixture)

from acquirer_sim import SimServer
from isoswitch import args as options
from isoswitch.cli import command_parser, main
from switch.listener import ListenerConfig
from switch.runtime import Runtime, open_runtime
from switch.settings import TlsFileError
from switch.wire.dialect import Dialect
from switch.wire.tls import client_context, server_context

fresh_dsn, pg_dsn = pg.fresh_dsn, pg.pg_dsn

pytestmark = pytest.mark.timeout(30)


async def _runtime(sim: SimServer, dsn: str, data_dir: Path, context: ssl.SSLContext) -> Runtime:
    assert sim.address is not None
    listener = ListenerConfig(port=0, ssl=context, idle_timeout=5.0)
    return await open_runtime(runtime_config(dsn, data_dir, *sim.address, listener=listener))


@pytest.fixture
async def tls_rt(sim: SimServer, fresh_dsn: str, scratch_dir: Path, pki: Pki) -> AsyncIterator[Runtime]:  # noqa: F811
    runtime = await _runtime(sim, fresh_dsn, scratch_dir, server_context(pki.server_cert, pki.server_key))
    try:
        yield runtime
    finally:
        await runtime.close()


def _address(rt: Runtime) -> tuple[str, int]:
    assert rt.listener is not None and rt.listener.address is not None
    return rt.listener.address


async def _tls_client(address: tuple[str, int], context: ssl.SSLContext) -> IsoClient:
    reader, writer = await asyncio.open_connection(*address, ssl=context)
    return IsoClient(reader, writer, Dialect.named("ascii", "binary2"))


async def test_an_iso_client_over_tls_gets_0810(tls_rt: Runtime, pki: Pki, mf: MessageFactory) -> None:  # noqa: F811
    client = await _tls_client(_address(tls_rt), client_context(pki.ca))
    try:
        req = mf.network("301")
        resp = await client.request(req)
        assert (resp["t"], resp["39"], resp["11"]) == ("0810", "00", req["11"])
    finally:
        await client.close()


async def test_a_plain_tcp_client_gets_no_answer(tls_rt: Runtime, mf: MessageFactory) -> None:
    client = await IsoClient.connect(_address(tls_rt))
    try:
        await client.send(mf.network("301"))
        # The bytes are not a TLS ClientHello: the handshake fails and the listener hangs up, no 0810.
        assert await client.is_closed(5.0)
    finally:
        await client.close()
    assert tls_rt.listener is not None and tls_rt.listener.stats.answered == 0


async def test_a_client_that_does_not_trust_the_listeners_ca_refuses_it(tls_rt: Runtime, pki: Pki) -> None:  # noqa: F811
    with pytest.raises(ssl.SSLCertVerificationError):
        await _tls_client(_address(tls_rt), client_context(pki.other_ca))


async def test_with_a_client_ca_only_a_client_with_a_certificate_gets_an_answer(
    sim: SimServer,
    fresh_dsn: str,
    scratch_dir: Path,
    pki: Pki,  # noqa: F811
    mf: MessageFactory,
) -> None:
    context = server_context(pki.server_cert, pki.server_key, client_ca=pki.ca)
    rt = await _runtime(sim, fresh_dsn, scratch_dir, context)
    try:
        anonymous = await _tls_client(_address(rt), client_context(pki.ca))
        try:
            # TLS 1.3: the server checks the client's certificate after the client's handshake ends.
            await anonymous.send(mf.network("301"))
            with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                await anonymous.recv(5.0)
        finally:
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await anonymous.close()
        client = await _tls_client(_address(rt), client_context(pki.ca, pki.client_cert, pki.client_key))
        try:
            resp = await client.request(mf.network("301"))
            assert (resp["t"], resp["39"]) == ("0810", "00")
        finally:
            await client.close()
    finally:
        await rt.close()


# -- the command line ------------------------------------------------------------------


def _iso_tls(*argv: str) -> ssl.SSLContext | None:
    """The listener's TLS context as `serve` builds it from its flags."""
    settings = options.settings(command_parser("serve").parse_args(["--iso-port", "0", *argv]))
    assert settings.listener is not None
    return settings.listener.ssl


def test_iso_tls_flags_build_the_listeners_context(pki: Pki) -> None:  # noqa: F811
    assert _iso_tls() is None
    context = _iso_tls("--iso-tls-cert", str(pki.server_cert), "--iso-tls-key", str(pki.server_key))
    assert context is not None and context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_NONE
    mutual = _iso_tls(
        "--iso-tls-cert",
        str(pki.server_cert),
        "--iso-tls-key",
        str(pki.server_key),
        "--iso-tls-client-ca",
        str(pki.ca),
    )
    assert mutual is not None and mutual.verify_mode is ssl.CERT_REQUIRED
    with pytest.raises(TlsFileError, match=r"\[iso_listener\] cannot load TLS certificate"):  # not the cert's key
        _iso_tls("--iso-tls-cert", str(pki.server_cert), "--iso-tls-key", str(pki.other_ca))


def test_serve_refuses_an_iso_tls_key_without_a_certificate(
    pki: Pki,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--iso-port", "0", "--iso-tls-key", str(pki.server_key)]) == 2  # a usage error
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("isoswitch serve: ") and "tls_key and tls_client_ca need tls_cert" in line
