"""The one way from the service layer into delivery: a feed of what was just committed.

The service layer makes a change durable through the store and then tells the feed, in
batches: these deliveries are due, these endpoints changed or were deleted, these status
updates were committed. Nothing is lost if a feed drops a call: the store already holds the
change, and the engine's sweep finds due deliveries there. In one process the feed hands the
batches to this process's engine and watch hub (convoyd/delivery/feed.py); on several nodes
the same calls travel to the node that owns the endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from convoyd.core.model import Delivery, Endpoint
from convoyd.core.watch import StatusUpdate, WatchFilter
from convoyd.store.base import IngestWrite


class WorkFeed(Protocol):
    def events_accepted(self, writes: Sequence[IngestWrite]) -> None:
        """Events and their deliveries committed by one ingest (replays included)."""

    def deliveries_due(self, deliveries: Sequence[Delivery]) -> None:
        """Deliveries made due again by a retry or resend (already committed)."""

    def endpoints_changed(self, endpoints: Sequence[Endpoint]) -> None:
        """Endpoints created or changed (spec, status, secrets), as committed."""

    def endpoints_deleted(self, endpoint_ids: Sequence[str]) -> None:
        """Endpoints deleted, with their deliveries."""

    def committed(self, updates: Sequence[StatusUpdate]) -> None:
        """Status updates committed outside an attempt, for watchers."""

    def watch(self, accept: WatchFilter) -> AsyncIterator[StatusUpdate]:
        """Every committed status update ``accept`` takes, in commit order, until closed."""
        ...
