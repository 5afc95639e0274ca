"""Verify, on the receiving side, that a webhook request really comes from convoyd.

convoyd signs every request with the endpoint's secret(s). A receiver calls :func:`verify`
with the raw request body (the exact bytes, never re-serialised JSON), the request headers and
the secret(s) it holds, and trusts the request only if no exception is raised::

    import json
    import os

    from aiohttp import web

    from convoyd import webhooks

    # During a secret rotation, list the old and the new secret: either one passes.
    SECRETS = os.environ["WEBHOOK_SECRETS"].split()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            webhooks.verify(body, request.headers, SECRETS)
        except webhooks.WebhookVerificationError:
            return web.Response(status=401)
        event = json.loads(body)
        # Delivery is at least once: deduplicate on request.headers["webhook-id"].
        ...
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/webhooks", receive)

Schemes (pick the one the endpoint is configured with):

* ``SignatureScheme.STANDARD`` (default): Standard Webhooks, headers ``webhook-id``,
  ``webhook-timestamp`` and ``webhook-signature: v1,<base64> v1,<base64>``, HMAC-SHA256 over
  ``"{id}.{timestamp}." + body``. Secrets are ``whsec_<base64>`` (the prefix may be omitted).
* ``SignatureScheme.CONVOY_ADVANCED``: ``X-Convoy-Signature: t=<timestamp>,v1=<sig>,...``,
  HMAC(``hash``) over ``"{timestamp}," + body``, signatures in ``encoding``. The secret string
  itself is the key.
* ``SignatureScheme.CONVOY_SIMPLE``: ``X-Convoy-Signature: <sig>``, HMAC(``hash``) over the
  body alone. It carries **no timestamp**, so a captured request can be replayed at any time:
  replay protection is impossible with it; prefer one of the other two.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence

from convoyd.core import signing
from convoyd.core.model import SignatureEncoding, SignatureHash, SignatureScheme

__all__ = [
    "InvalidSignatureError",
    "MalformedHeaderError",
    "MissingHeaderError",
    "SignatureEncoding",
    "SignatureHash",
    "SignatureScheme",
    "TimestampError",
    "WebhookVerificationError",
    "verify",
]

# Unix seconds as ASCII digits only: int() would also take "+1", " 1", "1_0" and non-ASCII digits.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
# Convoy numbers signature versions v1..vN when a project has several hash/encoding pairs;
# each is a full HMAC with the same secret, so any of them may vouch for the request.
_CONVOY_VERSION = re.compile(r"v[0-9]+")


class WebhookVerificationError(Exception):
    """The request cannot be trusted. Answer it with 4xx and do not act on it."""


class MissingHeaderError(WebhookVerificationError):
    """A header the scheme requires is absent or empty."""


class MalformedHeaderError(WebhookVerificationError):
    """A signature or timestamp header is present but cannot be parsed."""


class TimestampError(WebhookVerificationError):
    """The signed timestamp is further from now than the tolerance (too old or in the future)."""


class InvalidSignatureError(WebhookVerificationError):
    """No signature in the request matches any of the given secrets."""


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: str | Sequence[str],
    *,
    scheme: SignatureScheme = SignatureScheme.STANDARD,
    hash: SignatureHash = SignatureHash.SHA256,
    encoding: SignatureEncoding = SignatureEncoding.HEX,
    tolerance: float = 300.0,
    now: float | None = None,
) -> None:
    """Check that ``body`` and ``headers`` were signed by convoyd with one of ``secrets``.

    Args:
        body: the raw request body, byte for byte as received.
        headers: the request headers; names are matched case-insensitively.
        secrets: one secret or several candidates (e.g. old and new during a rotation);
            the request passes when ANY candidate matches ANY signature it carries.
        scheme: the endpoint's signature scheme.
        hash, encoding: the endpoint's Convoy hash and signature encoding (ignored by
            STANDARD, which is always HMAC-SHA256 in base64).
        tolerance: how far, in seconds, the signed timestamp may be from ``now`` either way.
        now: the current Unix time; defaults to ``time.time()``.

    Raises:
        MissingHeaderError, MalformedHeaderError, TimestampError, InvalidSignatureError:
            all subclasses of :class:`WebhookVerificationError`.
        ValueError: no secret was given, or a STANDARD secret is not base64 (a configuration
            mistake on the receiving side, not a bad request).
    """
    candidates = [secrets] if isinstance(secrets, str) else list(secrets)
    if not candidates:
        raise ValueError("no secret given")
    lowered = {name.lower(): value for name, value in headers.items()}
    if now is None:
        now = time.time()
    if scheme == SignatureScheme.STANDARD:
        received, expected = _standard(body, lowered, candidates, now, tolerance)
    elif scheme in (SignatureScheme.CONVOY_SIMPLE, SignatureScheme.CONVOY_ADVANCED):
        received, expected = _convoy(
            body, lowered, candidates, SignatureScheme(scheme), hash, encoding, now, tolerance
        )
    else:
        raise ValueError(f"unknown signature scheme {scheme!r}")
    matched = False
    for want in expected:
        for got in received:
            # No early exit: the time taken must not depend on which pair matched.
            matched |= hmac.compare_digest(want, got)
    if not matched:
        raise InvalidSignatureError("no signature matches the given secret(s)")


def _standard(
    body: bytes, lowered: Mapping[str, str], secrets: list[str], now: float, tolerance: float
) -> tuple[list[bytes], list[bytes]]:
    """The signatures a STANDARD request carries and the ones ``secrets`` would make."""
    keys = [_standard_key(secret) for secret in secrets]
    msg_id = _require(lowered, "webhook-id")
    raw_ts = _require(lowered, "webhook-timestamp")
    header = _require(lowered, signing.STANDARD_HEADER)
    _check_timestamp(raw_ts, "webhook-timestamp", now, tolerance)
    received = _parse_standard(header)
    signed = signing.signed_content(SignatureScheme.STANDARD, msg_id, raw_ts, body)
    return received, [hmac.digest(key, signed, hashlib.sha256) for key in keys]


def _convoy(
    body: bytes,
    lowered: Mapping[str, str],
    secrets: list[str],
    scheme: SignatureScheme,
    hash: SignatureHash,
    encoding: SignatureEncoding,
    now: float,
    tolerance: float,
) -> tuple[list[bytes], list[bytes]]:
    """The signatures a Convoy-scheme request carries and the ones ``secrets`` would make."""
    keys = [secret.encode("utf-8") for secret in secrets]
    digest = signing.DIGESTS[SignatureHash(hash)]
    header = _require(lowered, signing.CONVOY_HEADER)
    if scheme == SignatureScheme.CONVOY_SIMPLE:
        received = [_decode(header.strip(), SignatureEncoding(encoding))]
        raw_ts = ""
    else:
        raw_ts, raw_sigs = _parse_advanced(header)
        _check_timestamp(raw_ts, "X-Convoy-Signature t", now, tolerance)
        received = [_decode(sig, SignatureEncoding(encoding)) for sig in raw_sigs]
    signed = signing.signed_content(scheme, "", raw_ts, body)
    return received, [hmac.digest(key, signed, digest) for key in keys]


def _require(lowered: Mapping[str, str], name: str) -> str:
    value = lowered.get(name.lower(), "")
    if not value.strip():
        raise MissingHeaderError(f"missing header {name}")
    return value


def _standard_key(secret: str) -> bytes:
    # Looser than what convoyd generates (24..64 bytes): any non-empty key a sender may use.
    try:
        key = signing.decode_base64_key(secret.removeprefix(signing.STANDARD_PREFIX))
    except ValueError:
        raise ValueError("a STANDARD secret must be whsec_<base64> or base64") from None
    if not key:
        raise ValueError("a STANDARD secret must not be empty")
    return key


def _check_timestamp(raw: str, name: str, now: float, tolerance: float) -> None:
    if not _TIMESTAMP.fullmatch(raw):
        raise MalformedHeaderError(f"{name} is not a Unix time in seconds")
    ts = int(raw)
    if ts < now - tolerance:
        raise TimestampError(f"{name} is more than {tolerance:g}s in the past")
    if ts > now + tolerance:
        raise TimestampError(f"{name} is more than {tolerance:g}s in the future")


def _parse_standard(header: str) -> list[bytes]:
    """The decoded ``v1`` signatures of a ``webhook-signature`` header."""
    out: list[bytes] = []
    for entry in header.split():
        version, sep, sig = entry.partition(",")
        if not sep or not version or not sig:
            raise MalformedHeaderError("webhook-signature entries must be <version>,<signature>")
        # Other versions (v1a: asymmetric) are not convoyd's; skip them, as the spec asks.
        if version == "v1":
            out.append(_decode(sig, SignatureEncoding.BASE64))
    if not out:
        raise InvalidSignatureError("webhook-signature carries no v1 signature")
    return out


def _parse_advanced(header: str) -> tuple[str, list[str]]:
    """The ``t=`` value and the signatures of an advanced ``X-Convoy-Signature`` header.

    Parsed by key, not by position, like Convoy's own verifiers: ``t`` need not come first.
    """
    timestamp: str | None = None
    sigs: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not value:
            raise MalformedHeaderError("X-Convoy-Signature entries must be <key>=<value>")
        if key == "t":
            if timestamp is not None:
                raise MalformedHeaderError("X-Convoy-Signature has more than one t=")
            timestamp = value
        elif _CONVOY_VERSION.fullmatch(key):
            sigs.append(value)
    if timestamp is None:
        raise MalformedHeaderError("X-Convoy-Signature has no t= timestamp")
    if not sigs:
        raise MalformedHeaderError("X-Convoy-Signature has no v1= signature")
    return timestamp, sigs


def _decode(sig: str, encoding: SignatureEncoding) -> bytes:
    try:
        if encoding == SignatureEncoding.HEX:
            return binascii.a2b_hex(sig)
        return binascii.a2b_base64(sig.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise MalformedHeaderError(f"a signature is not valid {encoding.value}") from None
