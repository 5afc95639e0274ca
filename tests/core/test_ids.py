"""Resource ids: prefixed, fixed length, ordered by creation time."""

from __future__ import annotations

import random

import pytest

from convoyd.core.ids import MonotonicIds, is_valid_id, new_id


def test_ids_sort_by_time() -> None:
    rng = random.Random(1)
    ids = [new_id("ep", 1_700_000_000 + i * 0.001, rng) for i in range(100)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 100


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (new_id("ep", 1.0, random.Random(2)), True),
        ("ep_", False),
        ("ev_" + "0" * 26, False),
        ("ep_" + "I" * 26, False),  # not in Crockford's alphabet
        ("ep_" + "0" * 25, False),
    ],
)
def test_is_valid_id(value: str, ok: bool) -> None:
    assert is_valid_id("ep", value) is ok


class FixedBits(random.Random):
    """Hands out one chosen value as its "random" bits."""

    def __init__(self, bits: int) -> None:
        super().__init__(0)
        self.bits = bits

    def getrandbits(self, k: int) -> int:
        return self.bits & ((1 << k) - 1)


@pytest.mark.parametrize(
    ("now", "bits", "expected"),
    [
        (0.0, 0, "dl_" + "0" * 26),
        (0.0, 1, "dl_" + "0" * 25 + "1"),
        (0.0, 31, "dl_" + "0" * 25 + "Z"),
        (0.0, 32, "dl_" + "0" * 24 + "10"),
        (0.001, 0, "dl_" + "0" * 9 + "1" + "0" * 16),  # 1 ms: the 48-bit time starts at digit 10
        ((2**48 - 1) / 1000, 2**80 - 1, "dl_7" + "Z" * 25),  # the largest ULID
    ],
)
def test_new_id_digits(now: float, bits: int, expected: str) -> None:
    assert new_id("dl", now, FixedBits(bits)) == expected


def _value(id_: str) -> int:
    """The 128-bit value behind an id's digits."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = 0
    for ch in id_.partition("_")[2]:
        value = value * 32 + alphabet.index(ch)
    return value


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (now, random bits) per id -> the value's offset from the first id's
        ([(1.0, 5), (1.0, 3)], [0, 1]),  # same ms, smaller random bits: still +1
        ([(1.0, 5), (1.0, 9), (1.0, 0)], [0, 1, 2]),
        ([(1.0, 5), (1.002, 3)], [0, (2 << 80) - 2]),  # a later ms: fresh random bits
        ([(1.002, 5), (1.0, 3)], [0, 1]),  # the clock stepped back: +1, never smaller
    ],
)
def test_monotonic_ids_follow_the_ulid_rule(
    steps: list[tuple[float, int]], expected: list[int]
) -> None:
    ids = MonotonicIds()
    made = [ids.new("dl", now, FixedBits(bits)) for now, bits in steps]
    first = _value(made[0])
    assert [_value(m) - first for m in made] == expected
    assert made == sorted(made)
    assert all(is_valid_id("dl", m) for m in made)


def test_monotonic_ids_overflow_carries_into_the_time() -> None:
    ids = MonotonicIds()
    top = ids.new("dl", 1.0, FixedBits(2**80 - 1))
    after = ids.new("dl", 1.0, FixedBits(0))
    assert top < after
    assert _value(after) == (1001 << 80)


def test_monotonic_ids_keep_each_prefix_apart() -> None:
    ids = MonotonicIds()
    assert ids.new("ev", 1.0, FixedBits(7)) == new_id("ev", 1.0, FixedBits(7))
    assert ids.new("dl", 1.0, FixedBits(7)) == new_id("dl", 1.0, FixedBits(7))
    assert _value(ids.new("ev", 1.0, FixedBits(0))) == _value(new_id("ev", 1.0, FixedBits(7))) + 1


def test_monotonic_ids_in_one_ms_sort_in_order_made() -> None:
    ids = MonotonicIds()
    rng = random.Random(3)
    made = [ids.new("dl", 1_700_000_000.0, rng) for _ in range(1000)]
    assert made == sorted(made)
    assert len(set(made)) == 1000
    # the same rng draws as new_id: the first id of a millisecond is new_id's
    assert made[0] == new_id("dl", 1_700_000_000.0, random.Random(3))
