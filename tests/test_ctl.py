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
from google.protobuf import any_pb2, json_format, timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from convoyd.app import App
from convoyd.client import Client, duration
from convoyd.ctl import main
from convoyd.ctl.args import UsageError, seconds
from convoyd.ctl.cli import build_parser, client_from_args, run
from convoyd.ctl.endpoint_view import show, show_created
from convoyd.ctl.endpoints import ENDPOINT_COLUMNS, endpoint_from_args, needs_current, update_mask
from convoyd.ctl.render import Output, enum_label, format_block, format_table
from convoyd.v1 import endpoint_pb2, endpoint_pb2_grpc, event_pb2
from tests.conftest import Running
from tests.pki import endpoint_pem


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
        (["--url", "https://hooks.invalid/hook"], ["url"]),
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
        (["--ordering", "fifo"], ["ordering"]),
        (["--ordering", "concurrent", "--name", "n"], ["name", "ordering"]),
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
        (["--basic-user", "bob", "--basic-password", "pw"], ["authentication"]),
        (["--oauth2-scope", "read", "--oauth2-audience", "api"], ["authentication"]),
        (["--tls-ca", "", "--name", "n"], ["name", "tls"]),
        (["--tls-client-cert", "", "--basic-user", ""], ["authentication", "tls"]),
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
        "https://hooks.invalid/hook",
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
    assert (ep.url, ep.name, ep.owner_id) == ("https://hooks.invalid/hook", "orders", "acme")
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


@pytest.mark.parametrize(
    ("command", "flags", "expected"),
    [
        ("create", ["--url", "https://hooks.invalid/in", "--ordering", "fifo"], "ORDERING_FIFO"),
        ("update", ["ep_1", "--ordering", "concurrent"], "ORDERING_UNSPECIFIED"),
        ("create", ["--url", "https://hooks.invalid/in"], "ORDERING_UNSPECIFIED"),
    ],
)
def test_ordering_flag(command: str, flags: list[str], expected: str) -> None:
    ep = endpoint_from_args(parse("endpoints", command, *flags))
    assert endpoint_pb2.Ordering.Name(ep.ordering) == expected


def test_bad_ordering_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["endpoints", "create", "--url", "https://hooks.invalid/in", "--ordering", "x"]) == 2
    )
    assert "--ordering: invalid choice: 'x'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fifo", "line"),
    [
        (
            endpoint_pb2.FifoQueue(head_delivery_id="dl_1", waiting=12),
            "fifo: 12 deliveries waiting behind dl_1",
        ),
        (
            endpoint_pb2.FifoQueue(head_delivery_id="dl_1", waiting=1),
            "fifo: 1 delivery waiting behind dl_1",
        ),
        (None, None),
    ],
)
def test_get_shows_ordering_and_what_a_fifo_endpoint_waits_behind(
    fifo: endpoint_pb2.FifoQueue | None, line: str | None
) -> None:
    ep = endpoint_pb2.Endpoint(id="ep_1", ordering=endpoint_pb2.ORDERING_FIFO, fifo=fifo)
    out, err = io.StringIO(), io.StringIO()
    show(Output(as_json=False, out=out, err=err), ep)
    shown_text = block(out.getvalue())
    assert shown_text["ordering"] == "fifo"
    assert shown_text.get("fifo") == (line.removeprefix("fifo: ") if line else None)
    json_out = io.StringIO()
    show(Output(as_json=True, out=json_out, err=err), ep)
    shown = json.loads(json_out.getvalue())
    assert "waiting behind" not in err.getvalue()  # JSON mode: the resource alone
    assert shown["ordering"] == "ORDERING_FIFO"
    assert shown.get("fifo") == (
        {"headDeliveryId": "dl_1", "waiting": fifo.waiting} if fifo else None
    )


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
    assert not needs_current(parse("endpoints", "update", "ep_1", "--url", "http://hooks.invalid"))


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


CERT = "-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIBkey\n-----END PRIVATE KEY-----\n"
CA = CERT.replace("cert", "ca") * 2
OAUTH2 = endpoint_pb2.OAuth2ClientCredentials


def written(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def stdin_of(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))


def test_create_builds_oauth2_and_tls_from_files(tmp_path: Path) -> None:
    args = parse(
        *("endpoints", "create", "--url", "https://hooks.invalid/hook"),
        *("--oauth2-token-url", "https://auth.invalid/token"),
        *("--oauth2-client-id", "convoyd"),
        *("--oauth2-client-secret-file", written(tmp_path, "secret", "s3cret\n")),
        *("--oauth2-scope", "hooks:write", "--oauth2-scope", "read"),
        *("--oauth2-audience", "https://api.invalid", "--oauth2-client-auth", "body"),
        *("--tls-client-cert", written(tmp_path, "client.crt", CERT)),
        *("--tls-client-key", written(tmp_path, "client.key", KEY)),
        *("--tls-ca", written(tmp_path, "ca.crt", CA)),
    )
    ep = endpoint_from_args(args)
    assert ep.authentication.oauth2 == OAUTH2(
        token_url="https://auth.invalid/token",
        client_id="convoyd",
        client_secret="s3cret",  # the file's line end is not part of the secret
        scopes=["hooks:write", "read"],
        audience="https://api.invalid",
        client_authentication=OAUTH2.CLIENT_AUTHENTICATION_BODY,
    )
    assert ep.tls == endpoint_pb2.EndpointTls(
        client_certificate_pem=CERT, client_key_pem=KEY, ca_pem=CA
    )


def test_create_takes_basic_and_api_key_secrets_from_stdin_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin_of(monkeypatch, "pa:ss wörd\r\n")
    args = parse(
        *("endpoints", "create", "--url", "https://hooks.invalid/hook"),
        *("--basic-user", "bob", "--basic-password-file", "-"),
    )
    basic = endpoint_from_args(args).authentication.basic
    assert (basic.username, basic.password) == ("bob", "pa:ss wörd")
    key_file = written(tmp_path, "key", "k3y")
    args = parse(
        *("endpoints", "create", "--url", "http://hooks.invalid"),
        *("--auth-header", "X-Api-Key", "--auth-value-file", key_file),
    )
    assert endpoint_from_args(args).authentication.api_key.header_value == "k3y"


@pytest.mark.parametrize(
    ("flags", "names"),
    [
        (["--basic-user", "bob"], "--basic-password"),
        (["--basic-password", "pw"], "--basic-user"),
        (
            ["--oauth2-token-url", "https://auth.invalid/t", "--oauth2-scope", "x"],
            "--oauth2-client-id, --oauth2-client-secret",
        ),
        (["--basic-user", "bob", "--oauth2-client-id", "c"], "different authentication methods"),
        (["--auth-header", "", "--basic-user", "bob"], "--auth-header and --basic-user"),
        (["--tls-client-cert", "CERT"], "--tls-client-cert and --tls-client-key go together"),
        (["--tls-client-key", "KEY"], "--tls-client-cert and --tls-client-key go together"),
    ],
)
def test_create_names_the_missing_or_clashing_flags(
    flags: list[str], names: str, tmp_path: Path
) -> None:
    files = {"CERT": written(tmp_path, "c", CERT), "KEY": written(tmp_path, "k", KEY)}
    argv = [files.get(f, f) for f in flags]
    with pytest.raises(UsageError, match=names):
        endpoint_from_args(parse("endpoints", "create", "--url", "https://x.invalid", *argv))


@pytest.mark.parametrize(
    ("flags", "names"),
    [
        (["--basic-user", "", "--basic-password", "pw"], "drop --basic-password"),
        (
            ["--oauth2-token-url", "", "--oauth2-scope", "a", "--oauth2-audience", "b"],
            "drop --oauth2-scope, --oauth2-audience",
        ),
        (["--tls-client-key", ""], "--tls-client-cert '' removes"),
        (["--tls-client-cert", "", "--tls-client-key", "KEY"], "drop --tls-client-key"),
    ],
)
def test_update_refuses_removals_mixed_with_values(
    flags: list[str], names: str, tmp_path: Path
) -> None:
    argv = [written(tmp_path, "k", KEY) if f == "KEY" else f for f in flags]
    with pytest.raises(UsageError, match=names):
        endpoint_from_args(parse("endpoints", "update", "ep_1", *argv))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--basic-user", "b", "--basic-password", "p", "--basic-password-file", "-"],
            "argument --basic-password-file: not allowed with argument --basic-password",
        ),
        (
            ["--basic-user", "b", "--basic-password-file", "-", "--tls-ca", "-"],
            "argument --tls-ca: standard input is read by --basic-password-file already",
        ),
        (
            ["--tls-ca", "/nonexistent/ca.pem"],
            "argument --tls-ca: cannot read /nonexistent/ca.pem: No such file or directory",
        ),
        (
            ["--basic-user", "b", "--basic-password-file", ""],
            "argument --basic-password-file: needs a file name, or - for standard input",
        ),
    ],
)
def test_bad_file_flags_exit_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdin_of(monkeypatch, "secret")
    assert main(["endpoints", "create", "--url", "https://x.invalid", *argv]) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err


def _current_with(**fields: Any) -> endpoint_pb2.Endpoint:
    return endpoint_pb2.Endpoint(id="ep_1", url="https://x.invalid", **fields)


def test_a_partial_oauth2_update_sends_the_rest_as_read() -> None:
    read = OAUTH2(
        token_url="https://auth.invalid/token",
        client_id="convoyd",
        client_secret="********",
        scopes=["old"],
        audience="api",
        client_authentication=OAUTH2.CLIENT_AUTHENTICATION_BODY,
    )
    current = _current_with(authentication=endpoint_pb2.EndpointAuthentication(oauth2=read))
    args = parse("endpoints", "update", "ep_1", "--oauth2-scope", "a", "--oauth2-scope", "b")
    assert needs_current(args)
    assert not endpoint_from_args(args).HasField("authentication")  # not before the read
    sent = endpoint_from_args(args, current).authentication.oauth2
    expected = OAUTH2()
    expected.CopyFrom(read)
    expected.ClearField("scopes")
    expected.scopes.extend(["a", "b"])
    assert sent == expected  # the mask: the service keeps the stored secret
    cleared = parse("endpoints", "update", "ep_1", "--oauth2-scope", "")
    assert list(endpoint_from_args(cleared, current).authentication.oauth2.scopes) == []
    # A secret goes only where it was given for: a new client id needs a new secret.
    moved = parse("endpoints", "update", "ep_1", "--oauth2-client-id", "other")
    with pytest.raises(UsageError, match="needs --oauth2-client-secret"):
        endpoint_from_args(moved, current)
    # From another method, the three that have no current value are needed.
    api_key = endpoint_pb2.ApiKeyAuthentication(header_name="X-Key", header_value="********")
    other = _current_with(authentication=endpoint_pb2.EndpointAuthentication(api_key=api_key))
    with pytest.raises(UsageError, match="--oauth2-token-url, --oauth2-client-id"):
        endpoint_from_args(args, other)
    # Every OAuth2 flag given: nothing to read.
    every = parse(
        *("endpoints", "update", "ep_1", "--oauth2-token-url", "https://auth.invalid/t"),
        *("--oauth2-client-id", "c", "--oauth2-client-secret", "s", "--oauth2-scope", "x"),
        *("--oauth2-audience", "", "--oauth2-client-auth", "basic"),
    )
    assert not needs_current(every)
    assert endpoint_from_args(every).authentication.oauth2.client_secret == "s"


def test_a_new_basic_password_keeps_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin_of(monkeypatch, "new-password\n")
    args = parse("endpoints", "update", "ep_1", "--basic-password-file", "-")
    assert needs_current(args)
    basic = endpoint_pb2.BasicAuthentication(username="bob", password="********")
    current = _current_with(authentication=endpoint_pb2.EndpointAuthentication(basic=basic))
    sent = endpoint_from_args(args, current).authentication.basic
    assert (sent.username, sent.password) == ("bob", "new-password")
    with pytest.raises(UsageError, match="no basic user"):
        endpoint_from_args(args, _current_with())


def test_a_partial_tls_update_keeps_the_rest(tmp_path: Path) -> None:
    current = _current_with(
        tls=endpoint_pb2.EndpointTls(
            client_certificate_pem=CERT, client_key_pem="********", ca_pem=CA
        )
    )
    renewed = CERT.replace("cert", "renewed")
    args = parse(
        "endpoints", "update", "ep_1", "--tls-client-cert", written(tmp_path, "r", renewed)
    )
    assert needs_current(args) and not endpoint_from_args(args).HasField("tls")
    # The masked key: the service keeps the stored key when it belongs to the new certificate.
    assert endpoint_from_args(args, current).tls == endpoint_pb2.EndpointTls(
        client_certificate_pem=renewed, client_key_pem="********", ca_pem=CA
    )
    no_ca = parse("endpoints", "update", "ep_1", "--tls-ca", "")
    assert endpoint_from_args(no_ca, current).tls == endpoint_pb2.EndpointTls(
        client_certificate_pem=CERT, client_key_pem="********"
    )
    no_cert = parse("endpoints", "update", "ep_1", "--tls-client-cert", "")
    assert endpoint_from_args(no_cert, current).tls == endpoint_pb2.EndpointTls(ca_pem=CA)
    with pytest.raises(UsageError, match="--tls-client-cert needs --tls-client-key"):
        endpoint_from_args(args, _current_with())
    # Everything given, or everything removed: nothing to read.
    gone = parse("endpoints", "update", "ep_1", "--tls-client-cert", "", "--tls-ca", "")
    assert not needs_current(gone)
    removed = endpoint_from_args(gone)
    assert removed.HasField("tls") and removed.tls == endpoint_pb2.EndpointTls()


def test_empty_values_remove_any_method() -> None:
    for flag in ("--auth-header", "--basic-user", "--oauth2-token-url"):
        ep = endpoint_from_args(parse("endpoints", "update", "ep_1", flag, ""))
        assert ep.HasField("authentication"), flag
        assert ep.authentication.WhichOneof("method") is None, flag


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


def test_endpoint_tls_flags_are_not_the_connection_flags(tmp_path: Path) -> None:
    """--client-cert/--client-key/--ca-cert are convoyctl's own mutual TLS to the daemon, also
    after the command; the endpoint's are --tls-*."""
    pem = written(tmp_path, "c.pem", CERT)
    args = parse(
        *("endpoints", "update", "ep_1", "--tls", "--client-cert", pem, "--ca-cert", pem),
        *("--tls-ca", pem),
    )
    assert (args.tls, args.client_cert, args.ca_cert) == (True, pem, pem)
    assert args.tls_ca == CERT and args.tls_client_cert is None
    assert update_mask(args) == ["tls"]


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


def test_json_listing_is_a_list_in_the_proto_json_mapping() -> None:
    out = io.StringIO()
    endpoint = endpoint_pb2.Endpoint(
        id="ep_1", owner_id="acme", status=endpoint_pb2.ENDPOINT_STATUS_ACTIVE
    )
    Output(as_json=True, out=out, err=io.StringIO()).listing([endpoint], ENDPOINT_COLUMNS)
    assert json.loads(out.getvalue()) == [
        {"id": "ep_1", "ownerId": "acme", "status": "ENDPOINT_STATUS_ACTIVE"}
    ]


def test_format_block() -> None:
    endpoint = endpoint_pb2.Endpoint(
        id="ep_1",
        url="https://hooks.invalid/hook",
        event_types=["a", "b"],
        status=endpoint_pb2.ENDPOINT_STATUS_PAUSED,
        http_timeout=duration(15),
        signature=endpoint_pb2.SignatureConfig(scheme=endpoint_pb2.SIGNATURE_SCHEME_CONVOY_SIMPLE),
        headers={"X-B": "2", "X-A": "1"},
        created_at=timestamp_pb2.Timestamp(seconds=1_700_000_000),
    )
    assert format_block(endpoint).splitlines() == [
        "id:               ep_1",
        "url:              https://hooks.invalid/hook",
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


def test_json_is_the_proto_json_mapping() -> None:
    """lowerCamelCase names, enum values by name, durations and times as strings: the shape
    `buf curl` prints, the same for every --json output."""
    endpoint = endpoint_pb2.Endpoint(
        id="ep_1",
        owner_id="acme",
        status=endpoint_pb2.ENDPOINT_STATUS_ACTIVE,
        http_timeout=duration(1.5),
        signature=endpoint_pb2.SignatureConfig(scheme=endpoint_pb2.SIGNATURE_SCHEME_STANDARD),
        created_at=timestamp_pb2.Timestamp(seconds=1_700_000_000),
        warnings=["mind the guard"],
    )
    out = io.StringIO()
    Output(as_json=True, out=out, err=io.StringIO()).resource(endpoint)
    shown = json.loads(out.getvalue())
    assert shown == {
        "id": "ep_1",
        "ownerId": "acme",
        "status": "ENDPOINT_STATUS_ACTIVE",
        "httpTimeout": "1.500s",
        "signature": {"scheme": "SIGNATURE_SCHEME_STANDARD"},
        "createdAt": "2023-11-14T22:13:20Z",
        "warnings": ["mind the guard"],
    }
    assert shown == json_format.MessageToDict(endpoint)
    streamed = io.StringIO()
    Output(as_json=True, out=streamed, err=io.StringIO()).stream("", endpoint)
    assert json.loads(streamed.getvalue()) == shown


WARNED = endpoint_pb2.Endpoint(
    id="ep_1",
    url="http://127.0.0.1:9/in",
    warnings=["the guard refuses 127.0.0.1", "another thing"],
)
WARNED.secrets.add(id="sec_1", value="whsec_new")


@pytest.mark.parametrize("shown", [show, show_created], ids=["show", "show_created"])
def test_warnings_go_to_stderr_one_line_each(shown: Any) -> None:
    out, err = io.StringIO(), io.StringIO()
    shown(Output(as_json=False, out=out, err=err), WARNED)
    warnings = [line for line in err.getvalue().splitlines() if line.startswith("warning: ")]
    assert warnings == ["warning: the guard refuses 127.0.0.1", "warning: another thing"]
    assert "warnings" not in out.getvalue() and "the guard" not in out.getvalue()


@pytest.mark.parametrize("shown", [show, show_created], ids=["show", "show_created"])
def test_warnings_are_part_of_the_json_object(shown: Any) -> None:
    out, err = io.StringIO(), io.StringIO()
    shown(Output(as_json=True, out=out, err=err), WARNED)
    assert json.loads(out.getvalue())["warnings"] == list(WARNED.warnings)
    assert err.getvalue() == ""


def test_retry_jitter_help_says_what_it_does(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["endpoints", "create", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "--retry-jitter FRACTION 0 to 1: how much each delay varies; 0.2 (the default) varies"
        " it by ±10 %" in text
    )


# --- against servers ------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


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
    code, out, err = await invoke(
        "--target", target, "endpoints", "create", "--url", "http://hooks.invalid"
    )
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


def block(text: str) -> dict[str, str]:
    """convoyctl's ``key: value`` lines as a dict."""
    rows = (line.partition(": ") for line in text.splitlines())
    return {key.strip(): value.strip() for key, _, value in rows}


async def test_authentication_and_tls_round_trip_through_the_daemon(
    delivering: tuple[App, Running], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, running = delivering
    pem = endpoint_pem(tmp_path)
    files = {
        name: written(tmp_path, f"{name}.pem", text)
        for name, text in (
            ("cert", pem.client_certificate),
            ("key", pem.client_key),
            ("ca", pem.ca),
            ("renewed", pem.renewed_certificate),
            ("other", pem.other_certificate),
        )
    }
    password = "basic-pw-" + "p" * 20

    async def ctl(*argv: str) -> tuple[int, str, str]:
        return await invoke("--target", running.grpc_target, "--token", running.token, *argv)

    def written_values(text: str) -> list[str]:
        secrets = (password, "oauth2-secret-value", "-----BEGIN PRIVATE KEY", "PRIVATE KEY")
        return [v for v in secrets if v in text]

    stdin_of(monkeypatch, password + "\n")
    code, out, err = await ctl(
        *("endpoints", "create", "--url", "https://hooks.invalid/in", "--name", "mtls"),
        *("--basic-user", "bob", "--basic-password-file", "-"),
        *("--tls-client-cert", files["cert"], "--tls-client-key", files["key"]),
        *("--tls-ca", files["ca"]),
    )
    assert code == 0, err
    endpoint_id = next(line.split()[-1] for line in out.splitlines() if line.startswith("id:"))
    stored = (await app.endpoints.get(endpoint_id)).spec
    assert stored.auth is not None and stored.tls is not None
    assert getattr(stored.auth, "password", None) == password
    assert stored.tls.client_key_pem == pem.client_key

    code, shown, err = await ctl("endpoints", "get", endpoint_id)
    assert code == 0, err
    lines = block(shown)
    assert lines["authentication.basic.username"] == "bob"
    assert lines["authentication.basic.password"] == "********"
    assert lines["tls.client_certificate_pem"] == "PEM, 1 certificate"
    assert lines["tls.client_key_pem"] == "********"
    assert lines["tls.ca_pem"] == "PEM, 1 certificate"
    not_after = lines["tls.client_certificate_not_after"]
    assert not_after.endswith("Z")
    code, as_json, _ = await ctl("--json", "endpoints", "get", endpoint_id)
    assert json.loads(as_json)["tls"]["clientCertificatePem"] == pem.client_certificate
    assert not written_values(out + err + shown + as_json)

    # A renewed certificate for the same key: the stored key stays, the expiry moves.
    code, out, err = await ctl(
        "endpoints", "update", endpoint_id, "--tls-client-cert", files["renewed"]
    )
    assert code == 0, err
    renewed = (await app.endpoints.get(endpoint_id)).spec.tls
    assert renewed is not None and renewed.client_key_pem == pem.client_key
    assert renewed.client_certificate_pem == pem.renewed_certificate and renewed.ca_pem == pem.ca
    assert block(out)["tls.client_certificate_not_after"] != not_after
    # A certificate of another key needs that key: the service names the field.
    code, _, err = await ctl(
        "endpoints", "update", endpoint_id, "--tls-client-cert", files["other"]
    )
    assert code == 1 and "tls.client_key_pem:" in err

    # From basic to OAuth2; then new scopes keep the stored client secret.
    code, out, err = await ctl(
        *("endpoints", "update", endpoint_id, "--oauth2-token-url", "https://auth.invalid/t"),
        *("--oauth2-client-id", "convoyd", "--oauth2-client-secret", "oauth2-secret-value"),
    )
    assert code == 0, err
    assert block(out)["authentication.oauth2.client_secret"] == "********"
    code, out, err = await ctl("endpoints", "update", endpoint_id, "--oauth2-scope", "hooks")
    assert code == 0, err
    auth = (await app.endpoints.get(endpoint_id)).spec.auth
    assert getattr(auth, "client_secret", None) == "oauth2-secret-value"
    assert getattr(auth, "scopes", None) == ("hooks",)
    assert not written_values(out + err)

    # Removing both.
    code, _, err = await ctl(
        *("endpoints", "update", endpoint_id, "--oauth2-token-url", ""),
        *("--tls-client-cert", "", "--tls-ca", ""),
    )
    assert code == 0, err
    gone = (await app.endpoints.get(endpoint_id)).spec
    assert gone.auth is None and gone.tls is None


async def daemon_ctl(running: Running, *argv: str) -> tuple[int, str, str]:
    return await invoke("--target", running.grpc_target, "--token", running.token, *argv)


@pytest.mark.parametrize(
    ("flags", "signature"),
    [
        ([], {"scheme": "standard"}),
        (["--scheme", "standard", "--hash", "sha512"], {"scheme": "standard"}),
        (
            ["--scheme", "convoy-simple"],
            {"scheme": "convoy-simple", "hash": "sha256", "encoding": "hex"},
        ),
        (
            ["--scheme", "convoy-advanced", "--hash", "sha512", "--encoding", "base64"],
            {"scheme": "convoy-advanced", "hash": "sha512", "encoding": "base64"},
        ),
    ],
)
async def test_text_shows_only_the_signature_fields_of_the_scheme(
    app: Running, flags: list[str], signature: dict[str, str]
) -> None:
    create = ("endpoints", "create", "--url", "https://hooks.example.invalid/in", *flags)
    code, out, err = await daemon_ctl(app, *create)
    assert code == 0, err
    endpoint_id = block(out)["id"]
    code, got, err = await daemon_ctl(app, "endpoints", "get", endpoint_id)
    assert code == 0, err
    for text in (out, got):
        shown = {
            k.removeprefix("signature."): v for k, v in block(text).items() if "signature" in k
        }
        assert shown == signature
    # JSON keeps the whole resource, as the server sent it.
    async with Client(app.grpc_target, token=app.token) as client:
        stored = await client.get_endpoint(endpoint_id)
    code, as_json, _ = await daemon_ctl(app, "--json", "endpoints", "get", endpoint_id)
    assert json.loads(as_json) == json_format.MessageToDict(stored)
    assert set(json.loads(as_json)["signature"]) == {"scheme", "hash", "encoding"}


async def test_the_guard_s_warnings_are_printed_after_create_update_and_get(app: Running) -> None:
    """The in-process daemon's guard refuses loopback, so an endpoint at 127.0.0.1 is warned
    about; text prints each warning once on stderr, JSON has them in the object."""
    code, out, err = await daemon_ctl(app, "endpoints", "create", "--url", "http://127.0.0.1:9/in")
    assert code == 0, err
    endpoint_id = block(out)["id"]
    code, as_json, json_err = await daemon_ctl(app, "--json", "endpoints", "get", endpoint_id)
    warnings = json.loads(as_json)["warnings"]
    assert warnings and all("127.0.0.1" in w for w in warnings)
    assert "warning:" not in json_err
    expected = [f"warning: {w}" for w in warnings]
    for argv in (["get", endpoint_id], ["update", endpoint_id, "--name", "loop"]):
        code, shown, err = await daemon_ctl(app, "endpoints", *argv)
        assert code == 0, err
        assert [line for line in err.splitlines() if line.startswith("warning:")] == expected
        assert "warnings" not in shown
    assert [line for line in err.splitlines() if line.startswith("warning:")] == expected
    code, _, err = await daemon_ctl(
        app, "endpoints", "update", endpoint_id, "--url", "https://hooks.example.invalid/in"
    )
    assert code == 0 and "warning:" not in err
