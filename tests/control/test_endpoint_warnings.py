"""Endpoint.warnings over the real gRPC server: an endpoint whose URL the daemon's address guard
refuses is created (the operator may allow it later) and says so in Create, Update, Get and
List; allowed addresses and names say nothing; a reload of the allow-list changes the answer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from convoyd.app import App
from convoyd.client import Client
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import Running, loopback_settings

SETTING = "the daemon's delivery.allow_cidrs (CONVOYD_DELIVERY_ALLOW_CIDRS)"


def refused(what: str) -> str:
    guard = f"the daemon's address guard refuses {what}"
    return f"{guard}: deliveries will fail until {SETTING} includes it"


async def test_a_blocked_url_is_accepted_with_a_warning(app: Running) -> None:
    async with Client(app.grpc_target, token=app.token) as client:
        created = await client.create_endpoint(pb.Endpoint(url="http://127.0.0.1:8000/webhooks"))
        assert list(created.warnings) == [refused("127.0.0.1 (loopback)")]
        assert list((await client.get_endpoint(created.id)).warnings) == list(created.warnings)
        listed = (await client.list_endpoints()).endpoints
        assert [list(e.warnings) for e in listed] == [list(created.warnings)]

        named = await client.update_endpoint(
            pb.Endpoint(id=created.id, url="https://hooks.example.invalid/in"), ["url"]
        )
        assert list(named.warnings) == []  # names are judged when an attempt connects
        assert list((await client.get_endpoint(created.id)).warnings) == []

        for url, what in [
            ("http://localhost:9/in", "localhost (127.0.0.1 and ::1: loopback)"),
            ("http://[::1]:9/in", "::1 (loopback)"),
            ("https://10.20.30.40/in", "10.20.30.40 (private)"),
            ("http://169.254.169.254/latest/meta-data", "169.254.169.254 (cloud metadata)"),
        ]:
            updated = await client.update_endpoint(pb.Endpoint(id=created.id, url=url), ["url"])
            assert list(updated.warnings) == [refused(what)], url


async def test_a_blocked_oauth2_token_url_warns_too(app: Running) -> None:
    oauth2 = pb.OAuth2ClientCredentials(
        token_url="http://127.0.0.1:9/token", client_id="cid", client_secret="s3cr3t"
    )
    async with Client(app.grpc_target, token=app.token) as client:
        created = await client.create_endpoint(
            pb.Endpoint(
                url="https://hooks.example.invalid/in",
                authentication=pb.EndpointAuthentication(oauth2=oauth2),
            )
        )
    assert list(created.warnings) == [
        "the daemon's address guard refuses the token URL's host 127.0.0.1 (loopback): token"
        f" requests, and so deliveries, will fail until {SETTING} includes it"
    ]


async def test_allowed_addresses_say_nothing(delivering: tuple[App, Running]) -> None:
    _, running = delivering  # allows 127.0.0.0/8 and ::1
    async with Client(running.grpc_target, token=running.token) as client:
        for url in ("http://127.0.0.1:9/in", "http://[::1]:9/in", "http://localhost:9/in"):
            assert list((await client.create_endpoint(pb.Endpoint(url=url))).warnings) == []
        private = await client.create_endpoint(pb.Endpoint(url="http://192.168.1.5/in"))
        assert list(private.warnings) == [refused("192.168.1.5 (private)")]


async def test_a_reload_of_the_allow_list_changes_the_warnings(tmp_path: Path) -> None:
    settings = loopback_settings(tmp_path / "data")
    allowed = dataclasses.replace(
        settings,
        delivery=dataclasses.replace(settings.delivery, allow_cidrs=("127.0.0.0/8",)),
    )
    loaded = [settings]
    app = App(settings, reload_settings=lambda: loaded[-1])
    await app.start()
    try:
        token = (tmp_path / "data" / "admin.token").read_text().strip()
        async with Client(app.grpc_address, token=token) as client:
            ep = await client.create_endpoint(pb.Endpoint(url="http://127.0.0.1:9/in"))
            assert list(ep.warnings) == [refused("127.0.0.1 (loopback)")]
            loaded.append(allowed)
            assert await app.reload()
            assert list((await client.get_endpoint(ep.id)).warnings) == []
    finally:
        await app.stop()
