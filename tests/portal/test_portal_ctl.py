"""convoyctl portal ... and convoyctl dashboard against the real daemon in-process."""

from __future__ import annotations

import io
import json

import pytest

from convoyd.app import App
from convoyd.ctl.cli import build_parser, client_from_args, run
from convoyd.ctl.render import Output
from tests.conftest import Running


async def ctl(running: Running, *argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(
        ["--target", running.grpc_target, "--token", running.token, *argv]
    )
    out, err = io.StringIO(), io.StringIO()
    code = await run(client_from_args(args), args, Output(as_json=args.json, out=out, err=err))
    return code, out.getvalue(), err.getvalue()


async def test_portal_commands(delivering: tuple[App, Running]) -> None:
    _, running = delivering
    code, out, err = await ctl(
        running,
        "portal",
        "create",
        "--owner-id",
        "acme",
        "--name",
        "support",
        "--long-lived",
        "--manage",
        "--lifetime",
        "2d",
    )
    assert code == 0, err
    url = out.strip()
    assert url.startswith(f"{running.http_url}/portal/enter?token=cvdp_")
    assert "opens until revoked" in err and "token" not in url.split("?")[0]
    link_id = err.split(":")[1].strip()

    code, out, _ = await ctl(running, "portal", "list", "--json")
    (listed,) = json.loads(out)
    assert listed["id"] == link_id and listed["canManageEndpoints"] and "url" not in listed
    assert listed["kind"] == "PORTAL_LINK_KIND_LONG_LIVED"

    code, out, _ = await ctl(running, "portal", "get", link_id)
    assert code == 0 and link_id in out and "cvdp_" not in out

    code, out, _ = await ctl(running, "portal", "revoke", link_id)
    assert code == 0 and "revoked_at" in out
    code, out, _ = await ctl(running, "portal", "list")
    assert link_id not in out
    code, out, _ = await ctl(running, "portal", "list", "--show-inactive")
    assert link_id in out


async def test_dashboard_mints_an_operator_link(delivering: tuple[App, Running]) -> None:
    app, running = delivering
    code, out, err = await ctl(running, "dashboard", "--lifetime", "10m")
    assert code == 0, err
    assert "/portal/enter?token=cvdp_" in out and "opens once" in err
    (link,) = (await app.portal.list()).items
    assert link.all_owners and link.can_manage_endpoints and link.kind.value == "one_time"
    assert link.expires_at - link.created_at == pytest.approx(600, abs=1)


async def test_create_needs_one_scope(delivering: tuple[App, Running]) -> None:
    _, running = delivering
    with pytest.raises(SystemExit):
        build_parser().parse_args(["portal", "create", "--owner-id", "a", "--all-owners"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["portal", "create"])
    code, _, err = await ctl(
        running, "portal", "create", "--owner-id", "acme", "--lifetime", "400d"
    )
    assert code == 1 and "lifetime" in err
