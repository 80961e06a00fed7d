"""One socket injector per cgroup, kept a while after its last target: a target that comes
back (a restart, a re-attach) finds it loaded; the agent's end closes it."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import GoServer
from gotel.config import make_config
from gotel.instrumentation.registry import all_probes
from gotel.instrumentation.sockinject.extension import TraceparentOut
from gotel.supervisor import Supervisor
from gotel.target import process_from_pid
from gotools import build_app

pytestmark = pytest.mark.usefixtures("require_root")


def own_program_ids() -> set[int]:
    found = set()
    for entry in Path("/proc/self/fdinfo").iterdir():
        try:
            if m := re.search(r"^prog_id:\s+(\d+)", entry.read_text(), re.M):
                found.add(int(m.group(1)))
        except OSError:
            continue
    return found


def chain(a: GoServer) -> str:
    """What B answers A's call with: the traceparent it received."""
    with urllib.request.urlopen(f"{a.url}/chain", timeout=10) as response:
        return response.read().decode()


@pytest.fixture
def agent(servers) -> Iterator[tuple[Supervisor, TraceparentOut, GoServer]]:
    """An agent (the Supervisor API), its injector extension, and A (calls B from /chain)."""
    binary = build_app("httpserver")
    b = GoServer(binary)
    a = GoServer(binary, "-downstream", b.url)
    servers.extend([b, a])
    supervisor = Supervisor(make_config(exporter="none"), all_probes())
    [ext] = [e for e in supervisor.extensions if isinstance(e, TraceparentOut)]
    try:
        yield supervisor, ext, a
    finally:
        supervisor.close()


def test_the_injector_outlives_its_last_target_then_the_agent_closes_it(agent):
    supervisor, ext, a = agent
    try:
        supervisor.attach(process_from_pid(a.pid))
        [injector] = ext.injectors.values()
        assert injector.targets == {a.pid}
        assert re.search(r"traceparent=00-[0-9a-f]{32}-", chain(a))
        programs = set(injector.program_ids())
        assert programs and programs <= own_program_ids()

        supervisor.close_sessions()
        assert list(ext.injectors.values()) == [injector] and not injector.targets
        assert "traceparent=\n" in chain(a)  # kept, but A's messages pass untouched

        supervisor.attach(process_from_pid(a.pid))  # back: the same injector, no new load
        assert list(ext.injectors.values()) == [injector] and injector.targets == {a.pid}
        assert re.search(r"traceparent=00-[0-9a-f]{32}-", chain(a))
        assert set(injector.program_ids()) == programs
    finally:
        supervisor.close()
    assert ext.injectors == {}
    assert not programs & own_program_ids()


def test_an_injector_idle_for_longer_than_its_keep_goes(agent):
    supervisor, ext, a = agent
    ext.idle_keep_s = 0.0
    supervisor.attach(process_from_pid(a.pid))
    [injector] = ext.injectors.values()
    programs = set(injector.program_ids())
    supervisor.close_sessions()  # its last target left, and it may not wait: gone
    assert ext.injectors == {}
    assert not programs & own_program_ids()
