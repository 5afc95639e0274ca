"""The PEM of endpoint TLS settings: what is refused and why, the key-to-certificate match, the
certificate's expiry, with certificates made by openssl (tests/pki.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from convoyd.core.model import EndpointTls
from convoyd.tls_material import certificate_not_after, key_matches_certificate, tls_violations
from tests.pki import EndpointPem, endpoint_pem


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> EndpointPem:
    return endpoint_pem(tmp_path_factory.mktemp("pki"))


def good(pem: EndpointPem) -> EndpointTls:
    return EndpointTls(
        client_certificate_pem=pem.client_certificate, client_key_pem=pem.client_key, ca_pem=pem.ca
    )


# (case, the fields to change from good(), the violations expected as {field: words in it})
CASES: list[tuple[str, dict[str, str], dict[str, str]]] = [
    ("all good", {}, {}),
    ("renewed certificate, same key", {"client_certificate_pem": "renewed_certificate"}, {}),
    (
        "an EC key and its certificate",
        {"client_certificate_pem": "other_certificate", "client_key_pem": "other_key"},
        {},
    ),
    ("CA only", {"client_certificate_pem": "", "client_key_pem": ""}, {}),
    ("a chain: leaf then CA", {"client_certificate_pem": "client_certificate+ca"}, {}),
    (
        "key of another certificate",
        {"client_key_pem": "other_key"},
        {"tls.client_key_pem": "does not belong"},
    ),
    (
        "chain with a foreign leaf",
        {"client_certificate_pem": "other_certificate+ca"},
        {"tls.client_key_pem": "does not belong"},
    ),
    (
        "certificate is not PEM",
        {"client_certificate_pem": "garbage"},
        {"tls.client_certificate_pem": "not PEM certificates"},
    ),
    (
        "certificate field holds the key",
        {"client_certificate_pem": "client_certificate+key"},
        {"tls.client_certificate_pem": "private key"},
    ),
    (
        "key is a certificate",
        {"client_key_pem": "client_certificate"},
        {"tls.client_key_pem": "not a PEM private key"},
    ),
    (
        "key is encrypted",
        {"client_key_pem": "encrypted_key"},
        {"tls.client_key_pem": "encrypted"},
    ),
    (
        "X25519 cannot sign a handshake",
        {"client_key_pem": "x25519_key"},
        {"tls.client_key_pem": "RSA, EC"},
    ),
    ("CA is not PEM", {"ca_pem": "garbage"}, {"tls.ca_pem": "not PEM certificates"}),
    ("CA holds a key", {"ca_pem": "ca+key"}, {"tls.ca_pem": "private key"}),
    ("a lone surrogate", {"ca_pem": "surrogate"}, {"tls.ca_pem": "not PEM"}),
    (
        "truncated certificate",
        {"client_certificate_pem": "truncated"},
        {"tls.client_certificate_pem": "not PEM"},
    ),
]


def text(pem: EndpointPem, recipe: str) -> str:
    """The PEM a case names: attribute names of EndpointPem joined by "+", or a literal."""
    special = {
        "": "",
        "garbage": "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        "surrogate": "-----BEGIN CERTIFICATE-----\n\ud800\n-----END CERTIFICATE-----\n",
        "truncated": pem.client_certificate[: len(pem.client_certificate) // 2],
        "key": pem.client_key,
        "ca": pem.ca,
    }
    return "".join(
        special[part] if part in special else str(getattr(pem, part)) for part in recipe.split("+")
    )


@pytest.mark.parametrize(("changes", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pem_rules(pem: EndpointPem, changes: dict[str, str], expected: dict[str, str]) -> None:
    tls = good(pem)
    tls = EndpointTls(
        client_certificate_pem=text(pem, changes["client_certificate_pem"])
        if "client_certificate_pem" in changes
        else tls.client_certificate_pem,
        client_key_pem=text(pem, changes["client_key_pem"])
        if "client_key_pem" in changes
        else tls.client_key_pem,
        ca_pem=text(pem, changes["ca_pem"]) if "ca_pem" in changes else tls.ca_pem,
    )
    found = {v.field: v.description for v in tls_violations(tls)}
    assert set(found) == set(expected), found
    for field, words in expected.items():
        assert words in found[field]


def test_key_match_is_unknown_when_either_does_not_parse(pem: EndpointPem) -> None:
    assert key_matches_certificate(good(pem)) is True
    other = EndpointTls(client_certificate_pem=pem.other_certificate, client_key_pem=pem.client_key)
    assert key_matches_certificate(other) is False
    broken = EndpointTls(client_certificate_pem="x", client_key_pem=pem.client_key)
    assert key_matches_certificate(broken) is None
    assert (
        key_matches_certificate(EndpointTls(client_certificate_pem=pem.client_certificate)) is None
    )


def test_not_after_is_the_certificates_own(pem: EndpointPem) -> None:
    expected = datetime.strptime(pem.client_not_after, "%b %d %H:%M:%S %Y GMT").replace(tzinfo=UTC)
    assert certificate_not_after(pem.client_certificate) == expected.timestamp()
    # The leaf's, not the CA's behind it: the renewal expires 28 days later.
    later = certificate_not_after(pem.renewed_certificate + pem.ca)
    assert later is not None and later - expected.timestamp() > 27 * 86400
    assert certificate_not_after("") is None
    assert certificate_not_after("not a certificate") is None
