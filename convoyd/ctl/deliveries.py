"""``convoyctl deliveries ...``: listing and inspecting deliveries, retrying them, watching live."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TypedDict

from convoyd.client import Client
from convoyd.ctl.args import id_arg, paging_flags, time_flags
from convoyd.ctl.registry import CommandSet
from convoyd.ctl.render import Column, Output, column, field_text
from convoyd.v1 import common_pb2, delivery_pb2

COMMANDS = CommandSet("deliveries", help="inspect, retry and watch deliveries")

DELIVERY_STATUSES = {
    "scheduled": delivery_pb2.DELIVERY_STATUS_SCHEDULED,
    "processing": delivery_pb2.DELIVERY_STATUS_PROCESSING,
    "success": delivery_pb2.DELIVERY_STATUS_SUCCESS,
    "retry": delivery_pb2.DELIVERY_STATUS_RETRY,
    "failure": delivery_pb2.DELIVERY_STATUS_FAILURE,
    "discarded": delivery_pb2.DELIVERY_STATUS_DISCARDED,
}
# The statuses BatchRetryDeliveries accepts (none given: both).
RETRYABLE_STATUSES = {k: DELIVERY_STATUSES[k] for k in ("failure", "discarded")}
TRUNCATED = "… (truncated)"
_STATUS_WIDTH = max(map(len, DELIVERY_STATUSES))  # keeps watch lines' columns aligned


def _http(status: int) -> str:
    return str(status) if status else "-"


def _milliseconds(attempt: delivery_pb2.DeliveryAttempt) -> str:
    if not attempt.HasField("duration"):
        return ""
    return f"{attempt.duration.ToTimedelta().total_seconds() * 1000:.0f}"


DELIVERY_COLUMNS: list[Column] = [
    column("ID", "id"),
    column("ENDPOINT", "endpoint_id"),
    column("EVENT TYPE", "event_type"),
    column("STATUS", "status"),
    column("ATTEMPTS", "attempt_count"),
    ("LAST HTTP", lambda d: _http(d.last_http_status)),
    column("UPDATED", "updated_at"),
]
ATTEMPT_COLUMNS: list[Column] = [
    column("#", "number"),
    column("RESULT", "result"),
    ("HTTP", lambda a: _http(a.response_status)),
    ("DURATION ms", _milliseconds),
    column("ERROR", "error"),
    column("REMOTE", "remote_address"),
]


class DeliveryFilters(TypedDict):
    """The selection keywords ``Client.list_deliveries`` and ``batch_retry_deliveries`` share."""

    event_id: str
    endpoint_id: str
    owner_id: str
    statuses: list[delivery_pb2.DeliveryStatus]
    created_after: datetime | None
    created_before: datetime | None


def statuses(labels: Iterable[str] | None) -> list[delivery_pb2.DeliveryStatus]:
    """--status labels ('success', 'failure', …) → DeliveryStatus values, in the order given."""
    return [DELIVERY_STATUSES[label] for label in labels or ()]


def delivery_filters(args: argparse.Namespace) -> DeliveryFilters:
    """The selection flags of ``list`` and ``batch-retry`` as client keywords."""
    return DeliveryFilters(
        event_id=args.event or "",
        endpoint_id=args.endpoint or "",
        owner_id=args.owner_id or "",
        statuses=statuses(args.statuses),
        created_after=args.since,
        created_before=args.until,
    )


def _status_flag(parser: argparse.ArgumentParser, choices: Iterable[str], what: str) -> None:
    parser.add_argument(
        "--status",
        action="append",
        dest="statuses",
        choices=list(choices),
        help=f"{what} (repeatable; none: all)",
    )


def _list_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--event", metavar="ID", help="only this event's deliveries")
    parser.add_argument("--endpoint", metavar="ID", help="only deliveries to this endpoint")
    parser.add_argument("--owner-id", help="only deliveries to this owner's endpoints")
    _status_flag(parser, DELIVERY_STATUSES, "only deliveries in this status")
    time_flags(parser, "deliveries")
    paging_flags(parser)


@COMMANDS.command("list", help="list deliveries, newest first", configure=_list_flags)
async def list_(client: Client, args: argparse.Namespace, out: Output) -> int:
    filters = delivery_filters(args)

    async def fetch(token: str) -> delivery_pb2.ListDeliveriesResponse:
        return await client.list_deliveries(**filters, page_size=args.page_size, page_token=token)

    await out.pages(
        fetch,
        lambda page: page.deliveries,
        DELIVERY_COLUMNS,
        page_token=args.page_token,
        follow=args.all_pages,
    )
    return 0


@COMMANDS.command("get", help="show one delivery", configure=id_arg)
async def get(client: Client, args: argparse.Namespace, out: Output) -> int:
    out.resource(await client.get_delivery(args.id))
    return 0


def _section(title: str, lines: list[str]) -> list[str]:
    return [f"  {title}:", *(f"    {line}" for line in lines)] if lines else [f"  {title}: -"]


def _header_lines(headers: Iterable[common_pb2.Header]) -> list[str]:
    return [f"{h.name}: {h.value}" for h in headers]


def describe_attempt(attempt: delivery_pb2.DeliveryAttempt) -> list[str]:
    """An attempt for people: a summary line, then what was sent and what came back."""
    result = field_text(attempt, "result")
    took = _milliseconds(attempt)
    summary = [f"attempt {attempt.number}: {result}"]
    if attempt.response_status:
        summary.append(f"HTTP {attempt.response_status}")
    if took:
        summary.append(f"in {took} ms")
    if attempt.HasField("started_at"):
        summary.append(f"at {field_text(attempt, 'started_at')}")
    if attempt.remote_address:
        summary.append(f"from {attempt.remote_address}")
    lines = [" ".join(summary), f"  url: {attempt.request_url}"]
    if attempt.error:
        lines.append(f"  error: {attempt.error}")
    lines += _section("request headers", _header_lines(attempt.request_headers))
    lines += _section("response headers", _header_lines(attempt.response_headers))
    # The body is whatever the receiver sent: shown as text, undecodable bytes replaced.
    body = attempt.response_body.decode("utf-8", errors="replace").splitlines()
    if attempt.response_body_truncated:
        body.append(TRUNCATED)
    return lines + _section("response body", body)


def _attempts_flags(parser: argparse.ArgumentParser) -> None:
    id_arg(parser)
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="also show each attempt's headers and response body",
    )


@COMMANDS.command(
    "attempts", help="list a delivery's attempts, oldest first", configure=_attempts_flags
)
async def attempts(client: Client, args: argparse.Namespace, out: Output) -> int:
    found = [a async for a in client.iter_delivery_attempts(args.id)]
    if out.as_json or not args.verbose:
        out.listing(found, ATTEMPT_COLUMNS)
        return 0
    out.line("\n\n".join("\n".join(describe_attempt(a)) for a in found) or "no attempts yet")
    return 0


@COMMANDS.command(
    "retry",
    help="attempt a failed or discarded delivery once more now, or one waiting to retry now",
    configure=id_arg,
)
async def retry(client: Client, args: argparse.Namespace, out: Output) -> int:
    out.resource(await client.retry_delivery(args.id))
    return 0


@COMMANDS.command("resend", help="send a successful delivery again", configure=id_arg)
async def resend(client: Client, args: argparse.Namespace, out: Output) -> int:
    out.resource(await client.force_resend_delivery(args.id))
    return 0


def _batch_retry_flags(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--endpoint", metavar="ID", help="this endpoint's deliveries")
    scope.add_argument("--owner-id", help="the deliveries to this owner's endpoints")
    scope.add_argument("--event", metavar="ID", help="this event's deliveries")
    _status_flag(parser, RETRYABLE_STATUSES, "only deliveries in this status")
    time_flags(parser, "deliveries")
    parser.add_argument("--dry-run", action="store_true", help="only count what would be queued")


def queued_text(count: int, *, dry_run: bool) -> str:
    noun = "delivery" if count == 1 else "deliveries"
    return f"{count} {noun} {'would be queued' if dry_run else 'queued'}"


@COMMANDS.command(
    "batch-retry",
    help="queue every matching failed or discarded delivery again",
    configure=_batch_retry_flags,
)
async def batch_retry(client: Client, args: argparse.Namespace, out: Output) -> int:
    got = await client.batch_retry_deliveries(**delivery_filters(args), dry_run=args.dry_run)
    text = queued_text(got.queued_count, dry_run=args.dry_run)
    out.result(text, {"queuedCount": got.queued_count, "dryRun": args.dry_run})
    return 0


def change_line(change: delivery_pb2.WatchDeliveriesResponse) -> str:
    """One line per change: the delivery as it is now, or an endpoint's status move."""
    if change.HasField("endpoint_status_change"):
        moved = change.endpoint_status_change
        before, after = field_text(moved, "previous_status"), field_text(moved, "status")
        line = f"{field_text(moved, 'changed_at')}  endpoint {moved.endpoint_id} {before} → {after}"
        return f"{line}: {moved.reason}" if moved.reason else line
    d = change.delivery
    line = f"{field_text(d, 'updated_at')}  {d.id}  {field_text(d, 'status'):<{_STATUS_WIDTH}}"
    return f"{line}  attempts={d.attempt_count}  {d.status_reason}".rstrip()


async def _follow(client: Client, args: argparse.Namespace, out: Output) -> int:
    changes = client.watch_deliveries(
        endpoint_id=args.endpoint, owner_id=args.owner_id, statuses=statuses(args.statuses)
    )
    async for change in changes:
        out.stream(change_line(change), change)
    out.note("the server ended the stream")
    return 0


@contextlib.contextmanager
def _interrupt_cancels(task: asyncio.Task[int]) -> Iterator[None]:
    """Ctrl-C cancels ``task`` instead of raising KeyboardInterrupt (where signals allow)."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    except (NotImplementedError, RuntimeError, ValueError):  # no loop signals: Windows, threads
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _watch_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", default="", metavar="ID", help="only this endpoint")
    parser.add_argument("--owner-id", default="", help="only this owner's endpoints")
    _status_flag(parser, DELIVERY_STATUSES, "only changes into this status")


@COMMANDS.command(
    "watch",
    help="print delivery status changes as they happen (Ctrl-C stops)",
    configure=_watch_flags,
)
async def watch(client: Client, args: argparse.Namespace, out: Output) -> int:
    follower = asyncio.create_task(_follow(client, args, out))
    try:
        with _interrupt_cancels(follower):
            await asyncio.wait([follower])
    finally:
        follower.cancel()  # a no-op once done; stops it when this command is cancelled
    if follower.cancelled():
        return 0  # Ctrl-C: a normal way to stop watching
    return follower.result()
