"""The agent's pool of loaded objects on real binaries' plans: one object per probe and
constants (a stripped copy shares its unstripped build's), agent-wide maps made once, idle
objects bounded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gotel.goelf import open_binary
from gotel.instrumentation.nethttp.probe import SERVER
from gotel.planning import ProbePlan, plan_probe
from gotel.shared_objects import ObjectPool
from gotools import build_app

pytestmark = pytest.mark.usefixtures("require_root")


def server_plan(binary: Path) -> ProbePlan:
    with open_binary(binary) as opened:
        plan = plan_probe(opened, SERVER)
    assert plan.applies, plan.skip_reason
    return plan


def map_id(fd: int) -> int:
    text = Path(f"/proc/self/fdinfo/{fd}").read_text()
    found = re.search(r"^map_id:\s+(\d+)", text, re.M)
    assert found, text
    return int(found.group(1))


def test_one_object_per_constants_and_agent_maps_made_once():
    newest = server_plan(build_app("httpserver"))
    stripped = server_plan(build_app("httpserver", stripped=True))
    older = server_plan(build_app("httpserver", toolchain="go1.21.13"))
    assert stripped.constants == newest.constants  # the offsets database agrees with DWARF
    assert older.constants != newest.constants
    pool = ObjectPool(ring_buffer_bytes=1 << 20)
    try:
        a, b, c = (pool.acquire(p) for p in (newest, stripped, older))
        assert a is b and a is not c
        assert pool.counts() == (2, 0)
        name = "shared_goroutine_spans"
        assert map_id(a.obj.map_fd(name)) == map_id(c.obj.map_fd(name)) \
            == map_id(pool.maps[name].fd)
        assert pool.maps[name].per_process
        assert "server_requests" in a.process_maps and name not in a.process_maps
    finally:
        pool.close()
    assert not pool.objects and not pool.maps


def test_idle_objects_beyond_the_bound_are_closed_oldest_first():
    plans = [server_plan(build_app("httpserver", toolchain=t))
             for t in ("go1.21.13", "go1.22.12", None)]
    pool = ObjectPool(ring_buffer_bytes=1 << 20, idle_kept=2)
    try:
        first = pool.acquire(plans[0])
        assert pool.prepare(plans) == {}
        assert pool.counts() == (2, 0)
        assert first.closed and first.key not in pool.objects
    finally:
        pool.close()
