"""What a watcher of deliveries sees: a committed status update, and the filter it applies."""

from __future__ import annotations

from dataclasses import dataclass

from convoyd.core.model import Delivery, EndpointStatusChange

# A committed status update: a delivery in its new state, or an endpoint's status change.
StatusUpdate = Delivery | EndpointStatusChange


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchFilter:
    """Which updates one WatchDeliveries stream (or portal page) wants; empty means any."""

    endpoint_id: str = ""
    owner_id: str = ""
    statuses: frozenset[str] = frozenset()

    def __call__(self, update: StatusUpdate) -> bool:
        if self.endpoint_id and update.endpoint_id != self.endpoint_id:
            return False
        if self.owner_id and update.owner_id != self.owner_id:
            return False
        if isinstance(update, Delivery) and self.statuses:
            return update.status.value in self.statuses
        return True
