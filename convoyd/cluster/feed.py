"""The work feed of a cluster node: what the service layer hands over reaches the engine of the
node that owns each endpoint, through PostgreSQL's LISTEN/NOTIFY.

Work for endpoints this node owns goes to its engine in memory, as on a single node. For the
others, the delivery rows (and the bodies of small events) travel as notifications to the node
that holds their shard (its own channel; batched, one transaction in flight per node), so the
owner needs no read to start them. Watchers on every node see
the committed changes of every node the same way, sent only while some node has watchers.

A notification is lost only while the listening connection is down; on reconnecting, the node
loads everything pending of its shards again (``resync``), and a slow poll of recent
deliveries backs both up.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from convoyd.cluster.membership import Membership
from convoyd.core import tracecontext
from convoyd.core.model import Delivery, Endpoint, EndpointStatus, EndpointStatusChange
from convoyd.core.watch import StatusUpdate, WatchFilter
from convoyd.delivery.engine import Engine
from convoyd.delivery.hub import WatchHub
from convoyd.errors import ConvoydError
from convoyd.store import codec
from convoyd.store.base import IngestWrite, Payload
from convoyd.store.pg_cluster import Listener, PgCluster

log = logging.getLogger("convoyd.cluster")

CHANNEL = "convoyd"  # to every node: endpoint changes, committed updates for watchers
# PostgreSQL's limit is 8000 bytes a payload; ids are ~30 bytes each with their quoting.
MAX_IDS = 200
MAX_PAYLOAD = 7600
# Event bodies up to this size travel with their deliveries; larger ones the owner reads.
INLINE_BODY = 2048


def node_channel(node_id: str) -> str:
    """The channel of one node: work for the shards it holds."""
    return f"{CHANNEL}_{node_id}"


RECONNECT_BACKOFF = (0.2, 5.0)
LISTEN_PING = 5.0  # a listening connection that is silently gone is noticed this soon


class ClusterFeed:
    """``convoyd.service.feed.WorkFeed`` for a node of a cluster."""

    def __init__(
        self,
        *,
        engine: Engine,
        hub: WatchHub,
        membership: Membership,
        cluster: PgCluster,
        dsn: str,
        connect_timeout: float,
        resync: Callable[[], Awaitable[None]],
        anyone_watching: Callable[[], bool],
        lag: Callable[[float], None] = lambda _: None,
    ) -> None:
        self._engine = engine
        self._hub = hub
        self._membership = membership
        self._cluster = cluster
        self._dsn = dsn
        self._timeout = connect_timeout
        self._resync = resync
        self._anyone_watching = anyone_watching
        self._lag = lag
        self._node = membership.node_id
        self._outbox: dict[str, set[str]] = {}
        # Work for other nodes' shards: owner (None: not known, to everyone) → delivery id →
        # (the delivery's row, its event's body when small).
        self._work: dict[str | None, dict[str, tuple[list[Any], Payload | None]]] = {}
        self._flush_scheduled = False
        self._notifying = False
        self._inbox: dict[str, set[str]] = {}
        # Endpoints whose committed change is being read, and the deliveries for them that came
        # meanwhile: admitted once the change is applied (a just-created endpoint has no lane
        # before that, and its first deliveries would otherwise wait for the slow poll).
        self._loading: set[str] = set()
        self._parked: list[Delivery] = []
        self._has_mail = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: Listener | None = None
        self._lost = asyncio.Event()
        self._status_changes: list[EndpointStatusChange] = []

    # -- WorkFeed -------------------------------------------------------------------------

    def events_accepted(self, writes: Sequence[IngestWrite]) -> None:
        self._engine.accepted(writes)
        for write in writes:
            if write.replay or not write.deliveries:
                continue
            event = write.event
            small = len(event.data) <= INLINE_BODY
            body = (
                Payload(data=event.data, headers=event.headers, trace=event.trace)
                if small
                else None
            )
            self._send_foreign(write.deliveries, body)

    def deliveries_due(self, deliveries: Sequence[Delivery]) -> None:
        self._engine.due_again(deliveries)
        self._send_foreign(deliveries, None)
        self.recorded(deliveries)

    def endpoints_changed(self, endpoints: Sequence[Endpoint]) -> None:
        for endpoint in endpoints:
            self._engine.endpoint_changed(endpoint)
        self._send("e", (e.id for e in endpoints))

    def endpoints_deleted(self, endpoint_ids: Sequence[str]) -> None:
        for endpoint_id in endpoint_ids:
            self._engine.endpoint_deleted(endpoint_id)
        self._send("x", endpoint_ids)

    def committed(self, updates: Sequence[StatusUpdate]) -> None:
        self._hub.publish(updates)
        if self._anyone_watching():
            self._send("c", (u.id for u in updates if isinstance(u, Delivery)))
            self._status_changes.extend(u for u in updates if isinstance(u, EndpointStatusChange))
            self._schedule_flush()

    def watch(self, accept: WatchFilter) -> AsyncIterator[StatusUpdate]:
        return self._hub.watch(accept)

    def recorded(self, deliveries: Sequence[Delivery]) -> None:
        """The recorder's committed outcomes: to local watchers, and to the others'."""
        self.committed(deliveries)

    # -- sending --------------------------------------------------------------------------

    def _send_foreign(self, deliveries: Sequence[Delivery], body: Payload | None) -> None:
        membership = self._membership
        for d in deliveries:
            if membership.owns(d.endpoint_id):
                continue
            owner = membership.owner_of(d.endpoint_id)
            box = self._work.setdefault(owner, {})
            box[d.id] = (list(codec.delivery_to_row(d)), body)
        if self._work:
            self._schedule_flush()

    def _send(self, kind: str, ids: Any) -> None:
        box = self._outbox.setdefault(kind, set())
        box.update(ids)
        if not box:
            del self._outbox[kind]
            return
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and not self._notifying:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._notifying:
            return  # sent when the notification in flight is done, with all that came since
        outbox, self._outbox = self._outbox, {}
        work, self._work = self._work, {}
        changes, self._status_changes = self._status_changes, []
        now = time.time()
        payloads: list[tuple[str, str]] = []
        for kind, ids in outbox.items():
            listed = sorted(ids)
            for start in range(0, len(listed), MAX_IDS):
                message = {"n": self._node, "t": now, kind: listed[start : start + MAX_IDS]}
                payloads.append((CHANNEL, _dumps(message)))
        for owner, items in work.items():
            channel = CHANNEL if owner is None else node_channel(owner)
            payloads.extend((channel, text) for text in _work_messages(self._node, now, items))
        for change in changes:
            payloads.append(
                (CHANNEL, _dumps({"n": self._node, "t": now, "s": _change_json(change)}))
            )
        if payloads:
            self._notifying = True
            task = asyncio.create_task(self._notify(payloads))
            self._tasks.append(task)
            task.add_done_callback(self._tasks.remove)

    async def _notify(self, payloads: list[tuple[str, str]]) -> None:
        # One notification transaction in flight per node: PostgreSQL serialises the commits
        # of notifying transactions database-wide (each holds a lock through its commit), so
        # many small ones would queue up and hold pool connections that ingest needs. What
        # comes meanwhile goes out together in the next one.
        try:
            await self._cluster.notify(payloads)
        except Exception as exc:
            # The owner's slow poll (and its resync once the database is back) finds the work.
            log.warning("could not notify the cluster (%d messages): %s", len(payloads), exc)
        finally:
            self._notifying = False
            if self._outbox or self._work or self._status_changes:
                self._schedule_flush()

    # -- receiving ------------------------------------------------------------------------

    async def start(self) -> None:
        await self._listen()
        self._tasks.append(asyncio.create_task(self._keep_listening(), name="convoyd-listen"))
        self._tasks.append(asyncio.create_task(self._deliver_mail(), name="convoyd-mail"))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._listener is not None:
            await self._listener.close()
            self._listener = None

    async def _listen(self) -> None:
        self._lost.clear()
        self._listener = await Listener.open(
            self._dsn,
            (CHANNEL, node_channel(self._node)),
            connect_timeout=self._timeout,
            on_message=self._on_notification,
            on_lost=self._lost.set,
        )

    async def _keep_listening(self) -> None:
        backoff = RECONNECT_BACKOFF[0]
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), timeout=LISTEN_PING)
            listener = self._listener
            if listener is not None and not self._lost.is_set():
                try:
                    await listener.ping(self._timeout)
                    continue
                except ConvoydError as exc:
                    log.warning("the cluster's listening connection failed: %s", exc)
            if listener is not None:
                await listener.close()
                self._listener = None
            try:
                await self._listen()
                await self._resync()
            except Exception as exc:
                log.warning("cannot listen to the cluster yet: %s", exc)
                self._lost.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_BACKOFF[1])
            else:
                log.info("listening to the cluster again; pending work reloaded")
                backoff = RECONNECT_BACKOFF[0]

    def _on_notification(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("n") == self._node:
            return
        sent = message.get("t")
        if isinstance(sent, int | float):
            self._lag(max(0.0, time.time() - sent))
        for kind in ("e", "x", "c"):
            ids = message.get(kind)
            if isinstance(ids, list):
                self._inbox.setdefault(kind, set()).update(i for i in ids if isinstance(i, str))
        rows = message.get("d")
        if isinstance(rows, list):
            self._take_work(rows, message.get("p"))
        change = message.get("s")
        if isinstance(change, dict):
            with contextlib.suppress(KeyError, ValueError, TypeError):
                self._hub.publish([_change_from_json(change)])
        self._has_mail.set()

    async def _deliver_mail(self) -> None:
        while True:
            await self._has_mail.wait()
            self._has_mail.clear()
            inbox, self._inbox = self._inbox, {}
            try:
                await self._apply(inbox)
            except Exception as exc:
                # Lost here means found again: by the slow poll, or at the next resync.
                log.warning("could not apply cluster notifications: %s", exc)

    def _take_work(self, rows: list[Any], bodies: Any) -> None:
        """Deliveries another node accepted for shards this node holds: to the engine, with
        the bodies that came along (a malformed message is dropped: the slow poll finds its
        work)."""
        try:
            found = [
                codec.delivery_from_row(dict(zip(codec.DELIVERY_NAMES, row, strict=True)))
                for row in rows
            ]
            payloads = {
                # A third item: the event's trace (tracecontext.encode), when it has one.
                event_id: Payload(
                    data=base64.b64decode(data),
                    headers=headers,
                    trace=tracecontext.decode(trace[0]) if trace else None,
                )
                for event_id, (data, headers, *trace) in (bodies or {}).items()
            }
        except (TypeError, ValueError, KeyError):
            log.warning("dropped a malformed work notification")
            return
        owns = self._membership.owns
        mine = [d for d in found if owns(d.endpoint_id)]
        wanted = {d.event_id for d in mine}
        for event_id, payload in payloads.items():
            if event_id in wanted:
                self._engine.remember_payload(event_id, payload)
        # A node sends an endpoint's change before the work for it, so a change not yet
        # applied here is in the inbox or being read.
        changing = self._changes_pending()
        if changing:
            self._parked.extend(d for d in mine if d.endpoint_id in changing)
            mine = [d for d in mine if d.endpoint_id not in changing]
        self._engine.admit(mine)

    async def _apply(self, inbox: dict[str, set[str]]) -> None:
        owns = self._membership.owns
        deleted = inbox.get("x", set())
        for endpoint_id in deleted:
            self._engine.endpoint_deleted(endpoint_id)
        changed = [i for i in inbox.get("e", ()) if i not in deleted and owns(i)]
        self._loading.update(changed)
        try:
            if changed:
                for endpoint in await self._cluster.endpoints(changed):
                    self._engine.endpoint_changed(endpoint)
        finally:
            self._loading.difference_update(changed)
            if self._parked:
                self._admit_parked()
        watched = inbox.get("c", set()) if self._hub.watching else set()
        if watched:
            self._hub.publish(await self._cluster.deliveries(sorted(watched)))

    def _changes_pending(self) -> set[str]:
        """Endpoints whose change has come but is not applied yet: in the inbox, or being read."""
        inbox = self._inbox.get("e")
        return self._loading | inbox if inbox else self._loading

    def _admit_parked(self) -> None:
        """The parked deliveries whose endpoint's change is applied (or failed to load: then the
        engine takes what it has a lane for, and the slow poll finds the rest)."""
        waiting = self._changes_pending()
        parked = self._parked
        self._parked = [d for d in parked if d.endpoint_id in waiting]
        self._engine.admit(d for d in parked if d.endpoint_id not in waiting)


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _work_messages(
    node: str, now: float, items: dict[str, tuple[list[Any], Payload | None]]
) -> list[str]:
    """Notification payloads of at most MAX_PAYLOAD bytes carrying ``items``' rows and small
    bodies (a body goes in the message of its first delivery)."""
    out: list[str] = []
    rows: list[list[Any]] = []
    bodies: dict[str, list[Any]] = {}
    size = 0
    for row, body in items.values():
        event_id = row[1]
        extra = None
        if body is not None and event_id not in bodies:
            extra = [base64.b64encode(body.data).decode(), dict(body.headers)]
            if body.trace is not None:
                extra.append(tracecontext.encode(body.trace))
        cost = len(_dumps({"r": row})) + (len(_dumps({"b": extra})) + 40 if extra else 0)
        if rows and size + cost > MAX_PAYLOAD:
            out.append(_dumps({"n": node, "t": now, "d": rows, "p": bodies}))
            rows, bodies, size = [], {}, 0
        rows.append(row)
        if extra is not None:
            bodies[event_id] = extra
        size += cost
    if rows:
        out.append(_dumps({"n": node, "t": now, "d": rows, "p": bodies}))
    return out


def _change_json(change: EndpointStatusChange) -> dict[str, Any]:
    return {
        "endpoint_id": change.endpoint_id,
        "owner_id": change.owner_id,
        "previous": change.previous.value,
        "status": change.status.value,
        "reason": change.reason,
        "changed_at": change.changed_at,
    }


def _change_from_json(data: dict[str, Any]) -> EndpointStatusChange:
    return EndpointStatusChange(
        endpoint_id=str(data["endpoint_id"]),
        owner_id=str(data["owner_id"]),
        previous=EndpointStatus(data["previous"]),
        status=EndpointStatus(data["status"]),
        reason=str(data["reason"]),
        changed_at=float(data["changed_at"]),
    )
