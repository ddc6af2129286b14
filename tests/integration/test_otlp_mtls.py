"""Mutual TLS per tenant on both OTLP front ends, with certificates made here by ``cryptography``: no client
certificate or one from another CA is refused by the handshake (and the receiver keeps serving); a
certificate of the trusted CA is mapped to its tenant (by fingerprint or subject) and its fingerprint
becomes the events' ``credential_fingerprint``; a trusted but unmapped certificate is UNAUTHENTICATED."""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from tests.integration.test_otlp_http_errors import Rig, chat_span, request
from tripwire.schemas import ModelCall

pytestmark = pytest.mark.integration


@dataclass
class Pem:
    cert: Path
    key: Path
    der: bytes

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.der).hexdigest()


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])


def _issue(folder: Path, stem: str, subject: x509.Name, issuer: tuple[x509.Name, Any] | None, *, ca: bool = False,
           server: bool = False) -> tuple[Pem, Any]:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        from ipaddress import ip_address

        b = b.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = b.sign(issuer_key, hashes.SHA256())
    pem = Pem(folder / f"{stem}.crt", folder / f"{stem}.key", cert.public_bytes(serialization.Encoding.DER))
    pem.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pem, (cert.subject, key)


@dataclass
class Pki:
    ca: Pem
    server: Pem
    acme: Pem  # mapped by fingerprint
    globex: Pem  # mapped by subject
    stranger: Pem  # signed by the trusted CA, not mapped
    rogue: Pem  # signed by another CA, same subject as acme


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca, ca_signer = _issue(tmp_path, "ca", _name("tripwire test CA", "tripwire"), None, ca=True)
    server, _ = _issue(tmp_path, "server", _name("localhost", "tripwire"), ca_signer, server=True)
    acme, _ = _issue(tmp_path, "acme", _name("agent-a", "acme"), ca_signer)
    globex, _ = _issue(tmp_path, "globex", _name("agent-b", "globex"), ca_signer)
    stranger, _ = _issue(tmp_path, "stranger", _name("agent-c", "initech"), ca_signer)
    _, rogue_signer = _issue(tmp_path, "rogue-ca", _name("rogue CA", "rogue"), None, ca=True)
    rogue, _ = _issue(tmp_path, "rogue", _name("agent-a", "acme"), rogue_signer)
    return Pki(ca, server, acme, globex, stranger, rogue)


@pytest.fixture
def rig(tmp_path: Path, pki: Pki) -> Any:
    clients = tmp_path / "clients.yaml"
    fp = ":".join(pki.acme.fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()  # the openssl x509 form
    clients.write_text(
        f'clients:\n  - {{fingerprint: "{fp}", tenant: acme, name: acme-agents}}\n'
        '  - {subject: "O=globex,CN=agent-b", tenant: globex}\n'
    )
    r = Rig(tmp_path, tls_cert_file=pki.server.cert, tls_key_file=pki.server.key, tls_client_ca_file=pki.ca.cert,
            client_certs_file=clients)  # fmt: skip
    r.url = r.url.replace("http://", "https://")
    yield r
    r.close()


def _https(rig: Rig, pki: Pki, client: Pem | None, span: int) -> httpx.Response:
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    if client is not None:
        ctx.load_cert_chain(client.cert, client.key)
    body = request(chat_span(span)).SerializeToString()
    return httpx.post(rig.url, content=body, headers={"Content-Type": "application/x-protobuf"}, verify=ctx, timeout=10)


def _grpc(rig: Rig, pki: Pki, client: Pem | None, span: int) -> Any:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.cert.read_bytes(),
        private_key=client.key.read_bytes() if client is not None else None,
        certificate_chain=client.cert.read_bytes() if client is not None else None,
    )
    with grpc.secure_channel(rig.grpc_target, creds) as channel:
        return trace_service_pb2_grpc.TraceServiceStub(channel).Export(request(chat_span(span)), timeout=10)


def _by_span(rig: Rig) -> dict[str, tuple[str, str | None]]:
    return {e.span_id: (e.tenant, e.credential_fingerprint) for e in rig.events() if isinstance(e, ModelCall)}


def test_https_refuses_no_or_foreign_certificates_and_maps_trusted_ones(rig: Rig, pki: Pki) -> None:
    for client in (None, pki.rogue):  # the handshake refuses them; the receiver keeps serving
        with pytest.raises(httpx.TransportError):
            _https(rig, pki, client, 2)
    r = _https(rig, pki, pki.stranger, 3)  # trusted CA, no tenant for it
    assert r.status_code == 401 and "not mapped" in r.json()["message"]
    assert _https(rig, pki, pki.acme, 4).status_code == 200
    assert _https(rig, pki, pki.globex, 5).status_code == 200
    assert _by_span(rig) == {
        (4).to_bytes(8, "big").hex(): ("acme", "cert:" + pki.acme.fingerprint[:16]),
        (5).to_bytes(8, "big").hex(): ("globex", "cert:" + pki.globex.fingerprint[:16]),
    }
    assert rig.receiver.counters.as_dict()["refused_requests"] == 3


def test_grpc_refuses_no_or_foreign_certificates_and_maps_trusted_ones(rig: Rig, pki: Pki) -> None:
    for client in (None, pki.rogue):
        with pytest.raises(grpc.RpcError) as e:
            _grpc(rig, pki, client, 2)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake failed
    with pytest.raises(grpc.RpcError) as e:
        _grpc(rig, pki, pki.stranger, 3)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    _grpc(rig, pki, pki.acme, 4)
    _grpc(rig, pki, pki.globex, 5)
    assert _by_span(rig) == {
        (4).to_bytes(8, "big").hex(): ("acme", "cert:" + pki.acme.fingerprint[:16]),
        (5).to_bytes(8, "big").hex(): ("globex", "cert:" + pki.globex.fingerprint[:16]),
    }


def test_plain_http_to_the_tls_port_is_refused_and_tls_keeps_serving(rig: Rig, pki: Pki) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.post(rig.url.replace("https://", "http://"), content=b"x", timeout=5)
    assert _https(rig, pki, pki.acme, 6).status_code == 200
