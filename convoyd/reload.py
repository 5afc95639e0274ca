"""What a SIGHUP reload may change in a running daemon, and the gRPC certificates it swaps.

Reloadable: log level and format, the SSRF allow-list, payload and concurrency limits, the
idempotency window, the retention period and interval (from the next run), shutdown_grace,
operator_events.owner_id (at once: empty turns them off; events still queued go to the new
owner), and the gRPC listener's certificate, key
and client CA
(new connections get them; established ones keep theirs). Everything else names a resource
the daemon holds (listening sockets, the data directory) or shapes state built at start, so
it needs a restart; a reload says which of those changed and leaves them as they were.
"""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import grpc

from convoyd.errors import ConfigError
from convoyd.settings import Settings, TlsSettings

# Top-level keys and [section]s read once at start. Not listed, so reloadable: log_level,
# log_format, shutdown_grace, [retention], [operator_events] and [delivery] but for the keys below.
_RESTART_ONLY = (
    "data_dir",
    "grpc_listen",
    "http_listen",
    "metrics_listen",
    "allow_insecure_remote",
    "breaker",
    "portal",
    "store",
    "postgres",
    "cluster",
    "telemetry",  # the tracer provider and its exporter are made once, at start
)
_RESTART_ONLY_DELIVERY = (
    "max_batch_bytes",  # the gRPC server's receive limit
    "response_body_limit",
    "retry_after_cap",
    "inactive_after_trips",
    "sender_workers",
)


def restart_only_changes(old: Settings, new: Settings) -> list[str]:
    """The keys that differ between ``old`` and ``new`` and only apply after a restart."""
    changed = [name for name in _RESTART_ONLY if getattr(old, name) != getattr(new, name)]
    changed += [
        f"delivery.{name}"
        for name in _RESTART_ONLY_DELIVERY
        if getattr(old.delivery, name) != getattr(new.delivery, name)
    ]
    if old.tls.enabled != new.tls.enabled:
        changed.append("tls (turning TLS on or off)")
    elif (old.tls.client_ca_file is None) != (new.tls.client_ca_file is None):
        changed.append("tls.client_ca_file (turning client certificates on or off)")
    return changed


def effective(old: Settings, new: Settings) -> Settings:
    """``new`` with the restart-only keys kept as they are running."""
    keep = {name: getattr(old, name) for name in _RESTART_ONLY}
    delivery = dataclasses.replace(
        new.delivery, **{name: getattr(old.delivery, name) for name in _RESTART_ONLY_DELIVERY}
    )
    tls = new.tls
    if old.tls.enabled != new.tls.enabled or (old.tls.client_ca_file is None) != (
        new.tls.client_ca_file is None
    ):
        tls = old.tls
    return dataclasses.replace(new, **keep, delivery=delivery, tls=tls)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"tls: cannot read {path}: {exc.strerror or exc}") from None


class Certificates:
    """The gRPC listener's certificate configuration, replaceable while serving.

    grpc asks ``fetch`` before each new TLS handshake; it answers None (keep the current one)
    except right after ``replace``.
    """

    def __init__(self, tls: TlsSettings) -> None:
        self.require_client_auth = tls.client_ca_file is not None
        self.initial = self.load(tls)
        self._pending: grpc.ServerCertificateConfiguration | None = None

    @staticmethod
    def load(tls: TlsSettings) -> grpc.ServerCertificateConfiguration:
        """Reads the PEM files now; ConfigError naming the file that cannot be read."""
        assert tls.cert_file is not None and tls.key_file is not None
        pair = (_read(tls.key_file), _read(tls.cert_file))
        ca = _read(tls.client_ca_file) if tls.client_ca_file else None
        # grpc only parses the PEM at the next handshake, when a bad file would fail every new
        # connection: check the pair (and the CA) now, while the old configuration still runs.
        check = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            # An encrypted key gets an empty password instead of a prompt on the terminal.
            check.load_cert_chain(tls.cert_file, tls.key_file, password=b"")
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(
                f"tls: {tls.cert_file} and {tls.key_file} are not a usable certificate and"
                f" unencrypted key ({getattr(exc, 'reason', None) or exc})"
            ) from None
        if ca is not None:
            try:
                check.load_verify_locations(cadata=ca.decode("ascii", "replace"))
            except (ssl.SSLError, ValueError) as exc:
                raise ConfigError(
                    f"tls: {tls.client_ca_file} is not a PEM CA bundle"
                    f" ({getattr(exc, 'reason', None) or exc})"
                ) from None
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=ca)

    def replace(self, config: grpc.ServerCertificateConfiguration) -> None:
        self._pending = config

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        pending, self._pending = self._pending, None
        return pending

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self.initial, self.fetch, require_client_authentication=self.require_client_auth
        )
