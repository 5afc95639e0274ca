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
