"""The composition root: builds every part, starts them in order and stops them in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from convoyd import __version__, datadir, logs, signals
from convoyd.cluster.model import ClusterView
from convoyd.cluster.single import SingleNodeView
from convoyd.control.auth import AuthInterceptor, bootstrap_tokens, refresh_tokens
from convoyd.control.cluster import ClusterService
from convoyd.control.decode import DecodeGuardInterceptor
from convoyd.control.deliveries import DeliveryService
from convoyd.control.endpoints import EndpointService
from convoyd.control.events import EventService
from convoyd.control.metrics import MetricsInterceptor
from convoyd.control.portal import PortalService
from convoyd.core.addresses import parse_allow_list
from convoyd.core.model import Endpoint
from convoyd.core.states import Trigger
from convoyd.delivery.config import USER_AGENT, EngineConfig
from convoyd.delivery.engine import Engine
from convoyd.delivery.feed import LocalFeed
from convoyd.delivery.hub import WatchHub
from convoyd.delivery.recorder import Recorder
from convoyd.delivery.sender import Sender
from convoyd.delivery.workers import WorkerPoolSender
from convoyd.errors import ConvoydError
from convoyd.http.app import build_app
from convoyd.http.metrics import add_metrics_route
from convoyd.listeners import (
    SERVICE_NAMES,
    bind_grpc,
    enable_reflection,
    grpc_server,
    receive_limit,
    serve_http,
)
from convoyd.metrics import Metrics
from convoyd.portal.context import DeliveryDefaults, PortalServices
from convoyd.portal.routes import enter_url
from convoyd.readiness import StoreReadiness
from convoyd.reload import Certificates, effective, restart_only_changes
from convoyd.retention import Retention
from convoyd.service.deliveries import DeliveryManager
from convoyd.service.endpoints import EndpointManager
from convoyd.service.events import EventManager
from convoyd.service.feed import WorkFeed
from convoyd.service.operator_events import OperatorEvents
from convoyd.service.portal import PortalManager
from convoyd.settings import DeliverySettings, Settings, idempotency_window, sender_workers
from convoyd.store.base import DeliveryStore, Store
from convoyd.store.factory import make_store
from convoyd.systemd import Notifier, watchdog
from convoyd.telemetry.base import Tracing
from convoyd.telemetry.setup import make_tracing
from convoyd.v1 import (
    cluster_pb2_grpc,
    delivery_pb2_grpc,
    endpoint_pb2_grpc,
    event_pb2_grpc,
    portal_pb2_grpc,
)

if TYPE_CHECKING:
    from convoyd.cluster.node import ClusterNode

log = logging.getLogger(__name__)

RUN_FILE = "run.json"  # where a running daemon says which addresses it bound


def _grpc_credentials(settings: Settings) -> tuple[grpc.ServerCredentials, Certificates] | None:
    """TLS credentials whose certificates a reload can replace (None: no TLS)."""
    if not settings.tls.enabled:
        return None
    certificates = Certificates(settings.tls)
    return certificates.credentials(), certificates


def _cluster_node(
    store: Store,
    settings: Settings,
    addresses: Callable[[], tuple[str, str]],
    clock: Callable[[], float],
) -> ClusterNode | None:
    if settings.store != "postgres":
        return None
    # Here, so that the embedded default never loads the PostgreSQL driver.
    from convoyd.cluster.node import ClusterNode
    from convoyd.store.pg import PostgresStore

    assert isinstance(store, PostgresStore)
    return ClusterNode(store, settings, addresses=addresses, clock=clock)


def _build_sender(delivery: DeliverySettings) -> Sender | WorkerPoolSender:
    """Child processes send the requests when delivery.sender_workers asks for any; else
    the daemon's own process does."""
    workers = sender_workers(delivery.sender_workers)
    if workers:
        return WorkerPoolSender(
            workers=workers,
            allow_cidrs=delivery.allow_cidrs,
            body_limit=delivery.response_body_limit,
            user_agent=USER_AGENT,
        )
    return Sender(
        allow_cidrs=delivery.allow_cidrs,
        body_limit=delivery.response_body_limit,
        user_agent=USER_AGENT,
    )


def _engine_config(settings: Settings) -> EngineConfig:
    delivery = settings.delivery
    return EngineConfig(
        max_in_flight=delivery.max_in_flight,
        max_slow_in_flight=delivery.max_slow_in_flight,
        max_concurrency_per_endpoint=delivery.max_concurrency_per_endpoint,
        retry_after_cap=delivery.retry_after_cap,
        breaker=settings.breaker,
        inactive_after_trips=delivery.inactive_after_trips,
    )


class App:
    """One convoyd process. ``start`` then ``stop``; ``run`` does both around signals."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        registry: CollectorRegistry | None = None,
        notifier: Notifier | None = None,
        reload_settings: Callable[[], Settings] | None = None,
    ) -> None:
        """``registry``: where metrics go (a new one per App by default, never the global);
        ``notifier``: systemd (from $NOTIFY_SOCKET by default); ``reload_settings``: reads the
        configuration again for SIGHUP (None: reload keeps the settings as they are)."""
        self.settings = settings
        self.metrics = Metrics(registry or CollectorRegistry())
        self.notifier = notifier or Notifier.from_env()
        self._reload_settings = reload_settings
        self._reloading = asyncio.Lock()
        self._certificates: Certificates | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.metrics_runner: web.AppRunner | None = None
        self.metrics_address = ""
        self.clock = clock
        # Secrets and tokens come from the OS's generator; event and delivery ids and retry jitter
        # need no secrecy (access is checked on every use) and take a seeded PRNG, which costs no
        # system call per id on the ingest and delivery paths.
        self.rng = rng or random.SystemRandom()
        self.fast_rng = random.Random(self.rng.getrandbits(128))  # noqa: S311 - not for secrets
        self.store = make_store(settings)
        self.readiness = StoreReadiness(
            self.store.ping, self._store_answers, where=f"the {settings.store} store"
        )
        self._lock = datadir.DataDirLock(settings.data_dir)
        self.health = health.aio.HealthServicer()  # grpc_health's asyncio servicer
        self.sender = _build_sender(settings.delivery)
        self.hub = WatchHub()
        # With PostgreSQL this node is one of a cluster (maybe of one): its engine runs for the
        # shards it holds and sees the store through its leases (convoyd/cluster/node.py).
        self.node = _cluster_node(self.store, settings, self._advertised, clock)
        delivery_store = self.node.delivery_store if self.node else self.store
        self.tracing, self.recorder = self._build_recorder(delivery_store)
        self.operator_events = self._build_operator_events()
        self.engine = self._build_engine(delivery_store)
        # The service layer reaches the engine and the watchers only through the feed; the
        # operator events see the status changes this node's services make on their way in.
        feed = self.operator_events.observe(self._build_feed())
        self.endpoints = EndpointManager(
            self.store,
            feed,
            clock=clock,
            rng=self.rng,
            # Read per call: a reload may change the allow-list the warnings are judged by.
            allowed=lambda: parse_allow_list(self.settings.delivery.allow_cidrs),
        )
        self.events = self._build_event_manager(feed)
        self.deliveries = DeliveryManager(self.store, feed, clock=clock)
        self.portal = PortalManager(
            self.store,
            clock=clock,
            rng=self.rng,
            session_lifetime=settings.portal.session_lifetime,
        )
        self._observe_engine_and_store()
        self.grpc_server: grpc.aio.Server | None = None
        self.http_runner: web.AppRunner | None = None
        self.grpc_address = self.http_address = ""
        # SQLite's store is this node's alone.
        self.cluster_view: ClusterView = self.node or SingleNodeView(
            lambda: (self.grpc_address, self.http_address), clock=clock
        )
        if self.node is not None:
            self.node.observe(self.metrics.registry)
        self.retention = Retention(
            self.store,
            settings=lambda: self.settings.retention,
            clock=clock,
            metrics=self.metrics,
        )
        self._serving = False
        self._stopped = asyncio.Event()
        self._engine_started = False

    def _build_recorder(self, store: DeliveryStore) -> tuple[Tracing, Recorder]:
        """The tracer (off, with nothing of OpenTelemetry imported, unless
        telemetry.otlp_endpoint is set) and the recorder, whose batch writes it traces."""
        tracing = make_tracing(self.settings.telemetry, store=self.settings.store)
        return tracing, Recorder(store, clock=self.clock, tracing=tracing)

    def _build_operator_events(self) -> OperatorEvents:
        """convoyd's own events (docs/operator-events.md): this node's recorder and engine tell
        it what they commit and trip, so a cluster tells each change once."""
        operator = OperatorEvents(
            owner_id=lambda: self.settings.operator_events.owner_id,
            cooldown=lambda: self.settings.breaker.cooldown,
            clock=self.clock,
            rng=self.fast_rng,
            ingest=lambda events: self.events.create(events),
            lookup=self.store.get_endpoint,
        )
        self.recorder.add_listener(operator.deliveries_recorded)
        return operator

    def _observe_engine_and_store(self) -> None:
        self.metrics.observe_engine(
            in_flight=lambda: self.engine.in_flight,
            waiting=self.engine.queued,
            breakers=self.engine.breaker_counts,
            certificates=self.engine.certificate_expiries,
        )
        self.metrics.observe_store(self.store.status_counts)

    def _build_feed(self) -> WorkFeed:
        if self.node is not None:
            return self.node.feed(self.engine, self.hub, self.recorder)
        self.recorder.add_listener(self.hub.publish)
        return LocalFeed(self.engine, self.hub)

    def _advertised(self) -> tuple[str, str]:
        cluster = self.settings.cluster
        return (
            cluster.advertise_grpc or self.grpc_address,
            cluster.advertise_http or self.http_address,
        )

    def _build_engine(self, store: DeliveryStore) -> Engine:
        membership = self.node.membership if self.node is not None else None
        return Engine(
            store,
            self.sender,
            self.recorder,
            clock=self.clock,
            rng=self.fast_rng,
            config=_engine_config(self.settings),
            change_status=self._change_status,
            metrics=self.metrics,
            owns=membership.owns if membership else None,
            may_start=membership.may_start if membership else None,
            on_breaker_opened=self.operator_events.breaker_opened,
            tracing=self.tracing,
        )

    def _build_event_manager(self, feed: WorkFeed) -> EventManager:
        delivery = self.settings.delivery
        return EventManager(
            self.store,
            clock=self.clock,
            rng=self.fast_rng,
            max_payload_bytes=delivery.max_payload_bytes,
            idempotency_window=idempotency_window(self.settings),
            feed=feed,
            metrics=self.metrics,
            tracing=self.tracing,
        )

    async def _change_status(self, endpoint_id: str, trigger: Trigger, reason: str) -> Endpoint:
        """The engine's verdicts (breaker trips, 410 Gone, a probe's result) as state changes."""
        guard = self.node.guard if self.node is not None else None
        return await self.endpoints.change_status(endpoint_id, trigger, reason, guard=guard)

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
        datadir.prepare(settings.data_dir)
        # Before anything is written there: a second daemon on this directory stops here.
        self._lock.acquire()
        try:
            datadir.check_writable(settings.data_dir)
            await self.store.open()
        except BaseException:
            self._lock.release()
            raise
        try:
            tokens = await bootstrap_tokens(
                self.store, settings.data_dir, now=self.clock(), rng=self.rng
            )
            await self.sender.start()
            self.recorder.start()
            self.operator_events.start()
            # A cluster node's endpoints come with the shards it takes (self.node.start).
            await self.engine.start([] if self.node else await self._all_endpoints())
            self._engine_started = True
            await self._start_grpc(AuthInterceptor(tokens))
            await self._start_http()
            await self._start_metrics_http()
            if self.node is not None:
                self.node.refresh_tokens = lambda: refresh_tokens(self.store, tokens)
                await self.node.start()
        except BaseException:
            await self.stop()
            raise
        self._serving = True
        await self._set_health(serving=True)
        self.readiness.start()
        self.retention.start()
        self._write_run_file()
        log.info(
            "convoyd %s serving",
            __version__,
            extra={
                "grpc": self.grpc_address,
                "http": self.http_address,
                "data_dir": str(settings.data_dir),
                "store": settings.store,
            },
        )
        # Migrations ran and every listener is up: systemd may start what depends on us.
        self.notifier.ready(await self._status_line())
        interval = self.notifier.watchdog_interval
        if interval is not None:
            self._watchdog = asyncio.create_task(
                watchdog(self.notifier, interval, alive=lambda: self.engine.alive),
                name="convoyd-watchdog",
            )

    async def _set_health(self, *, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status.SERVING if serving else status.NOT_SERVING)

    async def _store_answers(self, ok: bool) -> None:
        if self._serving:
            await self._set_health(serving=ok)

    async def _status_line(self) -> str:
        try:
            endpoints = sum((await self.store.status_counts()).endpoints.values())
        except ConvoydError:
            return "serving"
        return f"serving; {endpoints} endpoints"

    async def _start_grpc(self, auth: AuthInterceptor) -> None:
        # Outermost first: malformed requests are answered INVALID_ARGUMENT by the guard, and
        # metrics see the handler auth chose, refusals included.
        server = grpc_server(
            [DecodeGuardInterceptor(), MetricsInterceptor(self.metrics), auth],
            max_receive=receive_limit(self.settings.delivery),
        )
        endpoint_pb2_grpc.add_EndpointServiceServicer_to_server(
            EndpointService(self.endpoints, self.clock, self.engine.breaker_status), server
        )
        event_pb2_grpc.add_EventServiceServicer_to_server(EventService(self.events), server)
        delivery_pb2_grpc.add_DeliveryServiceServicer_to_server(
            DeliveryService(self.deliveries), server
        )
        portal_pb2_grpc.add_PortalServiceServicer_to_server(
            PortalService(self.portal, link_url=lambda token: enter_url(self.public_url(), token)),
            server,
        )
        cluster_pb2_grpc.add_ClusterServiceServicer_to_server(
            ClusterService(self.cluster_view), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        enable_reflection(server)
        tls = _grpc_credentials(self.settings)
        if tls is not None:
            self._certificates = tls[1]
        self.grpc_address = bind_grpc(server, self.settings.grpc_listen, tls and tls[0])
        self.grpc_server = server
        await server.start()

    async def _start_http(self) -> None:
        portal = PortalServices(
            links=self.portal,
            endpoints=self.endpoints,
            events=self.events,
            deliveries=self.deliveries,
            breaker_status=self.engine.breaker_status,
            settings=self.settings.portal,
            delivery_defaults=lambda: DeliveryDefaults(
                http_timeout=self.engine.config.default_http_timeout,
                retry_policy=self.engine.config.default_retry_policy,
            ),
            public_url=self.public_url,
            clock=self.clock,
            health=self.store,
        )
        web_app = build_app(lambda: self._serving and self.readiness.ok, portal)
        if not self.settings.metrics_listen:
            add_metrics_route(web_app, self.metrics)
        self.http_runner, self.http_address = await serve_http(
            web_app, self.settings.http_listen, "http_listen", self.settings.http_server
        )

    async def _start_metrics_http(self) -> None:
        """A listener of its own for /metrics when metrics_listen is set."""
        if not self.settings.metrics_listen:
            return
        web_app = web.Application()
        add_metrics_route(web_app, self.metrics)
        self.metrics_runner, self.metrics_address = await serve_http(
            web_app, self.settings.metrics_listen, "metrics_listen", self.settings.http_server
        )

    def public_url(self) -> str:
        """Where browsers reach the portal: portal.public_url, else the HTTP listener."""
        return self.settings.portal.base_url or f"http://{self.http_address}"

    def _write_run_file(self) -> None:
        path = self.settings.data_dir / RUN_FILE
        tmp = path.with_suffix(".tmp")
        info = {"pid": os.getpid(), "grpc": self.grpc_address, "http": self.http_address}
        if self.metrics_address:
            info["metrics"] = self.metrics_address
        tmp.write_text(json.dumps(info))
        tmp.replace(path)

    async def stop(self) -> None:
        """Health NOT_SERVING → stop accepting RPCs → drain the engine → close the HTTP session
        and listener → close the store. What is not finished stays pending in the store.

        RPCs and attempts in flight share one shutdown_grace; what it cuts short is sent again
        after the restart (at-least-once), so the unit's TimeoutStopSec only needs a margin."""
        self._serving = False
        await self.readiness.stop()
        await self.retention.stop()
        self.notifier.stopping(f"draining; {self.engine.in_flight} attempts in flight")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_grace
        with contextlib.suppress(Exception):
            await self.health.enter_graceful_shutdown()
        self.hub.close()
        if self.grpc_server is not None:
            await self.grpc_server.stop(self.settings.shutdown_grace)
            self.grpc_server = None
        await self.deliveries.stop()
        if self._engine_started:
            await self.engine.stop(max(0.0, deadline - loop.time()))
            self._engine_started = False
        await self.recorder.stop()
        # After the recorder: the outcomes of the drain are told too, in what is left of the grace.
        await self.operator_events.stop(max(0.0, deadline - loop.time()))
        if self.node is not None:  # its leases go at once: a restart moves them in a second
            await self.node.stop()
        await self.sender.close()
        if self.http_runner is not None:
            await self.http_runner.cleanup()
            self.http_runner = None
        if self.metrics_runner is not None:
            await self.metrics_runner.cleanup()
            self.metrics_runner = None
        await self.store.close()
        # Last: the spans of the drain and of the final store writes go out too.
        await self.tracing.shutdown(max(1.0, deadline - loop.time()))
        if self._lock.held:  # the directory is ours: the run file is not another daemon's
            with contextlib.suppress(FileNotFoundError):
                (self.settings.data_dir / RUN_FILE).unlink()
        if self._watchdog is not None:  # pinged through the drain; not after it
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
            self._watchdog = None
        self._lock.release()

    def request_stop(self) -> None:
        self._stopped.set()

    async def reload(self) -> bool:
        """Reads the configuration again and applies what can change while serving (see
        convoyd.reload); an invalid configuration changes nothing. True when applied."""
        async with self._reloading:
            self.notifier.reloading()
            try:
                applied = self._apply_reload()
            except Exception:  # a bug, not a bad file: say so and keep serving
                log.exception("reload failed")
                applied = False
            finally:
                self.notifier.ready(await self._status_line())
            return applied

    def _apply_reload(self) -> bool:
        old = self.settings
        try:
            loaded = self._reload_settings() if self._reload_settings is not None else old
            restart = restart_only_changes(old, loaded)
            new = effective(old, loaded)
            certificates = Certificates.load(new.tls) if self._certificates is not None else None
        except ConvoydError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return False
        logs.configure(new.log_level, new.log_format)
        delivery = new.delivery
        self.sender.set_allow_cidrs(delivery.allow_cidrs)
        self.events.set_limits(
            max_payload_bytes=delivery.max_payload_bytes,
            idempotency_window=idempotency_window(new),
        )
        self.engine.set_limits(
            max_in_flight=delivery.max_in_flight,
            max_concurrency_per_endpoint=delivery.max_concurrency_per_endpoint,
            max_slow_in_flight=delivery.max_slow_in_flight,
        )
        if self._certificates is not None and certificates is not None:
            self._certificates.replace(certificates)  # for connections from now on
        self.settings = new
        log.info(
            "configuration reloaded",
            extra={"needs_restart": ", ".join(restart)} if restart else {},
        )
        log.debug("reload applied", extra={"log_level": new.log_level})
        return True

    @property
    def serving(self) -> bool:
        """Started and not stopping: the state a reload applies to."""
        return self._serving

    async def wait_stopped(self) -> None:
        """Returns once a stop has been requested."""
        await self._stopped.wait()

    async def run(self) -> None:
        """Serves until SIGTERM or SIGINT (a second one exits at once); SIGHUP reloads."""
        await signals.serve(self)
