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
_TIME_MASK = (1 << 48) - 1


def new_id(prefix: str, now: float, rng: random.Random) -> str:
    """A ULID (48-bit millisecond time + 80 random bits) behind ``prefix_``."""
    return _digits(prefix, (int(now * 1000) & _TIME_MASK) << 80 | rng.getrandbits(80))


class MonotonicIds:
    """ULIDs that sort in the order they were made (the ULID monotonic rule), per prefix.

    Ids made in one millisecond (a batch of events shares one ``now``) would otherwise sort by
    their random bits; FIFO endpoints take acceptance order from delivery id order, so within a
    millisecond, and when the clock steps back, each id is the previous one plus one. The random
    bits are drawn either way, so a seeded ``rng`` goes on giving the same sequence. Ids made by
    different instances (nodes) interleave by millisecond only.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, int] = {}  # prefix -> the last id's 128-bit value

    def new(self, prefix: str, now: float, rng: random.Random) -> str:
        value = (int(now * 1000) & _TIME_MASK) << 80 | rng.getrandbits(80)
        last = self._last.get(prefix)
        if last is not None and value >> 80 <= last >> 80:
            # The same millisecond (or an earlier one): one more than the last. An overflow of
            # the 80 random bits carries into the time, which keeps the order.
            value = last + 1
        self._last[prefix] = value
        return _digits(prefix, value)


def _digits(prefix: str, value: int) -> str:
    # 26 digits of 5 bits hold 130 bits: 13 pairs of the value with two zero bits on top.
    return prefix + "_" + "".join([_PAIRS[(value >> s) & 1023] for s in _SHIFTS])


def is_valid_id(prefix: str, value: str) -> bool:
    head, sep, body = value.partition("_")
    return head == prefix and sep == "_" and len(body) == 26 and set(body) <= _ID_CHARS


def id_floor(prefix: str, at: float) -> str:
    """The smallest id ``new_id(prefix, t, ...)`` can return for any t at or after ``at``
    (millisecond precision): ids compare bytewise in creation order, so ranges of them are
    ranges of creation time (the PostgreSQL store's partitions)."""
    return _digits(prefix, (int(at * 1000) & _TIME_MASK) << 80)
