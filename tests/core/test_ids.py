"""Resource ids: prefixed, fixed length, ordered by creation time."""

from __future__ import annotations

import random

import pytest

from convoyd.core.ids import is_valid_id, new_id


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
