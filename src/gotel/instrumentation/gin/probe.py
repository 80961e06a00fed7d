"""gin routes: a hook whose only product is the request's route in shared_http_routes.

The net/http server span takes `http.route` and its name from it; this probe emits no events
(its object has no events ring), so `describe` never runs.
"""

from __future__ import annotations

from gotel.instrumentation.common import route_probe
from gotel.instrumentation.probe import Hook, StructField

MODULE = "github.com/gin-gonic/gin"
FIELDS = (
    # getValue's result comes back in registers: these offsets say which (route.bpf.c).
    StructField(f"{MODULE}.nodeValue", "handlers", "off_node_value_handlers", MODULE),
    StructField(f"{MODULE}.nodeValue", "fullPath", "off_node_value_full_path", MODULE),
)


HOOK = Hook(f"{MODULE}.(*node).getValue", returns="get_value_return")
ROUTE = route_probe("gin", MODULE, __file__, HOOK, FIELDS)

PROBES = (ROUTE,)
