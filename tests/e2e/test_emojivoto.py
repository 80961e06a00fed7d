"""`gotel demo emojivoto` end to end: four Go processes, one gotel, a real trace backend.

The scenario runs once as a user runs it (`python -m gotel.cli demo emojivoto`); the spans
it read back from Jaeger are saved through GOTEL_EMOJIVOTO_SPANS and checked here. The first
run on a machine builds Jaeger from its Go module (minutes); later runs reuse
~/.cache/gotel/emojivoto.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import GOTEL
from gotel.demos.emojivoto.traces import (
    EMOJI_SERVICE,
    VOTING_SERVICE,
    TraceSpan,
    links,
    render_tree,
    spans_from_jaeger,
    summarize,
)
from gotools import REPO

COLD_BUILD_TIMEOUT_S = 45 * 60  # a first run downloads and compiles Jaeger
SLACK_US = 2_000  # clock conversion between the kernel's clock and the wall clock


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    spans: list[TraceSpan] = field(default_factory=list)

    def of(self, service: str, kind: str | None = None) -> list[TraceSpan]:
        return [s for s in self.spans if s.service == service and kind in (None, s.kind)]

    def pids(self) -> dict[str, int]:
        """Every process the demo said it started."""
        found = {m[0]: int(m[1]) for m in re.findall(r"(\S+) \(pid (\d+)", self.stdout)}
        backend = re.search(r"backend: .* \(pid (\d+)\)", self.stdout)
        if backend:
            found["backend"] = int(backend[1])
        return found

    def port(self, service: str) -> int:
        m = re.search(rf"{service} \(pid \d+, 127\.0\.0\.1:(\d+)\)", self.stdout)
        assert m, f"no address for {service} in:\n{self.stdout}"
        return int(m[1])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def run(require_root: None, tmp_path_factory: pytest.TempPathFactory) -> Run:
    spans_file = tmp_path_factory.mktemp("emojivoto") / "spans.jsonl"
    started = time.monotonic()
    proc = subprocess.run(
        [*GOTEL, "demo", "emojivoto"],
        # jaeger: a Jaeger that cannot be built fails here, with the reason, not a fallback.
        env=dict(
            os.environ, GOTEL_EMOJIVOTO_SPANS=str(spans_file), GOTEL_EMOJIVOTO_BACKEND="jaeger"
        ),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=COLD_BUILD_TIMEOUT_S,
    )
    result = Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
    print(f"gotel demo emojivoto took {result.seconds:.1f}s\n{proc.stdout}")
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    result.spans = [
        TraceSpan(**json.loads(line)) for line in spans_file.read_text().splitlines() if line
    ]
    return result


def test_every_service_has_spans(run: Run) -> None:
    requests = int(re.search(r"casts \d+ votes \((\d+) HTTP requests\)", run.stdout)[1])  # type: ignore[index]
    assert len(run.of("vote-bot", "CLIENT")) == requests
    assert len(run.of("web", "SERVER")) == requests
    for service in ("emoji", "voting"):
        assert run.of(service, "SERVER"), f"no server span from {service}"
    assert {s.service for s in run.spans} == {"vote-bot", "web", "emoji", "voting"}


def test_web_server_spans_have_grpc_client_children(run: Run) -> None:
    """Each API request's span has client spans to the right service, in the same trace."""
    ports = {EMOJI_SERVICE: run.port("emoji"), VOTING_SERVICE: run.port("voting")}
    expected = {
        "/api/list": [(EMOJI_SERVICE, "ListAll")],
        "/api/vote": [(EMOJI_SERVICE, "FindByShortcode"), (VOTING_SERVICE, "Vote")],
        "/api/leaderboard": [(VOTING_SERVICE, "Results"), (EMOJI_SERVICE, "ListAll")],
    }
    clients = run.of("web", "CLIENT")
    routes: Counter[str] = Counter()
    for server in run.of("web", "SERVER"):
        route = server.attributes.get("http.route")
        assert route in expected, f"unexpected route {route}"
        routes[route] += 1
        children = sorted(
            (c for c in clients if c.parent_id == server.span_id), key=lambda c: c.start_us
        )
        calls = [
            (c.attributes.get("rpc.service"), c.attributes.get("rpc.method")) for c in children
        ]
        assert calls == expected[route], f"{server.name}: children {calls}"
        for child in children:
            assert child.trace_id == server.trace_id
            assert child.attributes["rpc.system"] == "grpc"
            assert child.attributes["server.port"] == ports[child.attributes["rpc.service"]]
            assert child.start_us + SLACK_US >= server.start_us
            end, server_end = (
                child.start_us + child.duration_us,
                server.start_us + server.duration_us,
            )
            assert end <= server_end + SLACK_US
    assert set(routes) == set(expected)
    assert len(clients) == sum(len(expected[r]) * n for r, n in routes.items())


def test_grpc_server_spans_in_emoji_and_voting(run: Run) -> None:
    for service, rpc_service, methods in (
        ("emoji", EMOJI_SERVICE, {"ListAll", "FindByShortcode"}),
        ("voting", VOTING_SERVICE, {"Vote", "Results"}),
    ):
        servers = run.of(service, "SERVER")
        assert all(s.attributes["rpc.system"] == "grpc" for s in servers)
        assert all(s.attributes["rpc.service"] == rpc_service for s in servers)
        assert {s.attributes["rpc.method"] for s in servers} == methods
        assert all(s.name == f"{rpc_service}/{s.attributes['rpc.method']}" for s in servers)
        # One server span per call web made to it, method by method.
        made = Counter(
            c.attributes["rpc.method"]
            for c in run.of("web", "CLIENT")
            if c.attributes["rpc.service"] == rpc_service
        )
        assert Counter(s.attributes["rpc.method"] for s in servers) == made
    # Votes for :doughnut: fail in voting (UNKNOWN) and web answers 500.
    failed = [s for s in run.of("voting", "SERVER") if s.attributes["rpc.grpc.status_code"] != 0]
    assert all(s.attributes["rpc.grpc.status_code"] == 2 and s.error for s in failed)
    web_500 = [
        s for s in run.of("web", "SERVER") if s.attributes.get("http.response.status_code") == 500
    ]
    assert len(failed) == len(web_500)


def test_parent_links_across_processes_are_real(run: Run) -> None:
    """vote-bot -> web is linked (HTTP/1 traceparent); any gRPC link that exists is right."""
    clients = {(s.trace_id, s.span_id): s for s in run.of("vote-bot", "CLIENT")}
    for server in run.of("web", "SERVER"):
        parent = clients.get((server.trace_id, server.parent_id or ""))
        assert parent is not None, f"web span {server.name} has no vote-bot parent"
        assert urlsplit(parent.attributes["url.full"]).path == server.attributes["url.path"]
    web_clients = {(s.trace_id, s.span_id): s for s in run.of("web", "CLIENT")}
    for service in ("emoji", "voting"):
        for server in run.of(service, "SERVER"):
            if server.parent_id is None:
                continue  # no traceparent reached it (HTTP/2 insertion is not there yet)
            parent = web_clients.get((server.trace_id, server.parent_id))
            assert parent is not None, f"{service} span {server.name}: parent not a web call"
            assert parent.name == server.name
            assert server.start_us + SLACK_US >= parent.start_us
            end, parent_end = (
                server.start_us + server.duration_us,
                parent.start_us + parent.duration_us,
            )
            assert end <= parent_end + SLACK_US
    found = links(run.spans)
    assert found[("vote-bot", "web")] == len(run.of("web", "SERVER"))
    assert set(found) <= {("vote-bot", "web"), ("web", "emoji"), ("web", "voting")}


def test_summary_shows_a_vote_trace(run: Run) -> None:
    out = run.stdout
    assert "backend: Jaeger v2.12.0 (github.com/jaegertracing/jaeger@v1.75.0 cmd/jaeger" in out
    assert re.search(r"traces found: [1-9]\d* with service=web", out)
    for service in ("emoji", "voting", "web", "vote-bot"):
        assert re.search(rf"^  {re.escape(service)} +[1-9]\d* +\(", out, re.M), service
    tree = out.split("one trace: ", 1)[1].splitlines()
    assert re.match(r"^  vote-bot +client GET", tree[1]) or re.match(r"^  web +server", tree[1])
    assert any(re.match(r"^ +web +server GET /api/vote +\[200\]", line) for line in tree)
    assert any("client emojivoto.v1.EmojiService/FindByShortcode" in line for line in tree)
    assert any("client emojivoto.v1.VotingService/Vote" in line for line in tree)
    assert all(re.search(r"\d+\.\d\d ms$", line) for line in tree[1:5])


def test_every_process_is_stopped(run: Run) -> None:
    pids = run.pids()
    assert {"emoji", "voting", "web", "vote-bot", "gotel", "backend"} <= set(pids)
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    assert "every process it started is stopped" in run.stdout


def test_ctrl_c_stops_everything(run: Run) -> None:
    """SIGINT to the demo alone (not its group): it still stops every process it started."""
    proc = subprocess.Popen(
        [*GOTEL, "demo", "emojivoto", "--requests", "100"],  # 2000 votes: still voting at ^C
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # As from a terminal: a suite run in the background (`cmd &`) ignores SIGINT, and a
        # Python started with SIGINT ignored keeps ignoring it (no KeyboardInterrupt).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while not any("vote-bot casts" in x for x in seen):
            seen.append(lines.get(timeout=max(1.0, deadline - time.monotonic())))
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        time.sleep(0.5)
        while not lines.empty():
            seen.append(lines.get())
        pids = Run(0, "".join(seen), "", 0).pids()
        left = [name for name, pid in pids.items() if _alive(pid)]
        # Checked below; killed here, so that they are not left to the tests after this one.
        for name in left:
            os.kill(pids[name], signal.SIGKILL)
    output = "".join(seen)
    assert "interrupted; stopping everything" in output, output
    assert {"emoji", "voting", "web", "vote-bot", "gotel", "backend"} <= set(pids), output
    assert left == [], output


# --- the summary, on spans as they will look once gRPC calls carry traceparent ----------------
def _jaeger_span(
    span_id: str, process: str, name: str, kind: str, start: int, duration: int, parent: str = ""
) -> dict[str, Any]:
    refs = [{"refType": "CHILD_OF", "traceID": "ab" * 16, "spanID": parent}] if parent else []
    tags = [{"key": "span.kind", "type": "string", "value": kind}]
    if name.startswith("emojivoto."):
        service, method = name.split("/")
        tags += [
            {"key": "rpc.service", "type": "string", "value": service},
            {"key": "rpc.method", "type": "string", "value": method},
            {"key": "rpc.grpc.status_code", "type": "int64", "value": 0},
        ]
    else:
        tags.append({"key": "http.response.status_code", "type": "int64", "value": 200})
    return {
        "traceID": "ab" * 16,
        "spanID": span_id,
        "operationName": name,
        "references": refs,
        "startTime": start,
        "duration": duration,
        "tags": tags,
        "processID": process,
    }


def test_summary_nests_grpc_servers_when_linked(capsys: pytest.CaptureFixture[str]) -> None:
    """Jaeger's answer -> links and tree: server spans sit under the client span that called."""
    document = {
        "data": [
            {
                "traceID": "ab" * 16,
                "processes": {
                    "p1": {"serviceName": "vote-bot"},
                    "p2": {"serviceName": "web"},
                    "p3": {"serviceName": "emoji"},
                    "p4": {"serviceName": "voting"},
                },
                "spans": [
                    _jaeger_span("01" * 8, "p1", "GET", "client", 1000, 900),
                    _jaeger_span("02" * 8, "p2", "GET /api/vote", "server", 1050, 800, "01" * 8),
                    _jaeger_span(
                        "03" * 8,
                        "p2",
                        f"{EMOJI_SERVICE}/FindByShortcode",
                        "client",
                        1100,
                        200,
                        "02" * 8,
                    ),
                    _jaeger_span(
                        "04" * 8,
                        "p3",
                        f"{EMOJI_SERVICE}/FindByShortcode",
                        "server",
                        1120,
                        150,
                        "03" * 8,
                    ),
                    _jaeger_span(
                        "05" * 8, "p2", f"{VOTING_SERVICE}/Vote", "client", 1400, 300, "02" * 8
                    ),
                    _jaeger_span(
                        "06" * 8, "p4", f"{VOTING_SERVICE}/Vote", "server", 1420, 250, "05" * 8
                    ),
                ],
            }
        ]
    }
    spans = spans_from_jaeger(document)
    assert links(spans) == {("vote-bot", "web"): 1, ("web", "emoji"): 1, ("web", "voting"): 1}
    tree = render_tree(spans)
    assert [line.split()[0] for line in tree] == [
        "vote-bot",
        "web",
        "web",
        "emoji",
        "web",
        "voting",
    ]
    indents = [len(line) - len(line.lstrip()) for line in tree]
    assert indents == [0, 2, 4, 6, 4, 6]
    assert tree[3].endswith("0.15 ms") and "[OK]" in tree[3]
    summarize(spans, print)
    out = capsys.readouterr().out
    assert "web -> emoji: 1 of 1 emoji server spans\n" in out
    assert "traces of their own" not in out


def test_summary_without_grpc_links_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    """A gotel that cannot carry traceparent over gRPC: no link is invented."""
    web = TraceSpan("aa" * 16, "01" * 8, None, "web", "GET /api/vote", "SERVER", 1000, 500)
    call = TraceSpan(
        "aa" * 16,
        "02" * 8,
        "01" * 8,
        "web",
        f"{EMOJI_SERVICE}/FindByShortcode",
        "CLIENT",
        1100,
        100,
    )
    served = TraceSpan(
        "bb" * 16, "03" * 8, None, "emoji", f"{EMOJI_SERVICE}/FindByShortcode", "SERVER", 1110, 80
    )
    summarize([web, call, served], print)
    out = capsys.readouterr().out
    assert "web -> emoji: 0 of 1 emoji server spans (no traceparent reached emoji" in out
    assert "(emoji and voting: the server spans of these calls are traces of their own)" in out
    assert [line.split()[0] for line in out.split("one trace: ")[1].splitlines()[1:3]] == [
        "web",
        "web",
    ]
