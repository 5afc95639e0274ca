"""convoyd's configuration as frozen, validated dataclasses; load() fills them (config_loading).

Filled from TOML, then CONVOYD_* env, then flags (convoyd/config_loading.py does the reading).

Top-level keys map to ``CONVOYD_<KEY>`` (e.g. ``CONVOYD_DATA_DIR``); keys of a ``[section]`` map
to ``CONVOYD_<SECTION>_<KEY>`` (e.g. ``CONVOYD_DELIVERY_ALLOW_CIDRS``, comma-separated lists).
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convoyd.config_loading import MAX_CONFIG_BYTES as MAX_CONFIG_BYTES
from convoyd.config_loading import load_layers
from convoyd.config_loading import shown as shown
from convoyd.core.breaker import BreakerConfig
from convoyd.core.outcome import DEFAULT_RETRY_AFTER_CAP
from convoyd.core.validation import filter_violations
from convoyd.delivery.config import (
    DEFAULT_INACTIVE_AFTER_TRIPS,
    DEFAULT_MAX_CONCURRENCY_PER_ENDPOINT,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_SLOW_IN_FLIGHT,
)
from convoyd.delivery.sender import DEFAULT_BODY_LIMIT
from convoyd.errors import ConfigError, ValidationError
from convoyd.service.events import DEFAULT_IDEMPOTENCY_WINDOW, DEFAULT_MAX_PAYLOAD_BYTES
from convoyd.service.portal import DEFAULT_SESSION_LIFETIME

DEFAULT_CONFIG_PATH = Path("/etc/convoyd/convoyd.toml")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("logfmt", "json")


def split_host_port(value: str) -> tuple[str, int]:
    """'127.0.0.1:7400' or '[::1]:7400' → (host, port); raises ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{shown(value)} is not host:port")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} is out of range")
    return host, number


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsSettings:
    """TLS for the gRPC listener. Set cert_file and key_file to enable it."""

    cert_file: Path | None = None
    """PEM certificate chain the server presents."""
    key_file: Path | None = None
    """PEM private key of cert_file."""
    client_ca_file: Path | None = None
    """PEM CA bundle; when set, clients must present a certificate it signed (mTLS)."""

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("tls.cert_file and tls.key_file must be set together")
        if self.client_ca_file is not None and self.cert_file is None:
            raise ConfigError("tls.client_ca_file needs tls.cert_file and tls.key_file")

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverySettings:
    """How webhooks are sent."""

    allow_cidrs: tuple[str, ...] = ()
    """Address ranges deliveries may reach although the SSRF guard blocks them by default
    (loopback, private, link-local, ...), e.g. ["10.0.0.0/8"]."""
    max_concurrency_per_endpoint: int = DEFAULT_MAX_CONCURRENCY_PER_ENDPOINT
    """Attempts in flight at once to one endpoint, unless the endpoint sets its own."""
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    """Largest event payload accepted."""
    max_batch_bytes: int = 16 * 1024 * 1024
    """Largest BatchCreateEvents request, in encoded bytes (payloads, ids and headers of all its
    events); at least max_payload_bytes. The gRPC listener refuses any message larger than this
    plus 1 MiB (room for one event's ids and headers) with RESOURCE_EXHAUSTED. Read at start."""
    response_body_limit: int = DEFAULT_BODY_LIMIT
    """Bytes of each response body read and kept in the attempt log."""
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    """Attempts in flight at once across all endpoints that answer quickly."""
    max_slow_in_flight: int = DEFAULT_MAX_SLOW_IN_FLIGHT
    """Attempts in flight at once that have run longer than half a second, or go to an endpoint
    that is slow now; kept apart so hanging endpoints never take the slots of healthy ones.
    At most max_in_flight + max_slow_in_flight attempts (and sockets) are open in all."""
    idempotency_window: float = DEFAULT_IDEMPOTENCY_WINDOW
    """Seconds during which an idempotency key returns the original event."""
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP
    """Longest Retry-After (429/503) honoured, in seconds."""
    inactive_after_trips: int = DEFAULT_INACTIVE_AFTER_TRIPS
    """An endpoint whose circuit breaker opened this many times in a row without a success in
    between becomes INACTIVE (architecture.md §3)."""
    sender_workers: int = -1
    """Child processes that send the HTTP requests (the daemon keeps every decision): -1 picks
    one per core beyond the first (at least 1, at most 4); 0 sends from the daemon's own
    process."""

    def __post_init__(self) -> None:
        for cidr in self.allow_cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(
                    f"delivery.allow_cidrs: {shown(cidr)} is not a CIDR range"
                ) from None
        _check_ranges(self, "delivery", _DELIVERY_REQUEST_RANGES)
        if self.max_batch_bytes < self.max_payload_bytes:
            raise ConfigError(
                f"delivery.max_batch_bytes ({self.max_batch_bytes}) must be at least"
                f" delivery.max_payload_bytes ({self.max_payload_bytes})"
            )
        _check_ranges(self, "delivery", _DELIVERY_SENDING_RANGES)


# (field, lowest, highest, the range as the error message says it). Two tables so that the
# batch-versus-payload check keeps its place between them: the first error found is reported.
_Range = tuple[str, float, float, str]
_DELIVERY_REQUEST_RANGES: tuple[_Range, ...] = (
    ("max_concurrency_per_endpoint", 1, 256, "1 and 256"),
    ("max_payload_bytes", 1, 64 * 1024 * 1024, "1 and 64 MiB"),
    ("max_batch_bytes", 1024 * 1024, 256 * 1024 * 1024, "1 MiB and 256 MiB"),
)
_DELIVERY_SENDING_RANGES: tuple[_Range, ...] = (
    ("response_body_limit", 0, 1024 * 1024, "0 and 1 MiB"),
    ("max_in_flight", 1, 100_000, "1 and 100000"),
    ("max_slow_in_flight", 1, 100_000, "1 and 100000"),
    ("idempotency_window", 0, 30 * 86400, "0 and 30 days"),
    ("retry_after_cap", 0, 86400, "0 and 86400 seconds"),
    ("inactive_after_trips", 1, 1000, "1 and 1000"),
    ("sender_workers", -1, 64, "-1 (auto) and 64"),
)


def _check_ranges(settings: object, section: str, ranges: tuple[_Range, ...]) -> None:
    """ConfigError for the first field of ``settings`` outside its row's bounds."""
    for name, lowest, highest, wording in ranges:
        if not lowest <= getattr(settings, name) <= highest:
            raise ConfigError(f"{section}.{name} must be between {wording}")


# An origin for CSP frame-ancestors: scheme, host (name or [IPv6]) and an optional port;
# nothing that could end the directive (spaces, semicolons, quotes).
_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PortalSettings:
    """The web portal served on http_listen under /portal/."""

    public_url: str = ""
    """Scheme, host and port the portal's users reach it at (e.g. https://hooks.example.com),
    used in the links CreatePortalLink mints; no path. Empty: http://<http_listen as bound>.
    With https the session cookie is marked Secure."""
    frame_ancestors: tuple[str, ...] = ()
    """Origins (e.g. https://app.example.com) allowed to embed portals opened with LONG_LIVED
    links in a frame. None: no page may be framed (frame-ancestors 'none', X-Frame-Options
    DENY). The session cookie is SameSite=Lax, so the embedding page must be same-site."""
    session_lifetime: float = DEFAULT_SESSION_LIFETIME
    """Longest a portal session lasts, in seconds; never past its link's expiry."""

    def __post_init__(self) -> None:
        url = self.public_url
        if url:
            parts = urllib.parse.urlsplit(url)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
                or parts.username is not None
            ):
                raise ConfigError(
                    f"portal.public_url {shown(url)} must be http(s)://host[:port] without a path"
                )
        for origin in self.frame_ancestors:
            if not _ORIGIN.fullmatch(origin):
                raise ConfigError(
                    f"portal.frame_ancestors: {shown(origin)} is not an origin like"
                    " https://host[:port]"
                )
        if not 60 <= self.session_lifetime <= 30 * 86400:
            raise ConfigError("portal.session_lifetime must be between 60 seconds and 30 days")

    @property
    def base_url(self) -> str:
        """public_url without a trailing slash ('' when unset)."""
        return self.public_url.rstrip("/")


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpServerSettings:
    """Limits of each HTTP listener (http_listen, metrics_listen) against slow or numerous
    clients ([http_server] section, CONVOYD_HTTP_SERVER_* variables)."""

    header_timeout: float = 10.0
    """Seconds a request's line and headers may take to arrive, from their first byte (from
    the connection's opening for its first request); then 408 and the connection closes."""
    body_timeout: float = 30.0
    """Seconds a request's body may take to arrive once its headers are in; then 408."""
    keepalive_timeout: float = 15.0
    """Seconds an idle keep-alive connection stays open between requests."""
    max_connections: int = 1000
    """Open connections per listener; past it new ones get 503 and are closed at once."""

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "keepalive_timeout"):
            if not 0.05 <= getattr(self, name) <= 3600:
                raise ConfigError(f"http_server.{name} must be between 0.05 and 3600 seconds")
        if not 1 <= self.max_connections <= 1_000_000:
            raise ConfigError("http_server.max_connections must be between 1 and 1000000")


STORES = ("sqlite", "postgres")
DEFAULT_POSTGRES_POOL_SIZE = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresSettings:
    """The PostgreSQL store, used when ``store = "postgres"`` ([postgres] section,
    CONVOYD_POSTGRES_* variables)."""

    dsn: str = ""
    """A libpq connection URI, e.g. postgresql://convoyd@db.internal:5432/convoyd; a password
    is better kept in ~/.pgpass or $PGPASSWORD than here."""
    pool_size: int = DEFAULT_POSTGRES_POOL_SIZE
    """Connections this node keeps open. The engine's writes are batched (a few connections
    carry thousands of deliveries a second); the rest serve ingest and reads."""
    connect_timeout: float = 5.0
    """Seconds to wait for a connection (at start, and for each reconnection)."""

    def __post_init__(self) -> None:
        if self.dsn and not self.dsn.startswith(("postgresql://", "postgres://")):
            raise ConfigError("postgres.dsn must be a URI starting with postgresql://")
        if not 2 <= self.pool_size <= 1000:
            raise ConfigError("postgres.pool_size must be between 2 and 1000")
        if not 0.1 <= self.connect_timeout <= 300:
            raise ConfigError("postgres.connect_timeout must be between 0.1 and 300 seconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSettings:
    """Several nodes on one PostgreSQL ([cluster] section, CONVOYD_CLUSTER_* variables); only
    with ``store = "postgres"``, where a single node is a cluster of one."""

    lease: float = 10.0
    """Seconds a node holds its shards without a heartbeat: a node that dies or freezes loses
    its endpoints to the others this long after its last heartbeat (heartbeats every lease/3)."""
    shards: int = 256
    """How many shards endpoints hash into; read only when the database is first set up, and
    recorded there (changing it later changes nothing)."""
    advertise_grpc: str = ""
    """The gRPC address other nodes and operators see for this node; empty: the bound one."""
    advertise_http: str = ""
    """Likewise for the HTTP listener."""

    def __post_init__(self) -> None:
        if not 1.0 <= self.lease <= 600:
            raise ConfigError("cluster.lease must be between 1 and 600 seconds")
        if not 1 <= self.shards <= 4096:
            raise ConfigError("cluster.shards must be between 1 and 4096")


DEFAULT_RETENTION_PERIOD = 30 * 86400.0
DEFAULT_RETENTION_INTERVAL = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionSettings:
    """How long ended events are kept ([retention] section, CONVOYD_RETENTION_* variables);
    docs/operations.md, "Retention"."""

    period: float = DEFAULT_RETENTION_PERIOD
    """Seconds an event is kept once created; after that it goes, with its deliveries and
    attempts, as soon as every one of its deliveries has ended (success, failure, discarded).
    A delivery still waiting keeps its event whole. 0 keeps everything forever."""
    interval: float = DEFAULT_RETENTION_INTERVAL
    """Seconds between pruning runs."""

    def __post_init__(self) -> None:
        if not 0 <= self.period <= 100 * 365 * 86400:
            raise ConfigError("retention.period must be between 0 (keep forever) and 100 years")
        if not 1 <= self.interval <= 7 * 86400:
            raise ConfigError("retention.interval must be between 1 second and 7 days")


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorEventsSettings:
    """Events convoyd ingests about its own endpoints and deliveries ([operator_events] section,
    CONVOYD_OPERATOR_EVENTS_* variables); docs/operator-events.md."""

    owner_id: str = ""
    """The owner whose endpoints receive convoyd.endpoint.* and convoyd.delivery.exhausted
    events, like any other event of that owner; empty: no operator events."""

    def __post_init__(self) -> None:
        try:
            filter_violations(owner_ids=[("operator_events.owner_id", self.owner_id)])
        except ValidationError as exc:
            raise ConfigError(str(exc)) from None


OTLP_PROTOCOLS = ("grpc", "http/protobuf")


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetrySettings:
    """OpenTelemetry traces ([telemetry] section, CONVOYD_TELEMETRY_* variables); off unless
    otlp_endpoint is set, and then it needs ``pip install 'convoyd[otel]'`` (docs/tracing.md).
    The standard OTEL_* variables (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
    OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_*, ...) are read by the OpenTelemetry SDK."""

    otlp_endpoint: str = ""
    """Where spans are exported with OTLP: http(s)://host:port (gRPC, port 4317 by
    convention), or with otlp_protocol "http/protobuf" the URL spans are POSTed to (a URL
    without a path gets /v1/traces). Empty: no tracing, no trace context stored or sent."""
    otlp_protocol: str = "grpc"
    """"grpc" or "http/protobuf"."""
    sampling_ratio: float | None = None
    """The fraction of new traces recorded, 0 to 1 (a trace a caller started follows the
    caller's sampled flag). Unset: OTEL_TRACES_SAMPLER if set, else 1.0."""

    def __post_init__(self) -> None:
        if self.otlp_protocol not in OTLP_PROTOCOLS:
            raise ConfigError(f"telemetry.otlp_protocol must be one of {', '.join(OTLP_PROTOCOLS)}")
        if self.otlp_endpoint:
            parts = urllib.parse.urlsplit(self.otlp_endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"telemetry.otlp_endpoint {shown(self.otlp_endpoint)} must be an"
                    " http:// or https:// URL, e.g. http://127.0.0.1:4317"
                )
            if self.otlp_protocol == "grpc" and parts.path not in ("", "/"):
                raise ConfigError(
                    "telemetry.otlp_endpoint: with otlp_protocol grpc it takes no path"
                    f" (got {shown(self.otlp_endpoint)})"
                )
        if self.sampling_ratio is not None and not 0 <= self.sampling_ratio <= 1:
            raise ConfigError("telemetry.sampling_ratio must be between 0 and 1")

    @property
    def enabled(self) -> bool:
        return bool(self.otlp_endpoint)


def idempotency_window(settings: Settings) -> float:
    """The window idempotency keys match in: delivery.idempotency_window, cut to the retention
    period when that is shorter (a key cannot outlive the event it names)."""
    window = settings.delivery.idempotency_window
    period = settings.retention.period
    return min(window, period) if period > 0 else window


def sender_workers(configured: int) -> int:
    """How many sender processes to start for ``delivery.sender_workers``."""
    if configured >= 0:
        return configured
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def _default_data_dir() -> Path:
    # Under systemd, StateDirectory= hands us our directory in $STATE_DIRECTORY.
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(state) if state else Path("convoyd-data")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything convoyd serve needs; every field has a working default."""

    data_dir: Path = field(default_factory=_default_data_dir)
    """Where the SQLite database and admin.token live ($STATE_DIRECTORY under systemd); with
    the PostgreSQL store only the local files (admin.token, run.json, the lock)."""
    store: str = "sqlite"
    """Where events, deliveries and endpoints are kept: "sqlite" (embedded, in data_dir) or
    "postgres" (the server [postgres] dsn names; several nodes may share it)."""
    grpc_listen: str = "127.0.0.1:7400"
    """host:port of the gRPC control plane; port 0 picks a free port."""
    http_listen: str = "127.0.0.1:7401"
    """host:port of the HTTP listener (portal, /metrics, /healthz); port 0 picks a free port."""
    metrics_listen: str = ""
    """host:port of a listener that serves only /metrics; empty: /metrics is served on
    http_listen."""
    allow_insecure_remote: bool = False
    """Allow the gRPC listener on a non-loopback address without TLS (tokens would cross the
    network in clear text)."""
    log_level: str = "info"
    """debug, info, warning or error."""
    log_format: str = "logfmt"
    """logfmt or json: one record per line on stderr."""
    shutdown_grace: float = 10.0
    """Seconds in-flight work gets to finish on SIGTERM."""
    tls: TlsSettings = field(default_factory=TlsSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    """Every endpoint's circuit breaker ([breaker] section, CONVOYD_BREAKER_* variables)."""
    portal: PortalSettings = field(default_factory=PortalSettings)
    """The web portal ([portal] section, CONVOYD_PORTAL_* variables)."""
    http_server: HttpServerSettings = field(default_factory=HttpServerSettings)
    """Limits of the HTTP listeners ([http_server] section, CONVOYD_HTTP_SERVER_* variables)."""
    postgres: PostgresSettings = field(default_factory=PostgresSettings)
    """The PostgreSQL store ([postgres] section, CONVOYD_POSTGRES_* variables)."""
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    """Nodes sharing one PostgreSQL ([cluster] section, CONVOYD_CLUSTER_* variables)."""
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    """Pruning of old events ([retention] section, CONVOYD_RETENTION_* variables)."""
    operator_events: OperatorEventsSettings = field(default_factory=OperatorEventsSettings)
    """convoyd's own events about endpoints going bad ([operator_events] section,
    CONVOYD_OPERATOR_EVENTS_* variables)."""
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    """OpenTelemetry traces ([telemetry] section, CONVOYD_TELEMETRY_* variables)."""

    def __post_init__(self) -> None:
        if self.store not in STORES:
            raise ConfigError(f"store must be one of {', '.join(STORES)}")
        if self.store == "postgres" and not self.postgres.dsn:
            raise ConfigError('store = "postgres" needs postgres.dsn (CONVOYD_POSTGRES_DSN)')
        for name in ("grpc_listen", "http_listen", "metrics_listen"):
            if name == "metrics_listen" and not self.metrics_listen:
                continue
            try:
                split_host_port(getattr(self, name))
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from None
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"log_format must be one of {', '.join(LOG_FORMATS)}")
        if not 0 <= self.shutdown_grace <= 3600:
            raise ConfigError("shutdown_grace must be between 0 and 3600 seconds")
        host, _ = split_host_port(self.grpc_listen)
        if not is_loopback_host(host) and not self.tls.enabled and not self.allow_insecure_remote:
            raise ConfigError(
                f"grpc_listen {self.grpc_listen} is not a loopback address: configure [tls]"
                " or set allow_insecure_remote = true"
            )


_SECTIONS: dict[str, type[Any]] = {
    "tls": TlsSettings,
    "delivery": DeliverySettings,
    "breaker": BreakerConfig,
    "portal": PortalSettings,
    "http_server": HttpServerSettings,
    "postgres": PostgresSettings,
    "cluster": ClusterSettings,
    "retention": RetentionSettings,
    "operator_events": OperatorEventsSettings,
    "telemetry": TelemetrySettings,
}


def load(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from the TOML file (``path``, else $CONVOYD_CONFIG, else /etc/convoyd/convoyd.toml
    if it exists), the CONVOYD_* variables of ``env`` over it, and ``overrides`` (flags) over both.
    """
    settings: Settings = load_layers(
        Settings,
        _SECTIONS,
        path,
        env=env,
        overrides=overrides,
        default_path=DEFAULT_CONFIG_PATH,
    )
    return settings
