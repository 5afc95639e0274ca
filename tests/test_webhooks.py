"""Receiver-side verification: round trips with the signer, interop with standardwebhooks, and
every way a request can be rejected."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest
from multidict import CIMultiDict
from standardwebhooks.webhooks import Webhook

from convoyd import webhooks
from convoyd.core import signing
from convoyd.core.model import SignatureConfig, SignatureEncoding, SignatureHash, SignatureScheme
from convoyd.webhooks import (
    InvalidSignatureError,
    MalformedHeaderError,
    MissingHeaderError,
    TimestampError,
    WebhookVerificationError,
)

STD = SignatureScheme.STANDARD
SIMPLE = SignatureScheme.CONVOY_SIMPLE
ADV = SignatureScheme.CONVOY_ADVANCED
H256, H512 = SignatureHash.SHA256, SignatureHash.SHA512
HEX, B64 = SignatureEncoding.HEX, SignatureEncoding.BASE64

NOW = 1_700_000_000
BODY = b'{"type":"invoice.paid","data":{"id":"in_1","amount":4200,"note":"caf\xc3\xa9"}}'
MSG_ID = "msg_2b9Vq0aXh3"
OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()
STRANGER = "whsec_" + base64.b64encode(b"x" * 32).decode()


def _signed_headers(
    scheme: SignatureScheme,
    hash_: SignatureHash,
    encoding: SignatureEncoding,
    secrets: list[str],
    ts: int = NOW,
    body: bytes = BODY,
) -> dict[str, str]:
    """What convoyd's sender puts on the wire: id, timestamp and the scheme's signature."""
    config = SignatureConfig(scheme=scheme, hash=hash_, encoding=encoding)
    keys = [signing.secret_key(scheme, s) for s in secrets]
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(ts)}
    headers.update(signing.signature_headers(config, keys, MSG_ID, ts, body))
    return headers


def _verify(
    headers: Mapping[str, str],
    secrets: str | Sequence[str],
    scheme: SignatureScheme,
    hash_: SignatureHash = H256,
    encoding: SignatureEncoding = HEX,
    body: bytes = BODY,
    now: float = NOW,
) -> None:
    webhooks.verify(body, headers, secrets, scheme=scheme, hash=hash_, encoding=encoding, now=now)


ALL_CONFIGS = [
    (scheme, hash_, encoding)
    for scheme in (STD, SIMPLE, ADV)
    for hash_ in (H256, H512)
    for encoding in (HEX, B64)
]
# STANDARD is always HMAC-SHA256 in base64: only Convoy endpoints choose hash and encoding.
CONVOY_CONFIGS = [config for config in ALL_CONFIGS if config[0] != STD]


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize(("scheme", "hash_", "encoding"), ALL_CONFIGS)
def test_round_trip(
    scheme: SignatureScheme, hash_: SignatureHash, encoding: SignatureEncoding
) -> None:
    headers = _signed_headers(scheme, hash_, encoding, [NEW])
    webhooks.verify(BODY, headers, NEW, scheme=scheme, hash=hash_, encoding=encoding, now=NOW)


@pytest.mark.parametrize(("scheme", "hash_", "encoding"), ALL_CONFIGS)
def test_any_candidate_matching_any_signature_passes(
    scheme: SignatureScheme, hash_: SignatureHash, encoding: SignatureEncoding
) -> None:
    # During a rotation the request is signed with both secrets (simple: the first only).
    headers = _signed_headers(scheme, hash_, encoding, [OLD, NEW])
    _verify(headers, [STRANGER, OLD], scheme, hash_, encoding)
    _verify(headers, (OLD,), scheme, hash_, encoding)
    if scheme != SIMPLE:
        _verify(headers, [NEW], scheme, hash_, encoding)
    with pytest.raises(InvalidSignatureError):
        _verify(headers, [STRANGER], scheme, hash_, encoding)


@pytest.mark.parametrize(("scheme", "hash_", "encoding"), ALL_CONFIGS)
def test_tampered_body_or_wrong_secret_is_rejected(
    scheme: SignatureScheme, hash_: SignatureHash, encoding: SignatureEncoding
) -> None:
    headers = _signed_headers(scheme, hash_, encoding, [NEW])
    with pytest.raises(InvalidSignatureError):
        _verify(headers, NEW, scheme, hash_, encoding, body=BODY.replace(b"4200", b"4201"))
    with pytest.raises(InvalidSignatureError) as info:
        _verify(headers, STRANGER, scheme, hash_, encoding)
    assert STRANGER not in str(info.value)
    assert STRANGER.removeprefix("whsec_") not in str(info.value)


@pytest.mark.parametrize(("scheme", "hash_", "encoding"), CONVOY_CONFIGS)
def test_wrong_hash_is_rejected(
    scheme: SignatureScheme, hash_: SignatureHash, encoding: SignatureEncoding
) -> None:
    headers = _signed_headers(scheme, hash_, encoding, [NEW])
    other_hash = H512 if hash_ is H256 else H256
    with pytest.raises(InvalidSignatureError):
        webhooks.verify(
            BODY, headers, NEW, scheme=scheme, hash=other_hash, encoding=encoding, now=NOW
        )


def test_headers_are_case_insensitive() -> None:
    headers = _signed_headers(STD, H256, B64, [NEW])
    upper = {name.upper(): value for name, value in headers.items()}
    webhooks.verify(BODY, upper, NEW, now=NOW)
    webhooks.verify(BODY, CIMultiDict(headers), NEW, now=NOW)  # what aiohttp hands a handler
    adv = _signed_headers(ADV, H256, HEX, [NEW])
    lower = {name.lower(): value for name, value in adv.items()}
    webhooks.verify(BODY, lower, NEW, scheme=ADV, now=NOW)


def test_standard_secret_with_or_without_whsec_prefix() -> None:
    headers = _signed_headers(STD, H256, HEX, [NEW])
    bare = NEW.removeprefix("whsec_")
    webhooks.verify(BODY, headers, bare, now=NOW)
    webhooks.verify(BODY, headers, bare.rstrip("="), now=NOW)


def test_default_now_is_the_clock() -> None:
    ts = int(time.time())
    webhooks.verify(BODY, _signed_headers(STD, H256, B64, [NEW], ts=ts), NEW)


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", [STD, ADV])
@pytest.mark.parametrize(
    ("offset", "ok"),
    [(0, True), (-300, True), (300, True), (-301, False), (301, False), (-86400, False)],
)
def test_timestamp_tolerance(scheme: SignatureScheme, offset: int, ok: bool) -> None:
    headers = _signed_headers(scheme, H256, HEX, [NEW], ts=NOW + offset)
    if ok:
        webhooks.verify(BODY, headers, NEW, scheme=scheme, now=NOW)
    else:
        with pytest.raises(TimestampError):
            webhooks.verify(BODY, headers, NEW, scheme=scheme, now=NOW)


def test_tolerance_is_configurable() -> None:
    headers = _signed_headers(ADV, H256, HEX, [NEW], ts=NOW - 1000)
    webhooks.verify(BODY, headers, NEW, scheme=ADV, now=NOW, tolerance=1000)
    with pytest.raises(TimestampError):
        webhooks.verify(BODY, headers, NEW, scheme=ADV, now=NOW, tolerance=999)


def test_simple_scheme_has_no_timestamp_to_check() -> None:
    headers = _signed_headers(SIMPLE, H256, HEX, [NEW], ts=NOW - 10**6)
    webhooks.verify(BODY, headers, NEW, scheme=SIMPLE, now=NOW)


# --- missing and malformed headers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "drop"),
    [
        (STD, "webhook-id"),
        (STD, "webhook-timestamp"),
        (STD, "webhook-signature"),
        (SIMPLE, "X-Convoy-Signature"),
        (ADV, "X-Convoy-Signature"),
    ],
)
def test_missing_header(scheme: SignatureScheme, drop: str) -> None:
    headers = _signed_headers(scheme, H256, HEX, [NEW])
    del headers[drop]
    with pytest.raises(MissingHeaderError, match=drop):
        webhooks.verify(BODY, headers, NEW, scheme=scheme, now=NOW)
    headers[drop] = "  "
    with pytest.raises(MissingHeaderError):
        webhooks.verify(BODY, headers, NEW, scheme=scheme, now=NOW)


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("webhook-timestamp", "yesterday", MalformedHeaderError),
        ("webhook-timestamp", "+1700000000", MalformedHeaderError),
        ("webhook-timestamp", "1700000000.5", MalformedHeaderError),
        ("webhook-timestamp", "-5", MalformedHeaderError),
        ("webhook-signature", "v1", MalformedHeaderError),
        ("webhook-signature", "v1,", MalformedHeaderError),
        ("webhook-signature", ",abc", MalformedHeaderError),
        ("webhook-signature", "v1,not*base64!", MalformedHeaderError),
        ("webhook-signature", "v1a,c2lnbmF0dXJl", InvalidSignatureError),  # nothing we check
        ("webhook-signature", "v2,c2lnbmF0dXJl v1,c2lnbmF0dXJl", InvalidSignatureError),
    ],
)
def test_malformed_standard_headers(
    name: str, value: str, error: type[WebhookVerificationError]
) -> None:
    headers = _signed_headers(STD, H256, B64, [NEW])
    headers[name] = value
    with pytest.raises(error):
        webhooks.verify(BODY, headers, NEW, now=NOW)


SIG = "ab" * 32


@pytest.mark.parametrize(
    "value",
    [
        f"v1={SIG}",  # no t
        f"t=,v1={SIG}",
        f"t=1700000000,t=1700000000,v1={SIG}",
        f"t=Infinity,v1={SIG}",
        f"t=1.7e9,v1={SIG}",
        f"t=1700000000,v1={SIG},",
        f"t=1700000000,v1{SIG}",
        "t=1700000000",  # no signature
        "t=1700000000,v1=zz",  # not hex
        "t=1700000000,v1=abc",  # odd-length hex
    ],
)
def test_malformed_advanced_header(value: str) -> None:
    with pytest.raises(MalformedHeaderError):
        webhooks.verify(BODY, {"X-Convoy-Signature": value}, NEW, scheme=ADV, now=NOW)


@pytest.mark.parametrize(
    ("encoding", "value"), [(HEX, "xyz"), (HEX, SIG + "0"), (B64, "***"), (B64, "abc")]
)
def test_malformed_simple_header(encoding: SignatureEncoding, value: str) -> None:
    with pytest.raises(MalformedHeaderError):
        webhooks.verify(
            BODY, {"X-Convoy-Signature": value}, NEW, scheme=SIMPLE, encoding=encoding, now=NOW
        )


@pytest.mark.parametrize("secrets", [[], ()])
def test_no_secret_is_a_configuration_error(secrets: list[str]) -> None:
    with pytest.raises(ValueError, match="no secret given"):
        webhooks.verify(BODY, _signed_headers(STD, H256, B64, [NEW]), secrets, now=NOW)


@pytest.mark.parametrize("secret", ["whsec_not*base64!", "whsec_", ""])
def test_bad_standard_secret_is_a_configuration_error(secret: str) -> None:
    with pytest.raises(ValueError, match="STANDARD secret") as info:
        webhooks.verify(BODY, _signed_headers(STD, H256, B64, [NEW]), secret, now=NOW)
    assert not isinstance(info.value, WebhookVerificationError)
    assert "not*base64" not in str(info.value)


# --- interop with the standardwebhooks package ---------------------------------------------


def test_our_standard_signature_verifies_with_standardwebhooks() -> None:
    ts = int(time.time())  # the package always checks against the real clock
    headers = _signed_headers(STD, H256, B64, [OLD, NEW], ts=ts)
    for secret in (OLD, NEW):
        assert Webhook(secret).verify(BODY, headers) == {
            "type": "invoice.paid",
            "data": {"id": "in_1", "amount": 4200, "note": "café"},
        }


def test_standardwebhooks_signature_verifies_with_ours() -> None:
    stamp = datetime.fromtimestamp(NOW, tz=UTC)
    signature = Webhook(NEW).sign(MSG_ID, stamp, BODY.decode())
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(NOW),
        "webhook-signature": signature,
    }
    webhooks.verify(BODY, headers, NEW, now=NOW)
    webhooks.verify(BODY, headers, [STRANGER, NEW], now=NOW)
    with pytest.raises(InvalidSignatureError):
        webhooks.verify(BODY, headers, OLD, now=NOW)


# --- Convoy, checked against the spec computed here by hand ---------------------------------

CONVOY_SECRET = "convoy-webhook-secret"


@pytest.mark.parametrize("hash_", [H256, H512])
@pytest.mark.parametrize("encoding", [HEX, B64])
def test_convoy_from_the_spec(hash_: SignatureHash, encoding: SignatureEncoding) -> None:
    algo = hashlib.sha256 if hash_ is H256 else hashlib.sha512

    def enc(raw: bytes) -> str:
        return raw.hex() if encoding is HEX else base64.b64encode(raw).decode()

    key = CONVOY_SECRET.encode()

    simple = enc(hmac.new(key, BODY, algo).digest())
    _verify({"X-Convoy-Signature": simple}, CONVOY_SECRET, SIMPLE, hash_, encoding)

    adv_sig = enc(hmac.new(key, f"{NOW},".encode() + BODY, algo).digest())
    other = enc(hmac.new(b"someone-else-secret", BODY, algo).digest())
    for header in (
        f"t={NOW},v1={adv_sig}",
        f"t={NOW},v1={other},v1={adv_sig}",  # one of several matches
        f"v1={adv_sig},t={NOW}",  # parsed by key: t need not come first
        f"t={NOW}, v1={adv_sig}",
        f"t={NOW},v1={other},v2={adv_sig}",  # a second signature version
    ):
        _verify({"X-Convoy-Signature": header}, CONVOY_SECRET, ADV, hash_, encoding)

    with pytest.raises(InvalidSignatureError):
        _verify({"X-Convoy-Signature": f"t={NOW},v1={other}"}, CONVOY_SECRET, ADV, hash_, encoding)
    # A signature over the body alone (simple) must not pass as an advanced one.
    with pytest.raises(InvalidSignatureError):
        _verify({"X-Convoy-Signature": f"t={NOW},v1={simple}"}, CONVOY_SECRET, ADV, hash_, encoding)


@pytest.mark.parametrize(
    ("header", "error"),
    [
        # From Convoy's published vectors (pkg/signature/testdata/signature-vectors.json).
        ("t=1700000000,v1=77b8b9269f25a199846a55a2bd25b3fba151c70fdae60bb1dcd87fbbc943c55c", None),
        (
            "t=1700000000,v1=77b8b9269f25a199846a55a2bd25b3fba151c70fdae60bb1dcd87fbbc943c550",
            InvalidSignatureError,
        ),
        ("t=1700000000,v1=1234567890", InvalidSignatureError),
        (
            "v1=77b8b9269f25a199846a55a2bd25b3fba151c70fdae60bb1dcd87fbbc943c55c",
            MalformedHeaderError,
        ),
    ],
)
def test_convoy_published_vectors(header: str, error: type[Exception] | None) -> None:
    body = b'{"event":"charge.success","amount":1000,"currency":"NGN"}'
    headers = {"X-Convoy-Signature": header}
    if error is None:
        _verify(headers, CONVOY_SECRET, ADV, body=body, now=1_700_000_000)
    else:
        with pytest.raises(error):
            _verify(headers, CONVOY_SECRET, ADV, body=body, now=1_700_000_000)
