"""chi v5 route instrumentation: the matched route pattern, for the net/http server span.

The probe makes no spans of its own: it puts the route into shared_http_routes, which the
net/http server probe reads when the request ends (route.bpf.c says where and why).
"""

from __future__ import annotations

from gotel.instrumentation.common import route_probe
from gotel.instrumentation.probe import Hook, StructField

MODULE = "github.com/go-chi/chi/v5"
FIELDS = (
    StructField(f"{MODULE}.Context", "RoutePatterns", "off_context_route_patterns", MODULE),
)


HOOK = Hook(f"{MODULE}.(*node).FindRoute", returns="find_route_return")
ROUTE = route_probe("chi", MODULE, __file__, HOOK, FIELDS)

PROBES = (ROUTE,)
