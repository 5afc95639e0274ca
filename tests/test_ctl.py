"""convoyctl: flag parsing, update masks, rendering, and exit codes (servers on loopback)."""

from __future__ import annotations

import argparse
import io
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from convoyd.client import duration
from convoyd.ctl import main
from convoyd.ctl.args import UsageError, seconds
from convoyd.ctl.cli import build_parser, client_from_args, run
from convoyd.ctl.endpoints import (
    ENDPOINT_COLUMNS,
    endpoint_from_args,
    needs_current,
    update_mask,
)
from convoyd.ctl.render import Output, enum_label, format_block, format_table
from convoyd.v1 import endpoint_pb2, endpoint_pb2_grpc, event_pb2


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CONVOYD_TOKEN", "CONVOYD_DATA_DIR", "CONVOYD_GRPC_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


# --- parsing and update masks ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "mask"),
    [
        (["--url", "https://example.com/hook"], ["url"]),
        (["--name", "n", "--description", "d"], ["name", "description"]),
        (
            ["--owner-id", "acme", "--event-type", "a", "--event-type", "b"],
            ["owner_id", "event_types"],
        ),
        (["--http-timeout", "10"], ["http_timeout"]),
        (
            ["--rate-limit", "5", "--rate-limit-duration", "1m"],
            ["rate_limit", "rate_limit_duration"],
        ),
        (["--scheme", "convoy-simple"], ["signature"]),
        (["--hash", "sha512", "--encoding", "base64"], ["signature"]),
        (["--auth-header", "X-Key", "--auth-value", "k"], ["authentication"]),
        (["--header", "X-A: 1", "--header", "X-B: 2"], ["headers"]),
        (["--content-type", "application/cloudevents+json"], ["content_type"]),
        (["--max-concurrency", "4"], ["max_concurrency"]),
        (["--retry", "linear", "--retry-interval", "30", "--retry-max", "3"], ["retry_policy"]),
        (["--retry", "default"], ["retry_policy"]),
        (
            [
                "--max-concurrency",
                "1",
                "--hash",
                "sha256",
                "--url",
                "http://x",
                "--retry",
                "default",
            ],
            ["url", "retry_policy", "signature", "max_concurrency"],
        ),
        ([], []),
    ],
)
def test_update_mask_names_exactly_the_flags_given(flags: list[str], mask: list[str]) -> None:
    assert update_mask(parse("endpoints", "update", "ep_1", *flags)) == mask


def test_create_builds_the_endpoint() -> None:
    args = parse(
        "endpoints",
        "create",
        "--url",
        "https://example.com/hook",
        "--name",
        "orders",
        "--owner-id",
        "acme",
        "--event-type",
        "order.paid",
        "--http-timeout",
        "1.5",
        "--rate-limit",
        "10",
        "--rate-limit-duration",
        "1m",
        "--scheme",
        "convoy-advanced",
        "--hash",
        "sha512",
        "--encoding",
        "base64",
        "--auth-header",
        "X-Api-Key",
        "--auth-value",
        "k3y",
        "--header",
        "X-Team: payments",
        "--content-type",
        "text/plain",
        "--max-concurrency",
        "2",
        "--secret",
        "whsec_abc",
        "--retry",
        "schedule",
        "--retry-delays",
        "5,5m,30m",
    )
    ep = endpoint_from_args(args)
    assert (ep.url, ep.name, ep.owner_id) == ("https://example.com/hook", "orders", "acme")
    assert list(ep.event_types) == ["order.paid"]
    assert (ep.http_timeout.seconds, ep.http_timeout.nanos) == (1, 500_000_000)
    assert (ep.rate_limit, ep.rate_limit_duration.seconds) == (10, 60)
    assert ep.signature == endpoint_pb2.SignatureConfig(
        scheme=endpoint_pb2.SIGNATURE_SCHEME_CONVOY_ADVANCED,
        hash=endpoint_pb2.SIGNATURE_HASH_SHA512,
        encoding=endpoint_pb2.SIGNATURE_ENCODING_BASE64,
    )
    assert ep.authentication.api_key.header_name == "X-Api-Key"
    assert ep.authentication.api_key.header_value == "k3y"
    assert dict(ep.headers) == {"X-Team": "payments"}
    assert (ep.content_type, ep.max_concurrency) == ("text/plain", 2)
    assert [d.seconds for d in ep.retry_policy.schedule.delays] == [5, 300, 1800]
    assert args.secret == "whsec_abc"


def test_exponential_retry() -> None:
    args = parse(
        "endpoints",
        "update",
        "ep_1",
        "--retry",
        "exponential",
        "--retry-interval",
        "2s",
        "--retry-max-interval",
        "1h",
        "--retry-multiplier",
        "3",
        "--retry-max",
        "8",
        "--retry-jitter",
        "0.1",
    )
    policy = endpoint_from_args(args).retry_policy
    assert policy.WhichOneof("strategy") == "exponential"
    assert policy.exponential == endpoint_pb2.ExponentialRetry(
        initial_interval=duration(2), max_interval=duration(3600), multiplier=3, max_retries=8
    )
    assert policy.HasField("jitter") and policy.jitter == pytest.approx(0.1)


def test_retry_default_sends_an_empty_policy() -> None:
    ep = endpoint_from_args(parse("endpoints", "update", "ep_1", "--retry", "default"))
    assert ep.HasField("retry_policy")
    assert ep.retry_policy.WhichOneof("strategy") is None


def test_a_partial_signature_keeps_the_current_values() -> None:
    args = parse("endpoints", "update", "ep_1", "--hash", "sha512")
    assert needs_current(args)
    current = endpoint_pb2.Endpoint(
        signature=endpoint_pb2.SignatureConfig(
            scheme=endpoint_pb2.SIGNATURE_SCHEME_CONVOY_SIMPLE,
            hash=endpoint_pb2.SIGNATURE_HASH_SHA256,
            encoding=endpoint_pb2.SIGNATURE_ENCODING_HEX,
        )
    )
    assert endpoint_from_args(args, current).signature == endpoint_pb2.SignatureConfig(
        scheme=endpoint_pb2.SIGNATURE_SCHEME_CONVOY_SIMPLE,
        hash=endpoint_pb2.SIGNATURE_HASH_SHA512,
        encoding=endpoint_pb2.SIGNATURE_ENCODING_HEX,
    )
    full = parse(
        "endpoints",
        "update",
        "ep_1",
        "--scheme",
        "standard",
        "--hash",
        "sha256",
        "--encoding",
        "base64",
    )
    assert not needs_current(full)
    assert not needs_current(parse("endpoints", "update", "ep_1", "--url", "http://x"))


def test_empty_values_clear_on_update() -> None:
    args = parse(
        "endpoints", "update", "ep_1", "--auth-header", "", "--header", "", "--event-type", ""
    )
    assert update_mask(args) == ["event_types", "authentication", "headers"]
    ep = endpoint_from_args(args)
    assert ep.HasField("authentication")
    assert ep.authentication.WhichOneof("method") is None
    assert not ep.headers and not ep.event_types


@pytest.mark.parametrize(
    "flags",
    [
        ["--retry-max", "3"],
        ["--retry", "linear", "--retry-delays", "5,10"],
        ["--retry", "schedule"],
        ["--retry", "default", "--retry-interval", "5"],
        ["--auth-value", "k"],
        ["--auth-header", "X-Key"],
    ],
)
def test_flags_that_do_not_fit_together(flags: list[str]) -> None:
    with pytest.raises(UsageError):
        endpoint_from_args(parse("endpoints", "update", "ep_1", *flags))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30", 30), ("1.5", 1.5), ("500ms", 0.5), ("5m", 300), ("2h", 7200), ("1d", 86400)],
)
def test_seconds(text: str, expected: float) -> None:
    assert seconds(text) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["endpoints", "create", "--url", "http://x", "--http-timeout", "soon"],
        ["endpoints", "create", "--url", "http://x", "--header", "no colon"],
        ["endpoints", "create", "--url", "http://x", "--retry-jitter", "2"],
        ["endpoints", "create", "--name", "no url"],
        ["endpoints", "list", "--status", "sleeping"],
        ["endpoints", "frobnicate"],
        [],
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_update_with_no_field_flags_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    # Refused before any call, so the (closed) target is never contacted.
    assert main(["--target", f"127.0.0.1:{closed_port()}", "endpoints", "update", "ep_1"]) == 2
    assert "nothing to update" in capsys.readouterr().err


def test_global_flags_go_before_or_after_the_command() -> None:
    before = parse("--json", "--target", "h:1", "endpoints", "list")
    after = parse("endpoints", "list", "--json", "--target", "h:1", "--all")
    for args in (before, after):
        assert (args.json, args.target, args.token) == (True, "h:1", None)
    assert not parse("endpoints", "list").json


# --- rendering ------------------------------------------------------------------------------


def test_format_table_aligns_columns() -> None:
    rows = [["ep_1", "orders", "active"], ["ep_22", "", "paused"]]
    assert format_table(["ID", "NAME", "STATUS"], rows) == (
        "ID     NAME    STATUS\nep_1   orders  active\nep_22          paused"
    )


def test_endpoint_listing_table() -> None:
    out = io.StringIO()
    endpoints = [
        endpoint_pb2.Endpoint(
            id="ep_1",
            name="orders",
            owner_id="acme",
            url="https://a.example",
            status=endpoint_pb2.ENDPOINT_STATUS_ACTIVE,
        ),
        endpoint_pb2.Endpoint(
            id="ep_2",
            owner_id="beta",
            url="https://b.example",
            status=endpoint_pb2.ENDPOINT_STATUS_INACTIVE,
        ),
    ]
    Output(as_json=False, out=out, err=io.StringIO()).listing(endpoints, ENDPOINT_COLUMNS)
    assert out.getvalue().splitlines() == [
        "ID    NAME    OWNER  STATUS    URL",
        "ep_1  orders  acme   active    https://a.example",
        "ep_2          beta   inactive  https://b.example",
    ]


def test_json_listing_is_a_list_with_proto_field_names() -> None:
    out = io.StringIO()
    endpoint = endpoint_pb2.Endpoint(id="ep_1", owner_id="acme")
    Output(as_json=True, out=out, err=io.StringIO()).listing([endpoint], ENDPOINT_COLUMNS)
    assert json.loads(out.getvalue()) == [{"id": "ep_1", "owner_id": "acme"}]


def test_format_block() -> None:
    endpoint = endpoint_pb2.Endpoint(
        id="ep_1",
        url="https://example.com/hook",
        event_types=["a", "b"],
        status=endpoint_pb2.ENDPOINT_STATUS_PAUSED,
        http_timeout=duration(15),
        signature=endpoint_pb2.SignatureConfig(scheme=endpoint_pb2.SIGNATURE_SCHEME_CONVOY_SIMPLE),
        headers={"X-B": "2", "X-A": "1"},
        created_at=timestamp_pb2.Timestamp(seconds=1_700_000_000),
    )
    assert format_block(endpoint).splitlines() == [
        "id:               ep_1",
        "url:              https://example.com/hook",
        "event_types:      a, b",
        "status:           paused",
        "http_timeout:     15s",
        "signature.scheme: convoy-simple",
        "headers.X-A:      1",
        "headers.X-B:      2",
        "created_at:       2023-11-14T22:13:20Z",
    ]


def test_event_data_is_shown_as_json_text() -> None:
    event = event_pb2.Event(id="ev_1", data=b'{"order": 42,\n "paid": true}')
    assert "data: " + json.dumps({"order": 42, "paid": True}) in format_block(event)


def test_enum_labels() -> None:
    scheme = endpoint_pb2.SignatureScheme.DESCRIPTOR
    assert enum_label(scheme, endpoint_pb2.SIGNATURE_SCHEME_CONVOY_ADVANCED) == "convoy-advanced"
    assert enum_label(endpoint_pb2.EndpointStatus.DESCRIPTOR, 99) == "99"


# --- against servers ------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_daemon_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--target", f"127.0.0.1:{closed_port()}", "--token", "t", "endpoints", "get", "ep_1"]
    assert main(argv) == 3
    assert capsys.readouterr().err.startswith("convoyctl: UNAVAILABLE: ")


class Endpoints(endpoint_pb2_grpc.EndpointServiceServicer):
    async def CreateEndpoint(
        self,
        request: endpoint_pb2.CreateEndpointRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> endpoint_pb2.Endpoint:
        if not request.endpoint.url.startswith("http"):
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field="url", description="must be an http or https URL"
                    )
                ]
            )
            detail = any_pb2.Any()
            detail.Pack(bad)
            status = status_pb2.Status(
                code=code_pb2.INVALID_ARGUMENT, message="invalid endpoint", details=[detail]
            )
            await context.abort_with_status(rpc_status.to_status(status))
        endpoint = endpoint_pb2.Endpoint(id="ep_new")
        endpoint.MergeFrom(request.endpoint)
        endpoint.secrets.add(id="sec_1", value="whsec_new")
        return endpoint

    async def RotateEndpointSecret(
        self,
        request: endpoint_pb2.RotateEndpointSecretRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> endpoint_pb2.RotateEndpointSecretResponse:
        scheme = endpoint_pb2.SIGNATURE_SCHEME_CONVOY_SIMPLE
        endpoint = endpoint_pb2.Endpoint(id=request.endpoint_id)
        endpoint.signature.scheme = scheme
        endpoint.secrets.add(id="sec_2")
        endpoint.secrets.add(id="sec_1", expires_at=timestamp_pb2.Timestamp(seconds=1_700_000_000))
        secret = endpoint_pb2.EndpointSecret(id="sec_2", value="whsec_two")
        return endpoint_pb2.RotateEndpointSecretResponse(endpoint=endpoint, secret=secret)


@pytest.fixture
async def target() -> AsyncIterator[str]:
    server = grpc.aio.server()
    endpoint_pb2_grpc.add_EndpointServiceServicer_to_server(Endpoints(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def invoke(*argv: str) -> tuple[int, str, str]:
    """Runs convoyctl in this event loop (main() would start its own); returns code, out, err."""
    args = parse(*argv)
    out, err = io.StringIO(), io.StringIO()
    code = await run(client_from_args(args), args, Output(as_json=args.json, out=out, err=err))
    return code, out.getvalue(), err.getvalue()


async def test_create_shows_the_secret_once(target: str) -> None:
    code, out, err = await invoke("--target", target, "endpoints", "create", "--url", "http://x")
    assert code == 0
    assert out.count("whsec_new") == 1
    assert "secret: whsec_new" in out
    assert "store this signing secret" in err


async def test_server_errors_exit_1_with_field_violations(target: str) -> None:
    code, _, err = await invoke("--target", target, "endpoints", "create", "--url", "ftp://x")
    assert code == 1
    assert err.splitlines() == [
        "convoyctl: INVALID_ARGUMENT: invalid endpoint",
        "  url: must be an http or https URL",
    ]


async def test_rotating_a_convoy_simple_endpoint_notes_the_switch(target: str) -> None:
    code, out, err = await invoke("--target", target, "endpoints", "rotate-secret", "ep_1")
    assert code == 0
    assert "value: whsec_two" in out
    assert "previous secret sec_1 signs until 2023-11-14T22:13:20Z" in out
    assert "keeps signing with the oldest live secret until it expires" in err


async def test_rotate_json_output(target: str) -> None:
    code, out, _ = await invoke("--target", target, "--json", "endpoints", "rotate-secret", "ep_1")
    assert code == 0
    assert json.loads(out)["secret"] == {"id": "sec_2", "value": "whsec_two"}
