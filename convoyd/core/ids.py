"""Time-ordered, prefixed resource ids ("ep_01J…"): sortable by creation, unguessable."""

from __future__ import annotations

import random

# Crockford's base32, as ULID uses: no I, L, O, U, so ids read aloud without confusion.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_CHARS = frozenset(_ALPHABET)

PREFIXES = ("ep", "sec", "ev", "dl", "at", "pl", "ps", "tok")


def new_id(prefix: str, now: float, rng: random.Random) -> str:
    """A ULID (48-bit millisecond time + 80 random bits) behind ``prefix_``."""
    value = (int(now * 1000) & ((1 << 48) - 1)) << 80 | rng.getrandbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def is_valid_id(prefix: str, value: str) -> bool:
    head, sep, body = value.partition("_")
    return head == prefix and sep == "_" and len(body) == 26 and set(body) <= _ID_CHARS
