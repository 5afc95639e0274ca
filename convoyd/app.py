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
from convoyd.control.deliveries import DeliveryService
from convoyd.control.endpoints import EndpointService
from convoyd.control.events import EventService
from convoyd.core.model import Endpoint, EndpointStatusChange
from convoyd.delivery.engine import USER_AGENT, Engine, EngineConfig
from convoyd.delivery.hub import WatchHub
from convoyd.delivery.recorder import Recorder
from convoyd.delivery.sender import Sender
from convoyd.errors import ConvoydError
from convoyd.portal.http import build_app
from convoyd.service.deliveries import DeliveryManager
from convoyd.service.endpoints import EndpointManager
from convoyd.service.events import EventManager
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
        delivery = settings.delivery
        self.sender = Sender(
            allow_cidrs=delivery.allow_cidrs,
            body_limit=delivery.response_body_limit,
            user_agent=USER_AGENT,
        )
        self.hub = WatchHub()
        self.recorder = Recorder(self.store)
        self.recorder.add_listener(self.hub.publish)
        self.endpoints = EndpointManager(self.store, clock=clock, rng=self.rng)
        self.engine = Engine(
            self.store,
            self.sender,
            self.recorder,
            clock=clock,
            rng=self.rng,
            config=EngineConfig(
                max_in_flight=delivery.max_in_flight,
                max_concurrency_per_endpoint=delivery.max_concurrency_per_endpoint,
                retry_after_cap=delivery.retry_after_cap,
                breaker=settings.breaker,
                inactive_after_trips=delivery.inactive_after_trips,
            ),
            change_status=self.endpoints.change_status,
        )
        self.endpoints.on_change.append(self._endpoint_changed)
        self.endpoints.on_delete.append(self.engine.endpoint_deleted)
        self.events = EventManager(
            self.store,
            clock=clock,
            rng=self.rng,
            max_payload_bytes=delivery.max_payload_bytes,
            idempotency_window=delivery.idempotency_window,
            on_accepted=self.engine.accepted,
        )
        self.deliveries = DeliveryManager(
            self.store,
            self.engine,
            self.hub,
            clock=clock,
            on_endpoint_change=self.endpoints.notify_changed,
        )
        self.grpc_server: grpc.aio.Server | None = None
        self.http_runner: web.AppRunner | None = None
        self.grpc_address = ""
        self.http_address = ""
        self._serving = False
        self._stopped = asyncio.Event()
        self._engine_started = False

    def _endpoint_changed(self, endpoint: Endpoint, change: EndpointStatusChange | None) -> None:
        self.engine.endpoint_changed(endpoint)
        if change is not None:
            self.hub.publish([change])

    async def _all_endpoints(self) -> list[Endpoint]:
        out: list[Endpoint] = []
        before = ""
        while True:
            page = await self.store.list_endpoints(before_id=before, limit=1000)
            out.extend(page)
            if len(page) < 1000:
                return out
            before = page[-1].id

    async def start(self) -> None:
        settings = self.settings
        prepare_data_dir(settings.data_dir)
        await self.store.open()
        try:
            tokens = await bootstrap_tokens(
                self.store, settings.data_dir, now=self.clock(), rng=self.rng
            )
            await self.sender.start()
            self.recorder.start()
            await self.engine.start(await self._all_endpoints())
            self._engine_started = True
            await self._start_grpc(AuthInterceptor(tokens))
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

    async def _start_grpc(self, auth: AuthInterceptor) -> None:
        server = grpc.aio.server(
            interceptors=[auth],
            options=[
                ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE),
                ("grpc.max_send_message_length", MAX_GRPC_MESSAGE),
                ("grpc.so_reuseport", 0),
            ],
        )
        endpoint_pb2_grpc.add_EndpointServiceServicer_to_server(
            EndpointService(self.endpoints, self.clock, self.engine.breaker_status), server
        )
        event_pb2_grpc.add_EventServiceServicer_to_server(EventService(self.events), server)
        delivery_pb2_grpc.add_DeliveryServiceServicer_to_server(
            DeliveryService(self.deliveries), server
        )
        # PortalService answers UNIMPLEMENTED until the portal lands.
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
        """Health NOT_SERVING → stop accepting RPCs → drain the engine → close the HTTP session
        and listener → close the store. What is not finished stays pending in the store."""
        self._serving = False
        with contextlib.suppress(Exception):
            await self.health.enter_graceful_shutdown()
        self.hub.close()
        if self.grpc_server is not None:
            await self.grpc_server.stop(self.settings.shutdown_grace)
            self.grpc_server = None
        await self.deliveries.stop()
        if self._engine_started:
            await self.engine.stop(self.settings.shutdown_grace)
            self._engine_started = False
        await self.recorder.stop()
        await self.sender.close()
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
