"""Deliveries as the control plane and the portal see them: queries, retries, the live stream."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable

from convoyd.core import lifecycle, states
from convoyd.core.lifecycle import Again
from convoyd.core.model import (
    RETRYABLE_STATUSES,
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
    EndpointStatusChange,
    Page,
)
from convoyd.core.paging import number_cursor
from convoyd.core.validation import filter_violations, require_id
from convoyd.core.watch import StatusUpdate, WatchFilter
from convoyd.errors import FailedPreconditionError, ValidationError
from convoyd.service.feed import WorkFeed
from convoyd.service.listing import page_of
from convoyd.store.base import DeliveryQuery, Store

log = logging.getLogger(__name__)
Clock = Callable[[], float]
BATCH_RETRY_CHUNK = 500
# The status reason a request leaves, by (request, whether the delivery was waiting to retry).
_REASONS = {
    (Again.RETRY, False): "a retry requested",
    (Again.RETRY, True): "retry now requested",
    (Again.RESEND, False): "a resend requested",
    (Again.RESEND, True): "a resend requested",
}


def check_query(query: DeliveryQuery) -> None:
    """Every filter of a delivery listing has the shape of what it filters on (fields named as
    in ListDeliveries and BatchRetryDeliveries)."""
    filter_violations(
        endpoint_ids=[
            ("endpoint_id" if len(query.endpoint_ids) == 1 else f"endpoint_ids[{i}]", value)
            for i, value in enumerate(query.endpoint_ids)
        ],
        event_ids=[("event_id", query.event_id)],
        owner_ids=[("owner_id", query.owner_id)],
        event_types=[("event_type", query.event_type)],
    )


class DeliveryManager:
    def __init__(
        self,
        store: Store,
        feed: WorkFeed,
        *,
        clock: Clock,
    ) -> None:
        self._store = store
        self._feed = feed
        self._clock = clock
        self._background: set[asyncio.Task[None]] = set()

    async def get(self, delivery_id: str) -> Delivery:
        require_id("dl", delivery_id, "delivery_id")
        return await self._store.get_delivery(delivery_id)

    async def list(
        self, query: DeliveryQuery, *, page_size: int = 0, page_token: str = ""
    ) -> Page[Delivery]:
        check_query(query)
        return await page_of(
            ("deliveries", query),
            page_size,
            page_token,
            lambda after, limit: self._store.list_deliveries(query, before_id=after, limit=limit),
        )

    async def attempts(
        self, delivery_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> Page[Attempt]:
        await self.get(delivery_id)  # NOT_FOUND for an unknown delivery, not an empty list
        return await page_of(
            ("attempts", delivery_id),
            page_size,
            page_token,
            lambda after, limit: self._store.list_attempts(
                delivery_id, after_number=number_cursor(after), limit=limit
            ),
            cursor=lambda attempt: str(attempt.number),
        )

    async def _send_again(self, delivery_id: str, request: Again) -> Delivery:
        require_id("dl", delivery_id, "delivery_id")
        now = self._clock()
        changes: list[EndpointStatusChange] = []

        def change(d: Delivery, endpoint: Endpoint) -> tuple[Delivery, Endpoint]:
            # The delivery's own rules first: refused whatever the endpoint's state.
            lifecycle.sent_again(d, request, now=now, reason="")
            status = endpoint.status
            if status is EndpointStatus.PAUSED:
                raise FailedPreconditionError(f"endpoint {endpoint.id} is paused; resume it first")
            if status is EndpointStatus.PENDING:
                raise FailedPreconditionError(
                    f"endpoint {endpoint.id} is pending: a probe delivery is already on its way"
                )
            if status is EndpointStatus.INACTIVE:
                # architecture.md §3: this delivery is the probe that decides the endpoint's fate.
                target = states.transition(status, states.Trigger.RETRY_PROBE)
                reason = f"probing with delivery {d.id}"
                changes.append(
                    EndpointStatusChange(
                        endpoint_id=endpoint.id,
                        owner_id=endpoint.spec.owner_id,
                        previous=status,
                        status=target,
                        reason=reason,
                        changed_at=now,
                    )
                )
                endpoint = dataclasses.replace(
                    endpoint,
                    status=target,
                    status_reason=reason,
                    status_changed_at=now,
                    updated_at=now,
                )
            return (
                lifecycle.sent_again(
                    d,
                    request,
                    now=now,
                    reason=_REASONS[request, d.status is DeliveryStatus.RETRY],
                    probe=bool(changes),
                ),
                endpoint,
            )

        delivery = await self._store.modify_delivery(delivery_id, change)
        if changes:
            self._feed.endpoints_changed([await self._store.get_endpoint(delivery.endpoint_id)])
            self._feed.committed(changes)
        self._feed.deliveries_due([delivery])
        return delivery

    async def retry(self, delivery_id: str) -> Delivery:
        """FAILURE or DISCARDED → one attempt now; RETRY → its next try now, attempt count and
        schedule kept (on an INACTIVE endpoint either is the probe: one attempt)."""
        return await self._send_again(delivery_id, Again.RETRY)

    async def force_resend(self, delivery_id: str) -> Delivery:
        """SUCCESS → sent once more."""
        return await self._send_again(delivery_id, Again.RESEND)

    async def batch_retry(self, query: DeliveryQuery, *, dry_run: bool) -> int:
        """Counts the matching FAILURE/DISCARDED deliveries and (unless dry_run) queues them
        again in the background, in chunks, so ingest never waits behind a large retry."""
        check_query(query)
        statuses = tuple(query.statuses) or tuple(sorted(RETRYABLE_STATUSES))
        bad = [s for s in statuses if s not in RETRYABLE_STATUSES]
        if bad:
            raise ValidationError.single(
                "statuses", "only FAILURE and DISCARDED deliveries can be retried"
            )
        if not (query.endpoint_ids or query.owner_id or query.event_id):
            raise ValidationError.single(
                "endpoint_id", "name an endpoint_id, owner_id or event_id to retry"
            )
        query = dataclasses.replace(query, statuses=statuses)
        count = await self._store.count_deliveries(query)
        if not dry_run and count:
            task = asyncio.create_task(self._reschedule_all(query))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return count

    async def _reschedule_all(self, query: DeliveryQuery) -> None:
        while True:
            try:
                chunk = await self._store.reschedule_deliveries(
                    query,
                    now=self._clock(),
                    reason="batch retry requested",
                    limit=BATCH_RETRY_CHUNK,
                )
            except Exception:
                log.exception("batch retry stopped")
                return
            self._feed.deliveries_due(chunk)
            if len(chunk) < BATCH_RETRY_CHUNK:
                return

    def watch(
        self, *, endpoint_id: str, owner_id: str, statuses: frozenset[DeliveryStatus]
    ) -> AsyncIterator[StatusUpdate]:
        filter_violations(
            endpoint_ids=[("endpoint_id", endpoint_id)], owner_ids=[("owner_id", owner_id)]
        )
        return self._feed.watch(
            WatchFilter(
                endpoint_id=endpoint_id,
                owner_id=owner_id,
                statuses=frozenset(s.value for s in statuses),
            )
        )

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
