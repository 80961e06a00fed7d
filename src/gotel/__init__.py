"""gotel: zero-code OpenTelemetry for Go programs, powered by eBPF."""

__version__ = "0.1.0"
