"""``convoyctl portal ...`` (customer portal links) and ``convoyctl dashboard`` (the operator's)."""

from __future__ import annotations

import argparse

from convoyd.client import Client
from convoyd.ctl.args import UsageError, id_arg, paging_flags, seconds
from convoyd.ctl.registry import CommandSet
from convoyd.ctl.render import Column, Output, column
from convoyd.v1 import portal_pb2

COMMANDS = CommandSet("portal", help="mint, list and revoke links to the web portal")
DASHBOARD = CommandSet(None)

LINK_COLUMNS: list[Column] = [
    column("ID", "id"),
    column("NAME", "name"),
    column("OWNER", "owner_id"),
    ("SCOPE", lambda link: _scope(link)),
    column("KIND", "kind"),
    ("MANAGE", lambda link: "yes" if link.can_manage_endpoints else "no"),
    column("EXPIRES", "expires_at"),
    column("REVOKED", "revoked_at"),
]


def _scope(link: portal_pb2.PortalLink) -> str:
    if link.all_owners:
        return "all owners"
    if link.endpoint_ids:
        return ",".join(link.endpoint_ids)
    return f"owner {link.owner_id}"


def _print_link(out: Output, link: portal_pb2.PortalLink) -> None:
    """The URL alone on stdout (easy to copy or pipe); the rest as notes."""
    if out.as_json:
        out.resource(link)
        return
    out.line(link.url)
    once = link.kind == portal_pb2.PORTAL_LINK_KIND_ONE_TIME
    expires = link.expires_at.ToDatetime().isoformat(timespec="seconds") + "Z"
    out.note(
        f"{link.id}: {'opens once' if once else 'opens until revoked'}, expires {expires};"
        " the URL holds the link's token and is not shown again"
    )


def _create_flags(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--owner-id", help="every endpoint of this owner")
    scope.add_argument(
        "--endpoint",
        action="append",
        dest="endpoint_ids",
        metavar="ID",
        help="this endpoint (repeatable)",
    )
    scope.add_argument("--all-owners", action="store_true", help="every owner (operators)")
    parser.add_argument("--name", default="", help="who or what the link is for")
    parser.add_argument(
        "--manage",
        action="store_true",
        help="allow editing, pausing and resuming endpoints and rotating their secrets",
    )
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument(
        "--one-time",
        dest="kind",
        action="store_const",
        const=portal_pb2.PORTAL_LINK_KIND_ONE_TIME,
        help="opens once, for a session (the default)",
    )
    kind.add_argument(
        "--long-lived",
        dest="kind",
        action="store_const",
        const=portal_pb2.PORTAL_LINK_KIND_LONG_LIVED,
        help="opens a session every time until it expires or is revoked (embedding)",
    )
    parser.add_argument(
        "--lifetime",
        type=seconds,
        metavar="SECONDS",
        help="default 1h (one-time) or 30d (long-lived); at most 365d; e.g. 3600, 2h, 7d",
    )


@COMMANDS.command("create", help="mint a portal link and print its URL", configure=_create_flags)
async def create(client: Client, args: argparse.Namespace, out: Output) -> int:
    link = await client.create_portal_link(
        name=args.name,
        owner_id=args.owner_id or "",
        endpoint_ids=args.endpoint_ids or (),
        all_owners=args.all_owners,
        can_manage_endpoints=args.manage,
        kind=args.kind or portal_pb2.PORTAL_LINK_KIND_UNSPECIFIED,
        lifetime=args.lifetime,
    )
    _print_link(out, link)
    return 0


def _list_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--owner-id", default="", help="only this owner's links")
    parser.add_argument(
        "--show-inactive", action="store_true", help="include revoked and expired links"
    )
    paging_flags(parser)


@COMMANDS.command("list", help="list portal links, newest first", configure=_list_flags)
async def list_(client: Client, args: argparse.Namespace, out: Output) -> int:
    async def fetch(token: str) -> portal_pb2.ListPortalLinksResponse:
        return await client.list_portal_links(
            owner_id=args.owner_id,
            show_inactive=args.show_inactive,
            page_size=args.page_size,
            page_token=token,
        )

    await out.pages(
        fetch,
        lambda page: page.portal_links,
        LINK_COLUMNS,
        page_token=args.page_token,
        follow=args.all_pages,
    )
    return 0


@COMMANDS.command("get", help="show one portal link (never its token)", configure=id_arg)
async def get(client: Client, args: argparse.Namespace, out: Output) -> int:
    out.resource(await client.get_portal_link(args.id))
    return 0


@COMMANDS.command(
    "revoke", help="end a link and every session opened with it, now", configure=id_arg
)
async def revoke(client: Client, args: argparse.Namespace, out: Output) -> int:
    out.resource(await client.revoke_portal_link(args.id))
    return 0


def _dashboard_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lifetime",
        type=seconds,
        default=None,
        metavar="SECONDS",
        help="how long the link (and its session) lasts; default 1h",
    )


@DASHBOARD.command(
    "dashboard",
    help="open the operator dashboard: prints a one-time link to every owner's endpoints",
    configure=_dashboard_flags,
)
async def dashboard(client: Client, args: argparse.Namespace, out: Output) -> int:
    if args.lifetime is not None and args.lifetime <= 0:
        raise UsageError("--lifetime must be positive")
    link = await client.create_portal_link(
        name="operator dashboard",
        all_owners=True,
        can_manage_endpoints=True,
        kind=portal_pb2.PORTAL_LINK_KIND_ONE_TIME,
        lifetime=args.lifetime,
    )
    _print_link(out, link)
    return 0
