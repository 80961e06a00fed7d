"""Names of the OpenTelemetry environment variables gotel's trace and export layers read.

One module, so a grep finds every setting gotel honours (and so none is documented but unread).
"""

from __future__ import annotations

OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
OTEL_RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"

# Protocol: the signal-specific variable wins over the generic one.
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
OTEL_EXPORTER_OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"

# Timeout, in milliseconds per the specification. gotel reads these itself because
# opentelemetry-python reads them as seconds (open-telemetry/opentelemetry-python#4044).
OTEL_EXPORTER_OTLP_TRACES_TIMEOUT = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
OTEL_EXPORTER_OTLP_TIMEOUT = "OTEL_EXPORTER_OTLP_TIMEOUT"

# Compression: "gzip" or "none". gotel reads these itself because the gRPC exporter of
# opentelemetry-python rejects the specified value "none" at construction.
OTEL_EXPORTER_OTLP_TRACES_COMPRESSION = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"
OTEL_EXPORTER_OTLP_COMPRESSION = "OTEL_EXPORTER_OTLP_COMPRESSION"

# Read by the opentelemetry-python exporters themselves (named here for reference and tests):
# endpoint, headers, certificates, insecure.
OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
