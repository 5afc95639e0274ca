"""Endpoint → shard: fixed values (as PostgreSQL's generated column computes them) and spread."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from convoyd.core.ids import new_id
from convoyd.core.shards import DEFAULT_SHARDS, shard_key, shard_of

# Computed by PostgreSQL 15 with the expression of endpoints.shard_key (pg_schema migration 2):
# ('x' || substr(md5(id), 1, 15))::bit(60)::bigint. A change of shard_of that breaks one of
# these would make nodes and the database disagree about which rows a shard holds.
FIXED = [
    ("ep_01HZX3Q9V7K2M4N6P8R0S2T4V6", 636846058137254781, 125, 4),
    ("ep_00000000000000000000000000", 722260844006174133, 181, 3),
    ("ep_7ZZZZZZZZZZZZZZZZZZZZZZZZZ", 40963530188742092, 204, 1),
    ("ep_01J0000000000000000000000Z", 921117292225159982, 46, 1),
    ("a", 57446577476672362, 106, 6),
    ("", 955282973525019424, 32, 5),
]


@pytest.mark.parametrize(("endpoint_id", "key", "of_256", "of_7"), FIXED)
def test_fixed_values(endpoint_id: str, key: int, of_256: int, of_7: int) -> None:
    assert shard_key(endpoint_id) == key
    assert shard_of(endpoint_id, DEFAULT_SHARDS) == of_256
    assert shard_of(endpoint_id, 7) == of_7
    assert shard_of(endpoint_id, 1) == 0


@pytest.mark.parametrize("endpoint_id", [f for f, *_ in FIXED])
def test_the_key_fits_a_signed_bigint(endpoint_id: str) -> None:
    assert 0 <= shard_key(endpoint_id) < 2**60


@pytest.mark.parametrize("total", [0, -1])
def test_total_must_be_positive(total: int) -> None:
    with pytest.raises(ValueError, match="total"):
        shard_of("ep_x", total)


@pytest.mark.parametrize(("total", "seed"), [(DEFAULT_SHARDS, 1), (16, 2), (4096, 3)])
def test_real_ids_spread_evenly(total: int, seed: int) -> None:
    rng = random.Random(seed)
    count = total * 200
    # Ids made within one second share their time prefix: the spread must come from the hash.
    ids = [new_id("ep", 1_700_000_000 + i / count, rng) for i in range(count)]
    per_shard = Counter(shard_of(i, total) for i in ids)
    assert set(per_shard) == set(range(total))
    # 200 expected per shard; a binomial spread stays well within ±40 % at these counts.
    assert min(per_shard.values()) > 120
    assert max(per_shard.values()) < 280
