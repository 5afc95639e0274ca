"""Which tracer a daemon runs with: none unless telemetry.otlp_endpoint is set."""

from __future__ import annotations

from typing import TYPE_CHECKING

from convoyd.errors import ConfigError
from convoyd.telemetry.base import NO_TRACING, Tracing

if TYPE_CHECKING:
    from convoyd.settings import TelemetrySettings

MISSING = (
    "telemetry.otlp_endpoint is set, but the OpenTelemetry packages are not installed:"
    " pip install 'convoyd[otel]' (or unset telemetry.otlp_endpoint /"
    " CONVOYD_TELEMETRY_OTLP_ENDPOINT)"
)


def make_tracing(settings: TelemetrySettings, *, store: str) -> Tracing:
    """The no-op tracer when tracing is off (nothing of OpenTelemetry is imported), else the
    SDK's, exporting to the endpoint; ConfigError naming the setting when the SDK is missing."""
    if not settings.enabled:
        return NO_TRACING
    try:
        from convoyd.telemetry.otel import OtelTracing

        return OtelTracing(settings, store=store)
    except ImportError as exc:
        if (exc.name or "").startswith("opentelemetry") or "opentelemetry" in str(exc):
            raise ConfigError(MISSING) from None
        raise
