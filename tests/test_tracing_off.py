"""Tracing costs nothing while off: no OpenTelemetry import anywhere but convoyd/telemetry/otel.py,
none at all in a daemon started without telemetry.otlp_endpoint; with the endpoint set and the
packages missing, `convoyd serve` stops with one line naming the setting and the extra; the
[telemetry] settings are checked field by field."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from convoyd import settings
from convoyd.errors import ConfigError
from convoyd.settings import TelemetrySettings
from tests.conftest import daemon_env

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "convoyd"
SDK_MODULE = PACKAGE / "telemetry" / "otel.py"

# Starts an App with the given settings in a fresh interpreter and reports which modules it
# imported; the interpreter imports nothing from OpenTelemetry on its own.
START_APP = """
import asyncio, json, sys
from pathlib import Path
from convoyd.app import App
from convoyd.settings import DeliverySettings, Settings

async def main():
    app = App(Settings(data_dir=Path(sys.argv[1]), grpc_listen="127.0.0.1:0",
                       http_listen="127.0.0.1:0", delivery=DeliverySettings(sender_workers=0)))
    await app.start()
    try:
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
        print(json.dumps({"enabled": app.tracing.enabled, "loaded": loaded}))
    finally:
        await app.stop()

asyncio.run(main())
"""


def test_only_the_sdk_module_imports_opentelemetry() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == SDK_MODULE or "v1" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] == "opentelemetry" for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_a_daemon_without_an_endpoint_loads_nothing_of_opentelemetry(tmp_path: Path) -> None:
    env = daemon_env(tmp_path / "data")
    env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", START_APP, str(tmp_path / "data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"enabled": False, "loaded": []}


# `convoyd serve` as if the extra were not installed: any import of opentelemetry fails.
WITHOUT_SDK = (
    "import sys; sys.modules['opentelemetry'] = None;"
    " from convoyd.cli import main; sys.exit(main(['serve']))"
)


def test_an_endpoint_without_the_packages_is_a_clear_startup_error(tmp_path: Path) -> None:
    env = daemon_env(tmp_path / "data", CONVOYD_TELEMETRY_OTLP_ENDPOINT="http://127.0.0.1:4317")
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_SDK],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("convoyd:")]
    assert len(lines) == 1, result.stderr
    assert "telemetry.otlp_endpoint" in lines[0]
    assert "pip install 'convoyd[otel]'" in lines[0]
    assert not (tmp_path / "data" / "run.json").exists()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"otlp_protocol": "thrift"}, "telemetry.otlp_protocol must be one of grpc, http/protobuf"),
        ({"otlp_endpoint": "127.0.0.1:4317"}, "telemetry.otlp_endpoint '127.0.0.1:4317' must be"),
        ({"otlp_endpoint": "ftp://collector.invalid"}, "must be an http:// or https:// URL"),
        ({"otlp_endpoint": "http://"}, "must be an http:// or https:// URL"),
        (
            {"otlp_endpoint": "http://collector.invalid:4317/v1/traces"},
            "with otlp_protocol grpc it takes no path",
        ),
        ({"sampling_ratio": -0.1}, "telemetry.sampling_ratio must be between 0 and 1"),
        ({"sampling_ratio": 1.5}, "telemetry.sampling_ratio must be between 0 and 1"),
    ],
)
def test_bad_telemetry_settings_are_named(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TelemetrySettings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, TelemetrySettings()),
        (
            {"CONVOYD_TELEMETRY_OTLP_ENDPOINT": "https://collector.invalid:4317"},
            TelemetrySettings(otlp_endpoint="https://collector.invalid:4317"),
        ),
        (
            {
                "CONVOYD_TELEMETRY_OTLP_ENDPOINT": "http://collector.invalid:4318/v1/traces",
                "CONVOYD_TELEMETRY_OTLP_PROTOCOL": "http/protobuf",
                "CONVOYD_TELEMETRY_SAMPLING_RATIO": "0.01",
            },
            TelemetrySettings(
                otlp_endpoint="http://collector.invalid:4318/v1/traces",
                otlp_protocol="http/protobuf",
                sampling_ratio=0.01,
            ),
        ),
        ({"CONVOYD_TELEMETRY_SAMPLING_RATIO": ""}, TelemetrySettings()),
    ],
)
def test_telemetry_comes_from_the_environment(
    env: dict[str, str], expected: TelemetrySettings
) -> None:
    loaded = settings.load(env=env).telemetry
    assert loaded == expected
    assert loaded.enabled is bool(expected.otlp_endpoint)


def test_telemetry_comes_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "convoyd.toml"
    path.write_text('[telemetry]\notlp_endpoint = "http://127.0.0.1:4317"\nsampling_ratio = 1\n')
    loaded = settings.load(path, env={}).telemetry
    assert loaded == TelemetrySettings(otlp_endpoint="http://127.0.0.1:4317", sampling_ratio=1.0)
