"""The work feed of one process: the service layer's batches go to this engine and hub."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from convoyd.core.model import Delivery, Endpoint
from convoyd.core.watch import StatusUpdate, WatchFilter
from convoyd.delivery.engine import Engine
from convoyd.delivery.hub import WatchHub
from convoyd.store.base import IngestWrite


class LocalFeed:
    """``convoyd.service.feed.WorkFeed`` in memory: nothing crosses a process."""

    def __init__(self, engine: Engine, hub: WatchHub) -> None:
        self._engine = engine
        self._hub = hub

    def events_accepted(self, writes: Sequence[IngestWrite]) -> None:
        self._engine.accepted(writes)

    def deliveries_due(self, deliveries: Sequence[Delivery]) -> None:
        self._engine.due_again(deliveries)
        self._hub.publish(deliveries)

    def endpoints_changed(self, endpoints: Sequence[Endpoint]) -> None:
        for endpoint in endpoints:
            self._engine.endpoint_changed(endpoint)

    def endpoints_deleted(self, endpoint_ids: Sequence[str]) -> None:
        for endpoint_id in endpoint_ids:
            self._engine.endpoint_deleted(endpoint_id)

    def committed(self, updates: Sequence[StatusUpdate]) -> None:
        self._hub.publish(updates)

    def watch(self, accept: WatchFilter) -> AsyncIterator[StatusUpdate]:
        return self._hub.watch(accept)
