"""Which endpoints an event goes to, and in which initial delivery status."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from convoyd.core.model import DeliveryStatus, Endpoint
from convoyd.core.states import DISCARDS_NEW_EVENTS


def wants(event_types: Sequence[str], event_type: str) -> bool:
    """Empty event_types = every type; entries may use * as a wildcard (``order.*``)."""
    if not event_types:
        return True
    return any(t == event_type or ("*" in t and fnmatchcase(event_type, t)) for t in event_types)


def plan(
    endpoints: Iterable[Endpoint], event_type: str
) -> list[tuple[Endpoint, DeliveryStatus, str]]:
    """(endpoint, initial status, reason) for each target that takes this event type.

    Endpoints that are PAUSED, INACTIVE or PENDING get a DISCARDED delivery: it is recorded
    (so it can be retried later) but never sent.
    """
    out = []
    for endpoint in endpoints:
        if not wants(endpoint.spec.event_types, event_type):
            continue
        if endpoint.status in DISCARDS_NEW_EVENTS:
            out.append((endpoint, DeliveryStatus.DISCARDED, f"endpoint {endpoint.status.value}"))
        else:
            out.append((endpoint, DeliveryStatus.SCHEDULED, "scheduled"))
    return out
