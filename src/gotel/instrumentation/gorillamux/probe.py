"""gorilla/mux route instrumentation: the matched route's path template, for the net/http
server span.

The probe makes no spans of its own: it puts the template into shared_http_routes, which the
net/http server probe reads when the request ends (route.bpf.c says where and why).
"""

from __future__ import annotations

from gotel.instrumentation.common import route_probe
from gotel.instrumentation.probe import Hook, StructField

MODULE = "github.com/gorilla/mux"
FIELDS = (
    StructField(f"{MODULE}.Route", "err", "off_route_err", MODULE),
    StructField(f"{MODULE}.Route", "routeConf", "off_route_route_conf", MODULE),
    StructField(f"{MODULE}.routeConf", "regexp", "off_route_conf_regexp", MODULE),
    StructField(f"{MODULE}.routeRegexpGroup", "path", "off_regexp_group_path", MODULE),
    StructField(f"{MODULE}.routeRegexp", "template", "off_route_regexp_template", MODULE),
)


HOOK = Hook(f"{MODULE}.requestWithRoute", entry="request_with_route_entry")
ROUTE = route_probe("gorilla/mux", MODULE, __file__, HOOK, FIELDS)

PROBES = (ROUTE,)
