"""Every way a configuration can be bad is one ConfigError: the file (not text, not a file,
unreadable, huge), the values (any wrong type, for every key), the environment (bytes that are
not UTF-8), and the batch limit that bounds the gRPC receive limit."""

from __future__ import annotations

import dataclasses
import datetime
import os
import pwd
import re
import shutil
import tempfile
import typing
from pathlib import Path
from typing import Any

import pytest

from convoyd import reload, settings
from convoyd.errors import ConfigError
from convoyd.settings import DeliverySettings, Settings


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "convoyd.toml"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'log_level = "d\xe9bug"\n', r"not UTF-8 text \(bad byte on line 1\)"),
        (
            b'grpc_listen = "127.0.0.1:0"\n\n\xff\xfe\x00\x01',
            r"not UTF-8 text \(bad byte on line 3\)",
        ),
        (bytes(range(256)) * 4, "not UTF-8 text"),
        (b"\x00\x01\x02binary", "invalid TOML"),
        (b"\xef\xbb\xbflog_level = 'info'\n", "invalid TOML"),  # a BOM is not TOML
        (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "invalid TOML"),
        (b"x" * (settings.MAX_CONFIG_BYTES + 1), "larger than 1048576 bytes"),
    ],
)
def test_a_file_that_is_not_toml_text_is_one_error(
    tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        settings.load(write(tmp_path, data), env={})
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 200


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*: Is a directory"):
        settings.load(tmp_path, env={})


def test_a_missing_file_named_by_config_or_env_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        settings.load(tmp_path / "absent" / "convoyd.toml", env={})
    with pytest.raises(ConfigError, match="does not exist"):
        settings.load(env={"CONVOYD_CONFIG": str(tmp_path / "absent.toml")})
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="Not a directory"):
        settings.load(tmp_path / "file" / "convoyd.toml", env={})


def test_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        path = write(tmp_path, b"log_level = 'info'\n")
        path.chmod(0)
        with pytest.raises(ConfigError, match="Permission denied"):
            settings.load(path, env={})
        return
    # Root reads files whatever their mode: read it with the effective uid of nobody (the saved
    # uid stays root, so the test takes root back at once).
    folder = Path(tempfile.mkdtemp(prefix="convoyd-unreadable-"))
    try:
        folder.chmod(0o755)
        path = write(folder, b"log_level = 'info'\n")
        path.chmod(0)
        os.seteuid(pwd.getpwnam("nobody").pw_uid)
        try:
            with pytest.raises(ConfigError, match="Permission denied"):
                settings.load(path, env={})
        finally:
            os.seteuid(0)
    finally:
        shutil.rmtree(folder)


def test_a_device_is_read_only_up_to_the_limit() -> None:
    with pytest.raises(ConfigError, match="larger than"):
        settings.load(Path("/dev/zero"), env={})


# Every key of every section, each given values of every wrong TOML type.
_SECTIONS = {"": Settings} | {
    name: typing.get_type_hints(Settings)[name]
    for name in (
        "tls",
        "delivery",
        "breaker",
        "portal",
        "http_server",
        "postgres",
        "cluster",
        "retention",
        "operator_events",
        "telemetry",
    )
}
_WRONG: dict[str, Any] = {
    "a table": {"a": 1},
    "a list of numbers": [1, 2],
    "a datetime": datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
    "a boolean": True,
    "a fraction": 1.5,
    "a word": "lots",
}


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _right_type(hint: Any, value: Any) -> bool:
    """Whether a TOML value of this type suits the key (its range aside)."""
    if hint is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if hint is int:
        return isinstance(value, int)
    if hint is float:
        return isinstance(value, int | float)
    return isinstance(value, str)  # str and path keys; list keys also take "a,b"


def _wrong_cases() -> list[tuple[str, str, str]]:
    cases = []
    for section, cls in _SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in _SECTIONS:
                continue
            for label, value in _WRONG.items():
                if not _right_type(hints[f.name], value):
                    key = f"{section}.{f.name}" if section else f.name
                    cases.append((key, label, _toml(value)))
    return cases


@pytest.mark.parametrize(("key", "label", "value"), _wrong_cases())
def test_a_value_of_the_wrong_type_names_its_key(
    tmp_path: Path, key: str, label: str, value: str
) -> None:
    section, _, name = key.rpartition(".")
    text = f"[{section}]\n{name} = {value}\n" if section else f"{name} = {value}\n"
    with pytest.raises(ConfigError) as info:
        settings.load(write(tmp_path, text.encode()), env={})
    message = str(info.value)
    assert key in message, (label, message)
    assert "\n" not in message
    assert len(message) < 300


def test_a_section_that_is_not_a_table_is_named(tmp_path: Path) -> None:
    for section in ("tls", "delivery", "breaker", "portal", "http_server", "postgres", "cluster"):
        with pytest.raises(ConfigError, match=rf"{section} must be a \[{section}\] table"):
            settings.load(write(tmp_path, f"{section} = 5\n".encode()), env={})


def test_breaker_mistakes_name_the_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^breaker\.window: must be > 0"):
        settings.load(write(tmp_path, b"[breaker]\nwindow = -1.0\n"), env={})


def _env_cases() -> list[str]:
    out = []
    for section, cls in _SECTIONS.items():
        for f in dataclasses.fields(cls):
            if f.name not in _SECTIONS:
                out.append(f"CONVOYD_{section.upper()}_{f.name.upper()}".replace("__", "_"))
    return out


@pytest.mark.parametrize("variable", _env_cases())
def test_an_env_value_that_is_not_utf8_is_named(variable: str) -> None:
    # What Python makes of the bytes b"127.0.0.1:\xff" in the environment (surrogateescape).
    value = os.fsdecode(b"127.0.0.1:\xff")
    with pytest.raises(ConfigError, match=f"environment {variable}: .*is not valid UTF-8"):
        settings.load(env={variable: value})


def test_a_flag_that_is_not_utf8_is_named() -> None:
    with pytest.raises(ConfigError, match="--grpc-listen: grpc_listen: is not valid UTF-8"):
        settings.load(env={}, overrides={"grpc_listen": os.fsdecode(b"127.0.0.1:\xff")})


def test_an_env_variable_name_that_is_not_utf8_is_unknown() -> None:
    with pytest.raises(ConfigError, match="unknown variable CONVOYD_"):
        settings.load(env={os.fsdecode(b"CONVOYD_\xff"): "1"})


def test_the_source_of_a_bad_value_is_the_variable_or_the_flag(tmp_path: Path) -> None:
    path = write(tmp_path, b"[delivery]\nmax_in_flight = 3\n")
    with pytest.raises(ConfigError, match=r"^environment CONVOYD_DELIVERY_MAX_IN_FLIGHT: "):
        settings.load(path, env={"CONVOYD_DELIVERY_MAX_IN_FLIGHT": "many"})
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: delivery\.max_in_flight: "):
        settings.load(write(tmp_path, b"[delivery]\nmax_in_flight = 'many'\n"), env={})


@pytest.mark.parametrize(
    "env",
    [
        {"CONVOYD_DELIVERY_MAX_IN_FLIGHT": "9" * 100_000},
        {"CONVOYD_GRPC_LISTEN": "x" * 100_000},
        {"CONVOYD_DELIVERY_ALLOW_CIDRS": "y" * 100_000},
        {"CONVOYD_PORTAL_PUBLIC_URL": "ftp://" + "z" * 100_000},
        {"CONVOYD_PORTAL_FRAME_ANCESTORS": "w" * 100_000},
        {"CONVOYD_" + "Q" * 100_000: "1"},
    ],
)
def test_long_bad_values_are_not_echoed_whole(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        settings.load(env=env)
    assert len(str(info.value)) < 200


def test_max_batch_bytes_bounds_and_covers_one_payload() -> None:
    assert DeliverySettings().max_batch_bytes == 16 * 1024 * 1024
    with pytest.raises(ConfigError, match="max_batch_bytes must be between"):
        DeliverySettings(max_batch_bytes=1000)
    with pytest.raises(ConfigError, match="max_batch_bytes must be between"):
        DeliverySettings(max_batch_bytes=257 * 1024 * 1024)
    with pytest.raises(ConfigError, match=r"max_batch_bytes \(16777216\) must be at least"):
        DeliverySettings(max_payload_bytes=32 * 1024 * 1024)
    DeliverySettings(max_payload_bytes=32 * 1024 * 1024, max_batch_bytes=32 * 1024 * 1024)
    loaded = settings.load(env={"CONVOYD_DELIVERY_MAX_BATCH_BYTES": "2097152"})
    assert loaded.delivery.max_batch_bytes == 2 * 1024 * 1024


def test_a_reload_keeps_max_batch_bytes_and_refuses_a_payload_limit_past_it() -> None:
    old = Settings()
    bigger = dataclasses.replace(old, delivery=DeliverySettings(max_batch_bytes=64 * 1024 * 1024))
    assert reload.restart_only_changes(old, bigger) == ["delivery.max_batch_bytes"]
    assert reload.effective(old, bigger).delivery.max_batch_bytes == old.delivery.max_batch_bytes
    past = dataclasses.replace(
        old,
        delivery=DeliverySettings(
            max_payload_bytes=32 * 1024 * 1024, max_batch_bytes=64 * 1024 * 1024
        ),
    )
    with pytest.raises(ConfigError, match=r"must be at least delivery\.max_payload_bytes"):
        reload.effective(old, past)
