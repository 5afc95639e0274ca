"""Settings: TOML, then CONVOYD_* env, then flags; every mistake named with its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from convoyd import settings
from convoyd.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "convoyd.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file() -> None:
    s = settings.load(env={})
    assert (s.grpc_listen, s.http_listen) == ("127.0.0.1:7400", "127.0.0.1:7401")
    assert s.data_dir == Path("convoyd-data")
    assert s.delivery.allow_cidrs == ()


def test_state_directory_is_the_default_data_dir_under_systemd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/convoyd")
    assert settings.load(env={}).data_dir == Path("/var/lib/convoyd")


def test_env_overrides_file_and_flags_override_env(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'data_dir = "/from/file"\ngrpc_listen = "127.0.0.1:1"\n'
        "[delivery]\nmax_concurrency_per_endpoint = 4\n",
    )
    s = settings.load(
        path,
        env={
            "CONVOYD_GRPC_LISTEN": "127.0.0.1:2",
            "CONVOYD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8, ::1/128",
            "CONVOYD_HTTP_LISTEN": "[::1]:0",
        },
        overrides={"grpc_listen": "127.0.0.1:3", "data_dir": None},
    )
    assert s.data_dir == Path("/from/file")
    assert s.grpc_listen == "127.0.0.1:3"
    assert s.http_listen == "[::1]:0"
    assert s.delivery.max_concurrency_per_endpoint == 4
    assert s.delivery.allow_cidrs == ("127.0.0.0/8", "::1/128")


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("grpc_listen = 7400\n", {}, "grpc_listen: expected a string"),
        ("nonsense = 1\n", {}, "unknown key nonsense"),
        ("[delivery]\nbogus = 1\n", {}, "unknown key delivery.bogus"),
        ("[delivery]\nallow_cidrs = ['10.0.0.0/33']\n", {}, "delivery.allow_cidrs"),
        ("log_level = 'loud'\n", {}, "log_level"),
        ("grpc_listen = 'nohost'\n", {}, "grpc_listen"),
        ("grpc_listen = '0.0.0.0:7400'\n", {}, "not a loopback address"),
        ("x = [\n", {}, "invalid TOML"),
        ("", {"CONVOYD_DELIVERY_MAX_PAYLOAD_BYTES": "lots"}, "max_payload_bytes"),
        ("[delivery]\nmax_slow_in_flight = 0\n", {}, "delivery.max_slow_in_flight"),
        ("", {"CONVOYD_GRPC_LISTNE": "127.0.0.1:1"}, "unknown variable CONVOYD_GRPC_LISTNE"),
        ("[tls]\ncert_file = '/x.pem'\n", {}, "set together"),
        ("[retention]\nperiod = -1\n", {}, "retention.period must be between 0"),
        ("", {"CONVOYD_RETENTION_INTERVAL": "0.5"}, "retention.interval must be between 1"),
        ("", {"CONVOYD_RETENTION_PERIOD": "a month"}, "CONVOYD_RETENTION_PERIOD"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, toml: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings.load(write(tmp_path, toml), env=env)


def test_remote_listen_is_allowed_when_asked_for(tmp_path: Path) -> None:
    path = write(tmp_path, "grpc_listen = '0.0.0.0:7400'\nallow_insecure_remote = true\n")
    assert settings.load(path, env={}).grpc_listen == "0.0.0.0:7400"


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        settings.load(tmp_path / "absent.toml", env={})


@pytest.mark.parametrize(
    ("env", "period", "interval", "window"),
    [
        ({}, 30 * 86400, 3600, 86400),
        ({"CONVOYD_RETENTION_PERIOD": "3", "CONVOYD_RETENTION_INTERVAL": "1"}, 3, 1, 3),
        ({"CONVOYD_RETENTION_PERIOD": "0"}, 0, 3600, 86400),  # kept forever: the window as set
        (
            {"CONVOYD_RETENTION_PERIOD": "600", "CONVOYD_DELIVERY_IDEMPOTENCY_WINDOW": "60"},
            600,
            3600,
            60,
        ),
    ],
)
def test_retention_and_the_idempotency_window_it_caps(
    env: dict[str, str], period: float, interval: float, window: float
) -> None:
    s = settings.load(env=env)
    assert (s.retention.period, s.retention.interval) == (period, interval)
    assert settings.idempotency_window(s) == window
