"""Page sizes and opaque page tokens."""

from __future__ import annotations

import pytest

from convoyd.core import paging
from convoyd.errors import ValidationError


@pytest.mark.parametrize(("asked", "given"), [(0, 50), (1, 1), (1000, 1000), (5000, 1000)])
def test_page_size(asked: int, given: int) -> None:
    assert paging.page_size(asked) == given


def test_negative_page_size_is_refused() -> None:
    with pytest.raises(ValidationError):
        paging.page_size(-1)


@pytest.mark.parametrize(
    ("token", "filters", "problem"),
    [
        (paging.encode_token("ep_1", ("a",)), ("a",), None),
        ("", ("a",), None),
        (paging.encode_token("ep_1", ("a",)), ("b",), "other filters"),
        ("!!!", ("a",), "not a page token"),
        ("eyJ4IjoxfQ", ("a",), "not a page token"),  # valid base64 JSON, wrong shape
    ],
)
def test_tokens(token: str, filters: tuple[object, ...], problem: str | None) -> None:
    if problem is None:
        assert paging.decode_token(token, filters) in ("", "ep_1")
    else:
        with pytest.raises(ValidationError, match=problem):
            paging.decode_token(token, filters)
