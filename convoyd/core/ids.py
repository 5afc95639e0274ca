"""Time-ordered, prefixed resource ids ("ep_01J…"): sortable by creation, not secret.

The 80 random bits come from whatever generator the caller passes in; the daemon passes a
PRNG seeded once from the OS, so ids are unique but can be predicted by someone who learns its
state. That is safe because an id is never a credential: every read and write through an id is
checked against the caller's token or portal scope. Secrets and tokens use ``SystemRandom``.
"""

from __future__ import annotations

import random

# Crockford's base32, as ULID uses: no I, L, O, U, so ids read aloud without confusion.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_CHARS = frozenset(_ALPHABET)

# Every pair of digits (10 bits): two ids per accepted event make the digit loop a hot spot.
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_SHIFTS = tuple(range(120, -1, -10))


def new_id(prefix: str, now: float, rng: random.Random) -> str:
    """A ULID (48-bit millisecond time + 80 random bits) behind ``prefix_``."""
    value = (int(now * 1000) & ((1 << 48) - 1)) << 80 | rng.getrandbits(80)
    # 26 digits of 5 bits hold 130 bits: 13 pairs of the value with two zero bits on top.
    return prefix + "_" + "".join([_PAIRS[(value >> s) & 1023] for s in _SHIFTS])


def is_valid_id(prefix: str, value: str) -> bool:
    head, sep, body = value.partition("_")
    return head == prefix and sep == "_" and len(body) == 26 and set(body) <= _ID_CHARS


def id_floor(prefix: str, at: float) -> str:
    """The smallest id ``new_id(prefix, t, ...)`` can return for any t at or after ``at``
    (millisecond precision): ids compare bytewise in creation order, so ranges of them are
    ranges of creation time (the PostgreSQL store's partitions)."""
    value = (int(at * 1000) & ((1 << 48) - 1)) << 80
    return prefix + "_" + "".join([_PAIRS[(value >> s) & 1023] for s in _SHIFTS])
