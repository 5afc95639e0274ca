"""Webhook signatures: which secrets sign, and the Standard Webhooks and Convoy signature headers.

Two families of scheme are produced here (the receiver-side check is ``convoyd.webhooks``):

* **Standard Webhooks** (https://www.standardwebhooks.com/)::

      webhook-signature: v1,<b64> v1,<b64>
      signed content = f"{webhook-id}.{webhook-timestamp}." + body,  HMAC-SHA256, base64

  The key is the base64 part of a ``whsec_<base64>`` secret, decoded. The sender adds the
  ``webhook-id`` and ``webhook-timestamp`` headers itself (every scheme carries them).

* **Convoy** (frain-dev/convoy ``pkg/signature/signature.go``, ``Signature.ComputeHeaderValue``)::

      simple:    X-Convoy-Signature: <enc(HMAC(hash, secret, body))>
      advanced:  X-Convoy-Signature: t=<ts>,v1=<sig>,v1=<sig>...
                 sig = enc(HMAC(hash, secret, f"{ts}," + body))

  Convoy keys the HMAC with the secret string's bytes as they are (``[]byte(secret)``, no
  decoding), encodes with lowercase hex or standard padded base64, and in advanced mode signs
  ``timestamp + "," + payload`` and writes one ``v1=`` entry per live secret after ``t=``.
  (Convoy numbers signature *versions* ``v1..vN`` when a project configures several
  hash/encoding pairs; an endpoint here has exactly one, so every entry is ``v1``.)

No function here reads the clock or the global random generator: ``now`` and a
``random.Random`` are passed in. No error message carries secret material.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import random
from collections.abc import Callable, Sequence
from typing import Any

from convoyd.core.model import (
    Secret,
    SignatureConfig,
    SignatureEncoding,
    SignatureHash,
    SignatureScheme,
)

STANDARD_PREFIX = "whsec_"
STANDARD_HEADER = "webhook-signature"
CONVOY_HEADER = "X-Convoy-Signature"

# Standard Webhooks asks for 24..64 byte keys; convoyd generates 32.
STANDARD_KEY_MIN = 24
STANDARD_KEY_MAX = 64
GENERATED_KEY_BYTES = 32
CONVOY_SECRET_MIN = 16
CONVOY_SECRET_MAX = 256

# Digest constructors looked up once: hmac.digest with a constructor takes OpenSSL's one-shot path.
DIGESTS: dict[SignatureHash, Callable[..., Any]] = {
    SignatureHash.SHA256: hashlib.sha256,
    SignatureHash.SHA512: hashlib.sha512,
}


def _b64(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def _hex(raw: bytes) -> str:
    return raw.hex()


ENCODERS: dict[SignatureEncoding, Callable[[bytes], str]] = {
    SignatureEncoding.HEX: _hex,
    SignatureEncoding.BASE64: _b64,
}


def generate_secret(rng: random.Random) -> str:
    """A new ``whsec_`` secret of 32 random bytes. Production passes ``random.SystemRandom()``."""
    return STANDARD_PREFIX + _b64(rng.randbytes(GENERATED_KEY_BYTES))


def decode_base64_key(b64: str) -> bytes:
    """The bytes of base64 text, padding optional (as the standardwebhooks libraries take it).

    Raises ``ValueError`` (without echoing the input) when it is not base64.
    """
    try:
        return binascii.a2b_base64((b64 + "=" * (-len(b64) % 4)).encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError("secret is not valid base64") from None


def decode_standard_key(b64: str) -> bytes:
    """The key bytes of the base64 part of a Standard Webhooks secret (padding optional).

    Raises ``ValueError`` (without echoing the input) when it is not base64 or not 24..64 bytes.
    """
    key = decode_base64_key(b64)
    if not STANDARD_KEY_MIN <= len(key) <= STANDARD_KEY_MAX:
        raise ValueError(
            f"secret must decode to {STANDARD_KEY_MIN}..{STANDARD_KEY_MAX} bytes, not {len(key)}"
        )
    return key


def secret_key(scheme: SignatureScheme, value: str) -> bytes:
    """The HMAC key a secret stands for under ``scheme``.

    STANDARD: ``value`` must be ``whsec_<base64>``; the key is the decoded bytes.
    Convoy schemes: the UTF-8 bytes of the whole string, exactly as Convoy keys its HMAC.
    Raises ``ValueError`` with a message that never contains the secret.
    """
    if scheme == SignatureScheme.STANDARD:
        if not value.startswith(STANDARD_PREFIX):
            raise ValueError(f"secret must start with {STANDARD_PREFIX!r}")
        return decode_standard_key(value[len(STANDARD_PREFIX) :])
    return value.encode("utf-8")


def check_secret(scheme: SignatureScheme, value: str) -> str | None:
    """Why ``value`` cannot sign under ``scheme``, or None when it can."""
    if scheme == SignatureScheme.STANDARD:
        try:
            secret_key(scheme, value)
        except ValueError as exc:
            return str(exc)
        return None
    if not CONVOY_SECRET_MIN <= len(value) <= CONVOY_SECRET_MAX:
        return f"secret must be {CONVOY_SECRET_MIN}..{CONVOY_SECRET_MAX} characters long"
    # Printable ASCII without space: survives copy-paste into any receiver's config unchanged.
    if not all("\x21" <= ch <= "\x7e" for ch in value):
        return "secret must be printable ASCII without whitespace"
    return None


def _created_at(secret: Secret) -> float:
    return secret.created_at


def signing_secrets(scheme: SignatureScheme, secrets: Sequence[Secret], now: float) -> list[Secret]:
    """The secrets that sign a request sent at ``now``: the zero-downtime rotation rule.

    An expired secret (``expires_at <= now``) never signs. STANDARD and CONVOY_ADVANCED carry
    a signature per live secret, newest first, so receivers holding either the old or the new
    secret pass during the overlap. CONVOY_SIMPLE carries a single signature: the OLDEST live
    secret signs, so receivers that have not switched yet keep passing until it expires, and
    then the next one takes over. (Convoy itself signs simple headers with its newest secret,
    which breaks such receivers the moment a rotation happens.)
    """
    live = [s for s in secrets if s.is_live(now)]
    if scheme == SignatureScheme.CONVOY_SIMPLE:
        return [min(live, key=_created_at)] if live else []
    live.sort(key=_created_at, reverse=True)
    return live


def signed_content(scheme: SignatureScheme, msg_id: str, timestamp: str, body: bytes) -> bytes:
    """The bytes an HMAC covers under ``scheme``, for the sender and the receiver alike.

    ``timestamp`` is the header's text: a receiver signs what was sent, not ``int()`` of it.
    """
    if scheme == SignatureScheme.STANDARD:
        return f"{msg_id}.{timestamp}.".encode() + body
    if scheme == SignatureScheme.CONVOY_ADVANCED:
        return f"{timestamp},".encode() + body
    return body


def signature_headers(
    config: SignatureConfig,
    keys: Sequence[bytes],
    msg_id: str,
    timestamp: int,
    body: bytes,
) -> list[tuple[str, str]]:
    """The signature header for one request, signed with every key in ``keys``.

    ``keys`` come from :func:`secret_key` (decoded once, not per request), in the order of
    :func:`signing_secrets`. STANDARD always uses HMAC-SHA256 and base64 whatever ``config``
    says; CONVOY_SIMPLE signs with ``keys[0]`` only. Raises ``ValueError`` when ``keys`` is empty.
    """
    if not keys:
        raise ValueError("no live signing secret")
    scheme = config.scheme
    if scheme == SignatureScheme.STANDARD:
        signed = signed_content(scheme, msg_id, str(timestamp), body)
        sha256 = hashlib.sha256
        value = " ".join(["v1," + _b64(hmac.digest(k, signed, sha256)) for k in keys])
        return [(STANDARD_HEADER, value)]
    digest = DIGESTS[config.hash]
    encode = ENCODERS[config.encoding]
    if scheme == SignatureScheme.CONVOY_SIMPLE:
        return [(CONVOY_HEADER, encode(hmac.digest(keys[0], body, digest)))]
    if scheme != SignatureScheme.CONVOY_ADVANCED:
        raise ValueError(f"unknown signature scheme {scheme!r}")
    ts = str(timestamp)
    signed = signed_content(scheme, msg_id, ts, body)
    parts = ["t=" + ts]
    parts.extend(["v1=" + encode(hmac.digest(k, signed, digest)) for k in keys])
    return [(CONVOY_HEADER, ",".join(parts))]
