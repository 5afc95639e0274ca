"""One page of any listing: size, opaque token, one row more than asked to know if more follow."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from convoyd.core import paging
from convoyd.core.model import Page

T = TypeVar("T")


def _by_id(item: Any) -> str:
    return str(item.id)


async def page_of(
    filters: tuple[object, ...],
    page_size: int,
    page_token: str,
    fetch: Callable[[str, int], Awaitable[Sequence[T]]],
    cursor: Callable[[T], str] = _by_id,
) -> Page[T]:
    """``fetch(after, limit)`` reads up to ``limit`` rows after the cursor ``after`` ('' first);
    ``cursor(item)`` is what the next page continues after (the id, by default)."""
    size = paging.page_size(page_size)
    after = paging.decode_token(page_token, filters)
    rows = await fetch(after, size + 1)
    items = tuple(rows[:size])
    token = paging.encode_token(cursor(items[-1]), filters) if len(rows) > size else ""
    return Page(items=items, next_token=token)
