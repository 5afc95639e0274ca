"""convoyctl events and deliveries: flags → requests, rendering, and the real daemon end to end."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import timestamp_pb2

from convoyd.client import duration
from convoyd.ctl import main
from convoyd.ctl.args import UsageError, moment
from convoyd.ctl.cli import build_parser, client_from_args, run
from convoyd.ctl.deliveries import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    TRUNCATED,
    change_line,
    delivery_filters,
    describe_attempt,
    queued_text,
)
from convoyd.ctl.events import event_filters, send_request
from convoyd.ctl.render import Output, pretty_json
from convoyd.v1 import common_pb2, delivery_pb2, endpoint_pb2, event_pb2
from tests.conftest import DaemonProcess, Running, running_app
from tests.receivers import Receiver

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T = 1_700_000_000  # 2023-11-14T22:13:20Z


def parse(line: str, *extra: str) -> argparse.Namespace:
    """Parses a shell-quoted command line, then ``extra`` arguments as they are."""
    return build_parser().parse_args([*shlex.split(line), *extra])


def no_stdin() -> io.BytesIO:
    return io.BytesIO(b"never read")


# --- events send: flags → CreateEventRequest ------------------------------------------------


def test_send_builds_the_request() -> None:
    args = parse(
        "events send --type order.paid --endpoint ep_1 --endpoint ep_2 --data '{\"order\": 42}'"
        " --idempotency-key order-42 --header 'X-Tenant: acme' --header 'X-Trace:  abc '"
    )
    assert send_request(args, no_stdin()) == event_pb2.CreateEventRequest(
        endpoint_ids=["ep_1", "ep_2"],
        event_type="order.paid",
        data=b'{"order": 42}',
        idempotency_key="order-42",
        headers={"X-Tenant": "acme", "X-Trace": "abc"},
    )


@pytest.mark.parametrize(
    ("flags", "data"),
    [("", b"{}"), ("--data -", b"[1]"), ("--data-file -", b"[1]"), ("--data '[ 2 ]'", b"[ 2 ]")],
)
def test_data_sources(flags: str, data: bytes) -> None:
    """No data flag sends {}; '-' reads stdin (here b'[1]'); text goes as it is."""
    request = send_request(parse(f"events send --type t --owner-id o {flags}"), io.BytesIO(b"[1]"))
    assert (request.owner_id, list(request.endpoint_ids), request.data) == ("o", [], data)


def test_data_from_a_file_is_sent_byte_for_byte(tmp_path: Path) -> None:
    body = b'{\n  "caf\xc3\xa9": [1, 2]\n}\n'
    (tmp_path / "payload.json").write_bytes(body)
    args = parse("events send --type t --owner-id o --data-file", str(tmp_path / "payload.json"))
    assert send_request(args, no_stdin()).data == body


def test_a_missing_data_file_is_a_usage_error(tmp_path: Path) -> None:
    args = parse("events send --type t --owner-id o --data-file", str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="--data-file"):
        send_request(args, no_stdin())


@pytest.mark.parametrize(
    "line",
    [
        "events send --type t",  # no target
        "events send --type t --endpoint ep_1 --owner-id o",
        "events send --endpoint ep_1",  # no type
        "events send --type t --owner-id o --data {} --data-file f",
        "events send --type t --owner-id o --header 'no colon'",
        "events list --since yesterday",
        "deliveries list --status done",
        "deliveries batch-retry --status failure",  # no scope
        "deliveries batch-retry --endpoint ep_1 --event ev_1",
        "deliveries batch-retry --endpoint ep_1 --status success",
        "deliveries watch --status gone",
        "deliveries attempts",
    ],
)
def test_bad_usage_exits_2(line: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(shlex.split(line)) == 2
    assert "usage:" in capsys.readouterr().err


# --- times, filters and statuses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", NOW - timedelta(minutes=90)),
        ("1h", NOW - timedelta(hours=1)),
        ("1h ago", NOW - timedelta(hours=1)),
        ("2d", NOW - timedelta(days=2)),
        ("30s", NOW - timedelta(seconds=30)),
        ("1.5h", NOW - timedelta(minutes=90)),
        ("2024-04-01T08:30:00Z", datetime(2024, 4, 1, 8, 30, tzinfo=UTC)),
        ("2024-04-01T08:30:00", datetime(2024, 4, 1, 8, 30, tzinfo=UTC)),  # no offset: UTC
        ("2024-04-01", datetime(2024, 4, 1, tzinfo=UTC)),
        ("2024-04-01T10:30:00+02:00", datetime(2024, 4, 1, 8, 30, tzinfo=UTC)),
    ],
)
def test_moment(text: str, expected: datetime) -> None:
    got = moment(text, now=NOW)
    assert got == expected and got.tzinfo is not None


@pytest.mark.parametrize("text", ["", "soon", "1 fortnight", "30", "2024-13-01", "-1h"])
def test_not_a_moment(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        moment(text, now=NOW)


def test_relative_since_means_ago() -> None:
    before = datetime.now(UTC)
    args = parse("events list --since 1h --until 2024-05-01T00:00:00Z")
    after = datetime.now(UTC)
    filters = event_filters(args)
    assert filters["created_after"] is not None
    assert before - timedelta(hours=1) <= filters["created_after"] <= after - timedelta(hours=1)
    assert filters["created_before"] == datetime(2024, 5, 1, tzinfo=UTC)


def test_event_list_filters() -> None:
    args = parse("events list --type order.paid --owner-id acme --endpoint e")
    assert event_filters(args) == {
        "event_type": "order.paid",
        "owner_id": "acme",
        "endpoint_id": "e",
        "created_after": None,
        "created_before": None,
    }
    assert (args.page_size, args.page_token, args.all_pages) == (0, "", False)
    paged = parse("events list --page-size 10 --page-token tok --all")
    assert (paged.page_size, paged.page_token, paged.all_pages) == (10, "tok", True)


def test_status_flags_become_enum_values() -> None:
    args = parse(
        "deliveries list --event ev_1 --status failure --status discarded --status scheduled"
        " --since 2024-04-01"
    )
    filters = delivery_filters(args)
    assert filters["statuses"] == [
        delivery_pb2.DELIVERY_STATUS_FAILURE,
        delivery_pb2.DELIVERY_STATUS_DISCARDED,
        delivery_pb2.DELIVERY_STATUS_SCHEDULED,
    ]
    assert (filters["event_id"], filters["endpoint_id"], filters["owner_id"]) == ("ev_1", "", "")
    assert filters["created_after"] == datetime(2024, 4, 1, tzinfo=UTC)
    assert filters["created_before"] is None
    every = ["scheduled", "processing", "success", "retry", "failure", "discarded"]
    flags = [part for label in every for part in ("--status", label)]
    assert delivery_filters(parse("deliveries list", *flags))["statuses"] == [1, 2, 3, 4, 5, 6]


def test_batch_retry_filters() -> None:
    args = parse("deliveries batch-retry --owner-id acme --status discarded")
    filters = delivery_filters(args)
    assert (filters["owner_id"], filters["endpoint_id"], filters["event_id"]) == ("acme", "", "")
    assert filters["statuses"] == [delivery_pb2.DELIVERY_STATUS_DISCARDED]
    assert not args.dry_run
    assert parse("deliveries batch-retry --event ev_1 --dry-run").dry_run


def test_queued_text() -> None:
    assert queued_text(0, dry_run=True) == "0 deliveries would be queued"
    assert queued_text(1, dry_run=False) == "1 delivery queued"
    assert queued_text(12, dry_run=False) == "12 deliveries queued"


# --- rendering ------------------------------------------------------------------------------


def ts(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


def render(msgs: list[Any], columns: Any) -> list[str]:
    out = io.StringIO()
    Output(as_json=False, out=out, err=io.StringIO()).listing(msgs, columns)
    return out.getvalue().splitlines()


def test_delivery_table() -> None:
    delivery = delivery_pb2.Delivery(id="dl_1", endpoint_id="ep_1", event_type="order.paid")
    delivery.status = delivery_pb2.DELIVERY_STATUS_RETRY
    delivery.attempt_count, delivery.last_http_status = 2, 503
    delivery.updated_at.CopyFrom(ts(T))
    fresh = delivery_pb2.Delivery(id="dl_2", endpoint_id="ep_1", event_type="a")
    assert render([delivery, fresh], DELIVERY_COLUMNS) == [
        "ID    ENDPOINT  EVENT TYPE  STATUS       ATTEMPTS  LAST HTTP  UPDATED",
        "dl_1  ep_1      order.paid  retry        2         503        2023-11-14T22:13:20Z",
        "dl_2  ep_1      a           unspecified  0         -",
    ]


def attempt(**fields: Any) -> delivery_pb2.DeliveryAttempt:
    return delivery_pb2.DeliveryAttempt(
        number=1,
        result=delivery_pb2.ATTEMPT_RESULT_HTTP_ERROR,
        started_at=ts(T),
        duration=duration(0.0123),
        request_url="http://127.0.0.1:9/hook",
        request_headers=[common_pb2.Header(name="Webhook-Id", value="dl_1")],
        response_status=500,
        response_headers=[common_pb2.Header(name="Content-Type", value="text/plain")],
        response_body=b"bad \xff gateway\nline two",
        remote_address="127.0.0.1",
        **fields,
    )


def test_attempt_table() -> None:
    timeout = delivery_pb2.DeliveryAttempt(
        number=2, result=delivery_pb2.ATTEMPT_RESULT_TIMEOUT, error="no answer in 10s"
    )
    assert render([attempt(), timeout], ATTEMPT_COLUMNS) == [
        "#  RESULT      HTTP  DURATION ms  ERROR             REMOTE",
        "1  http-error  500   12                             127.0.0.1",
        "2  timeout     -                  no answer in 10s",
    ]


def test_verbose_attempt_shows_headers_and_body() -> None:
    lines = describe_attempt(attempt(response_body_truncated=True))
    assert lines == [
        "attempt 1: http-error HTTP 500 in 12 ms at 2023-11-14T22:13:20Z from 127.0.0.1",
        "  url: http://127.0.0.1:9/hook",
        "  request headers:",
        "    Webhook-Id: dl_1",
        "  response headers:",
        "    Content-Type: text/plain",
        "  response body:",
        "    bad \ufffd gateway",
        "    line two",
        f"    {TRUNCATED}",
    ]
    assert TRUNCATED not in "\n".join(describe_attempt(attempt()))
    refused = delivery_pb2.DeliveryAttempt(
        number=2, result=delivery_pb2.ATTEMPT_RESULT_NETWORK_ERROR, error="connection refused"
    )
    assert describe_attempt(refused) == [
        "attempt 2: network-error",
        "  url: ",
        "  error: connection refused",
        "  request headers: -",
        "  response headers: -",
        "  response body: -",
    ]


def test_pretty_json_payload() -> None:
    assert (
        pretty_json(b'{"a":[1,2],"b":"\xc3\xa9"}')
        == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": "é"\n}'
    )
    assert pretty_json(b"not json") == "not json"


def test_watch_lines() -> None:
    success = delivery_pb2.DELIVERY_STATUS_SUCCESS
    delivery = delivery_pb2.Delivery(
        id="dl_1", status=success, attempt_count=1, status_reason="HTTP 200", updated_at=ts(T)
    )
    assert change_line(delivery_pb2.WatchDeliveriesResponse(delivery=delivery)) == (
        "2023-11-14T22:13:20Z  dl_1  success     attempts=1  HTTP 200"
    )
    moved = delivery_pb2.EndpointStatusChange(
        endpoint_id="ep_1",
        previous_status=endpoint_pb2.ENDPOINT_STATUS_ACTIVE,
        status=endpoint_pb2.ENDPOINT_STATUS_INACTIVE,
        reason="breaker kept tripping",
        changed_at=ts(T),
    )
    assert change_line(delivery_pb2.WatchDeliveriesResponse(endpoint_status_change=moved)) == (
        "2023-11-14T22:13:20Z  endpoint ep_1 active → inactive: breaker kept tripping"
    )


async def test_pages_follow_tokens_and_note_the_rest() -> None:
    pages = {
        "": event_pb2.ListEventsResponse(events=[event_pb2.Event(id="ev_3")], next_page_token="b"),
        "b": event_pb2.ListEventsResponse(events=[event_pb2.Event(id="ev_2")], next_page_token="c"),
        "c": event_pb2.ListEventsResponse(events=[event_pb2.Event(id="ev_1")]),
    }

    async def fetch(token: str) -> event_pb2.ListEventsResponse:
        return pages[token]

    async def ids(*, page_token: str, follow: bool) -> tuple[list[str], str]:
        out, err = io.StringIO(), io.StringIO()
        shown = Output(as_json=True, out=out, err=err)
        await shown.pages(fetch, lambda p: p.events, [], page_token=page_token, follow=follow)
        return [e["id"] for e in json.loads(out.getvalue())], err.getvalue()

    more = "note: more: --page-token b (or --all)\n"
    assert await ids(page_token="", follow=False) == (["ev_3"], more)
    assert await ids(page_token="", follow=True) == (["ev_3", "ev_2", "ev_1"], "")
    assert await ids(page_token="b", follow=True) == (["ev_2", "ev_1"], "")


# --- end to end: convoyctl against `convoyd serve` ------------------------------------------


async def spawn(running: Running, *args: str) -> asyncio.subprocess.Process:
    """Starts convoyctl without blocking this loop (the receiver answers from it)."""
    argv = [sys.executable, "-m", "convoyd.ctl", "--target", running.grpc_target, *args]
    env = {"PATH": "/usr/bin:/bin", "CONVOYD_DATA_DIR": str(running.data_dir)}
    pipe = asyncio.subprocess.PIPE
    return await asyncio.create_subprocess_exec(
        *argv, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=pipe, stderr=pipe
    )


async def ctl(running: Running, *args: str) -> tuple[int, str, str]:
    proc = await spawn(running, *args)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def ctl_json(running: Running, *args: str) -> Any:
    code, out, err = await ctl(running, "--json", *args)
    assert code == 0, err
    return json.loads(out)


async def delivery_of(running: Running, event_id: str, status: str) -> dict[str, Any]:
    """The event's one delivery, once it is in ``status`` (polling, at most 15 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        found = await ctl_json(running, "deliveries", "list", "--event", event_id)
        if found and found[0]["status"] == status:
            assert len(found) == 1
            return dict(found[0])
        assert loop.time() < deadline, f"no {status} delivery of {event_id}: {found}"
        await asyncio.sleep(0.1)


async def watched_success(
    running: Running, watcher: asyncio.subprocess.Process, endpoint_id: str
) -> dict[str, Any]:
    """Sends events until the watcher prints one's delivery reaching SUCCESS (it may only
    subscribe after the first ones were delivered); returns that line."""
    assert watcher.stdout is not None
    for n in range(10):
        event = await ctl_json(
            running, "events", "send", "--type", "watched", "--endpoint", endpoint_id
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3 * (n + 1)
        while (left := deadline - loop.time()) > 0:
            try:
                raw = await asyncio.wait_for(watcher.stdout.readline(), left)
            except TimeoutError:
                break
            assert raw, "the watcher ended"
            line = json.loads(raw)
            change = line.get("delivery", {})
            if (
                change.get("eventId") == event["id"]
                and change["status"] == "DELIVERY_STATUS_SUCCESS"
            ):
                return dict(line)
    raise AssertionError("the watcher printed no SUCCESS line")


@pytest.mark.e2e
async def test_events_and_deliveries_with_convoyctl(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await receivers()
    daemon.env["CONVOYD_DELIVERY_ALLOW_CIDRS"] = "127.0.0.0/8"
    running = await asyncio.to_thread(daemon.start)

    endpoint = await ctl_json(running, "endpoints", "create", "--url", receiver.url)
    endpoint_id = endpoint["id"]

    body = '{"order": 42,  "items": ["a", "b"], "note": "café"}'
    send = ["events", "send", "--type", "order.paid", "--endpoint", endpoint_id, "--data", body]
    event = await ctl_json(running, *send, "--header", "X-Tenant: acme")
    event_id = event["id"]
    first = (await receiver.wait_for(1))[0]
    assert first.body == body.encode()
    assert first.headers["X-Tenant"] == "acme"

    code, shown, _ = await ctl(running, "events", "get", event_id)
    assert code == 0 and '  "order": 42,' in shown and "event_type:" in shown

    listed = await ctl_json(running, "events", "list", "--endpoint", endpoint_id, "--since", "1h")
    assert [e["id"] for e in listed] == [event_id]

    delivery = await delivery_of(running, event_id, "DELIVERY_STATUS_SUCCESS")
    attempts = await ctl_json(running, "deliveries", "attempts", delivery["id"])
    assert len(attempts) == 1 and attempts[0]["responseStatus"] == 200
    assert attempts[0]["requestHeaders"] and attempts[0]["responseHeaders"]
    code, verbose, _ = await ctl(running, "deliveries", "attempts", delivery["id"], "--verbose")
    assert code == 0 and "response headers:" in verbose and "\n    ok" in verbose

    code, table, _ = await ctl(running, "deliveries", "list", "--endpoint", endpoint_id)
    assert code == 0 and delivery["id"] in table and "success" in table

    assert (await ctl(running, "deliveries", "resend", delivery["id"]))[0] == 0
    again = await receiver.wait_for(2)
    assert again[1].body == body.encode()

    code, out, err = await ctl(
        running, "deliveries", "batch-retry", "--endpoint", endpoint_id, "--dry-run"
    )
    assert (code, out) == (0, "0 deliveries would be queued\n"), err
    retried = await ctl_json(
        running, "deliveries", "batch-retry", "--endpoint", endpoint_id, "--dry-run"
    )
    assert retried == {"queuedCount": 0, "dryRun": True}

    watcher = await spawn(running, "--json", "deliveries", "watch", "--endpoint", endpoint_id)
    try:
        line = await watched_success(running, watcher, endpoint_id)
        assert line["delivery"]["endpointId"] == endpoint_id
        watcher.send_signal(signal.SIGINT)
        assert watcher.stderr is not None
        _, err_bytes = await asyncio.wait_for(watcher.communicate(), 15)
        assert watcher.returncode == 0, err_bytes.decode()
        assert err_bytes == b""
    finally:
        if watcher.returncode is None:
            watcher.kill()
            await watcher.wait()


# --- events send: telling when nothing will be delivered ------------------------------------


async def invoke(running: Running, *argv: str) -> tuple[int, str, str]:
    """convoyctl in this event loop (the daemon's); returns code, out, err."""
    args = build_parser().parse_args(
        ["--target", running.grpc_target, "--token", running.token, *argv]
    )
    out, err = io.StringIO(), io.StringIO()
    code = await run(client_from_args(args), args, Output(as_json=args.json, out=out, err=err))
    return code, out.getvalue(), err.getvalue()


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning: ")]


async def test_send_says_when_nothing_will_be_delivered(tmp_path: Path) -> None:
    async with running_app(tmp_path / "data") as (_, running):
        send = ("events", "send", "--type", "order.paid")
        code, out, err = await invoke(running, *send, "--owner-id", "nobody")
        assert code == 0 and "owner_id:" in out
        assert warnings_in(err) == [
            "warning: no endpoints of owner nobody: nothing will be delivered"
        ]
        code, out, err = await invoke(running, "--json", *send, "--owner-id", "nobody")
        assert code == 0 and json.loads(out)["ownerId"] == "nobody"
        assert "deliveryCount" not in json.loads(out)  # zero: left out by the JSON mapping
        assert warnings_in(err) == [
            "warning: no endpoints of owner nobody: nothing will be delivered"
        ]

        url = "https://hooks.example.invalid/in"
        code, out, err = await invoke(
            running,
            "--json",
            "endpoints",
            "create",
            "--url",
            url,
            "--owner-id",
            "acme",
            "--event-type",
            "order.refunded",
        )
        assert code == 0, err
        endpoint_id = json.loads(out)["id"]
        code, _, err = await invoke(running, *send, "--owner-id", "acme")
        assert code == 0
        assert warnings_in(err) == [
            "warning: no endpoint of owner acme takes order.paid events: nothing will be delivered"
        ]
        code, _, err = await invoke(running, *send, "--endpoint", endpoint_id)
        assert code == 0
        assert warnings_in(err) == [
            f"warning: endpoint {endpoint_id} does not take order.paid events:"
            " nothing will be delivered"
        ]
        code, out, err = await invoke(
            running, "--json", *send[:3], "order.refunded", "--owner-id", "acme"
        )
        assert code == 0 and json.loads(out)["deliveryCount"] == 1
        assert err == ""
