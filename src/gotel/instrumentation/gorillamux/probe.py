"""gorilla/mux route instrumentation: the matched route's path template, for the net/http
server span.

The probe makes no spans of its own: it puts the template into shared_http_routes, which the
net/http server probe reads when the request ends (route.bpf.c says where and why).
"""

from __future__ import annotations

from gotel.instrumentation.common import GOROUTINE_FIELDS
from gotel.instrumentation.probe import Event, Hook, Probe, StructField, object_path
from gotel.trace import SpanData

MODULE = "github.com/gorilla/mux"
SCOPE = "gotel/github.com/gorilla/mux"

FIELDS = (
    *GOROUTINE_FIELDS,
    StructField(f"{MODULE}.Route", "err", "off_route_err", MODULE),
    StructField(f"{MODULE}.Route", "routeConf", "off_route_route_conf", MODULE),
    StructField(f"{MODULE}.routeConf", "regexp", "off_route_conf_regexp", MODULE),
    StructField(f"{MODULE}.routeRegexpGroup", "path", "off_regexp_group_path", MODULE),
    StructField(f"{MODULE}.routeRegexp", "template", "off_route_regexp_template", MODULE),
)


def no_span(_event: Event) -> SpanData | None:
    """The object never emits an event (its layout exists because the loader needs one)."""
    return None


ROUTE = Probe(
    name="gorilla/mux route",
    module=MODULE,
    bpf_object=object_path(__file__, "route.bpf.o"),
    hooks=(Hook(f"{MODULE}.requestWithRoute", entry="request_with_route_entry"),),
    fields=FIELDS,
    event="http_route",  # no events ring: nothing is emitted, only shared_http_routes
    describe=no_span,
    scope=SCOPE,
    context_in="none (the route goes to the net/http server span)",
    context_out="none",
)

PROBES = (ROUTE,)
