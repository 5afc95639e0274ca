"""App.reload in-process: what a SIGHUP applies, what it keeps, and a bad file changing nothing."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from convoyd.app import App
from convoyd.client import Client, InvalidArgumentError
from convoyd.errors import ConfigError
from convoyd.settings import DeliverySettings, Settings
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import loopback_settings


async def test_reload_applies_limits_and_keeps_restart_only_keys(tmp_path: Path) -> None:
    start = loopback_settings(tmp_path / "data")
    current: list[Settings | Exception] = [start]

    def load() -> Settings:
        value = current[0]
        if isinstance(value, Exception):
            raise value
        return value

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # reload reconfigures logging: put it back
    app = App(start, reload_settings=load)
    await app.start()
    try:
        token = (tmp_path / "data" / "admin.token").read_text().strip()
        async with Client(app.grpc_address, token=token) as client:
            endpoint = await client.create_endpoint(pb.Endpoint(url="https://example.com/h"))
            await client.create_event(
                event_type="t", data={"x": "x" * 100}, endpoint_ids=[endpoint.id]
            )

            current[0] = dataclasses.replace(
                start,
                data_dir=tmp_path / "elsewhere",  # needs a restart: kept
                log_level="warning",
                shutdown_grace=0.5,
                delivery=DeliverySettings(
                    max_payload_bytes=50,
                    max_in_flight=3,
                    max_slow_in_flight=7,
                    max_concurrency_per_endpoint=2,
                    idempotency_window=60,
                ),
            )
            assert await app.reload()
            assert app.settings.data_dir == tmp_path / "data"
            assert app.settings.shutdown_grace == 0.5
            assert app.engine.config.max_in_flight == 3
            assert app.engine.config.max_slow_in_flight == 7
            assert app.engine.config.max_concurrency_per_endpoint == 2
            assert logging.getLogger().level == logging.WARNING
            with pytest.raises(InvalidArgumentError, match="larger than the limit of 50 bytes"):
                await client.create_event(
                    event_type="t", data={"x": "x" * 100}, endpoint_ids=[endpoint.id]
                )

            current[0] = ConfigError("log_level must be one of debug, info, warning, error")
            assert not await app.reload()
            assert app.engine.config.max_in_flight == 3  # the running configuration stays
            assert app.settings.log_level == "warning"
    finally:
        await app.stop()
        root.handlers[:] = handlers
        root.setLevel(level)
