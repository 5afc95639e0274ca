"""convoyctl against the real daemon: the operator's endpoint workflow, human and --json output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import DaemonProcess, Running

pytestmark = pytest.mark.e2e


def ctl(running: Running, *args: str, token: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "CONVOYD_DATA_DIR": str(running.data_dir) if token else "/nowhere",
    }
    return subprocess.run(
        [sys.executable, "-m", "convoyd.ctl", "--target", running.grpc_target, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_endpoint_lifecycle_with_convoyctl(daemon: DaemonProcess) -> None:
    running = daemon.start()
    created = ctl(
        running,
        "--json",
        "endpoints",
        "create",
        "--url",
        "https://hooks.example.invalid/in",
        "--owner-id",
        "acme",
        "--name",
        "orders",
        "--header",
        "X-Tenant: acme",
    )
    assert created.returncode == 0, created.stderr
    endpoint = json.loads(created.stdout)
    endpoint_id = endpoint["id"]
    assert endpoint["secrets"][0]["value"].startswith("whsec_")

    listed = ctl(running, "endpoints", "list", "--owner-id", "acme")
    assert listed.returncode == 0 and endpoint_id in listed.stdout and "orders" in listed.stdout

    assert (
        ctl(running, "endpoints", "pause", endpoint_id, "--reason", "maintenance").returncode == 0
    )
    got = json.loads(ctl(running, "--json", "endpoints", "get", endpoint_id).stdout)
    assert got["status"] == "ENDPOINT_STATUS_PAUSED" and got["statusReason"] == "maintenance"
    assert got["ownerId"] == "acme" and got["headers"] == {"X-Tenant": "acme"}

    again = ctl(running, "endpoints", "pause", endpoint_id)
    assert again.returncode == 1 and "FAILED_PRECONDITION" in again.stderr

    assert ctl(running, "endpoints", "resume", endpoint_id).returncode == 0
    updated = ctl(
        running,
        "--json",
        "endpoints",
        "update",
        endpoint_id,
        "--url",
        "https://new.example.invalid/h",
    )
    assert json.loads(updated.stdout)["url"] == "https://new.example.invalid/h"

    bad = ctl(running, "endpoints", "create", "--url", "ftp://nope")
    assert bad.returncode == 1
    assert bad.stderr == "convoyctl: INVALID_ARGUMENT: url: must be an http or https URL\n"
    bad_json = ctl(running, "--json", "endpoints", "create", "--url", "ftp://nope")
    assert (bad_json.returncode, bad_json.stdout) == (1, "")
    assert json.loads(bad_json.stderr) == {
        "code": "INVALID_ARGUMENT",
        "message": "url: must be an http or https URL",
        "fieldViolations": [{"field": "url", "description": "must be an http or https URL"}],
    }

    unauthenticated = ctl(running, "endpoints", "list", token=False)
    assert unauthenticated.returncode == 1 and "UNAUTHENTICATED" in unauthenticated.stderr

    assert ctl(running, "endpoints", "delete", endpoint_id).returncode == 0
    missing = ctl(running, "endpoints", "get", endpoint_id)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr


def test_convoyctl_after_the_daemon_stopped(daemon: DaemonProcess) -> None:
    """The daemon's address once it is gone: one line saying so and what to do, exit 3."""
    running = daemon.start()
    assert ctl(running, "health").returncode == 0
    assert daemon.stop() == 0
    gone = ctl(running, "endpoints", "list")
    assert (gone.returncode, gone.stdout) == (3, "")
    assert gone.stderr == (
        f"convoyctl: convoyd is not running at {running.grpc_target}; start it with `make run`"
        " (or `convoyd serve`) or pass --target\n"
    )
