"""chi v5 route instrumentation: the matched route pattern, for the net/http server span.

The probe makes no spans of its own: it puts the route into shared_http_routes, which the
net/http server probe reads when the request ends (route.bpf.c says where and why).
"""

from __future__ import annotations

from gotel.instrumentation.common import GOROUTINE_FIELDS
from gotel.instrumentation.probe import Event, Hook, Probe, StructField, object_path
from gotel.trace import SpanData

MODULE = "github.com/go-chi/chi/v5"
SCOPE = "gotel/github.com/go-chi/chi/v5"

FIELDS = (
    *GOROUTINE_FIELDS,
    StructField(f"{MODULE}.Context", "RoutePatterns", "off_context_route_patterns", MODULE),
)


def no_span(_event: Event) -> SpanData | None:
    """The object never emits an event (its layout exists because the loader needs one)."""
    return None


ROUTE = Probe(
    name="chi route",
    module=MODULE,
    bpf_object=object_path(__file__, "route.bpf.o"),
    hooks=(Hook(f"{MODULE}.(*node).FindRoute", returns="find_route_return"),),
    fields=FIELDS,
    event="http_route",  # no events ring: nothing is emitted, only shared_http_routes
    describe=no_span,
    scope=SCOPE,
    context_in="none (the route goes to the net/http server span)",
    context_out="none",
)

PROBES = (ROUTE,)
