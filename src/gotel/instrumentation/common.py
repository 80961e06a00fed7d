"""Struct fields every probe that takes part in span parenting needs (see include/*.h)."""

from __future__ import annotations

from gotel.instrumentation.probe import Event, Hook, Probe, StructField, object_path
from gotel.trace import SpanData

GOROUTINE_FIELDS = (
    StructField("runtime.g", "goid", "off_g_goid"),
    StructField("runtime.g", "parentGoid", "off_g_parent_goid", required=False),
)

# Every context type with a parent (cancelCtx, valueCtx, timerCtx, ...) embeds it first.
CONTEXT_FIELDS = (
    StructField("context.cancelCtx", "Context", "off_context_parent", required=False),
)


def _no_span(_event: Event) -> SpanData | None:
    return None  # never called: a route probe's object has no events ring


def route_probe(library: str, module: str, package_file: str, hook: Hook,
                fields: tuple[StructField, ...]) -> Probe:
    """A router's probe: its object only puts the request's matched route into
    shared_http_routes (include/http_route.h) for the net/http server span; it makes no
    spans and emits no events."""
    return Probe(
        name=f"{library} route",
        module=module,
        bpf_object=object_path(package_file, "route.bpf.o"),
        hooks=(hook,),
        fields=(*GOROUTINE_FIELDS, *fields),
        event="http_route",  # the value type of shared_http_routes: in BTF, never emitted
        describe=_no_span,
        scope=f"gotel/{module}",
        context_in="none (http.route for the net/http server span)",
        context_out="none",
    )
