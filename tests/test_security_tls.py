"""TLS everywhere: the REST front over HTTPS, ISO links to a TLS host (mutual TLS too), the shared helper.

Certificates are made here, at test time, with ``cryptography``: a CA, a
server certificate for 127.0.0.1 and localhost, a client certificate, all
signed by the CA, and a second CA nobody trusts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sim_helpers import MessageFactory
from test_http_app import AUTH, FakeRuntime

from acquirer_sim import SimServer
from acquirer_sim.config import SimConfig
from http_front import FrontConfig, start_front
from switch.config import ConfigError, SwitchConfig
from switch.pool import Router
from switch.wire.tls import TlsError, client_context, server_context

pytestmark = pytest.mark.timeout(30)


# -- a small PKI -------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
    cert_path, key_path = path.with_suffix(".crt"), path.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, cn: str, *, server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key, ca = _ca("isoswitch test CA")
    ca_path, _ = _write(d / "ca", ca_key, ca)
    server_cert, server_key = _write(d / "server", *_leaf(ca_key, ca, "localhost", server=True))
    client_cert, client_key = _write(d / "client", *_leaf(ca_key, ca, "acquirer-1", server=False))
    other_path, _ = _write(d / "other", *_ca("nobody's CA"))
    return Pki(ca_path, server_cert, server_key, client_cert, client_key, other_path)


# -- the helper ----------------------------------------------------------------------


def test_helper_contexts_require_tls_1_2_and_verify_the_peer(pki: Pki) -> None:
    server = server_context(pki.server_cert, pki.server_key)
    assert server.minimum_version is ssl.TLSVersion.TLSv1_2
    assert server.verify_mode is ssl.CERT_NONE
    mutual = server_context(pki.server_cert, pki.server_key, client_ca=pki.ca)
    assert mutual.verify_mode is ssl.CERT_REQUIRED
    client = client_context(pki.ca)
    assert client.verify_mode is ssl.CERT_REQUIRED and client.check_hostname


def test_helper_errors_name_the_file_and_never_its_contents(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(TlsError, match="not found"):
        server_context(tmp_path / "missing.crt", tmp_path / "missing.key")
    with pytest.raises(TlsError, match="cannot load TLS certificate"):
        server_context(pki.server_cert, pki.client_key)  # a key that is not the certificate's
    with pytest.raises(TlsError, match="needs its certificate"):
        client_context(pki.ca, key=pki.client_key)


# -- the REST front ----------------------------------------------------------------------


async def test_front_answers_over_https_and_refuses_plain_http(pki: Pki) -> None:
    config = FrontConfig(port=0, tls_cert=pki.server_cert, tls_key=pki.server_key)
    server = await start_front(FakeRuntime(), config)  # type: ignore[arg-type]
    try:
        trust = client_context(pki.ca)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{server.port}/ping", headers=AUTH, ssl=trust) as resp:
                assert resp.status == 200
                assert (await resp.json())["message"] == "PONG!"
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{server.port}/ping", headers=AUTH) as resp:
                    await resp.read()
            # A client that does not trust the CA does not get through either.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with session.get(
                    f"https://127.0.0.1:{server.port}/ping", headers=AUTH, ssl=client_context(pki.other_ca)
                ) as resp:
                    await resp.read()
    finally:
        await server.close()


async def test_front_with_a_client_ca_refuses_clients_without_a_certificate(pki: Pki) -> None:
    config = FrontConfig(port=0, tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca)
    server = await start_front(FakeRuntime(), config)  # type: ignore[arg-type]
    url = f"https://127.0.0.1:{server.port}/ping"
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientError):
                async with session.get(url, headers=AUTH, ssl=client_context(pki.ca)) as resp:
                    await resp.read()
            mutual = client_context(pki.ca, pki.client_cert, pki.client_key)
            async with session.get(url, headers=AUTH, ssl=mutual) as resp:
                assert resp.status == 200
    finally:
        await server.close()


def test_front_config_refuses_a_key_without_a_certificate(pki: Pki) -> None:
    with pytest.raises(ValueError, match="need tls_cert"):
        FrontConfig(tls_key=pki.server_key)
    assert FrontConfig(tls_cert=pki.server_cert).scheme == "https"
    assert FrontConfig().scheme == "http"


# -- ISO links -------------------------------------------------------------------------


@pytest.fixture
async def tls_sim(pki: Pki) -> AsyncIterator[SimServer]:
    sim = SimServer(SimConfig(port=0), ssl=server_context(pki.server_cert, pki.server_key, client_ca=pki.ca))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def _switch(sim: SimServer, **tls: Any) -> SwitchConfig:
    assert sim.address is not None
    host, port = sim.address
    dest = {"name": "sim", "host": host, "port": port, "links": 1, "echo_interval": 0.0, "reconnect_max": 0.2}
    return SwitchConfig.from_dict({"destinations": [{**dest, **tls}], "routing": {"default": "sim"}})


async def _approve(router: Router) -> None:
    router.start()
    try:
        await router.wait_ready(5)
        resp = await router.request(MessageFactory().auth(), timeout=5)
        assert resp["t"] == "0110"
        assert resp["39"] == "00"
    finally:
        await router.close(timeout=1)


async def test_link_over_mutual_tls_signs_on_and_gets_an_approval(pki: Pki, tls_sim: SimServer) -> None:
    cfg = _switch(
        tls_sim,
        tls=True,
        ca_file=str(pki.ca),
        cert_file=str(pki.client_cert),
        key_file=str(pki.client_key),
        server_hostname="localhost",
    )
    link = cfg.destinations[0].link
    assert link.ssl is not None
    await _approve(cfg.build_router())
    assert tls_sim.stats.connections_total >= 1


async def test_link_checks_the_hosts_name_against_server_hostname(pki: Pki, tls_sim: SimServer) -> None:
    cfg = _switch(
        tls_sim,
        tls=True,
        ca_file=str(pki.ca),
        cert_file=str(pki.client_cert),
        key_file=str(pki.client_key),
        server_hostname="issuer.example",  # not in the certificate
    )
    router = cfg.build_router()
    router.start()
    try:
        with pytest.raises(TimeoutError):
            await router.wait_ready(0.5)
    finally:
        await router.close(timeout=1)


async def test_link_without_a_client_certificate_is_refused_by_a_mutual_tls_host(pki: Pki, tls_sim: SimServer) -> None:
    router = _switch(tls_sim, tls=True, ca_file=str(pki.ca)).build_router()
    router.start()
    try:
        with pytest.raises(TimeoutError):
            await router.wait_ready(0.5)
    finally:
        await router.close(timeout=1)


async def test_plain_link_never_becomes_ready_against_a_tls_host(tls_sim: SimServer) -> None:
    router = _switch(tls_sim).build_router()
    router.start()
    try:
        with pytest.raises(TimeoutError):
            await router.wait_ready(0.5)
    finally:
        await router.close(timeout=1)
    await asyncio.sleep(0)


def test_switch_config_tls_keys_are_checked_where_they_are_read(pki: Pki) -> None:
    base = {"name": "sim", "host": "127.0.0.1", "port": 8583}
    with pytest.raises(ConfigError, match=r"destinations\[0\]: \['ca_file'\] need tls = true"):
        SwitchConfig.from_dict({"destinations": [{**base, "ca_file": str(pki.ca)}]})
    with pytest.raises(ConfigError, match="tls must be bool"):
        SwitchConfig.from_dict({"destinations": [{**base, "tls": "yes"}]})
    with pytest.raises(ConfigError, match="key_file needs cert_file"):
        SwitchConfig.from_dict({"destinations": [{**base, "tls": True, "key_file": str(pki.client_key)}]})
    with pytest.raises(ConfigError, match=r"destinations\[0\]: TLS CA file not found"):
        SwitchConfig.from_dict({"destinations": [{**base, "tls": True, "ca_file": "/nonexistent/ca.pem"}]})
    plain = SwitchConfig.from_dict({"destinations": [base]})
    assert plain.destinations[0].link.ssl is None


def test_sim_cli_refuses_a_key_without_a_certificate(pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    from acquirer_sim.cli import main

    assert main(["--port", "0", "--tls-key", str(pki.server_key)]) == 2
    assert "--tls-key needs --tls-cert" in capsys.readouterr().err
