"""chi routes on net/http server spans, end to end: tests/apps/chiapp, real BPF.

A request through two Mount-ed sub-routers and a Route group is named by its whole pattern,
a plain route by its own, a 404 by its method alone. Built against two chi releases (the
oldest and newest of the last three years), stripped (offsets from gotel's database) and not.
"""

from __future__ import annotations

import pytest
from routers import check_routes, router_binary

from gotel.instrumentation.chi import probe

pytestmark = pytest.mark.usefixtures("require_root")

MODULE = probe.MODULE
APP_NAME = "chiapp"
PINNED = "v5.5.0"  # tests/apps/chiapp/go.mod
OLDER = "v5.0.11"  # before chi called RoutePattern itself, or set Request.Pattern
# path -> (span name, http.route); None: no route.
ROUTES = {
    "/api/v1/users/42": ("GET /api/v1/users/{id}", "/api/v1/users/{id}"),
    "/api/v1/users/42/posts/7": ("GET /api/v1/users/{id}/posts/{post}",
                                 "/api/v1/users/{id}/posts/{post}"),
    "/health": ("GET /health", "/health"),
    "/nope": ("GET", None),
}


@pytest.mark.parametrize(("version", "stripped"), [
    (PINNED, False), (PINNED, True), (OLDER, False), (OLDER, True),
])
def test_server_spans_are_named_by_the_full_chi_pattern(version, stripped, tmp_path,
                                                        servers, gotels):
    binary = router_binary(APP_NAME, MODULE, version, PINNED, stripped)
    check_routes(binary, ROUTES, probe.ROUTE.name, tmp_path, servers, gotels)
