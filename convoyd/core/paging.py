"""Opaque page tokens and page sizes for every listing (keyset paging on time-ordered ids)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from convoyd.errors import ValidationError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    """0 means the default; larger than the maximum is coerced down (AIP-158)."""
    if requested < 0:
        raise ValidationError.single("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _filter_key(filters: tuple[object, ...]) -> str:
    # A token is only valid for the listing (same filters) that produced it.
    return hashlib.sha256(repr(filters).encode()).hexdigest()[:16]


def encode_token(last_id: str, filters: tuple[object, ...]) -> str:
    raw = json.dumps({"a": last_id, "f": _filter_key(filters)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, filters: tuple[object, ...]) -> str:
    """The id to continue after; '' for the first page."""
    if not token:
        return ""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
        last_id, key = doc["a"], doc["f"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ValidationError.single("page_token", "is not a page token convoyd issued") from None
    if not isinstance(last_id, str) or key != _filter_key(filters):
        raise ValidationError.single(
            "page_token", "belongs to a listing with other filters; start again without it"
        )
    return last_id
