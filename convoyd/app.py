"""The composition root: builds every part, starts them in order and stops them in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from convoyd import __version__
from convoyd.control.auth import AuthInterceptor, bootstrap_tokens
from convoyd.control.endpoints import EndpointService
from convoyd.errors import ConvoydError
from convoyd.portal.http import build_app
from convoyd.service.endpoints import EndpointManager
from convoyd.settings import Settings, split_host_port
from convoyd.store.sqlite import SqliteStore
from convoyd.v1 import (
    delivery_pb2,
    delivery_pb2_grpc,
    endpoint_pb2,
    endpoint_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
    portal_pb2,
    portal_pb2_grpc,
)

log = logging.getLogger(__name__)

RUN_FILE = "run.json"  # where a running daemon says which addresses it bound
SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (endpoint_pb2, "EndpointService"),
        (event_pb2, "EventService"),
        (delivery_pb2, "DeliveryService"),
        (portal_pb2, "PortalService"),
    )
)
# Room for a BatchCreateEvents of many events; single payloads are limited by delivery settings.
MAX_GRPC_MESSAGE = 64 * 1024 * 1024


class StartupError(ConvoydError):
    """convoyd cannot start; the message says what and where, in one line."""


def prepare_data_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StartupError(f"data_dir {path}: {exc.strerror or exc}") from None


def _grpc_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    tls = settings.tls
    if not tls.enabled:
        return None
    assert tls.cert_file is not None and tls.key_file is not None
    try:
        pair = (tls.key_file.read_bytes(), tls.cert_file.read_bytes())
        ca = tls.client_ca_file.read_bytes() if tls.client_ca_file else None
    except OSError as exc:
        raise StartupError(f"tls: cannot read {exc.filename}: {exc.strerror}") from None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=ca, require_client_auth=ca is not None
    )


class App:
    """One convoyd process. ``start`` then ``stop``; ``run`` does both around signals."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.SystemRandom()
        self.store = SqliteStore(settings.data_dir)
        self.health = health.aio.HealthServicer()  # grpc_health's asyncio servicer
        self.grpc_server: grpc.aio.Server | None = None
        self.http_runner: web.AppRunner | None = None
        self.grpc_address = ""
        self.http_address = ""
        self._serving = False
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        settings = self.settings
        prepare_data_dir(settings.data_dir)
        await self.store.open()
        try:
            tokens = await bootstrap_tokens(
                self.store, settings.data_dir, now=self.clock(), rng=self.rng
            )
            endpoints = EndpointManager(self.store, clock=self.clock, rng=self.rng)
            await self._start_grpc(EndpointService(endpoints, self.clock), AuthInterceptor(tokens))
            await self._start_http()
        except BaseException:
            await self.stop()
            raise
        self._serving = True
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._write_run_file()
        log.info(
            "convoyd %s serving",
            __version__,
            extra={
                "grpc": self.grpc_address,
                "http": self.http_address,
                "data_dir": str(settings.data_dir),
            },
        )

    async def _start_grpc(self, endpoint_service: EndpointService, auth: AuthInterceptor) -> None:
        server = grpc.aio.server(
            interceptors=[auth],
            options=[
                ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE),
                ("grpc.max_send_message_length", MAX_GRPC_MESSAGE),
                ("grpc.so_reuseport", 0),
            ],
        )
        endpoint_pb2_grpc.add_EndpointServiceServicer_to_server(endpoint_service, server)
        # The other services answer UNIMPLEMENTED until the delivery engine and portal land.
        event_pb2_grpc.add_EventServiceServicer_to_server(
            event_pb2_grpc.EventServiceServicer(), server
        )
        delivery_pb2_grpc.add_DeliveryServiceServicer_to_server(
            delivery_pb2_grpc.DeliveryServiceServicer(), server
        )
        portal_pb2_grpc.add_PortalServiceServicer_to_server(
            portal_pb2_grpc.PortalServiceServicer(), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        address = self.settings.grpc_listen
        credentials = _grpc_credentials(self.settings)
        try:
            port = (
                server.add_secure_port(address, credentials)
                if credentials
                else server.add_insecure_port(address)
            )
        except RuntimeError:
            port = 0
        if port == 0:
            raise StartupError(
                f"grpc_listen {address}: cannot listen (address in use or not local?)"
            )
        self.grpc_server = server
        await server.start()
        host, _ = split_host_port(address)
        self.grpc_address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def _start_http(self) -> None:
        host, port = split_host_port(self.settings.http_listen)
        runner = web.AppRunner(build_app(lambda: self._serving), access_log=None)
        await runner.setup()
        self.http_runner = runner
        site = web.TCPSite(runner, host, port, reuse_address=False)
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(
                f"http_listen {self.settings.http_listen}: cannot listen: {exc.strerror or exc}"
            ) from None
        # With port 0 the kernel picks the port; the runner knows the bound addresses.
        bound = runner.addresses[0][1] if runner.addresses else port
        self.http_address = f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"

    def _write_run_file(self) -> None:
        path = self.settings.data_dir / RUN_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"pid": os.getpid(), "grpc": self.grpc_address, "http": self.http_address})
        )
        tmp.replace(path)

    async def stop(self) -> None:
        """Health NOT_SERVING → stop accepting RPCs → close the HTTP listener → close the store."""
        self._serving = False
        with contextlib.suppress(Exception):
            await self.health.enter_graceful_shutdown()
        if self.grpc_server is not None:
            await self.grpc_server.stop(self.settings.shutdown_grace)
            self.grpc_server = None
        if self.http_runner is not None:
            await self.http_runner.cleanup()
            self.http_runner = None
        await self.store.close()
        with contextlib.suppress(FileNotFoundError):
            (self.settings.data_dir / RUN_FILE).unlink()

    def request_stop(self) -> None:
        self._stopped.set()

    async def run(self) -> None:
        """Serves until SIGTERM or SIGINT; a second signal exits at once."""
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal(signum: int) -> None:
            nonlocal signals
            signals += 1
            if signals > 1:
                log.warning("second signal: exiting without waiting")
                os._exit(1)
            log.info("received %s: shutting down", signal.Signals(signum).name)
            self.request_stop()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            await self.stop()
            log.info("convoyd stopped")
