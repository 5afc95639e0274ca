"""Page sizes and opaque page tokens."""

from __future__ import annotations

import base64

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


def _raw(doc: bytes) -> str:
    return base64.urlsafe_b64encode(doc).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        _raw(b"[" * 1000 + b"]" * 1000),  # RecursionError in json.loads before
        _raw(b"[" * 300 + b"]" * 300),
        "A" * (paging.MAX_TOKEN_LENGTH + 1),
        _raw(b'{"a": 5, "f": "x"}'),
        _raw(b'{"a": "", "f": "x"}'),
        paging.encode_token("x" * (paging.MAX_CURSOR_LENGTH + 1), ("a",)),
    ],
)
def test_tokens_convoyd_never_issued_are_refused(token: str) -> None:
    with pytest.raises(ValidationError, match="page_token"):
        paging.decode_token(token, ("a",))


@pytest.mark.parametrize(
    ("cursor", "number"),
    [
        ("", 0),
        ("1", 1),
        ("999999999", 999_999_999),
        ("-1", None),
        ("1e3", None),
        ("9" * 5000, None),
        ("٣", None),
    ],
)
def test_number_cursors(cursor: str, number: int | None) -> None:
    if number is None:
        with pytest.raises(ValidationError, match="page_token"):
            paging.number_cursor(cursor)
    else:
        assert paging.number_cursor(cursor) == number
