"""Endpoint TLS in the sender: the material an attempt carries, one SSLContext per material
(so keep-alive works), the client certificate on a real handshake, the CA as the only anchor,
and the material crossing to a sender worker. Certificates are made with openssl per module."""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from convoyd.core.model import EndpointTls
from convoyd.core.outcome import ErrorKind
from convoyd.delivery import frames, tls
from convoyd.delivery.sender import OutboundRequest, Sender
from convoyd.delivery.tls import TlsContexts, TlsMaterial, build_context, material_for
from convoyd.delivery.workers import WorkerPoolSender
from tests.pki import make_pki
from tests.receivers import Receiver

Make = Callable[..., Awaitable[Receiver]]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    paths = make_pki(tmp_path_factory.mktemp("pki"))
    return {name: path.read_text() for name, path in paths.items()}


def client_tls(pki: dict[str, str], *, ca: bool = True, cert: bool = True) -> EndpointTls:
    return EndpointTls(
        client_certificate_pem=pki["client.crt"] if cert else "",
        client_key_pem=pki["client.key"] if cert else "",
        ca_pem=pki["ca.crt"] if ca else "",
    )


def server_context(pki: dict[str, str], directory: Path) -> ssl.SSLContext:
    """The receiver's side: its certificate for 127.0.0.1, client certificates of the CA only."""
    (directory / "server.crt").write_text(pki["server.crt"])
    (directory / "server.key").write_text(pki["server.key"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=pki["ca.crt"])
    context.load_cert_chain(directory / "server.crt", directory / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    s = Sender(user_agent="convoyd-test", allow_cidrs=["127.0.0.0/8"])
    await s.start()
    yield s
    await s.close()


def post(url: str, material: TlsMaterial | None, body_limit: int | None = None) -> OutboundRequest:
    return OutboundRequest(
        url=url, headers=(), body=b"{}", timeout=5.0, tls=material, body_limit=body_limit
    )


def test_material_is_made_once_per_settings_and_only_when_the_handshake_uses_it(
    pki: dict[str, str],
) -> None:
    settings = client_tls(pki)
    material = material_for(settings)
    assert material is not None
    assert material_for(settings) is material
    assert material_for(EndpointTls()) is None
    assert material_for(EndpointTls(client_key_pem=pki["client.key"])) is None
    digests = {
        m.digest
        for m in (
            material,
            material_for(client_tls(pki, ca=False)),
            material_for(client_tls(pki, cert=False)),
        )
        if m is not None
    }
    assert len(digests) == 3


async def test_the_same_material_gets_the_same_context(
    pki: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls, "MAX_CONTEXTS", 2)
    contexts = TlsContexts()
    one = material_for(client_tls(pki))
    assert one is not None
    copy = TlsMaterial(*one.fields())  # as a worker rebuilds it from a frame
    first = await contexts.get(one)
    assert await contexts.get(copy) is first
    two, three = material_for(client_tls(pki, ca=False)), material_for(client_tls(pki, cert=False))
    assert two is not None and three is not None
    assert await contexts.get(two) is not first
    await contexts.get(three)  # the bound: the oldest goes
    assert await contexts.get(one) is not first


def test_the_ca_is_the_only_trust_anchor(pki: dict[str, str]) -> None:
    material = material_for(client_tls(pki))
    assert material is not None
    context = build_context(material)
    assert [dict(c["subject"][0])["commonName"] for c in context.get_ca_certs()] == ["test-ca"]
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


def test_without_memfd_the_key_file_is_gone_at_once(
    pki: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delattr(os, "memfd_create")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    material = material_for(client_tls(pki))
    assert material is not None
    build_context(material)
    assert list(tmp_path.iterdir()) == []
    bad = TlsMaterial(material.certificate_pem, pki["server.key"], material.ca_pem, "x")
    with pytest.raises(ssl.SSLError):  # a key of another certificate
        build_context(bad)
    assert list(tmp_path.iterdir()) == []


async def test_the_client_certificate_is_presented_and_the_connection_reused(
    sender: Sender, receivers: Make, pki: dict[str, str], tmp_path: Path
) -> None:
    receiver = await receivers(ssl=server_context(pki, tmp_path))
    material = material_for(client_tls(pki))
    for _ in range(3):
        report = await sender.send(post(receiver.url, material))
        assert (report.status, report.error) == (200, "")
    assert [r.peer_subject for r in receiver.requests] == ["CN=client"] * 3
    # One context for the material: aiohttp reuses the kept-alive connection.
    assert len({r.peer_port for r in receiver.requests}) == 1


async def test_without_a_client_certificate_the_receiver_refuses_the_handshake(
    sender: Sender, receivers: Make, pki: dict[str, str], tmp_path: Path
) -> None:
    receiver = await receivers(ssl=server_context(pki, tmp_path))
    report = await sender.send(post(receiver.url, material_for(client_tls(pki, cert=False))))
    assert report.status is None and report.error_kind is ErrorKind.NETWORK
    assert receiver.requests == []


async def test_without_the_ca_the_receiver_is_not_trusted(
    sender: Sender, receivers: Make, pki: dict[str, str], tmp_path: Path
) -> None:
    receiver = await receivers(ssl=server_context(pki, tmp_path))
    report = await sender.send(post(receiver.url, material_for(client_tls(pki, ca=False))))
    assert report.error.startswith("TLS certificate verification failed")
    assert receiver.requests == []


async def test_a_pem_openssl_refuses_fails_the_attempt_without_saying_more(
    sender: Sender, receivers: Make, pki: dict[str, str], tmp_path: Path
) -> None:
    receiver = await receivers(ssl=server_context(pki, tmp_path))
    material = material_for(client_tls(pki))
    assert material is not None
    bad = TlsMaterial(material.certificate_pem, pki["server.key"], material.ca_pem, "bad")
    report = await sender.send(post(receiver.url, bad))
    assert report.internal and report.error == "could not load the endpoint's TLS certificates"
    assert receiver.requests == []


def test_a_plain_request_crosses_to_a_worker_as_five_fields(pki: dict[str, str]) -> None:
    plain = post("https://hooks.invalid/", None)
    assert len(frames.request_fields(7, plain)) == 5
    assert frames.request(*frames.request_fields(7, plain)[1:]) == plain
    rich = post("https://hooks.invalid/", material_for(client_tls(pki)), body_limit=10)
    assert frames.request(*frames.request_fields(7, rich)[1:]) == rich


async def test_a_worker_presents_the_certificate_and_keeps_the_body_limit(
    receivers: Make, pki: dict[str, str], tmp_path: Path
) -> None:
    receiver = await receivers(ssl=server_context(pki, tmp_path))
    pool = WorkerPoolSender(workers=1, allow_cidrs=["127.0.0.0/8"], user_agent="convoyd-test")
    await pool.start()
    try:
        material = material_for(client_tls(pki))
        reports = [await pool.send(post(receiver.url, material, body_limit=1)) for _ in range(2)]
    finally:
        await pool.close()
    assert [(r.status, r.body, r.truncated) for r in reports] == [(200, b"o", True)] * 2
    assert [r.peer_subject for r in receiver.requests] == ["CN=client"] * 2
