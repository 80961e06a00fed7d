"""gin routes, end to end: tests/apps/ginapp under real gotel, real BPF.

The net/http SERVER span of a request gin routed is named `METHOD route` and carries
`http.route`, the route's template with its groups' prefixes (c.FullPath), never the raw
path; a 404 has no route. Two gin releases, stripped (offsets from gotel's database) and not.
"""

from __future__ import annotations

import pytest
from routers import assert_named_by_route, router_binary, server_spans_of

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
    binary = router_binary("ginapp", probe.MODULE, version, PINNED, stripped)
    spans = server_spans_of(binary, probe.ROUTE.name, [r[:3] for r in REQUESTS], tmp_path,
                            servers, gotels)
    assert_named_by_route(spans, REQUESTS)
