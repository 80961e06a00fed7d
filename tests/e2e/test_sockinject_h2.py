"""SocketInjector on cleartext HTTP/2: traceparent fields appended to HEADERS frames.

Two parts:

* h2c against tests/apps/injectcheck's h2 server, every byte checked. The server follows
  each connection's frames, cuts off the fields the injector appends (and restores the
  frames' lengths) and hashes what is left; the client hashes what it wrote: equal hashes
  mean nothing else changed. Per stream the server answers the decoded traceparent values
  and the body's hash. The clients are Go's own HTTP/2 client, and a raw one that writes
  what Go's never does (many streams' frames per write, writes cut anywhere, PRIORITY,
  PADDED, CONTINUATION). A test uprobe (sockinject_h2_setter.bpf.c) stands in for gotel's
  client probes: it fills shared_outgoing_streams with random ids per (goroutine, stream
  id) and reports them with the request's :path.
* gRPC end to end: two tests/apps/grpcgreeter processes under one `gotel attach`, the
  client adding no metadata of its own: every server span is the child of its client
  span, across processes.
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
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import GoServer, Gotel
from gotel.ebpf import BpfObject
from gotel.ebpf.cgroup import cgroup2_mounts
from gotel.goelf import open_binary
from gotel.instrumentation.sockinject import SocketInjector
from gotools import REPO, build_app
from otlp_receiver import Receiver

HERE = Path(__file__).resolve().parent
SETTER_SOURCE = HERE / "sockinject_h2_setter.bpf.c"
INCLUDE = REPO / "src" / "gotel" / "instrumentation"
WRITE_HEADER = "net/http.(*http2ClientConn).writeHeader"
WRITE_HEADERS = "net/http.(*http2ClientConn).writeHeaders"
ANNOUNCE = "main.announce"  # injectcheck's raw HTTP/2 client, before it writes a stream
# Failures, and refusals for want of room that these tests' sends never meet.
FAILURES = (
    "pull_failed",
    "push_failed",
    "write_failed",
    "dropped",
    "h2_lost_context",
    "h2_desync",
    "h2_unsynced",
    "h2_stale_context",
    "h2_too_long",
    "h2_too_many",
    "h2_sndbuf",
)
# Every HEADERS frame with a stream context ends in exactly one of these.
STREAM_OUTCOMES = (
    "h2_injected",
    "h2_has_traceparent",
    "h2_stale_context",
    "h2_continuation",
    "h2_padded",
    "h2_frame_too_big",
    "h2_split_frame",
    "h2_too_long",
    "h2_too_many",
    "h2_sndbuf",
    "h2_lost_context",
    "pull_failed",
    "push_failed",
    "write_failed",
    "dropped",
)
_BPF_FD = re.compile(r"anon_inode:(bpf[-_].*|btf|\[perf_event\])")

pytestmark = pytest.mark.usefixtures("require_root")


# --- h2c: fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def injectcheck() -> Path:
    return build_app("injectcheck")


@pytest.fixture(scope="module")
def setter_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clang = shutil.which("clang")
    assert clang, "clang not found: install clang to compile the test uprobe"
    out = tmp_path_factory.mktemp("sockinject_h2") / "setter.bpf.o"
    cmd = [
        clang,
        "-O2",
        "-g",
        "-target",
        "bpf",
        "-Wall",
        "-Werror",
        "-Wpadded",
        f"-I{INCLUDE}",
        "-I/usr/include/x86_64-linux-gnu",
        "-c",
        str(SETTER_SOURCE),
        "-o",
        str(out),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"compiling the test uprobe failed:\n{result.stderr}"
    return out


@pytest.fixture(scope="module")
def probe_sites(injectcheck: Path) -> dict[str, int]:
    with open_binary(injectcheck) as binary:
        sites = {name: binary.function(name) for name in (WRITE_HEADER, WRITE_HEADERS, ANNOUNCE)}
    missing = [name for name, fn in sites.items() if fn is None]
    assert not missing, f"{missing} not in {injectcheck}"
    return {name: fn.file_offset for name, fn in sites.items() if fn is not None}


@pytest.fixture(scope="module")
def server(injectcheck: Path) -> Iterator[str]:
    proc = subprocess.Popen([str(injectcheck), "h2server"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on "), line
    yield "http://" + line.removeprefix("listening on ")
    proc.kill()
    proc.wait()


@pytest.fixture
def cgroup() -> Iterator[Path]:
    """A fresh cgroup v2 for the clients, so that sockops sees nobody else's sockets."""
    mount = next((point for root, point in cgroup2_mounts() if root == "/"), None)
    assert mount is not None, "no cgroup2 mount of the hierarchy's root"
    path = mount / f"gotel-sockinject-h2-{os.getpid()}"
    path.mkdir()
    yield path
    for _ in range(100):  # the clients' exit is asynchronous
        try:
            path.rmdir()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"cgroup {path} still busy")


class Client:
    """An injectcheck h2 client in the test cgroup, driven one JSON command at a time."""

    def __init__(self, binary: Path, url: str, cgroup: Path) -> None:
        self.proc = subprocess.Popen(
            [str(binary), "h2client", "-url", url],
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

    def run(self, timeout: float = 300, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"digests": True, **command}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._line(timeout))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Setter:
    """The test uprobes: fill shared_outgoing_streams per request, report the ids by path."""

    def __init__(
        self, path: Path, sites: dict[str, int], binary: Path, pid: int, streams_fd: int
    ) -> None:
        self.obj = BpfObject(path)
        try:
            self.obj.reuse_map("shared_outgoing_streams", streams_fd)
            self.obj.load()
            self.ring = self.obj.ring_buffer("events")
            self.decode = self.obj.struct_layout("set_event").decoder()
            self.obj.attach_uprobe("write_header", binary, sites[WRITE_HEADER], pid)
            self.obj.attach_uprobe("write_headers", binary, sites[WRITE_HEADERS], pid)
            self.obj.attach_uprobe("announce_stream", binary, sites[ANNOUNCE], pid)
        except BaseException:
            self.obj.close()
            raise
        self.sets: dict[str, str] = {}
        self.own: set[str] = set()

    def ids_by_path(self) -> dict[str, str]:
        """path -> "trace-span-flags" set for the request's stream."""
        for record in self.ring.drain():
            e = self.decode(record)
            path = e["path"][: e["path_len"]].decode()
            if e["own"]:
                self.own.add(path)
            self.sets[path] = f"{e['trace_id'].hex()}-{e['span_id'].hex()}-{e['flags']:02x}"
        return self.sets

    def close(self) -> None:
        self.obj.close()


@pytest.fixture
def clients(injectcheck: Path, server: str, cgroup: Path) -> Iterator[Any]:
    started: list[Client] = []

    def start() -> Client:
        started.append(Client(injectcheck, server, cgroup))
        return started[-1]

    yield start
    for client in started:
        client.close()


@pytest.fixture
def attach(setter_object: Path, probe_sites: dict[str, int], injectcheck: Path) -> Iterator[Any]:
    """attach(pid) -> (injector, setter), both closed after the test."""
    opened: list[Any] = []

    def start(pid: int, **options: Any) -> tuple[SocketInjector, Setter]:
        injector = SocketInjector(pid, **options)
        opened.append(injector)
        setter = Setter(setter_object, probe_sites, injectcheck, pid, injector.streams_map_fd())
        opened.append(setter)
        injector.attach()
        return injector, setter

    yield start
    for thing in reversed(opened):
        thing.close()


@pytest.fixture(autouse=True)
def _no_bpf_fd_left() -> Iterator[None]:
    before = set(bpf_fds())
    yield
    leaked = sorted(set(bpf_fds()) - before)
    assert not leaked, f"BPF file descriptors left open: {leaked}"


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


def assert_clean(result: dict[str, Any]) -> None:
    """Every stream verified, every connection's bytes equal to the server's view."""
    problems = {
        k: result[k] for k in ("corrupted", "errors", "unexpected", "digest_mismatch") if result[k]
    }
    assert not problems, f"{problems}: {result.get('samples')} {result.get('conns')}"
    assert result["verified"] == result["requests"]
    assert result["conns"], "no connection compared"
    assert all(c["server"]["pending"] == 0 for c in result["conns"]), result["conns"]


def programs_gone(ids: list[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [
            i
            for i in ids
            if subprocess.run(
                ["bpftool", "prog", "show", "id", str(i)], capture_output=True, check=False
            ).returncode
            == 0
        ]
        if not alive:
            return True
        time.sleep(0.1)
    return False


# --- h2c: tests ----------------------------------------------------------------------------


def test_h2c_under_load_only_the_field_is_added_with_each_streams_own_ids(
    clients: Any, attach: Any
) -> None:
    client = clients()
    injector, setter = attach(client.pid)
    result = client.run(
        n=2500, c=8, conns=2, own_every=11, big_every=13, max_body=300000, expect="inject", seed=1
    )
    assert_clean(result)
    reasons = injector.reasons()
    print(
        "h2c load:",
        {k: v for k, v in reasons.items() if v},
        {
            k: result[k]
            for k in (
                "requests",
                "injected",
                "own_traceparent",
                "big",
                "untouched",
                "new_conns",
                "elapsed_ns",
            )
        },
    )
    assert result["injected"] > 2000 and result["own_traceparent"] >= 200
    # The ids in each stream are the ones set for that stream.
    sets = setter.ids_by_path()
    wrong = {p: (ids, sets.get(p)) for p, ids in result["ids"].items() if sets.get(p) != ids}
    assert not wrong, (
        f"{len(wrong)} fields carry ids not set for their stream: {list(wrong.items())[:3]}"
    )
    # One outcome per stream; the untouched ones were refused for a stated reason.
    assert sum(reasons[k] for k in STREAM_OUTCOMES) == result["requests"], reasons
    assert reasons["h2_injected"] == result["injected"] == result["server_injected"]
    assert reasons["h2_has_traceparent"] == result["own_traceparent"] == len(setter.own)
    refused = reasons["h2_continuation"] + reasons["h2_frame_too_big"] + reasons["h2_split_frame"]
    assert refused == result["untouched"], reasons
    assert reasons["h2_continuation"] >= 1 and reasons["h2_frame_too_big"] >= 1, reasons
    # (Go's transport may dial more connections than it uses: those send nothing.)
    used = [c for c in result["conns"] if c["sent"]]
    assert reasons["h2_connection"] == len(used) >= 2, result["conns"]
    assert reasons["h2_no_context"] == 0  # no trailers, every request had its context
    assert reasons["h2_padded"] == 0  # Go's client does not pad
    assert all(reasons[name] == 0 for name in FAILURES), {k: v for k, v in reasons.items() if v}
    # HTTP/1: the client's one request for the server's digests.
    assert reasons["no_context"] == 1 and reasons["injected"] == 0, reasons


def test_h2c_streams_with_their_own_traceparent_are_untouched(clients: Any, attach: Any) -> None:
    client = clients()
    injector, _ = attach(client.pid)
    result = client.run(n=600, c=4, own_every=1, max_body=20000, seed=2)
    assert_clean(result)
    assert result["own_traceparent"] == 600 and result["injected"] == 0
    reasons = injector.reasons()
    assert reasons["h2_has_traceparent"] == 600
    assert reasons["h2_injected"] == 0 and result["server_injected"] == 0


def test_h2c_after_close_traffic_is_unmodified(clients: Any, attach: Any) -> None:
    client = clients()
    injector, _ = attach(client.pid)
    during = client.run(n=400, c=8, max_body=20000, expect="inject", seed=3)
    assert_clean(during)
    assert during["injected"] == 400
    ids = injector.program_ids()
    assert len(ids) == 2
    injector.close()
    final = injector.reasons()
    # The uprobes still fill shared_outgoing_streams: nothing may act on it any more.
    after = client.run(n=800, c=8, max_body=20000, expect="none", seed=4)
    assert_clean(after)
    assert after["new_conns"] == 0, "the connection that was in the socket map is reused"
    assert after["untouched"] == 800 and after["server_injected"] == 400
    assert injector.reasons() == final, "counters moved after close()"
    assert programs_gone(ids), f"programs {ids} still loaded (held by a socket?)"


def test_h2c_connection_opened_before_attach_is_left_alone(
    clients: Any, setter_object: Path, probe_sites: dict[str, int], injectcheck: Path
) -> None:
    """Its frames began before the injector saw them: their boundaries are unknown."""
    client = clients()
    before = client.run(n=20, c=2, expect="none", seed=5)
    assert_clean(before)
    injector = SocketInjector(client.pid)
    setter = Setter(setter_object, probe_sites, injectcheck, client.pid, injector.streams_map_fd())
    try:
        injector.attach()
        assert injector.existing_sockets >= 1
        after = client.run(n=300, c=4, expect="none", seed=6)
        assert_clean(after)
        assert after["new_conns"] == 0 and after["untouched"] == 300
        reasons = injector.reasons()
        assert reasons["h2_injected"] == 0 and reasons["h2_connection"] == 0
    finally:
        setter.close()
        injector.close()


RAW = {"mode": "raw", "priority_every": 5, "padded_every": 7, "own_every": 11}


@pytest.mark.parametrize(
    ("kind", "command"),
    [
        # Up to 48 streams' frames in one write, HEADERS frames with PRIORITY or PADDED among
        # them, some ending the write (no DATA: END_STREAM on HEADERS).
        ("packed", {**RAW, "cut": "none", "batches": 40, "streams": 48, "max_body": 300}),
        # A write per frame: every HEADERS frame is a whole send (the insertion point is the
        # send's end).
        (
            "per_frame",
            {
                **RAW,
                "cut": "frames",
                "batches": 30,
                "streams": 16,
                "max_body": 3000,
                "continuation_every": 9,
            },
        ),
        # Writes cut anywhere, inside frame headers too: frames span sends.
        (
            "cut",
            {
                **RAW,
                "cut": "random",
                "batches": 60,
                "streams": 16,
                "max_body": 3000,
                "continuation_every": 9,
            },
        ),
    ],
)
def test_h2c_frames_as_no_go_client_writes_them(
    kind: str, command: dict[str, Any], clients: Any, attach: Any
) -> None:
    client = clients()
    injector, setter = attach(client.pid)
    result = client.run(**command, seed=7)
    assert_clean(result)
    reasons = injector.reasons()
    print(
        f"raw {kind}:",
        {k: v for k, v in reasons.items() if v},
        {
            k: result[k]
            for k in (
                "requests",
                "injected",
                "own_traceparent",
                "priority",
                "padded",
                "continuation",
                "writes",
            )
        },
    )
    sets = setter.ids_by_path()
    wrong = {p: (ids, sets.get(p)) for p, ids in result["ids"].items() if sets.get(p) != ids}
    assert not wrong, list(wrong.items())[:3]
    assert sum(reasons[k] for k in STREAM_OUTCOMES) == result["requests"], reasons
    assert reasons["h2_injected"] == result["injected"] == result["server_injected"]
    assert reasons["h2_has_traceparent"] == result["own_traceparent"]
    assert reasons["h2_padded"] == result["padded"] > 0
    assert reasons["h2_continuation"] == result["continuation"]
    assert all(reasons[name] == 0 for name in FAILURES), {k: v for k, v in reasons.items() if v}
    refused = {"h2_has_traceparent", "h2_padded", "h2_continuation"}
    if kind == "cut":
        # Cut HEADERS frames are left alone; the others are rewritten.
        assert reasons["h2_split_frame"] > 0
        refused.add("h2_split_frame")
    assert result["injected"] == result["requests"] - sum(reasons[k] for k in refused)


def test_h2c_writes_larger_than_the_send_buffer_keep_the_framing(clients: Any, attach: Any) -> None:
    """~100 KiB writes through a 4 KiB SO_SNDBUF: the kernel hands the program each write in
    parts and the writes return short; frames are followed across all of it. Sends the
    send buffer could not take whole once grown are left alone (h2_sndbuf), and those
    past what is linearised (h2_too_long)."""
    client = clients()
    injector, setter = attach(client.pid)
    result = client.run(
        mode="raw",
        cut="none",
        batches=12,
        streams=24,
        max_body=8000,
        own_every=11,
        sndbuf=4096,
        seed=9,
    )
    assert_clean(result)
    reasons = injector.reasons()
    print("raw small sndbuf:", {k: v for k, v in reasons.items() if v}, result["writes"])
    assert reasons["h2_desync"] == reasons["h2_unsynced"] == 0, reasons
    assert sum(reasons[k] for k in STREAM_OUTCOMES) == result["requests"], reasons
    assert reasons["h2_injected"] == result["injected"] == result["server_injected"]
    sets = setter.ids_by_path()
    assert all(sets.get(p) == ids for p, ids in result["ids"].items())
    assert reasons["h2_sndbuf"] + reasons["h2_too_long"] > 0, reasons


def test_h2c_connection_whose_framing_is_in_doubt_is_left_alone(clients: Any, attach: Any) -> None:
    """A frame no client sends that way (a PING with its stream id's reserved bit set,
    which peers ignore): the walk cannot be trusted, nothing is rewritten from then on."""
    client = clients()
    injector, _ = attach(client.pid)
    result = client.run(
        mode="raw", cut="none", batches=20, streams=8, max_body=3000, reserved_ping_after=10, seed=8
    )
    assert_clean(result)
    assert result["injected"] == result["requests"] // 2
    reasons = injector.reasons()
    assert reasons["h2_desync"] == 1 and reasons["h2_injected"] == result["injected"]
    assert reasons["h2_unsynced"] >= 10  # the later batches' sends


# --- gRPC end to end -----------------------------------------------------------------------


def http_get(url: str, timeout: float = 120) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def start_greeters(
    servers: list[GoServer], gotel: Gotel, binary: Path
) -> tuple[GoServer, GoServer, str]:
    """A backend gRPC server and a front with the /call and /load HTTP endpoints."""
    backend = GoServer(binary)
    servers.append(backend)
    front = GoServer(binary, "-http", "127.0.0.1:0")
    servers.append(front)
    assert front.popen.stdout is not None
    http = front.popen.stdout.readline().strip()
    assert http.startswith("http on "), http
    for greeter in (backend, front):
        line = gotel.wait_for(rf"pid {greeter.pid} .*attached.*").group(0)
        assert "traceparent out: on" in line, line
        assert "grpc" not in line.partition("skipped")[2], line
    return backend, front, "http://" + http.removeprefix("http on ")


def insertion_counts(gotel: Gotel, pid: int) -> dict[str, int]:
    line = gotel.wait_for(rf"pid {pid}: traceparent insertion: .*").group(0)
    return {
        name: int(n)
        for name, n in re.findall(r"(\w+) (\d+)", line.partition(": ")[2].partition(": ")[2])
    }


def test_grpc_calls_join_their_callers_traces(servers: list[GoServer], gotels: list[Gotel]) -> None:
    binary = build_app("grpcgreeter")
    with Receiver() as receiver:
        gotel = Gotel(
            "attach",
            "--exe",
            str(binary),
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint},
        )
        gotels.append(gotel)
        gotel.wait_for("watching for processes")
        backend, front, http = start_greeters(servers, gotel, binary)
        target = urllib.parse.quote(backend.address)

        # 1. HTTP handler -> gRPC client -> gRPC server: one trace.
        body = http_get(f"{http}/call?rpc=check&target={target}")
        assert body.startswith("code=0"), body
        spans = receiver.spans(wait_for=3, timeout=20)
        assert len(spans) == 3, spans
        by = {(s["resource"]["process.pid"], s["kind"]): s for s in spans}
        http_span, client = by[(front.pid, "SERVER")], by[(front.pid, "CLIENT")]
        server = by[(backend.pid, "SERVER")]
        assert client["parent_span_id"] == http_span["span_id"]
        assert server["parent_span_id"] == client["span_id"]
        assert server["remote_parent"]
        assert {s["trace_id"] for s in spans} == {http_span["trace_id"]}

        # 2. A caller's own traceparent metadata goes out as it is, nothing added.
        external = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        body = http_get(f"{http}/call?rpc=check&target={target}&traceparent={external}")
        assert body.startswith("code=0"), body
        spans = receiver.spans(wait_for=6, timeout=20)
        adopted = [
            s
            for s in spans
            if s["resource"]["process.pid"] == backend.pid
            and s["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
        ]
        assert len(adopted) == 1 and adopted[0]["parent_span_id"] == "00f067aa0ba902b7"

        # 3. 8 concurrent callers x 500 calls over one connection: every server span is
        # its client span's child.
        calls, callers = 500, 8
        answer = json.loads(http_get(f"{http}/load?target={target}&n={calls}&c={callers}"))
        assert answer["calls"] == calls * callers and answer["failed"] == 0, answer
        total = 6 + 1 + 2 * calls * callers
        spans = receiver.spans(wait_for=total, timeout=60)
        assert gotel.stop() == 0, gotel.log
        counts = insertion_counts(gotel, front.pid)

    checks = [s for s in spans if s["name"] == "grpc.health.v1.Health/Check"]
    clients_ = {
        s["span_id"]: s
        for s in checks
        if s["resource"]["process.pid"] == front.pid and s["kind"] == "CLIENT"
    }
    servers_ = [
        s
        for s in checks
        if s["resource"]["process.pid"] == backend.pid
        and s["kind"] == "SERVER"
        and s["trace_id"] != adopted[0]["trace_id"]
    ]
    assert len(clients_) == calls * callers + 2
    assert len(servers_) == calls * callers + 1
    orphans = [s for s in servers_ if s.get("parent_span_id") not in clients_]
    assert not orphans, f"{len(orphans)} server spans without their client: {orphans[:2]}"
    wrong = [
        s
        for s in servers_
        if s["trace_id"] != clients_[s["parent_span_id"]]["trace_id"] or not s["remote_parent"]
    ]
    assert not wrong, wrong[:2]
    print("grpc insertion counts (front):", counts)
    # Per call one HEADERS frame with a context; the caller's own one left alone.
    assert counts.get("h2_injected") == calls * callers + 1, counts
    assert counts.get("h2_has_traceparent") == 1, counts
    assert counts.get("h2_connection") == 3, counts  # one connection per /call, one for /load
    problems = {k: v for k, v in counts.items() if k in FAILURES or k == "h2_no_context"}
    assert not problems, counts


def test_go_h2c_client_under_gotel_load_byte_exact_with_each_client_spans_ids(
    clients: Any, server: str
) -> None:
    """gotel's own net/http client probe (writeHeaders, on each stream's goroutine) instead
    of the test uprobe: every byte checked, every field carries its client span's ids."""
    client = clients()
    with Receiver() as receiver:
        gotel = Gotel("attach", "--pid", str(client.pid),
                      env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint})
        try:
            line = gotel.wait_for(rf"pid {client.pid} .*attached.*").group(0)
            assert "traceparent out: on" in line, line
            result = client.run(n=2500, c=8, conns=2, own_every=11, big_every=13,
                                max_body=300000, expect="inject", seed=2)
            # One client span per request, and one for the digests request (HTTP/1).
            spans = receiver.spans(wait_for=result["requests"] + 1, timeout=90)
        finally:
            assert gotel.stop() == 0, gotel.log
        counts = insertion_counts(gotel, client.pid)
    assert_clean(result)
    print("h2c load under gotel:", {k: v for k, v in counts.items() if v},
          {k: result[k] for k in ("requests", "injected", "own_traceparent", "untouched")})
    by_path = {
        urllib.parse.urlsplit(s["attributes"]["url.full"]).path: s
        for s in spans
        if s["kind"] == "CLIENT"
    }
    wrong = {
        path: (ids, by_path.get(path, {}).get("span_id"))
        for path, ids in result["ids"].items()
        if path not in by_path
        or ids != f"{by_path[path]['trace_id']}-{by_path[path]['span_id']}-01"
    }
    assert not wrong, f"{len(wrong)} fields carry other ids than their span's: {list(wrong)[:3]}"
    assert result["injected"] > 2000 and result["own_traceparent"] >= 200
    assert counts["h2_injected"] == result["injected"] == result["server_injected"], counts
    assert counts["h2_has_traceparent"] == result["own_traceparent"], counts
    refused = counts.get("h2_continuation", 0) + counts.get("h2_frame_too_big", 0)
    assert refused == result["untouched"] >= 1, counts
    assert counts.get("h2_no_context", 0) == 0, counts
    assert not {k: v for k, v in counts.items() if k in FAILURES and v}, counts
