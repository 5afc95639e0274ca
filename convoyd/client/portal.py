"""PortalService calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

# google.rpc ships no type information; unused-ignore keeps this valid once an override exists.
from convoyd.client.base import ClientBase
from convoyd.client.config import duration
from convoyd.v1 import (
    portal_pb2,
)

R = TypeVar("R")
T = TypeVar("T")


class PortalCalls(ClientBase):
    async def create_portal_link(
        self,
        *,
        name: str = "",
        owner_id: str = "",
        endpoint_ids: Sequence[str] = (),
        all_owners: bool = False,
        can_manage_endpoints: bool = False,
        kind: portal_pb2.PortalLinkKind = portal_pb2.PORTAL_LINK_KIND_UNSPECIFIED,
        lifetime: float | None = None,
    ) -> portal_pb2.PortalLink:
        """Mints a link; its ``url`` (which holds the token) is shown only in this answer."""
        request = portal_pb2.CreatePortalLinkRequest(
            name=name,
            owner_id=owner_id,
            endpoint_ids=list(endpoint_ids),
            all_owners=all_owners,
            can_manage_endpoints=can_manage_endpoints,
            kind=kind,
            lifetime=None if lifetime is None else duration(lifetime),
        )
        rpc = self._open().portal.CreatePortalLink
        return await self._unary(rpc, request, portal_pb2.PortalLink)

    async def get_portal_link(self, portal_link_id: str) -> portal_pb2.PortalLink:
        request = portal_pb2.GetPortalLinkRequest(portal_link_id=portal_link_id)
        return await self._unary(self._open().portal.GetPortalLink, request, portal_pb2.PortalLink)

    async def list_portal_links(
        self,
        *,
        owner_id: str = "",
        show_inactive: bool = False,
        page_size: int = 0,
        page_token: str = "",
    ) -> portal_pb2.ListPortalLinksResponse:
        request = portal_pb2.ListPortalLinksRequest(
            owner_id=owner_id,
            show_inactive=show_inactive,
            page_size=page_size,
            page_token=page_token,
        )
        rpc = self._open().portal.ListPortalLinks
        return await self._unary(rpc, request, portal_pb2.ListPortalLinksResponse)

    def iter_portal_links(
        self, *, owner_id: str = "", show_inactive: bool = False, page_size: int = 0
    ) -> AsyncIterator[portal_pb2.PortalLink]:
        async def fetch(token: str) -> portal_pb2.ListPortalLinksResponse:
            return await self.list_portal_links(
                owner_id=owner_id,
                show_inactive=show_inactive,
                page_size=page_size,
                page_token=token,
            )

        return self._pages(fetch, lambda page: page.portal_links)

    async def revoke_portal_link(self, portal_link_id: str) -> portal_pb2.PortalLink:
        request = portal_pb2.RevokePortalLinkRequest(portal_link_id=portal_link_id)
        rpc = self._open().portal.RevokePortalLink
        return await self._unary(rpc, request, portal_pb2.PortalLink)
