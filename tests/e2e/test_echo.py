"""echo routes, end to end: tests/apps/echoapp under real gotel, real BPF.

The net/http SERVER span of a request echo routed is named `METHOD route` and carries
`http.route`, the route's template with its groups' prefixes (c.Path), never the raw
path; a 404 or 405 has none, though echo gives its handlers for those the path of the closest
node. Two echo releases, stripped (offsets from gotel's database) and not.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from routers import assert_named_by_route, build_router_app, router_binary, server_spans_of

from gotel.instrumentation.echo import probe
from gotools import go_binary

pytestmark = pytest.mark.usefixtures("require_root")

PINNED = "v4.16.6"  # tests/apps/echoapp/go.mod
OLDER = "v4.11.4"

# method, path, status, the route (None: none)
REQUESTS = [
    ("GET", "/api/v1/users/42", 200, "/api/v1/users/:id"),
    ("GET", "/health", 200, "/health"),
    ("GET", "/api/v1/files/a/b.txt", 200, "/api/v1/files/*"),
    ("POST", "/api/v1/users", 201, "/api/v1/users"),
    ("GET", "/no/such/page", 404, None),
    ("DELETE", "/api/v1/users/7", 405, None),  # the path matched, the method did not
    ("GET", "/api/v1/users/9", 200, "/api/v1/users/:id"),  # after a miss on the connection
]


@pytest.mark.parametrize(("version", "stripped"), [
    (PINNED, False), (PINNED, True), (OLDER, False), (OLDER, True),
])
def test_server_span_is_named_after_the_matched_route_and_a_404_has_none(
        version, stripped, tmp_path, servers, gotels):
    binary = router_binary("echoapp", probe.MODULE, version, PINNED, stripped)
    spans = server_spans_of(binary, probe.ROUTE.name, [r[:3] for r in REQUESTS], tmp_path,
                            servers, gotels)
    assert_named_by_route(spans, REQUESTS)


def spilled_context_slots(binary: Path) -> set[str]:
    """Registers (*Router).Find stores into the spill slot of c's data word (route.bpf.c reads
    it back at the RET): entry SP + 56, i.e. frame size + 8 (saved BP) + 56 from SP."""
    listing = subprocess.run(
        [go_binary(), "tool", "objdump", "-s", r"echo/v4\.\(\*Router\)\.Find$", str(binary)],
        check=True, capture_output=True, text=True).stdout
    frame = re.search(r"SUBQ \$(0x[0-9a-f]+), SP", listing)
    assert frame, "no frame set-up in (*Router).Find"
    slot = hex(int(frame.group(1), 16) + 8 + 56)
    return set(re.findall(rf"MOVQ (\w+), {slot}\(SP\)", listing))


@pytest.mark.parametrize("version", [PINNED, OLDER])
def test_find_spills_its_context_argument_where_the_probe_reads_it(version):
    # Only ever R9, c's data word as passed: the slot holds c at every RET.
    assert spilled_context_slots(build_router_app("echoapp", probe.MODULE, version, PINNED)) \
        == {"R9"}
