"""A cluster node's work feed (convoyd/cluster/feed.py) on stand-ins for what the tests of its
notifications touch: the engine's intake, membership, the store's cluster calls, the watch hub.
Nothing listens: a test hands the feed its notifications itself."""

from __future__ import annotations

from typing import Any

from convoyd.cluster.feed import ClusterFeed


class Unwatched:
    """A watch hub nobody watches."""

    watching = False


def cluster_feed(*, engine: Any, membership: Any, cluster: Any = None) -> ClusterFeed:
    return ClusterFeed(
        engine=engine,
        hub=Unwatched(),  # type: ignore[arg-type]
        membership=membership,
        cluster=cluster,
        dsn="",
        connect_timeout=1.0,
        resync=lambda: None,  # type: ignore[arg-type,return-value]
        anyone_watching=lambda: False,
    )
