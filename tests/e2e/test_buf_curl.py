"""The `buf curl` recipes of docs/any-language.md against the real `convoyd serve` process.

buf discovers the API through server reflection, so these are what a caller in any language
sees with nothing but the daemon's address and a token. buf is installed by the Makefile
(tools/node_modules), so a missing binary is a failure, not a skip.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import DaemonProcess

pytestmark = pytest.mark.e2e

BUF = Path(__file__).resolve().parents[2] / "tools" / "node_modules" / ".bin" / "buf"
CONVOYD_SERVICES = {
    "convoyd.v1.EndpointService",
    "convoyd.v1.EventService",
    "convoyd.v1.DeliveryService",
    "convoyd.v1.PortalService",
}


def buf_curl(*args: str) -> subprocess.CompletedProcess[str]:
    assert BUF.exists(), f"{BUF} is missing: `make pytest` installs it (npm ci --prefix tools)"
    return subprocess.run(
        [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_create_endpoint_with_buf_curl(daemon: DaemonProcess) -> None:
    running = daemon.start()
    url = f"http://{running.grpc_target}/convoyd.v1.EndpointService/CreateEndpoint"
    body = '{"endpoint":{"url":"https://example.com/h","owner_id":"acme"}}'

    done = buf_curl("-H", f"authorization: Bearer {running.token}", "-d", body, url)

    assert done.returncode == 0, done.stderr
    endpoint = json.loads(done.stdout)
    assert endpoint["id"].startswith("ep_")
    assert endpoint["url"] == "https://example.com/h"
    assert endpoint["ownerId"] == "acme"  # buf prints proto3 JSON: lowerCamelCase names
    assert endpoint["status"] == "ENDPOINT_STATUS_ACTIVE"
    assert endpoint["secrets"][0]["value"].startswith("whsec_")

    # Without the token the same recipe is refused; buf exits with 8 x the gRPC code (16).
    refused = buf_curl("-d", body, url)
    assert refused.returncode == 8 * 16, refused.stderr
    assert '"code": "unauthenticated"' in refused.stderr


def test_buf_curl_lists_the_services(daemon: DaemonProcess) -> None:
    running = daemon.start()

    done = buf_curl("--list-services", f"http://{running.grpc_target}")

    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) >= CONVOYD_SERVICES
