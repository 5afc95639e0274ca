"""The Store protocol: everything the rest of convoyd may ask of persistence, and nothing more.

SQL lives only behind this protocol, so a PostgreSQL implementation (several convoyd
instances on one database) can be added without touching the service layer or the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from convoyd.core.model import Endpoint, EndpointStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    """A control-plane bearer token, known only by its SHA-256 hash."""

    id: str
    name: str
    token_hash: bytes
    created_at: float
    revoked_at: float | None = None


EndpointChange = Callable[[Endpoint], Endpoint]


class Store(Protocol):
    async def open(self) -> None:
        """Connects and applies pending migrations."""

    async def close(self) -> None: ...

    async def insert_endpoint(self, endpoint: Endpoint) -> None: ...

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        """Raises NotFoundError."""

    async def list_endpoints(
        self,
        *,
        owner_id: str = "",
        status: EndpointStatus | None = None,
        before_id: str = "",
        limit: int = 50,
    ) -> list[Endpoint]:
        """Newest first; ``before_id`` continues a listing after that id."""

    async def modify_endpoint(self, endpoint_id: str, change: EndpointChange) -> Endpoint:
        """Reads the endpoint, applies ``change`` and writes the result in one transaction.

        ``change`` runs inside the store's write transaction, so concurrent modifications
        never interleave; whatever it raises propagates and nothing is written.
        """

    async def delete_endpoint(self, endpoint_id: str) -> None:
        """Raises NotFoundError."""

    async def insert_api_token(self, token: ApiToken) -> None: ...

    async def list_api_tokens(self) -> list[ApiToken]: ...
