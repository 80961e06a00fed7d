"""Spans started by hand with the OpenTelemetry Go API (go.opentelemetry.io/otel), bridged."""
