"""``convoyctl events ...``: sending an event from flags, showing and listing events."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TypedDict

from convoyd.client import Client, ConvoydClientError, event_request
from convoyd.ctl.args import (
    UsageError,
    header_flag,
    header_map,
    id_arg,
    paging_flags,
    time_flags,
)
from convoyd.ctl.registry import CommandSet
from convoyd.ctl.render import Column, Output, column, pretty_json
from convoyd.v1 import event_pb2

COMMANDS = CommandSet("events", help="send events and look at the ones accepted")

EMPTY_PAYLOAD = b"{}"


def _target(event: event_pb2.Event) -> str:
    if event.owner_id:
        return f"owner {event.owner_id}"
    return ", ".join(event.endpoint_ids)


EVENT_COLUMNS: list[Column] = [
    column("ID", "id"),
    column("TYPE", "event_type"),
    ("TARGET", _target),
    column("DELIVERIES", "delivery_count"),
    column("CREATED", "created_at"),
]


class EventFilters(TypedDict):
    """The keywords ``Client.list_events`` takes besides the page."""

    event_type: str
    owner_id: str
    endpoint_id: str
    created_after: datetime | None
    created_before: datetime | None


def payload(args: argparse.Namespace, stdin: BinaryIO) -> bytes:
    """The event's data, byte for byte: --data TEXT, --data - (stdin), --data-file FILE (or -).

    Sent as given: the server checks that it is JSON (with the field named on failure)."""
    if args.data_file is not None:
        if args.data_file == "-":
            return stdin.read()
        try:
            return Path(args.data_file).read_bytes()
        except OSError as exc:
            raise UsageError(f"--data-file: {exc}") from None
    if args.data == "-":
        return stdin.read()
    if args.data is not None:
        return str(args.data).encode("utf-8")
    return EMPTY_PAYLOAD


def send_request(args: argparse.Namespace, stdin: BinaryIO) -> event_pb2.CreateEventRequest:
    """The CreateEventRequest of ``events send``'s flags."""
    return event_request(
        event_type=args.type,
        data=payload(args, stdin),
        endpoint_ids=args.endpoints or (),
        owner_id=args.owner_id or "",
        idempotency_key=args.idempotency_key,
        headers=header_map(args.headers),
    )


def event_filters(args: argparse.Namespace) -> EventFilters:
    """``events list``'s flags as ``Client.list_events`` keywords."""
    return EventFilters(
        event_type=args.type,
        owner_id=args.owner_id,
        endpoint_id=args.endpoint,
        created_after=args.since,
        created_before=args.until,
    )


def _send_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--type", required=True, metavar="TYPE", help="the event type, e.g. order.paid")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--endpoint",
        action="append",
        dest="endpoints",
        metavar="ID",
        help="deliver to this endpoint (repeatable)",
    )
    target.add_argument("--owner-id", help="deliver to every endpoint of this owner")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--data", metavar="JSON", help="the payload ('-': read stdin; default {})")
    data.add_argument("--data-file", metavar="FILE", help="read the payload from FILE ('-': stdin)")
    add("--idempotency-key", default="", metavar="KEY", help="the same key sends once")
    header_flag(parser, "extra request header for this event (repeatable)")


@COMMANDS.command("send", help="accept an event and fan it out", configure=_send_flags)
async def send(client: Client, args: argparse.Namespace, out: Output) -> int:
    request = send_request(args, sys.stdin.buffer)
    created = await client.create_event(
        event_type=request.event_type,
        data=request.data,
        endpoint_ids=request.endpoint_ids,
        owner_id=request.owner_id,
        idempotency_key=request.idempotency_key,
        headers=request.headers,
    )
    out.resource(created)
    if created.delivery_count == 0:
        out.warning(await nothing_delivered(client, created))
    return 0


async def nothing_delivered(client: Client, event: event_pb2.Event) -> str:
    """Why an event made no delivery, in words: its owner has no endpoints (one extra call,
    made only then, tells that from endpoints that take other event types), or the endpoints
    named do not take its type."""
    nothing = "nothing will be delivered"
    if event.owner_id:
        try:
            found = await client.list_endpoints(owner_id=event.owner_id, page_size=1)
        except ConvoydClientError:  # the event is in: a failed look-up must not fail `send`
            found = None
        if found is not None and not found.endpoints:
            return f"no endpoints of owner {event.owner_id}: {nothing}"
        return f"no endpoint of owner {event.owner_id} takes {event.event_type} events: {nothing}"
    ids = ", ".join(event.endpoint_ids)
    takes = "does not take" if len(event.endpoint_ids) == 1 else "do not take"
    noun = "endpoint" if len(event.endpoint_ids) == 1 else "endpoints"
    return f"{noun} {ids} {takes} {event.event_type} events: {nothing}"


@COMMANDS.command("get", help="show one event with its payload", configure=id_arg)
async def get(client: Client, args: argparse.Namespace, out: Output) -> int:
    event = await client.get_event(args.id)
    if out.as_json:
        out.resource(event)
        return 0
    shown = event_pb2.Event()
    shown.CopyFrom(event)
    shown.ClearField("data")
    out.resource(shown)
    out.line("data:")
    out.line("\n".join("  " + line for line in pretty_json(event.data).splitlines()))
    return 0


def _list_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", default="", metavar="TYPE", help="only events of this type")
    parser.add_argument("--owner-id", default="", help="only events sent to this owner")
    parser.add_argument("--endpoint", default="", metavar="ID", help="only events it received")
    time_flags(parser, "events")
    paging_flags(parser)


@COMMANDS.command("list", help="list events, newest first", configure=_list_flags)
async def list_(client: Client, args: argparse.Namespace, out: Output) -> int:
    filters = event_filters(args)

    async def fetch(token: str) -> event_pb2.ListEventsResponse:
        return await client.list_events(**filters, page_size=args.page_size, page_token=token)

    await out.pages(
        fetch,
        lambda page: page.events,
        EVENT_COLUMNS,
        page_token=args.page_token,
        follow=args.all_pages,
    )
    return 0
