"""convoyd's configuration: frozen dataclasses filled from TOML, then CONVOYD_* env, then flags.

Top-level keys map to ``CONVOYD_<KEY>`` (e.g. ``CONVOYD_DATA_DIR``); keys of a ``[section]`` map
to ``CONVOYD_<SECTION>_<KEY>`` (e.g. ``CONVOYD_DELIVERY_ALLOW_CIDRS``, comma-separated lists).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convoyd.core.breaker import BreakerConfig
from convoyd.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/convoyd/convoyd.toml")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("logfmt", "json")


def split_host_port(value: str) -> tuple[str, int]:
    """'127.0.0.1:7400' or '[::1]:7400' → (host, port); raises ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} is not host:port")
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
    max_concurrency_per_endpoint: int = 8
    """Attempts in flight at once to one endpoint, unless the endpoint sets its own."""
    max_payload_bytes: int = 1024 * 1024
    """Largest event payload accepted."""
    response_body_limit: int = 16 * 1024
    """Bytes of each response body read and kept in the attempt log."""
    max_in_flight: int = 512
    """Attempts in flight at once across all endpoints."""
    idempotency_window: float = 24 * 3600.0
    """Seconds during which an idempotency key returns the original event."""
    retry_after_cap: float = 3600.0
    """Longest Retry-After (429/503) honoured, in seconds."""
    inactive_after_trips: int = 5
    """An endpoint whose circuit breaker opened this many times in a row without a success in
    between becomes INACTIVE (DESIGN §3)."""
    sender_workers: int = -1
    """Child processes that send the HTTP requests (the daemon keeps every decision): -1 picks
    one per core beyond the first (at least 1, at most 4); 0 sends from the daemon's own
    process."""

    def __post_init__(self) -> None:
        for cidr in self.allow_cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(f"delivery.allow_cidrs: {cidr!r} is not a CIDR range") from None
        if not 1 <= self.max_concurrency_per_endpoint <= 256:
            raise ConfigError("delivery.max_concurrency_per_endpoint must be between 1 and 256")
        if not 1 <= self.max_payload_bytes <= 64 * 1024 * 1024:
            raise ConfigError("delivery.max_payload_bytes must be between 1 and 64 MiB")
        if not 0 <= self.response_body_limit <= 1024 * 1024:
            raise ConfigError("delivery.response_body_limit must be between 0 and 1 MiB")
        if not 1 <= self.max_in_flight <= 100_000:
            raise ConfigError("delivery.max_in_flight must be between 1 and 100000")
        if not 0 <= self.idempotency_window <= 30 * 86400:
            raise ConfigError("delivery.idempotency_window must be between 0 and 30 days")
        if not 0 <= self.retry_after_cap <= 86400:
            raise ConfigError("delivery.retry_after_cap must be between 0 and 86400 seconds")
        if not 1 <= self.inactive_after_trips <= 1000:
            raise ConfigError("delivery.inactive_after_trips must be between 1 and 1000")
        if not -1 <= self.sender_workers <= 64:
            raise ConfigError("delivery.sender_workers must be between -1 (auto) and 64")


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
    session_lifetime: float = 12 * 3600.0
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
                    f"portal.public_url {url!r} must be http(s)://host[:port] without a path"
                )
        for origin in self.frame_ancestors:
            if not _ORIGIN.fullmatch(origin):
                raise ConfigError(
                    f"portal.frame_ancestors: {origin!r} is not an origin like https://host[:port]"
                )
        if not 60 <= self.session_lifetime <= 30 * 86400:
            raise ConfigError("portal.session_lifetime must be between 60 seconds and 30 days")

    @property
    def base_url(self) -> str:
        """public_url without a trailing slash ('' when unset)."""
        return self.public_url.rstrip("/")


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
    """Where the SQLite database and admin.token live ($STATE_DIRECTORY under systemd)."""
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

    def __post_init__(self) -> None:
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
}


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """A TOML value or an env string as the field's type; ConfigError naming ``where``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value in ("", None):
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, where)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in (
                "1",
                "true",
                "yes",
                "on",
                "0",
                "false",
                "no",
                "off",
            ):
                return value.lower() in ("1", "true", "yes", "on")
            raise ValueError("expected true or false")
        if hint is int:
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise ValueError("expected a string")
            return value
        if hint is Path:
            if not isinstance(value, str):
                raise ValueError("expected a path string")
            return Path(value)
        if origin is tuple:
            items = (
                [v.strip() for v in value.split(",") if v.strip()]
                if isinstance(value, str)
                else value
            )
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ValueError("expected a list of strings")
            return tuple(items)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc} (got {value!r})") from None
    raise ConfigError(f"{where}: unsupported setting type {hint}")


def _build(cls: type[Any], values: Mapping[str, Any], prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key {prefix}{unknown[0]}")
    kwargs = {}
    for name, value in values.items():
        if name in _SECTIONS and cls is Settings:
            continue
        kwargs[name] = _coerce(value, hints[name], f"{source}: {prefix}{name}")
    return cls(**kwargs)


def load(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from the TOML file (``path``, else $CONVOYD_CONFIG, else /etc/convoyd/convoyd.toml
    if it exists), the CONVOYD_* variables of ``env`` over it, and ``overrides`` (flags) over both.
    """
    env = dict(os.environ) if env is None else env
    doc: dict[str, Any] = {}
    explicit = path or (Path(env["CONVOYD_CONFIG"]) if env.get("CONVOYD_CONFIG") else None)
    config_path = explicit or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None)
    source = str(config_path) if config_path else "defaults"
    if config_path is not None:
        try:
            doc = tomllib.loads(config_path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {config_path} does not exist") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: invalid TOML: {exc}") from None
    top_fields = {f.name for f in dataclasses.fields(Settings)}
    for section in _SECTIONS:
        if section in doc and not isinstance(doc[section], dict):
            raise ConfigError(f"{source}: {section} must be a [{section}] table")
    # Environment: CONVOYD_<KEY> for top-level keys, CONVOYD_<SECTION>_<KEY> inside sections.
    env_source = "environment"
    for key, value in env.items():
        if not key.startswith("CONVOYD_") or key in ("CONVOYD_CONFIG", "CONVOYD_TOKEN"):
            continue
        name = key[len("CONVOYD_") :].lower()
        in_section = [s for s in _SECTIONS if name.startswith(s + "_")]
        if in_section:
            section = in_section[0]
            sub = name[len(section) + 1 :]
            if sub not in {f.name for f in dataclasses.fields(_SECTIONS[section])}:
                raise ConfigError(f"{env_source}: unknown variable {key}")
            doc.setdefault(section, {})[sub] = value
        elif name in top_fields and name not in _SECTIONS:
            doc[name] = value
        else:
            raise ConfigError(f"{env_source}: unknown variable {key}")
    for key, value in (overrides or {}).items():
        if value is not None:
            doc[key] = value
    sections = {
        name: _build(cls, doc.get(name, {}), f"{name}.", source) for name, cls in _SECTIONS.items()
    }
    top = {k: v for k, v in doc.items() if k not in _SECTIONS}
    base: Settings = _build(Settings, top, "", source)
    return dataclasses.replace(base, **sections)
