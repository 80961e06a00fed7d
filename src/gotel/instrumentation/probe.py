"""A probe as data: what to hook, which offsets to fill, how an event becomes a span.

Each instrumented library's folder declares its probes with these types; the
generic core (planning, loading, reading) drives any of them the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gotel.instrumentation.metric import Metric
from gotel.offsets.fields import STD, StructField
from gotel.trace import SpanData

__all__ = ["STD", "Describe", "Event", "Hook", "Probe", "StructField", "object_path"]

if TYPE_CHECKING:
    from gotel.goelf import GoBinary

Event = Mapping[str, Any]
Describe = Callable[[Event], "SpanData | None"]


@dataclass(frozen=True)
class Hook:
    """A function to probe: a program at its entry and/or one at each of its RETs."""

    symbol: str
    entry: str | None = None
    returns: str | None = None
    # An optional hook adds detail (or serves a feature) but the probe works without it.
    optional: bool = False


@dataclass(frozen=True)
class Probe:
    name: str  # "net/http server"
    module: str  # module whose presence (and version) enables the probe
    bpf_object: Path
    hooks: tuple[Hook, ...]
    fields: tuple[StructField, ...]
    event: str  # C struct name of the event the object emits
    # What span an event makes (None: none); ids and times come from its span fields.
    describe: Callable[[Event], SpanData | None]
    scope: str  # instrumentation scope of its spans, e.g. "gotel/net/http"
    min_go: str = "1.21"
    # How trace context crosses the process boundary, for `gotel inspect`.
    context_in: str = ""  # e.g. "traceparent request header (read-only)"
    context_out: str = ""  # e.g. "traceparent inserted at the socket layer"
    # Feature constants derived from which optional fields resolved (const -> offset).
    features: Callable[[Mapping[str, int]], dict[str, int]] = field(default=lambda _: {})
    # Constants derived from the modules linked into the binary (module path -> version).
    module_constants: Callable[[Mapping[str, str]], dict[str, int]] = field(
        default=lambda _: {}
    )
    # Constants read from the binary itself, e.g. the file address of a function the BPF code
    # compares code pointers with.
    binary_constants: Callable[[GoBinary], dict[str, int]] = field(default=lambda _: {})
    # For a probe whose events carry code addresses: makes, for one binary, the describe its
    # events get instead of `describe` (it may name the functions at those addresses).
    binary_describe: Callable[[GoBinary], Describe] | None = None
    # The RED histogram its object aggregates in the kernel (include/red_metrics.h), if any.
    metric: Metric | None = None


def object_path(package_file: str, name: str) -> Path:
    """The compiled BPF object beside a probe's source (built by `make bpf`)."""
    return Path(package_file).resolve().parent / name
