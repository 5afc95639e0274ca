"""convoyctl's failures: said once, as a line or a JSON object, with the documented exit codes;
a daemon that is not running; a reader that goes away (``| head -1``)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import sys
from pathlib import Path

import grpc
import pytest

from convoyd.client import Client, ConvoydClientError, UnavailableError
from convoyd.ctl import main
from convoyd.ctl.cli import build_parser, client_from_args, run
from convoyd.ctl.failures import (
    EXIT_BROKEN_PIPE,
    EXIT_SERVER,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    from_client_error,
)
from convoyd.ctl.render import Output
from tests.conftest import Running


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CONVOYD_TOKEN", "CONVOYD_DATA_DIR", "CONVOYD_GRPC_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def closed_port() -> int:
    """A loopback port nothing listens on (bound for a moment, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def invoke(running: Running | None, *argv: str) -> tuple[int, str, str]:
    """convoyctl in this event loop, against ``running`` with its token; code, out, err."""
    where = ["--target", running.grpc_target, "--token", running.token] if running else []
    args = build_parser().parse_args([*where, *argv])
    out, err = io.StringIO(), io.StringIO()
    code = await run(client_from_args(args), args, Output(as_json=args.json, out=out, err=err))
    return code, out.getvalue(), err.getvalue()


# --- the daemon not running -----------------------------------------------------------------


def not_running(target: str) -> str:
    return (
        f"convoyd is not running at {target}; start it with `make run` (or `convoyd serve`)"
        " or pass --target"
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_a_daemon_not_running_is_one_line_and_exit_3(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if host == "[::1]" and not socket.has_ipv6:
        pytest.skip("no IPv6 loopback")
    target = f"{host}:{closed_port()}"
    assert main(["--target", target, "--token", "t", "endpoints", "get", "ep_1"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"convoyctl: {not_running(target)}\n"


def test_the_default_address_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --target, the address from $CONVOYD_GRPC_LISTEN is the one named."""
    target = f"127.0.0.1:{closed_port()}"
    monkeypatch.setenv("CONVOYD_GRPC_LISTEN", target)
    assert main(["endpoints", "list"]) == EXIT_UNAVAILABLE
    assert capsys.readouterr().err == f"convoyctl: {not_running(target)}\n"


def test_a_daemon_not_running_under_json(capsys: pytest.CaptureFixture[str]) -> None:
    target = f"127.0.0.1:{closed_port()}"
    assert main(["--json", "--target", target, "--token", "t", "endpoints", "list"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err) == {"code": "UNAVAILABLE", "message": not_running(target)}


def test_only_a_refused_connection_says_not_running() -> None:
    """Another failure to connect names its cause; an UNAVAILABLE the server itself answered
    (e.g. while it shuts down) is told as it is."""
    handshake = UnavailableError(
        grpc.StatusCode.UNAVAILABLE,
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:7400: "
        "Ssl handshake failed: SSL_ERROR_SSL",
    )
    failure = from_client_error(handshake, target="127.0.0.1:7400", token_found=True)
    assert failure.lines() == [
        "convoyctl: cannot connect to convoyd at 127.0.0.1:7400: ipv4:127.0.0.1:7400: "
        "Ssl handshake failed: SSL_ERROR_SSL; check --target"
    ]
    assert failure.exit_code == EXIT_UNAVAILABLE
    said = UnavailableError(grpc.StatusCode.UNAVAILABLE, "the store is unavailable")
    failure = from_client_error(said, target="127.0.0.1:7400", token_found=True)
    assert failure.lines() == ["convoyctl: UNAVAILABLE: the store is unavailable"]
    assert failure.exit_code == EXIT_UNAVAILABLE


# --- errors said once -----------------------------------------------------------------------


async def test_a_field_error_prints_once(app: Running) -> None:
    code, out, err = await invoke(app, "endpoints", "create", "--url", "ftp://nope")
    assert (code, out) == (EXIT_SERVER, "")
    assert err == "convoyctl: INVALID_ARGUMENT: url: must be an http or https URL\n"


async def test_several_field_errors_print_once_each(app: Running) -> None:
    code, _, err = await invoke(
        app, "endpoints", "create", "--url", "ftp://nope", "--http-timeout", "0"
    )
    assert code == EXIT_SERVER
    assert err.count("url: must be an http or https URL") == 1
    assert err.count("http_timeout: must be between") == 1
    assert len(err.splitlines()) == 1


def test_violations_the_message_does_not_say_are_listed() -> None:
    exc = ConvoydClientError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid endpoint; url: must be an http or https URL",
        [("url", "must be an http or https URL"), ("name", "is too long")],
    )
    assert from_client_error(exc, target="t", token_found=True).lines() == [
        "convoyctl: INVALID_ARGUMENT: invalid endpoint; url: must be an http or https URL",
        "  name: is too long",
    ]


# --- --json errors --------------------------------------------------------------------------


async def test_json_error_is_an_object_on_stderr(app: Running) -> None:
    code, out, err = await invoke(
        app, "--json", "endpoints", "create", "--url", "ftp://nope", "--http-timeout", "0"
    )
    assert (code, out) == (EXIT_SERVER, "")
    assert json.loads(err) == {
        "code": "INVALID_ARGUMENT",
        "message": "url: must be an http or https URL; http_timeout: must be between 0.1s and 60s",
        "fieldViolations": [
            {"field": "url", "description": "must be an http or https URL"},
            {"field": "http_timeout", "description": "must be between 0.1s and 60s"},
        ],
    }


async def test_json_error_without_field_violations(app: Running) -> None:
    missing = "ep_" + "0" * 26
    code, out, err = await invoke(app, "--json", "endpoints", "get", missing)
    assert (code, out) == (EXIT_SERVER, "")
    shown = json.loads(err)
    assert shown["code"] == "NOT_FOUND" and missing in shown["message"]
    assert set(shown) == {"code", "message"}


async def test_json_error_carries_the_token_hint(app: Running) -> None:
    code, _, err = await invoke(None, "--json", "--target", app.grpc_target, "endpoints", "list")
    assert code == EXIT_SERVER
    shown = json.loads(err)
    assert shown["code"] == "UNAUTHENTICATED"
    assert shown["hint"] == "no token found: use --token, $CONVOYD_TOKEN or --data-dir"
    code, _, err = await invoke(None, "--target", app.grpc_target, "endpoints", "list")
    assert err.splitlines()[-1] == "  (no token found: use --token, $CONVOYD_TOKEN or --data-dir)"


async def test_json_usage_error_is_an_object_too(app: Running) -> None:
    code, out, err = await invoke(app, "--json", "endpoints", "update", "ep_1")
    assert (code, out) == (EXIT_USAGE, "")
    assert json.loads(err) == {
        "code": "INVALID_ARGUMENT",
        "message": "nothing to update: give at least one field flag (see --help)",
    }
    code, _, err = await invoke(app, "endpoints", "update", "ep_1")
    assert err == "convoyctl: error: nothing to update: give at least one field flag (see --help)\n"


def test_json_unreadable_certificate_is_an_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "--ca-cert", "/nonexistent/ca.pem", "endpoints", "list"]) == 2
    shown = json.loads(capsys.readouterr().err)
    assert shown["code"] == "INVALID_ARGUMENT" and "/nonexistent/ca.pem" in shown["message"]


# --- a reader that goes away ----------------------------------------------------------------

# Pretty-printed, well over a pipe's 64 KiB buffer: convoyctl is still writing when the reader
# stops, whatever the scheduling.
BIG_PAYLOAD = json.dumps(list(range(100_000))).encode()


async def ctl_into_pipe(running: Running, *argv: str, read: int) -> tuple[int, bytes]:
    """Runs the real convoyctl with stdout into a pipe of which ``read`` bytes are read (0:
    none) before the read end is closed; returns its exit code and stderr."""
    reading, writing = os.pipe()
    command = [sys.executable, "-m", "convoyd.ctl", "--target", running.grpc_target, *argv]
    env = {"PATH": "/usr/bin:/bin", "CONVOYD_TOKEN": running.token}
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=writing,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(writing)
    try:
        if read:
            got = await asyncio.to_thread(os.read, reading, read)
            assert got, "convoyctl wrote nothing"
    finally:
        os.close(reading)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, err


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
async def test_a_reader_stopping_midway_ends_quietly(app: Running, as_json: bool) -> None:
    async with Client(app.grpc_target, token=app.token) as client:
        event = await client.create_event(event_type="big", data=BIG_PAYLOAD, owner_id="nobody")
    flags = ["--json"] if as_json else []
    code, err = await ctl_into_pipe(app, *flags, "events", "get", event.id, read=100)
    assert err == b""
    assert code == EXIT_BROKEN_PIPE


async def test_a_reader_gone_before_the_first_line_ends_quietly(app: Running) -> None:
    """Small output waits in Python's buffer until exit: the failure comes at that flush."""
    code, err = await ctl_into_pipe(app, "endpoints", "list", read=0)
    assert err == b""
    assert code == EXIT_BROKEN_PIPE


async def test_a_reader_that_reads_everything_sees_exit_0(app: Running) -> None:
    reading, writing = os.pipe()
    command = [sys.executable, "-m", "convoyd.ctl", "--target", app.grpc_target, "health"]
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            env={"PATH": "/usr/bin:/bin", "CONVOYD_TOKEN": app.token},
            stdout=writing,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(writing)
    with os.fdopen(reading, "rb") as pipe:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert pipe.read() == b"SERVING\n"
    assert (proc.returncode, err) == (0, b"")
