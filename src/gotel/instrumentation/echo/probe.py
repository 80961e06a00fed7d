"""echo v4 routes: a hook whose only product is the request's route in shared_http_routes.

The net/http server span takes `http.route` and its name from it; this probe emits no events
(its object has no events ring), so `describe` never runs.
"""

from __future__ import annotations

from gotel.instrumentation.common import route_probe
from gotel.instrumentation.probe import Hook, StructField

MODULE = "github.com/labstack/echo/v4"
FIELDS = (
    StructField(f"{MODULE}.context", "path", "off_context_path", MODULE),
    StructField(f"{MODULE}.context", "pnames", "off_context_pnames", MODULE),
)


HOOK = Hook(f"{MODULE}.(*Router).Find", returns="find_return")
ROUTE = route_probe("echo", MODULE, __file__, HOOK, FIELDS)

PROBES = (ROUTE,)
