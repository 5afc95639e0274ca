"""OpenTelemetry traces of ingest, delivery attempts and store writes (docs/tracing.md).

``base`` holds the interface and the no-op tracer used while tracing is off; ``setup`` picks
one from the settings; only ``otel`` imports the OpenTelemetry SDK, and only when tracing is on.
"""
