"""gin routes: a hook whose only product is the request's route in shared_http_routes.

The net/http server span takes `http.route` and its name from it; this probe emits no events
(its object has no events ring), so `describe` never runs.
"""

from __future__ import annotations

from gotel.instrumentation.common import GOROUTINE_FIELDS
from gotel.instrumentation.probe import Event, Hook, Probe, StructField, object_path
from gotel.trace import SpanData

MODULE = "github.com/gin-gonic/gin"
SCOPE = "gotel/github.com/gin-gonic/gin"

FIELDS = (
    *GOROUTINE_FIELDS,
    # getValue's result comes back in registers: these offsets say which (route.bpf.c).
    StructField(f"{MODULE}.nodeValue", "handlers", "off_node_value_handlers", MODULE),
    StructField(f"{MODULE}.nodeValue", "fullPath", "off_node_value_full_path", MODULE),
)


def no_span(event: Event) -> SpanData | None:
    """Never called: the probe's record is a route in a shared map, not an event."""
    return None


ROUTE = Probe(
    name="gin route",
    module=MODULE,
    bpf_object=object_path(__file__, "route.bpf.o"),
    hooks=(Hook(f"{MODULE}.(*node).getValue", returns="get_value_return"),),
    fields=FIELDS,
    # The struct it fills (the value type of shared_http_routes); never sent as an event.
    event="http_route",
    describe=no_span,
    scope=SCOPE,
    context_in="none (http.route for the net/http server span)",
    context_out="none",
)

PROBES = (ROUTE,)
