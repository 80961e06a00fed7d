"""SocketInjector against real Go clients: every byte of every request checked.

tests/apps/injectcheck's client records what it writes on each connection and compares it
with the server's echo of each request; the only difference allowed is one traceparent line
right after the request line. A test uprobe (sockinject_setter.bpf.c) on
net/http.(*Request).write stands in for gotel's client probe: it fills shared_outgoing with
random ids and reports them with the request's path, so each inserted header is matched
with the ids set for its own request.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gotel.ebpf import BpfObject
from gotel.ebpf.cgroup import cgroup2_mounts
from gotel.errors import TargetError
from gotel.goelf import open_binary
from gotel.instrumentation.sockinject import SocketInjector
from gotools import REPO, build_app

HERE = Path(__file__).resolve().parent
SETTER_SOURCE = HERE / "sockinject_setter.bpf.c"
INCLUDE = REPO / "src" / "gotel" / "instrumentation"
WRITE_SYMBOL = "net/http.(*Request).write"
FAILURES = ("pull_failed", "push_failed", "write_failed", "dropped", "stale_context")
_BPF_FD = re.compile(r"anon_inode:(bpf[-_].*|btf|\[perf_event\])")

pytestmark = pytest.mark.usefixtures("require_root")


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def injectcheck() -> Path:
    return build_app("injectcheck")


@pytest.fixture(scope="module")
def setter_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clang = shutil.which("clang")
    assert clang, "clang not found: install clang to compile the test uprobe"
    out = tmp_path_factory.mktemp("sockinject") / "setter.bpf.o"
    cmd = [clang, "-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-Wpadded", f"-I{INCLUDE}",
           "-I/usr/include/x86_64-linux-gnu", "-c", str(SETTER_SOURCE), "-o", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"compiling the test uprobe failed:\n{result.stderr}"
    return out


@pytest.fixture(scope="module")
def probe_site(injectcheck: Path) -> dict[str, int]:
    """Where the test uprobe goes and the offsets it reads through."""
    offsets = json.loads(subprocess.check_output([str(injectcheck), "offsets"]))
    with open_binary(injectcheck) as binary:
        fn = binary.function(WRITE_SYMBOL)
    assert fn is not None, f"{WRITE_SYMBOL} not in {injectcheck}"
    return {"file_offset": fn.file_offset, **offsets}


@pytest.fixture(scope="module")
def server(injectcheck: Path) -> Iterator[dict[str, str]]:
    proc = subprocess.Popen(
        [str(injectcheck), "server", "-tls-addr", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    addresses = dict(proc.stdout.readline().split(" on ") for _ in range(2))
    yield {"http": "http://" + addresses["listening"].strip(),
           "https": "https://" + addresses["tls"].strip()}
    proc.kill()
    proc.wait()


@pytest.fixture
def cgroup() -> Iterator[Path]:
    """A fresh cgroup v2 for the clients, so that sockops sees nobody else's sockets."""
    mount = next((point for root, point in cgroup2_mounts() if root == "/"), None)
    assert mount is not None, "no cgroup2 mount of the hierarchy's root"
    path = mount / f"gotel-sockinject-{os.getpid()}"
    path.mkdir()
    yield path
    for _ in range(100):  # the clients' exit is asynchronous
        try:
            path.rmdir()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"cgroup {path} still busy")


@pytest.fixture
def clients(injectcheck: Path, server: dict[str, str], cgroup: Path) -> Iterator[Any]:
    started: list[Client] = []

    def start(scheme: str = "http") -> Client:
        started.append(Client(injectcheck, server[scheme], cgroup))
        return started[-1]

    yield start
    for client in started:
        client.close()


@pytest.fixture(autouse=True)
def _no_bpf_fd_left() -> Iterator[None]:
    before = set(bpf_fds())
    yield
    leaked = sorted(set(bpf_fds()) - before)
    assert not leaked, f"BPF file descriptors left open: {leaked}"


# --- helpers -------------------------------------------------------------------------------


def bpf_fds() -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            continue
        if _BPF_FD.fullmatch(target):
            found.append(f"{fd} -> {target}")
    return found


class Client:
    """An injectcheck client in the test cgroup, driven one JSON command at a time."""

    def __init__(self, binary: Path, url: str, cgroup: Path) -> None:
        self.proc = subprocess.Popen(
            [str(binary), "client", "-url", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid
        # Before its first socket: a socket belongs to the cgroup it was created in.
        (cgroup / "cgroup.procs").write_text(str(self.pid))
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._line(10) == "ready"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())

    def _line(self, timeout: float) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"client {self.pid}: no answer in {timeout}s") from None

    def run(self, timeout: float = 240, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._line(timeout))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Setter:
    """The test uprobe: fills shared_outgoing for Request.write and reports the ids."""

    def __init__(self, path: Path, site: dict[str, int], binary: Path, pid: int,
                 outgoing_fd: int | None = None) -> None:
        self.obj = BpfObject(path)
        try:
            self.obj.set_constants(
                {"off_request_url": site["request_url"], "off_url_path": site["url_path"]}
            )
            if outgoing_fd is not None:
                self.obj.reuse_map("shared_outgoing", outgoing_fd)
            self.obj.load()
            self.ring = self.obj.ring_buffer("events")
            self.decode = self.obj.struct_layout("set_event").decoder()
            self.obj.attach_uprobe("request_write", binary, site["file_offset"], pid)
        except BaseException:
            self.obj.close()
            raise
        self.sets: dict[str, str] = {}

    def outgoing_fd(self) -> int:
        return self.obj.map_fd("shared_outgoing")

    def ids_by_path(self) -> dict[str, str]:
        """path -> "trace-span-flags" of the last ids set for it (a stack growth restarts
        Request.write: its entry can run twice for one request)."""
        for record in self.ring.drain():
            e = self.decode(record)
            path = e["path"][: e["path_len"]].decode()
            self.sets[path] = f"{e['trace_id'].hex()}-{e['span_id'].hex()}-{e['flags']:02x}"
        return self.sets

    def close(self) -> None:
        self.obj.close()


@pytest.fixture
def attach(setter_object: Path, probe_site: dict[str, int], injectcheck: Path) -> Iterator[Any]:
    """attach(pid) -> (injector, setter), both closed after the test."""
    opened: list[Any] = []

    def start(pid: int, uprobe_pid: int | None = None, **options: Any) -> tuple[Any, Setter]:
        injector = SocketInjector(pid, **options)
        opened.append(injector)
        setter = Setter(setter_object, probe_site, injectcheck,
                        pid if uprobe_pid is None else uprobe_pid, injector.outgoing_map_fd())
        opened.append(setter)
        injector.attach()
        return injector, setter

    yield start
    for thing in reversed(opened):
        thing.close()


def assert_clean(result: dict[str, Any]) -> None:
    """Every echo matched the bytes sent, all requests answered, nothing left over."""
    problems = {k: result[k] for k in ("corrupted", "errors", "unverified", "unexpected",
                                       "leftover_bytes") if result[k]}
    assert not problems, f"{problems}: {result.get('samples')}"
    assert result["verified"] == result["requests"]


def programs_gone(ids: list[int], timeout: float = 10) -> bool:
    """Programs are freed after an RCU grace period and deferred work: poll."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [i for i in ids if subprocess.run(
            ["bpftool", "prog", "show", "id", str(i)], capture_output=True, check=False
        ).returncode == 0]
        if not alive:
            return True
        time.sleep(0.1)
    return False


# --- tests ---------------------------------------------------------------------------------


def test_ten_thousand_requests_byte_exact_with_their_own_ids(clients: Any, attach: Any) -> None:
    client = clients()
    injector, setter = attach(client.pid)
    result = client.run(n=10_000, c=8, expect="inject", own_every=7, close_every=13,
                        long_url_every=97, big_header_every=89, ids=True, seed=1)
    assert_clean(result)
    assert result["injected"] > 7_500 and len(result["ids"]) == result["injected"]
    sets = setter.ids_by_path()
    wrong = {p: (ids, sets.get(p)) for p, ids in result["ids"].items() if sets.get(p) != ids}
    assert not wrong, f"{len(wrong)} headers carry ids not set for their request: " \
        f"{list(wrong.items())[:3]}"
    reasons = injector.reasons()
    assert reasons["injected"] == result["injected"]
    # One decision per request: the untouched ones were all refused for a stated reason.
    refused = reasons["has_traceparent"] + reasons["too_long"] + reasons["headers_incomplete"]
    assert refused == result["untouched"], reasons
    assert reasons["has_traceparent"] >= 1 and reasons["too_long"] >= 1
    assert reasons["headers_incomplete"] >= 1
    assert all(reasons[name] == 0 for name in (*FAILURES, "tls", "not_http1", "not_target"))


def test_connection_opened_before_attach_gets_headers(
    clients: Any, setter_object: Path, probe_site: dict[str, int], injectcheck: Path
) -> None:
    client = clients()
    before = client.run(n=3, c=1, expect="none")  # one keep-alive connection, idle now
    assert_clean(before)
    assert before["new_conns"] == 1
    # This time the uprobe's object owns shared_outgoing and the injector reuses it.
    setter = Setter(setter_object, probe_site, injectcheck, client.pid)
    injector = SocketInjector(client.pid, shared_outgoing_fd=setter.outgoing_fd())
    try:
        injector.attach()
        assert injector.existing_sockets == 1
        after = client.run(n=200, c=1, expect="inject", ids=True)
        assert_clean(after)
        assert after["new_conns"] == 0, "the old connection should have been reused"
        assert after["injected"] == 200
        sets = setter.ids_by_path()
        assert all(sets[path] == ids for path, ids in after["ids"].items())
    finally:
        injector.close()
        setter.close()


def test_requests_with_their_own_traceparent_are_untouched(clients: Any, attach: Any) -> None:
    client = clients()
    injector, _ = attach(client.pid)
    result = client.run(n=600, c=4, own_every=1, close_every=9)
    assert_clean(result)
    assert result["own_traceparent"] == 600 and result["untouched"] == 600
    assert injector.reasons()["has_traceparent"] == 600
    assert injector.reasons()["injected"] == 0


def test_other_process_in_the_same_cgroup_is_untouched(clients: Any, attach: Any) -> None:
    target, other = clients(), clients()
    # The uprobe fires in every process: the other one has contexts in the map too.
    injector, _ = attach(target.pid, uprobe_pid=-1)
    result = other.run(n=400, c=4, close_every=5, expect="none")
    assert_clean(result)
    assert injector.reasons()["not_target"] == 0, "its sockets entered the socket map"
    # Even a socket of the other process in the map (as if it had been passed to it) is
    # left alone by the sk_msg program.
    assert injector.add_open_sockets(other.pid) >= 1
    result = other.run(n=200, c=1, expect="none")
    assert_clean(result)
    assert result["new_conns"] == 0 and result["untouched"] == 200
    reasons = injector.reasons()
    assert reasons["not_target"] >= 200 and reasons["injected"] == 0
    assert_clean(target.run(n=100, c=2, expect="inject"))  # meanwhile the target is served
    assert injector.reasons()["injected"] == 100


def test_close_leaves_no_program_and_connections_byte_identical(
    clients: Any, attach: Any
) -> None:
    client = clients()
    injector, _ = attach(client.pid)
    during = client.run(n=300, c=4, expect="inject")
    assert_clean(during)
    assert during["injected"] == 300
    ids = injector.program_ids()
    assert len(ids) == 2
    injector.close()
    final = injector.reasons()
    # The uprobe still fills shared_outgoing: nothing may act on it any more.
    after = client.run(n=500, c=4, expect="none")
    assert_clean(after)
    assert after["new_conns"] == 0, "the connections that were in the socket map are reused"
    assert after["untouched"] == 500
    assert injector.reasons() == final, "counters moved after close()"
    assert programs_gone(ids), f"programs {ids} still loaded (held by a socket?)"
    injector.close()  # idempotent


def test_tls_records_are_untouched(clients: Any, attach: Any) -> None:
    client = clients("https")
    injector, _ = attach(client.pid)
    result = client.run(n=300, c=4, close_every=7, expect="none")
    assert_clean(result)
    assert result["untouched"] == 300
    reasons = injector.reasons()
    assert reasons["tls"] == 300, reasons  # each request's first write is a TLS record
    assert reasons["injected"] == 0


def test_stale_context_is_not_used(clients: Any, attach: Any) -> None:
    client = clients()
    injector, _ = attach(client.pid, max_context_age_ns=0)
    result = client.run(n=100, c=2, expect="none")
    assert_clean(result)
    assert injector.reasons()["stale_context"] == 100


def test_attach_to_a_gone_process_is_one_line(injectcheck: Path) -> None:
    proc = subprocess.Popen([str(injectcheck), "offsets"], stdout=subprocess.DEVNULL)
    proc.wait()
    injector = SocketInjector(proc.pid)
    with pytest.raises(TargetError, match=rf"process {proc.pid}: not running") as err:
        injector.attach()
    assert "\n" not in str(err.value)
    injector.close()
