"""Which shard an endpoint belongs to: the unit a cluster node leases (architecture.md §11).

The function must give every node, every Python version and PostgreSQL the same answer, for as
long as the database lives: the store selects a shard's rows by ``shard_key % total``, where
``shard_key`` is a generated column (``pg_schema`` migration 2) computed as the first 15 hex
digits (60 bits) of the MD5 of the id. So it is a fixed digest of the id's bytes, never
``hash()`` (salted per process), and changing it would move every endpoint at once.
"""

from __future__ import annotations

import hashlib

DEFAULT_SHARDS = 256

# 15 hex digits: 60 bits, so the key fits PostgreSQL's signed bigint.
_KEY_HEX_DIGITS = 15


def shard_key(endpoint_id: str) -> int:
    """The endpoint's stable 60-bit key, equal to the database's ``endpoints.shard_key``."""
    digest = hashlib.md5(endpoint_id.encode(), usedforsecurity=False).hexdigest()
    return int(digest[:_KEY_HEX_DIGITS], 16)


def shard_of(endpoint_id: str, total: int) -> int:
    """The shard (0 <= shard < ``total``) that holds ``endpoint_id``."""
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total}")
    return shard_key(endpoint_id) % total
