"""Reads the PEM of an endpoint's TLS settings: client certificate, private key, CA bundle.

Outside convoyd/core because it uses the ``cryptography`` library's parsers; the rules that
need no parsing (the certificate and key go together, https only, sizes) are in
convoyd/core/validation.py. Problems come back as field violations named as the API names
them (``tls.client_key_pem``), for the service layer to raise with the rest.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from convoyd.core.model import EndpointTls
from convoyd.errors import FieldViolation

# The key types a TLS client can sign its handshake with (DSA and DH keys cannot).
_TLS_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
_CERT_FIELD = "tls.client_certificate_pem"
_KEY_FIELD = "tls.client_key_pem"
_CA_FIELD = "tls.ca_pem"


def tls_violations(tls: EndpointTls) -> list[FieldViolation]:
    """Every PEM problem of ``tls``: unreadable certificates or key, a key that does not
    belong to the client certificate. Empty fields are not checked."""
    out: list[FieldViolation] = []
    chain: list[x509.Certificate] = []
    key: PrivateKeyTypes | None = None
    if tls.client_certificate_pem:
        chain = _certificates(tls.client_certificate_pem, _CERT_FIELD, out)
    if tls.client_key_pem:
        key = _private_key(tls.client_key_pem, out)
    if chain and key is not None and not _same_key(chain[0].public_key(), key.public_key()):
        out.append(FieldViolation(_KEY_FIELD, f"does not belong to {_CERT_FIELD}"))
    if tls.ca_pem:
        _certificates(tls.ca_pem, _CA_FIELD, out)
    return out


def key_matches_certificate(tls: EndpointTls) -> bool | None:
    """Whether the key belongs to the client certificate (the first of the chain); None when
    either does not parse (``tls_violations`` names that)."""
    chain = _certificates(tls.client_certificate_pem, _CERT_FIELD, [])
    key = _private_key(tls.client_key_pem, [])
    if not chain or key is None:
        return None
    return _same_key(chain[0].public_key(), key.public_key())


def certificate_not_after(pem: str) -> float | None:
    """When the client certificate (the first of ``pem``) expires, in Unix seconds; None
    without a readable certificate."""
    chain = _certificates(pem, _CERT_FIELD, []) if pem else []
    return chain[0].not_valid_after_utc.timestamp() if chain else None


def _certificates(pem: str, field: str, out: list[FieldViolation]) -> list[x509.Certificate]:
    # Reads show certificates and CAs: a private key pasted beside them would be shown too.
    if "PRIVATE KEY-----" in pem:
        out.append(FieldViolation(field, "holds a private key; give certificates only"))
        return []
    try:
        return x509.load_pem_x509_certificates(_bytes(pem))
    except ValueError:
        out.append(FieldViolation(field, "is not PEM certificates (-----BEGIN CERTIFICATE-----)"))
        return []


def _private_key(pem: str, out: list[FieldViolation]) -> PrivateKeyTypes | None:
    try:
        key = serialization.load_pem_private_key(_bytes(pem), password=None)
    except TypeError:  # the key is encrypted and no password was given
        out.append(FieldViolation(_KEY_FIELD, "is encrypted; give the key without a passphrase"))
        return None
    except UnsupportedAlgorithm:
        out.append(FieldViolation(_KEY_FIELD, "is a key of a type convoyd cannot use"))
        return None
    except ValueError:
        out.append(FieldViolation(_KEY_FIELD, "is not a PEM private key"))
        return None
    if not isinstance(key, _TLS_KEYS):
        out.append(FieldViolation(_KEY_FIELD, "must be an RSA, EC, Ed25519 or Ed448 key"))
        return None
    return key


def _bytes(pem: str) -> bytes:
    # PEM is ASCII; anything else (a lone surrogate included) only has to fail to parse.
    return pem.encode("utf-8", "replace")


def _same_key(certified: PublicKeyTypes, derived: PublicKeyTypes) -> bool:
    def spki(key: PublicKeyTypes) -> bytes:
        return key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    return spki(certified) == spki(derived)
