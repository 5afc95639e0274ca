"""Signing rules: secret formats, the rotation rule and the exact header bytes of each scheme."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random

import pytest

from convoyd.core import signing
from convoyd.core.model import (
    Secret,
    SignatureConfig,
    SignatureEncoding,
    SignatureHash,
    SignatureScheme,
)

STD = SignatureScheme.STANDARD
SIMPLE = SignatureScheme.CONVOY_SIMPLE
ADV = SignatureScheme.CONVOY_ADVANCED
KEY32 = bytes(range(32))
WHSEC32 = "whsec_" + base64.b64encode(KEY32).decode()
NOW = 1_700_000_000.0

# --- secrets -------------------------------------------------------------------------------


def _seeded(seed: int) -> random.Random:
    return random.Random(seed)


def test_generate_secret_is_whsec_32_bytes_and_deterministic_per_rng() -> None:
    one = signing.generate_secret(_seeded(7))
    assert one == signing.generate_secret(_seeded(7))
    assert one != signing.generate_secret(_seeded(8))
    assert one.startswith("whsec_")
    assert len(base64.b64decode(one.removeprefix("whsec_"), validate=True)) == 32
    assert signing.check_secret(STD, one) is None
    assert signing.check_secret(ADV, one) is None  # usable if the endpoint switches scheme


def test_generate_secret_accepts_system_random() -> None:
    assert signing.check_secret(STD, signing.generate_secret(random.SystemRandom())) is None


@pytest.mark.parametrize(
    ("scheme", "value", "key"),
    [
        (STD, WHSEC32, KEY32),
        (STD, WHSEC32.rstrip("="), KEY32),  # padding optional
        (STD, "whsec_" + base64.b64encode(b"k" * 24).decode(), b"k" * 24),
        (STD, "whsec_" + base64.b64encode(b"k" * 64).decode(), b"k" * 64),
        (SIMPLE, "convoy-webhook-secret", b"convoy-webhook-secret"),
        (ADV, WHSEC32, WHSEC32.encode()),  # Convoy keys with the string itself, never decoded
    ],
)
def test_secret_key(scheme: SignatureScheme, value: str, key: bytes) -> None:
    assert signing.secret_key(scheme, value) == key


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (base64.b64encode(KEY32).decode(), "must start with 'whsec_'"),
        ("whsec_not*base64!", "not valid base64"),
        ("whsec_" + base64.b64encode(b"k" * 23).decode(), "24..64 bytes, not 23"),
        ("whsec_" + base64.b64encode(b"k" * 65).decode(), "24..64 bytes, not 65"),
        ("whsec_", "24..64 bytes, not 0"),
        ("whsec_ü" + "A" * 40, "not valid base64"),
    ],
)
def test_standard_secret_rejected_without_leaking_it(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        signing.secret_key(STD, value)
    if material := value.removeprefix("whsec_"):
        assert material not in str(info.value)
    message = signing.check_secret(STD, value)
    assert message is not None
    assert problem in message


@pytest.mark.parametrize(
    ("scheme", "value", "ok"),
    [
        (STD, WHSEC32, True),
        (SIMPLE, "a" * 16, True),
        (SIMPLE, "a" * 15, False),
        (ADV, "a" * 256, True),
        (ADV, "a" * 257, False),
        (ADV, "has a space in it!", False),
        (ADV, "tab\tinside-the-secret", False),
        (ADV, "non-ascii-sécret-value", False),
        (SIMPLE, "!~printable~ascii~only~", True),
    ],
)
def test_check_secret(scheme: SignatureScheme, value: str, ok: bool) -> None:
    assert (signing.check_secret(scheme, value) is None) is ok


# --- rotation rule -------------------------------------------------------------------------


def _s(id_: str, created: float, expires: float | None = None) -> Secret:
    return Secret(id=id_, value=id_, created_at=created, expires_at=expires)


OLD = _s("old", 100, NOW + 60)
MID = _s("mid", 200, NOW + 3600)
NEW = _s("new", 300)


@pytest.mark.parametrize(
    ("scheme", "secrets", "expected"),
    [
        # none expired: all live ones, newest first (input order must not matter)
        (STD, [OLD, NEW, MID], ["new", "mid", "old"]),
        (ADV, [NEW, OLD, MID], ["new", "mid", "old"]),
        (SIMPLE, [NEW, MID, OLD], ["old"]),
        # one expired
        (STD, [_s("old", 100, NOW - 1), NEW], ["new"]),
        (ADV, [_s("old", 100, NOW - 1), NEW], ["new"]),
        (SIMPLE, [_s("old", 100, NOW - 1), MID, NEW], ["mid"]),
        # expiring exactly now counts as expired
        (STD, [_s("old", 100, NOW), NEW], ["new"]),
        (SIMPLE, [_s("old", 100, NOW), NEW], ["new"]),
        # all expired: nothing signs
        (STD, [_s("a", 1, NOW - 5), _s("b", 2, NOW)], []),
        (ADV, [_s("a", 1, NOW - 5), _s("b", 2, NOW)], []),
        (SIMPLE, [_s("a", 1, NOW - 5), _s("b", 2, NOW)], []),
        (SIMPLE, [], []),
        # a live secret with no expiry is still only used by simple when it is the oldest
        (SIMPLE, [_s("never", 50), NEW], ["never"]),
    ],
)
def test_signing_secrets(
    scheme: SignatureScheme, secrets: list[Secret], expected: list[str]
) -> None:
    assert [s.id for s in signing.signing_secrets(scheme, secrets, NOW)] == expected


# --- headers -------------------------------------------------------------------------------

# Known answers published by Convoy (frain-dev/convoy pkg/signature/testdata/
# signature-vectors.json): secret "convoy-webhook-secret", timestamp 1700000000.
CONVOY_SECRET = b"convoy-webhook-secret"
CONVOY_BODY = b'{"event":"charge.success","amount":1000,"currency":"NGN"}'
H256, H512 = SignatureHash.SHA256, SignatureHash.SHA512
HEX, B64 = SignatureEncoding.HEX, SignatureEncoding.BASE64


@pytest.mark.parametrize(
    ("scheme", "hash_", "encoding", "header"),
    [
        (SIMPLE, H256, HEX, "244449b7f48cbc2709060c9dcdc2b3aa47a78f540430579015c579fb12defbb4"),
        (SIMPLE, H256, B64, "JERJt/SMvCcJBgydzcKzqkenj1QEMFeQFcV5+xLe+7Q="),
        (
            SIMPLE,
            H512,
            B64,
            "bMdy3IGUKuG1/6kcOmoHsNN+3I3GvYPjUYohnx8Z/3GuG3bWsyCUDUFMI2oarX95MLY+DxkolRlV0xIZVF4bZg==",
        ),
        (
            ADV,
            H256,
            HEX,
            "t=1700000000,v1=77b8b9269f25a199846a55a2bd25b3fba151c70fdae60bb1dcd87fbbc943c55c",
        ),
        (ADV, H256, B64, "t=1700000000,v1=d7i5Jp8loZmEalWivSWz+6FRxw/a5gux3Nh/u8lDxVw="),
    ],
)
def test_convoy_known_answers(
    scheme: SignatureScheme, hash_: SignatureHash, encoding: SignatureEncoding, header: str
) -> None:
    config = SignatureConfig(scheme=scheme, hash=hash_, encoding=encoding)
    got = signing.signature_headers(config, [CONVOY_SECRET], "msg_1", 1_700_000_000, CONVOY_BODY)
    assert got == [("X-Convoy-Signature", header)]


def _enc(raw: bytes, encoding: SignatureEncoding) -> str:
    return raw.hex() if encoding is HEX else base64.b64encode(raw).decode()


KEYS = [b"first-key-0123456789", b"second-key-0123456789"]
BODY = b'{"type":"invoice.paid","n":1}'


@pytest.mark.parametrize("hash_", [H256, H512])
@pytest.mark.parametrize("encoding", [HEX, B64])
def test_convoy_headers_match_the_spec(hash_: SignatureHash, encoding: SignatureEncoding) -> None:
    algo = hashlib.sha256 if hash_ is H256 else hashlib.sha512

    simple = SignatureConfig(scheme=SIMPLE, hash=hash_, encoding=encoding)
    want = _enc(hmac.new(KEYS[0], BODY, algo).digest(), encoding)
    assert signing.signature_headers(simple, KEYS, "m", 42, BODY) == [("X-Convoy-Signature", want)]

    adv = SignatureConfig(scheme=ADV, hash=hash_, encoding=encoding)
    sigs = [_enc(hmac.new(k, b"42," + BODY, algo).digest(), encoding) for k in KEYS]
    want = f"t=42,v1={sigs[0]},v1={sigs[1]}"
    assert signing.signature_headers(adv, KEYS, "m", 42, BODY) == [("X-Convoy-Signature", want)]


@pytest.mark.parametrize("hash_", [H256, H512])
@pytest.mark.parametrize("encoding", [HEX, B64])
def test_standard_header_ignores_hash_and_encoding(
    hash_: SignatureHash, encoding: SignatureEncoding
) -> None:
    config = SignatureConfig(scheme=STD, hash=hash_, encoding=encoding)
    signed = b"msg_2Lx.1700000000." + BODY
    sigs = [base64.b64encode(hmac.new(k, signed, hashlib.sha256).digest()).decode() for k in KEYS]
    got = signing.signature_headers(config, KEYS, "msg_2Lx", 1_700_000_000, BODY)
    assert got == [("webhook-signature", f"v1,{sigs[0]} v1,{sigs[1]}")]


@pytest.mark.parametrize("scheme", [STD, SIMPLE, ADV])
def test_no_keys_is_an_error(scheme: SignatureScheme) -> None:
    with pytest.raises(ValueError, match="no live signing secret"):
        signing.signature_headers(SignatureConfig(scheme=scheme), [], "m", 1, b"")
