"""examples/receiver.py, the receiver the docs hand to customers, signed by the real signer."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from convoyd.core import signing
from convoyd.core.model import SignatureConfig
from examples.receiver import make_app
from tests.receivers import eventually

OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()
STRANGER = "whsec_" + base64.b64encode(b"x" * 32).decode()
ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "receiver.py"


def signed(msg_id: str, body: bytes, *secrets: str) -> dict[str, str]:
    """The headers convoyd's delivery engine sends, signed by the production signer."""
    now = int(time.time())
    keys = [signing.secret_key(SignatureConfig().scheme, s) for s in secrets]
    headers = dict(signing.signature_headers(SignatureConfig(), keys, msg_id, now, body))
    return {
        **headers,
        "webhook-id": msg_id,
        "webhook-timestamp": str(now),
        "content-type": "application/json",
    }


@pytest.fixture
async def served() -> AsyncIterator[tuple[TestClient[Any, Any], list[Any]]]:
    processed: list[Any] = []
    app = make_app([OLD, NEW], process=processed.append)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as http:
        yield http, processed


async def test_signed_request_is_processed_once_and_replays_are_acknowledged(
    served: tuple[TestClient[Any, Any], list[Any]],
) -> None:
    http, processed = served
    body = b'{"type":"invoice.paid","data":{"id":"in_1"}}'
    headers = signed("dl_1", body, NEW)

    first = await http.post("/webhooks", data=body, headers=headers)
    assert first.status == 204
    assert processed == [json.loads(body)]

    replay = await http.post("/webhooks", data=body, headers=headers)
    assert replay.status == 204  # acknowledged, so convoyd stops retrying
    assert processed == [json.loads(body)]  # but not processed twice


async def test_either_secret_passes_during_a_rotation(
    served: tuple[TestClient[Any, Any], list[Any]],
) -> None:
    http, processed = served
    for n, secrets in enumerate([(OLD,), (NEW,), (NEW, OLD)]):
        body = json.dumps({"n": n}).encode()
        reply = await http.post("/webhooks", data=body, headers=signed(f"dl_{n}", body, *secrets))
        assert reply.status == 204
    assert processed == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_tampered_unsigned_or_foreign_requests_are_rejected(
    served: tuple[TestClient[Any, Any], list[Any]],
) -> None:
    http, processed = served
    body = b'{"amount":100}'
    headers = signed("dl_1", body, OLD)
    tampered = await http.post("/webhooks", data=b'{"amount":999}', headers=headers)
    assert tampered.status == 400
    no_signature = {k: v for k, v in headers.items() if k != "webhook-signature"}
    unsigned = await http.post("/webhooks", data=body, headers=no_signature)
    assert unsigned.status == 400
    foreign = await http.post("/webhooks", data=body, headers=signed("dl_2", body, STRANGER))
    assert foreign.status == 400
    assert processed == []

    # A rejected request does not burn its webhook-id: the genuine one is still processed.
    genuine = await http.post("/webhooks", data=body, headers=headers)
    assert genuine.status == 204
    assert processed == [{"amount": 100}]


@dataclass
class Script:
    url: str
    log: Path
    proc: subprocess.Popen[bytes]


def documented_command() -> str:
    """The command the script's docstring gives for a clone of convoyd."""
    (line,) = [x for x in SCRIPT.read_text().splitlines() if "examples/receiver.py" in x]
    return line.strip()


def test_the_documented_command_runs_the_script_with_the_clones_venv() -> None:
    assert documented_command().endswith(" .venv/bin/python examples/receiver.py")
    assert "pip install convoyd" not in SCRIPT.read_text()  # convoyd is not on PyPI


def test_the_guide_shows_the_receiver_as_it_is() -> None:
    guide = (ROOT / "docs" / "rotation.md").read_text()
    assert f"```python\n{SCRIPT.read_text()}```\n" in guide


def test_without_secrets_it_says_what_to_set() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CONVOYD_WEBHOOK_SECRETS"}
    result = subprocess.run(
        [sys.executable, "examples/receiver.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == "set CONVOYD_WEBHOOK_SECRETS to the endpoint's signing secret(s)\n"


@pytest.fixture
def script(tmp_path: Path) -> Iterator[Script]:
    """The documented command (the venv's python, from the clone's root), configured through
    its environment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {
        **os.environ,
        "CONVOYD_WEBHOOK_SECRETS": f" {OLD}, {NEW} ",
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    log = tmp_path / "receiver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "examples/receiver.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Script(f"http://127.0.0.1:{port}/webhooks", log, proc)
    finally:
        proc.terminate()
        proc.wait(10)


async def test_the_script_runs_as_documented(script: Script) -> None:
    body = b'{"hello":"world"}'
    async with aiohttp.ClientSession() as http:

        async def answer(data: bytes, headers: dict[str, str]) -> int:
            try:
                async with http.post(script.url, data=data, headers=headers) as reply:
                    return reply.status
            except aiohttp.ClientConnectionError:
                assert script.proc.poll() is None, script.log.read_text()
                return 0  # not listening yet

        statuses: list[int] = []

        async def started() -> bool:
            statuses.append(await answer(body, signed("dl_1", body, NEW)))
            return statuses[-1] != 0

        await eventually(started, timeout=20)
        assert statuses[-1] == 204
        assert await answer(b'{"hello":"moon"}', signed("dl_2", body, NEW)) == 400
    await eventually(lambda: "verified and received {'hello': 'world'}" in script.log.read_text())
