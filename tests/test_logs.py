"""The log scrubber: table-driven over what libraries put in records, then through a handler."""

from __future__ import annotations

import io
import logging

import pytest

from convoyd import logs

LINK = "cvdp_" + "L" * 43
SESSION = "cvds_" + "S" * 43

SCRUBBED = [
    # (text, what must not survive, what must)
    (f"bytearray(b'/portal/enter?token={LINK}&x=aaaa')", LINK[5:], "/portal/enter?token="),
    (f"b'GE\\x01T /portal/enter?token={LINK} HTTP/1.1'", LINK[5:], "HTTP/1.1"),
    ("/portal/enter?token=not-our-format-123", "not-our-format-123", "token="),
    (f"path=/portal/{LINK}", LINK[5:], "path=/portal/cvdp_"),
    (f"b'Cookie: convoyd_portal={SESSION}\\x00'", SESSION[5:], "Cookie:"),
    ("Cookie: theme=dark; other=hunter22", "hunter22", "Cookie:"),
    ("b'Authorization: Bearer abcdefghijklmnop\\r\\n'", "abcdefghijklmnop", "Authorization"),
    ("authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA", "authorization"),
    ("{'X-Api-Key': 'k3y-v4lue', 'page_size': 3}", "k3y-v4lue", "'page_size': 3"),
    ("password=hunter2&next=/", "hunter2", "next=/"),
    ("whsec_" + "Zm9v" * 10, "Zm9v" * 10, "whsec_"),
    ("cvd_" + "A" * 40, "A" * 40, "cvd_"),
]


@pytest.mark.parametrize(("text", "secret", "kept"), SCRUBBED)
def test_scrub(text: str, secret: str, kept: str) -> None:
    out = logs.scrub(text)
    assert secret not in out
    assert kept in out


@pytest.mark.parametrize(
    "text",
    [
        "wrote a new admin token to /var/lib/convoyd/admin.token",
        "portal session ended",
        "attempt success delivery_id=dl_01J0 endpoint_id=ep_01J0 status=200",
    ],
)
def test_ordinary_lines_are_left_alone(text: str) -> None:
    assert logs.scrub(text) == text


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_every_part_of_a_record_is_scrubbed(fmt: str) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter() if fmt == "json" else logs.LogfmtFormatter())
    handler.addFilter(logs.Scrubber())
    logger = logging.getLogger("aiohttp.server.test-scrub")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError(f"Got more than 8190 bytes: b'/portal/enter?token={LINK}'")
        except ValueError:
            logger.exception("Error handling %s from %r", f"/portal/{LINK}", {"token": SESSION})
        logger.warning("headers", extra={"session_token": SESSION, "note": f"Bearer {LINK}"})
        logger.warning("stack", stack_info=True, extra={"x": f"?token={LINK}"})
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "Got more than 8190 bytes" in out and "ValueError" in out
    assert LINK[5:] not in out and SESSION[5:] not in out


def test_configure_puts_the_scrubber_on_the_root_handler() -> None:
    root = logging.getLogger()
    named = [logging.getLogger(n) for n in ("aiosqlite", "grpc", "asyncio", "aiohttp.access")]
    saved, levels = root.handlers[:], [(x, x.level) for x in (root, *named)]
    try:
        logs.configure("info")
        assert any(isinstance(f, logs.Scrubber) for f in root.handlers[0].filters)
    finally:
        root.handlers[:] = saved
        for x, level in levels:
            x.setLevel(level)


def test_native_grpc_traces_are_switched_off() -> None:
    env = {"GRPC_TRACE": "all", "GRPC_VERBOSITY": "debug", "PATH": "/bin"}
    assert logs.disable_native_traces(env) == ["GRPC_TRACE"]
    assert env == {"GRPC_VERBOSITY": "debug", "PATH": "/bin"}
    assert logs.disable_native_traces(env) == []
