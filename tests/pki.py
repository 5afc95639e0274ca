"""Certificates for tests, made with the openssl CLI: a CA with server and client certificates
(make_pki), and the PEM texts an endpoint's TLS settings take (endpoint_pem)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    p = {
        name: directory / name
        for name in ("ca.key", "ca.crt", "server.key", "server.crt", "client.key", "client.crt")
    }
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", str(p["ca.key"]), "-out", str(p["ca.crt"]))  # fmt: skip
    for name, extra in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        csr = directory / f"{name}.csr"
        ext = directory / f"{name}.ext"
        ext.write_text(extra + "\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", str(p[f"{name}.key"]), "-out", str(csr))  # fmt: skip
        sign(p, csr, ext, p[f"{name}.crt"])
    return p


def sign(pki: dict[str, Path], csr: Path, ext: Path, out: Path, *, days: int = 2) -> None:
    """Signs ``csr`` with the CA of ``pki`` into ``out``."""
    openssl("x509", "-req", "-in", str(csr), "-CA", str(pki["ca.crt"]),
            "-CAkey", str(pki["ca.key"]), "-CAcreateserial", "-days", str(days),
            "-extfile", str(ext), "-out", str(out))  # fmt: skip


@dataclass(frozen=True, slots=True)
class EndpointPem:
    """PEM texts for an endpoint's TLS settings, and ones that must be refused."""

    ca: str
    client_certificate: str
    client_key: str
    #: A new certificate (30 days) for the same key: a renewal.
    renewed_certificate: str
    #: A certificate with a key of its own, from the same CA.
    other_certificate: str
    other_key: str
    #: client_key under a passphrase.
    encrypted_key: str
    #: An X25519 key, which cannot sign a TLS handshake.
    x25519_key: str
    #: The client certificate's notAfter as openssl prints it (e.g. "Jan  2 03:04:05 2031 GMT").
    client_not_after: str


def endpoint_pem(directory: Path) -> EndpointPem:
    pki = make_pki(directory)
    renewed = directory / "renewed.crt"
    sign(pki, directory / "client.csr", directory / "client.ext", renewed, days=30)
    other_key, other_csr, other = (directory / n for n in ("other.key", "other.csr", "other.crt"))
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=other", "-keyout", str(other_key), "-out", str(other_csr))  # fmt: skip
    sign(pki, other_csr, directory / "client.ext", other)
    encrypted, x25519 = directory / "encrypted.key", directory / "x25519.key"
    openssl("pkey", "-in", str(pki["client.key"]), "-aes256", "-passout", "pass:secret",
            "-out", str(encrypted))  # fmt: skip
    openssl("genpkey", "-algorithm", "X25519", "-out", str(x25519))
    end = subprocess.run(
        ["openssl", "x509", "-noout", "-enddate", "-in", str(pki["client.crt"])],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return EndpointPem(
        ca=pki["ca.crt"].read_text(),
        client_certificate=pki["client.crt"].read_text(),
        client_key=pki["client.key"].read_text(),
        renewed_certificate=renewed.read_text(),
        other_certificate=other.read_text(),
        other_key=other_key.read_text(),
        encrypted_key=encrypted.read_text(),
        x25519_key=x25519.read_text(),
        client_not_after=end.strip().removeprefix("notAfter="),
    )
