"""PortalService over the real gRPC server on loopback, with real SQLite underneath."""

from __future__ import annotations

import hashlib
import sqlite3
import urllib.parse

import aiohttp
import asyncpg
import grpc
import pytest

from convoyd.app import App
from convoyd.client import Client, ConvoydClientError
from convoyd.v1 import endpoint_pb2, portal_pb2
from tests.conftest import Running, current_store

pytestmark = pytest.mark.both_stores

ONE_TIME = portal_pb2.PORTAL_LINK_KIND_ONE_TIME
LONG_LIVED = portal_pb2.PORTAL_LINK_KIND_LONG_LIVED


def token_of(url: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["token"][0]


async def endpoint(client: Client, owner: str) -> str:
    created = await client.create_endpoint(
        endpoint_pb2.Endpoint(url="https://hooks.example.com/in", owner_id=owner)
    )
    return created.id


async def test_create_returns_the_url_once(client: Client, delivering: tuple[App, Running]) -> None:
    _, running = delivering
    link = await client.create_portal_link(owner_id="acme", name="Acme support")
    assert link.url.startswith(f"{running.http_url}/portal/enter?token=cvdp_")
    token = token_of(link.url)
    assert len(token) == len("cvdp_") + 43  # token_urlsafe(32): 256 bits
    assert link.kind == ONE_TIME and link.owner_id == "acme" and not link.can_manage_endpoints
    assert link.expires_at.seconds - link.created_at.seconds == 3600
    assert not link.HasField("revoked_at") and not link.HasField("used_at")

    got = await client.get_portal_link(link.id)
    assert got.url == "" and got.name == "Acme support"
    listed = await client.list_portal_links()
    assert [li.id for li in listed.portal_links] == [link.id]
    assert all(li.url == "" for li in listed.portal_links)


async def test_kinds_lifetimes_and_scopes(client: Client) -> None:
    long = await client.create_portal_link(
        owner_id="acme", kind=LONG_LIVED, can_manage_endpoints=True
    )
    assert long.kind == LONG_LIVED and long.can_manage_endpoints
    assert long.expires_at.seconds - long.created_at.seconds == 30 * 86400
    short = await client.create_portal_link(owner_id="acme", kind=ONE_TIME, lifetime=120)
    assert short.expires_at.seconds - short.created_at.seconds == 120
    ids = [await endpoint(client, "acme"), await endpoint(client, "acme")]
    scoped = await client.create_portal_link(endpoint_ids=ids)
    assert list(scoped.endpoint_ids) == ids and scoped.owner_id == ""
    operator = await client.create_portal_link(all_owners=True, lifetime=365 * 86400)
    assert operator.all_owners


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "owner_id"),
        ({"owner_id": "acme", "all_owners": True}, "owner_id"),
        ({"owner_id": "has space"}, "owner_id"),
        ({"endpoint_ids": ["nope"]}, "endpoint_ids[0]"),
        ({"owner_id": "acme", "lifetime": 366 * 86400}, "lifetime"),
        ({"owner_id": "acme", "lifetime": 0.5}, "lifetime"),
        ({"owner_id": "acme", "name": "x" * 201}, "name"),
        ({"owner_id": "acme", "kind": 7}, "kind"),
    ],
)
async def test_validation_names_the_field(
    client: Client, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ConvoydClientError) as caught:
        await client.create_portal_link(**kwargs)  # type: ignore[arg-type]
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in dict(caught.value.field_violations)


async def test_unknown_ids_are_not_found(client: Client) -> None:
    with pytest.raises(ConvoydClientError) as caught:
        await client.create_portal_link(endpoint_ids=["ep_" + "0" * 26])
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    for call in (client.get_portal_link, client.revoke_portal_link):
        with pytest.raises(ConvoydClientError) as caught:
            await call("pl_" + "0" * 26)
        assert caught.value.code == grpc.StatusCode.NOT_FOUND


async def test_list_filters_pages_and_hides_revoked(client: Client) -> None:
    acme = [await client.create_portal_link(owner_id="acme") for _ in range(3)]
    other = await client.create_portal_link(owner_id="other")
    page = await client.list_portal_links(owner_id="acme", page_size=2)
    assert [li.id for li in page.portal_links] == [acme[2].id, acme[1].id]
    rest = await client.list_portal_links(
        owner_id="acme", page_size=2, page_token=page.next_page_token
    )
    assert [li.id for li in rest.portal_links] == [acme[0].id] and not rest.next_page_token

    revoked = await client.revoke_portal_link(acme[1].id)
    assert revoked.HasField("revoked_at")
    again = await client.revoke_portal_link(acme[1].id)  # idempotent: the first time stays
    assert again.revoked_at == revoked.revoked_at
    live = [li.id for li in (await client.list_portal_links()).portal_links]
    assert acme[1].id not in live and other.id in live
    everything = await client.list_portal_links(show_inactive=True)
    assert acme[1].id in [li.id for li in everything.portal_links]
    links = [li async for li in client.iter_portal_links(show_inactive=True, page_size=1)]
    assert len(links) == 4


async def test_only_hashes_reach_the_database(
    client: Client, delivering: tuple[App, Running]
) -> None:
    app, _ = delivering
    link = await client.create_portal_link(owner_id="acme", kind=LONG_LIVED)
    token = token_of(link.url)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        async with browser.get(link.url) as response:
            assert response.status == 200
        cookie = next(c.value for c in jar if c.key == "convoyd_portal")
    store, dsn = current_store()
    if store == "postgres":
        assert dsn is not None
        conn = await asyncpg.connect(dsn)
        try:
            stored = await conn.fetchval(
                "SELECT token_hash FROM portal_links WHERE id = $1", link.id
            )
            session_hash = await conn.fetchval(
                "SELECT token_hash FROM portal_sessions WHERE link_id = $1", link.id
            )
            # Nowhere in any table, as text or bytes.
            for table in ("portal_links", "portal_sessions"):
                found = await conn.fetchval(
                    f"SELECT count(*) FROM {table} t WHERE t::text LIKE '%' || $1 || '%'"  # noqa: S608 - constant table names
                    f" OR t::text LIKE '%' || $2 || '%'",
                    token,
                    cookie,
                )
                assert found == 0, table
        finally:
            await conn.close()
    else:
        lite = sqlite3.connect(app.store.path)  # type: ignore[attr-defined]
        try:
            (stored,) = lite.execute(
                "SELECT token_hash FROM portal_links WHERE id = ?", (link.id,)
            ).fetchone()
            (session_hash,) = lite.execute(
                "SELECT token_hash FROM portal_sessions WHERE link_id = ?", (link.id,)
            ).fetchone()
        finally:
            lite.close()
        for path in app.store.path.parent.glob("convoyd.db*"):  # type: ignore[attr-defined]
            data = path.read_bytes()
            assert token.encode() not in data and cookie.encode() not in data, path
    assert stored == hashlib.sha256(token.encode()).digest()
    assert session_hash == hashlib.sha256(cookie.encode()).digest()
