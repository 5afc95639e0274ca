"""PortalService: the gRPC face of portal links (the token leaves only inside the new URL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from convoyd.control import convert
from convoyd.control.status import handles_errors
from convoyd.core.model import PortalLink, PortalLinkKind
from convoyd.errors import ValidationError
from convoyd.service.portal import PortalLinkRequest, PortalManager
from convoyd.v1 import portal_pb2 as pb
from convoyd.v1 import portal_pb2_grpc

Context = Any  # grpc ships no types for the servicer context

KIND_TO_PB = {
    PortalLinkKind.ONE_TIME: pb.PORTAL_LINK_KIND_ONE_TIME,
    PortalLinkKind.LONG_LIVED: pb.PORTAL_LINK_KIND_LONG_LIVED,
}
KIND_FROM_PB = {v: k for k, v in KIND_TO_PB.items()}


def link_to_pb(link: PortalLink, *, url: str = "") -> pb.PortalLink:
    msg = pb.PortalLink(
        id=link.id,
        name=link.name,
        owner_id=link.owner_id,
        endpoint_ids=list(link.endpoint_ids),
        all_owners=link.all_owners,
        can_manage_endpoints=link.can_manage_endpoints,
        kind=KIND_TO_PB[link.kind],
        created_at=convert.timestamp(link.created_at),
        expires_at=convert.timestamp(link.expires_at),
        url=url,
    )
    if link.revoked_at is not None:
        msg.revoked_at.CopyFrom(convert.timestamp(link.revoked_at))
    if link.used_at is not None:
        msg.used_at.CopyFrom(convert.timestamp(link.used_at))
    return msg


def request_from_pb(msg: pb.CreatePortalLinkRequest) -> PortalLinkRequest:
    kind = None
    if msg.kind:
        if msg.kind not in KIND_FROM_PB:
            raise ValidationError.single("kind", f"unknown value {msg.kind}")
        kind = KIND_FROM_PB[msg.kind]
    return PortalLinkRequest(
        name=msg.name,
        owner_id=msg.owner_id,
        endpoint_ids=tuple(msg.endpoint_ids),
        all_owners=msg.all_owners,
        can_manage_endpoints=msg.can_manage_endpoints,
        kind=kind,
        lifetime=(
            convert.duration_seconds(msg.lifetime, "lifetime") if msg.HasField("lifetime") else None
        ),
    )


class PortalService(portal_pb2_grpc.PortalServiceServicer):
    def __init__(self, manager: PortalManager, link_url: Callable[[str], str]) -> None:
        """``link_url`` turns a link's token into the URL that opens the portal with it."""
        self._manager = manager
        self._link_url = link_url

    @handles_errors
    async def CreatePortalLink(
        self, request: pb.CreatePortalLinkRequest, context: Context
    ) -> pb.PortalLink:
        link, token = await self._manager.create(request_from_pb(request))
        return link_to_pb(link, url=self._link_url(token))

    @handles_errors
    async def GetPortalLink(
        self, request: pb.GetPortalLinkRequest, context: Context
    ) -> pb.PortalLink:
        return link_to_pb(await self._manager.get(request.portal_link_id))

    @handles_errors
    async def ListPortalLinks(
        self, request: pb.ListPortalLinksRequest, context: Context
    ) -> pb.ListPortalLinksResponse:
        page = await self._manager.list(
            owner_id=request.owner_id,
            show_inactive=request.show_inactive,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListPortalLinksResponse(
            portal_links=[link_to_pb(link) for link in page.items],
            next_page_token=page.next_token,
        )

    @handles_errors
    async def RevokePortalLink(
        self, request: pb.RevokePortalLinkRequest, context: Context
    ) -> pb.PortalLink:
        return link_to_pb(await self._manager.revoke(request.portal_link_id))
