"""gin routes, end to end: tests/apps/ginapp under real gotel, real BPF.

The net/http SERVER span of a request gin routed is named `METHOD route` and carries
`http.route`, the route's template with its groups' prefixes (c.FullPath), never the raw
path; a 404 has no route. Two gin releases, stripped (offsets from gotel's database) and not.
"""

from __future__ import annotations

import pytest
from routers import build_router_app, server_spans_of

from gotel.goelf import open_binary
from gotel.instrumentation.gin import probe

pytestmark = pytest.mark.usefixtures("require_root")

PINNED = "v1.12.0"  # tests/apps/ginapp/go.mod
OLDER = "v1.10.0"

# method, path, status, the route (None: none)
REQUESTS = [
    ("GET", "/api/v1/users/42", 200, "/api/v1/users/:id"),
    ("GET", "/health", 200, "/health"),
    ("GET", "/api/v1/files/a/b.txt", 200, "/api/v1/files/*path"),
    ("POST", "/api/v1/users", 201, "/api/v1/users"),
    ("GET", "/no/such/page", 404, None),
    ("DELETE", "/api/v1/users/7", 404, None),  # no DELETE route at all: no lookup
    ("GET", "/api/v1/users/9", 200, "/api/v1/users/:id"),  # after a miss on the connection
]


@pytest.mark.parametrize(("version", "stripped"), [
    (PINNED, False), (PINNED, True), (OLDER, False), (OLDER, True),
])
def test_server_span_is_named_after_the_matched_route_and_a_404_has_none(
        version, stripped, tmp_path, servers, gotels):
    binary = build_router_app("ginapp", probe.MODULE, version, PINNED, stripped=stripped)
    with open_binary(binary) as b:
        assert b.has_dwarf != stripped
        assert b.modules[probe.MODULE] == version
    spans = server_spans_of(binary, probe.ROUTE.name, [r[:3] for r in REQUESTS], tmp_path,
                            servers, gotels)
    for method, path, status, route in REQUESTS:
        span = spans[path]
        assert span["attributes"]["http.response.status_code"] == status
        if route is None:
            assert span["name"] == method, span
            assert "http.route" not in span["attributes"], span
        else:
            assert span["name"] == f"{method} {route}", span
            assert span["attributes"]["http.route"] == route
