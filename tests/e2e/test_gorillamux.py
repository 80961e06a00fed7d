"""gorilla/mux routes on net/http server spans, end to end: tests/apps/muxapp, real BPF.

A request through two nested subrouters is named by its whole path template, a plain route by
its own, a 404 by its method alone. Built against both releases of the last years (v1.8.0 and
v1.8.1), stripped (offsets from gotel's database) and not.
"""

from __future__ import annotations

import pytest
from routers import check_routes, router_binary

from gotel.instrumentation.gorillamux import probe

pytestmark = pytest.mark.usefixtures("require_root")

MODULE = probe.MODULE
APP_NAME = "muxapp"
PINNED = "v1.8.1"  # tests/apps/muxapp/go.mod
OLDER = "v1.8.0"
# path -> (span name, http.route); None: no route.
ROUTES = {
    "/api/v1/users/42": ("GET /api/v1/users/{id}", "/api/v1/users/{id}"),
    "/health": ("GET /health", "/health"),
    "/nope": ("GET", None),
}


@pytest.mark.parametrize(("version", "stripped"), [
    (PINNED, False), (PINNED, True), (OLDER, False), (OLDER, True),
])
def test_server_spans_are_named_by_the_mux_path_template(version, stripped, tmp_path,
                                                         servers, gotels):
    binary = router_binary(APP_NAME, MODULE, version, PINNED, stripped)
    check_routes(binary, ROUTES, probe.ROUTE.name, tmp_path, servers, gotels)
