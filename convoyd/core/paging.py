"""Opaque page tokens and page sizes for every listing (keyset paging on time-ordered ids)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from convoyd.errors import ValidationError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Tokens convoyd issues are ~90 characters (an id and a filter key); anything far longer is not
# one, and is refused before it is decoded.
MAX_TOKEN_LENGTH = 512
MAX_CURSOR_LENGTH = 64


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
    """The cursor to continue after; '' for the first page.

    The filter key is a plain hash, so a caller can forge a token: the cursor inside is bounded
    here, and listings that read it as something other than an id parse it with
    ``number_cursor``.
    """
    if not token:
        return ""
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValidationError.single("page_token", "is not a page token convoyd issued")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
        last_id, key = doc["a"], doc["f"]
    # RecursionError: a token of deeply nested JSON (it is bounded, but so is the stack).
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
        raise ValidationError.single("page_token", "is not a page token convoyd issued") from None
    if not isinstance(last_id, str) or not last_id or len(last_id) > MAX_CURSOR_LENGTH:
        raise ValidationError.single("page_token", "is not a page token convoyd issued")
    if key != _filter_key(filters):
        raise ValidationError.single(
            "page_token", "belongs to a listing with other filters; start again without it"
        )
    return last_id


def number_cursor(cursor: str) -> int:
    """A cursor that counts (attempt numbers): 0 for the first page."""
    if not cursor:
        return 0
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 9):
        raise ValidationError.single("page_token", "is not a page token convoyd issued")
    return int(cursor)
