"""`gotel demo emojivoto`: a voting app of four Go processes, traced by one gotel, read back
from a real trace backend.

    vote-bot --HTTP/1--> web --gRPC--> emoji   (emojivoto.v1.EmojiService)
                             --gRPC--> voting  (emojivoto.v1.VotingService)

The services are gotel's own equivalent of Buoyant's emojivoto (examples/emojivoto: the
original is not on the Go module proxy). The backend is Jaeger v2, built from its Go
module through the proxy, with in-memory storage; `GOTEL_EMOJIVOTO_BACKEND=receiver` uses
gotel's test OTLP receiver instead (also the fallback when Jaeger cannot be built).
Every build goes to ~/.cache/gotel/emojivoto; every process started here is stopped on
exit, error or Ctrl-C, and every wait has a time limit.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from gotel.demo import go_command
from gotel.errors import EXIT_OK, GotelError
from gotel.instrumentation.grpc.semconv import code_name
from gotel.privileges import require_tracing

JAEGER_MODULE = "github.com/jaegertracing/jaeger"
JAEGER_VERSION = "v1.76.0"  # the module version of Jaeger v2.13.0 (its cmd/jaeger is v2)
JAEGER_LABEL = f"Jaeger v2.13.0 ({JAEGER_MODULE}@{JAEGER_VERSION} cmd/jaeger, memory storage)"

SERVICES = ("emoji", "voting", "web", "vote-bot")
EMOJI_SERVICE = "emojivoto.v1.EmojiService"
VOTING_SERVICE = "emojivoto.v1.VotingService"
VOTES_PER_ROUND = 20  # `--requests N` casts N * 20 votes
LEADERBOARD_EVERY = 5  # vote-bot reads the leaderboard after every 5th vote
VOTE_INTERVAL = "30ms"

ENV_BACKEND = "GOTEL_EMOJIVOTO_BACKEND"  # jaeger (default) | receiver
ENV_SPANS = "GOTEL_EMOJIVOTO_SPANS"  # also write the spans read back, one JSON per line

APP_BUILD_TIMEOUT_S = 15 * 60
JAEGER_BUILD_TIMEOUT_S = 40 * 60
START_TIMEOUT_S = 60.0
ATTACH_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
QUERY_TIMEOUT_S = 30.0


# --- where things are --------------------------------------------------------------------
def _checkout_file(relative: str) -> Path:
    """A file of the gotel checkout this module runs from (examples/, tests/)."""
    for base in Path(__file__).resolve().parents[1:4]:
        if (base / relative).exists():
            return base / relative
    raise GotelError(f"emojivoto: {relative} not found next to gotel; run it from a gotel checkout")


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "gotel" / "emojivoto"


# --- output --------------------------------------------------------------------------------
class _Out:
    """Lines to the user from several threads, each line whole."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, text: str = "") -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()


def _elapsed(start: float) -> str:
    seconds = time.monotonic() - start
    return f"{seconds:.1f}s" if seconds < 90 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


# --- building ------------------------------------------------------------------------------
def _go(
    args: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    what: str,
    say: _Out | None = None,
) -> str:
    """Run the go command; its stdout, or GotelError with the last lines it printed."""
    command = [go_command(), *args]
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        started = time.monotonic()
        reader: list[str] = []
        thread = threading.Thread(target=lambda: reader.append(proc.stdout.read()))  # type: ignore[union-attr]
        thread.start()
        try:
            next_note = started + 60
            while proc.poll() is None:
                if time.monotonic() - started > timeout:
                    raise GotelError(f"emojivoto: {what} took longer than {timeout / 60:.0f} min")
                if say is not None and time.monotonic() >= next_note:
                    say(f"emojivoto:   ... still {what} ({_elapsed(started)})")
                    next_note += 60
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            thread.join()
        if proc.returncode != 0:
            errors.seek(0)
            said = errors.read().strip() or _json_error(reader[0] if reader else "")
            tail = [line.strip() for line in said.splitlines() if line.strip()][-3:]
            raise GotelError(f"emojivoto: {what} failed: {' | '.join(tail) or 'no output'}")
    return reader[0] if reader else ""


def _json_error(stdout: str) -> str:
    """The Error of `go mod download -json`, which reports on stdout."""
    try:
        return str(json.loads(stdout).get("Error") or "")
    except (ValueError, AttributeError):
        return stdout


def build_services(out_dir: Path, say: _Out | None = None) -> dict[str, Path]:
    """Compile the four emojivoto programs into out_dir (Go's build cache keeps it quick)."""
    source = _checkout_file("examples/emojivoto")
    out_dir.mkdir(parents=True, exist_ok=True)
    _go(
        ["build", "-o", f"{out_dir}{os.sep}", "./cmd/..."],
        cwd=source,
        timeout=APP_BUILD_TIMEOUT_S,
        what="building emojivoto",
        say=say,
    )
    return {name: out_dir / name for name in SERVICES}


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_jaeger(home: Path, say: _Out | None = None) -> Path:
    """Jaeger's cmd/jaeger from its module: downloaded through the proxy, built once.

    `go install module/cmd/jaeger@version` refuses modules with replace directives (Jaeger's
    go.mod has one), so the module's source is copied out of the module cache and built as
    the main module, with its own go.mod and go.sum.
    """
    binary = home / "jaeger"
    if binary.exists():
        return binary
    with _file_lock(home / ".lock"):  # a second demo waits for the first one's build
        if binary.exists():
            return binary
        if say is not None:
            say(
                f"emojivoto: building {JAEGER_LABEL.split(' (')[0]} from "
                f"{JAEGER_MODULE}@{JAEGER_VERSION} into {home} (first time only: "
                "~1.3 GB of modules and several minutes of compiling)"
            )
        started = time.monotonic()
        listing = _go(
            ["mod", "download", "-json", f"{JAEGER_MODULE}@{JAEGER_VERSION}"],
            cwd=home,
            timeout=JAEGER_BUILD_TIMEOUT_S,
            what="downloading Jaeger's module",
            say=say,
        )
        module = json.loads(listing)
        if module.get("Error") or not module.get("Dir"):
            raise GotelError(f"emojivoto: downloading Jaeger failed: {module.get('Error')}")
        source = home / "src"
        if not (source / "go.mod").exists():
            partial = home / "src.partial"
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(module["Dir"], partial)
            for path in [partial, *partial.rglob("*")]:  # the module cache is read-only
                path.chmod(path.stat().st_mode | 0o200)
            partial.rename(source)
        partial_binary = home / "jaeger.partial"
        _go(
            ["build", "-o", str(partial_binary), "./cmd/jaeger"],
            cwd=source,
            timeout=JAEGER_BUILD_TIMEOUT_S,
            what="building Jaeger",
            say=say,
        )
        partial_binary.rename(binary)
        if say is not None:
            say(f"emojivoto: built Jaeger in {_elapsed(started)}")
    return binary


# --- processes -----------------------------------------------------------------------------
class Processes:
    """Every process the demo starts, with its output in a log file; stopped in reverse order."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        with open(self.log(name), "wb") as log:
            proc = subprocess.Popen(
                list(argv), stdin=stdin, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self.started.append((name, proc))
        return proc

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def tail(self, name: str, lines: int = 5) -> str:
        try:
            text = self.log(name).read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(line for line in text.splitlines()[-lines:] if line.strip())

    def wait_for_line(
        self, name: str, proc: subprocess.Popen[bytes], pattern: str, timeout: float
    ) -> re.Match[str]:
        """The first line of name's output that matches, or GotelError (it exited, or time)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                for line in self.log(name).read_text(errors="replace").splitlines():
                    if m := regex.search(line):
                        return m
            if proc.poll() is not None:
                raise GotelError(
                    f"emojivoto: {name} exited ({proc.returncode}) before saying /{pattern}/: "
                    + self.tail(name)
                )
            if time.monotonic() > deadline:
                raise GotelError(f"emojivoto: {name} did not say /{pattern}/ in {timeout:.0f}s")
            time.sleep(0.05)

    def stop(
        self, name: str, proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S
    ) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    def stop_all(self) -> None:
        for name, proc in reversed(self.started):
            self.stop(name, proc)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


# --- spans, as read back from the backend -------------------------------------------------
@dataclass
class TraceSpan:
    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    name: str
    kind: str  # SERVER, CLIENT, INTERNAL, ...
    start_us: int
    duration_us: int
    error: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)


_JAEGER_KINDS = {
    "server": "SERVER",
    "client": "CLIENT",
    "producer": "PRODUCER",
    "consumer": "CONSUMER",
    "internal": "INTERNAL",
}


def spans_from_jaeger(document: Mapping[str, Any]) -> list[TraceSpan]:
    """Spans of a Jaeger query API answer (`/api/traces`: {"data": [trace, ...]})."""
    spans = []
    for trace in document.get("data") or []:
        processes = trace.get("processes") or {}
        for raw in trace.get("spans") or []:
            tags = {t["key"]: t.get("value") for t in raw.get("tags") or []}
            parent = next(
                (
                    r["spanID"]
                    for r in raw.get("references") or []
                    if r.get("refType") == "CHILD_OF" and r.get("traceID") == raw["traceID"]
                ),
                None,
            )
            kind = _JAEGER_KINDS.get(str(tags.pop("span.kind", "internal")), "INTERNAL")
            error = tags.get("error") is True or tags.get("otel.status_code") == "ERROR"
            process = processes.get(raw.get("processID"), {})
            spans.append(
                TraceSpan(
                    trace_id=raw["traceID"].rjust(32, "0"),
                    span_id=raw["spanID"].rjust(16, "0"),
                    parent_id=parent.rjust(16, "0") if parent else None,
                    service=process.get("serviceName", "?"),
                    name=raw.get("operationName", ""),
                    kind=kind,
                    start_us=int(raw.get("startTime", 0)),
                    duration_us=int(raw.get("duration", 0)),
                    error=error,
                    attributes=tags,
                )
            )
    return spans


def spans_from_receiver(records: Sequence[Mapping[str, Any]]) -> list[TraceSpan]:
    """Spans of tests/otlp_receiver.py's JSON lines."""
    return [
        TraceSpan(
            trace_id=r["trace_id"],
            span_id=r["span_id"],
            parent_id=r.get("parent_span_id"),
            service=str(r.get("resource", {}).get("service.name", "?")),
            name=r["name"],
            kind=r["kind"],
            start_us=r["start_time_unix_nano"] // 1000,
            duration_us=r["duration_ns"] // 1000,
            error=r.get("status", {}).get("code") == "ERROR",
            attributes=dict(r.get("attributes") or {}),
        )
        for r in records
    ]


# --- backends ------------------------------------------------------------------------------
class Backend:
    label = ""
    otlp_endpoint = ""  # OTLP/HTTP base URL for OTEL_EXPORTER_OTLP_ENDPOINT
    where = ""  # where a user can look while it runs
    pid = 0

    def start(self, procs: Processes, run_dir: Path) -> None:
        raise NotImplementedError

    def spans(self, since_us: int) -> list[TraceSpan]:
        raise NotImplementedError


_JAEGER_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_http}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_http}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class JaegerBackend(Backend):
    label = JAEGER_LABEL

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.query = ""

    def start(self, procs: Processes, run_dir: Path) -> None:
        ports = {"query_http": _free_port(), "query_grpc": _free_port(), "otlp_http": _free_port()}
        config = run_dir / "jaeger.yaml"
        config.write_text(_JAEGER_CONFIG.format(**ports))
        proc = procs.start("jaeger", [str(self.binary), "--config", str(config)])
        self.pid = proc.pid
        self.query = f"http://127.0.0.1:{ports['query_http']}"
        self.otlp_endpoint = f"http://127.0.0.1:{ports['otlp_http']}"
        self.where = f"query API {self.query}/api/traces?service=web"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise GotelError(
                    f"emojivoto: jaeger exited ({proc.returncode}): {procs.tail('jaeger')}"
                )
            try:
                _get_json(self.query + "/api/services", timeout=1)
                with socket.create_connection(("127.0.0.1", ports["otlp_http"]), timeout=1):
                    return
            except (OSError, ValueError) as exc:
                if time.monotonic() > deadline:
                    raise GotelError(
                        "emojivoto: jaeger did not start in time: " + procs.tail("jaeger")
                    ) from exc
                time.sleep(0.2)

    def spans(self, since_us: int) -> list[TraceSpan]:
        services = _get_json(self.query + "/api/services").get("data") or []
        seen: dict[tuple[str, str], TraceSpan] = {}
        for service in services:
            query = urllib.parse.urlencode(
                {
                    "service": service,
                    "start": since_us,
                    "end": int(time.time() * 1e6) + 10**6,
                    "limit": 20000,
                }
            )
            for span in spans_from_jaeger(_get_json(f"{self.query}/api/traces?{query}", 30)):
                seen[(span.trace_id, span.span_id)] = span
        return list(seen.values())


class ReceiverBackend(Backend):
    label = "gotel's test OTLP receiver (tests/otlp_receiver.py, a JSON lines file)"

    def __init__(self) -> None:
        self.script = _checkout_file("tests/otlp_receiver.py")
        self.file = Path()

    def start(self, procs: Processes, run_dir: Path) -> None:
        self.file = run_dir / "received.jsonl"
        self.file.touch()
        argv = [sys.executable, str(self.script), "--out", str(self.file)]
        proc = procs.start("otlp-receiver", argv)
        self.pid = proc.pid
        ready = procs.wait_for_line("otlp-receiver", proc, r"^ready http=(\d+)", START_TIMEOUT_S)
        self.otlp_endpoint = f"http://127.0.0.1:{ready.group(1)}"
        self.where = str(self.file)

    def spans(self, since_us: int) -> list[TraceSpan]:
        lines = self.file.read_text(encoding="utf-8").splitlines(keepends=True)
        return spans_from_receiver([json.loads(x) for x in lines if x.endswith("\n")])


# --- gotel ---------------------------------------------------------------------------------
class GotelProcess:
    """`gotel attach --pid ...` as a user runs it; its log lines are echoed as they come."""

    def __init__(self, procs: Processes, pids: Mapping[str, int], endpoint: str, say: _Out):
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("OTEL_EXPORTER_OTLP")
            and k not in ("OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER")
        }
        env.update(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        )
        self.argv = ["gotel", "attach"]
        for pid in pids.values():
            self.argv += ["--pid", str(pid)]
        self.procs = procs
        self.say = say
        self.proc = procs.start(
            "gotel", [sys.executable, "-m", "gotel.cli", *self.argv[1:]], env=env
        )
        self._echoed = 0
        self._echo_stop = threading.Event()
        self._echo = threading.Thread(target=self._echo_lines, daemon=True)
        self._echo.start()

    def _echo_lines(self) -> None:
        while True:
            finished = self._echo_stop.is_set()
            with contextlib.suppress(OSError):
                lines = self.procs.log("gotel").read_text(errors="replace").splitlines()
                for line in lines[self._echoed :]:
                    self.say(f"  {line}")
                self._echoed = len(lines)
            if finished:
                return
            self._echo_stop.wait(0.1)

    def wait_attached(self, pids: Mapping[str, int]) -> None:
        for pid in pids.values():
            self.procs.wait_for_line(
                "gotel", self.proc, rf"pid {pid} \(.*\): attached [1-9]", ATTACH_TIMEOUT_S
            )

    def stop(self) -> int:
        """SIGTERM: gotel detaches every probe and flushes its exporters."""
        self.procs.stop("gotel", self.proc, timeout=30)
        self._echo_stop.set()
        self._echo.join(5)
        return self.proc.returncode


# --- the summary ---------------------------------------------------------------------------
EXPECTED_LINKS = (("vote-bot", "web"), ("web", "emoji"), ("web", "voting"))


def _rpc_service(span: TraceSpan) -> str:
    return str(span.attributes.get("rpc.service", ""))


def pick_trace(spans: Sequence[TraceSpan]) -> list[TraceSpan]:
    """The fullest successful vote: web's GET /api/vote with client calls to emoji and voting."""
    by_trace: dict[str, list[TraceSpan]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    best: tuple[tuple[int, ...], list[TraceSpan]] | None = None
    for trace in by_trace.values():
        ids = {s.span_id: s for s in trace}
        votes = [
            s
            for s in trace
            if s.service == "web" and s.kind == "SERVER" and "/api/vote" in s.name and not s.error
        ]
        for vote in votes:
            called = {
                _rpc_service(s) for s in trace if s.kind == "CLIENT" and s.parent_id == vote.span_id
            }
            full = int({EMOJI_SERVICE, VOTING_SERVICE} <= called)
            linked = sum(1 for s in trace if s.parent_id in ids)
            score = (full, len({s.service for s in trace}), linked, -vote.start_us)
            if best is None or score > best[0]:
                best = (score, trace)
    if best is None:  # no vote came through: any trace with a web server span
        traces = [t for t in by_trace.values() if any(s.service == "web" for s in t)]
        return max(traces, key=len, default=[])
    return best[1]


def render_tree(trace: Sequence[TraceSpan]) -> list[str]:
    """One line per span, children indented under their parent, in start order."""
    ids = {s.span_id for s in trace}
    children: dict[str | None, list[TraceSpan]] = defaultdict(list)
    for span in trace:
        children[span.parent_id if span.parent_id in ids else None].append(span)
    rows: list[tuple[str, str, str]] = []

    def walk(span: TraceSpan, depth: int) -> None:
        detail = span.name
        if (status := span.attributes.get("http.response.status_code")) is not None:
            detail += f"  [{status}]"
        elif (code := span.attributes.get("rpc.grpc.status_code")) is not None:
            detail += f"  [{code_name(int(code))}]"
        if span.parent_id and span.parent_id not in ids:
            detail += "  (parent not in this trace)"
        if span.error:
            detail += "  ERROR"
        rows.append(
            (
                "  " * depth + span.service,
                f"{span.kind.lower():<6} {detail}",
                f"{span.duration_us / 1000:8.2f} ms",
            )
        )
        for child in sorted(children[span.span_id], key=lambda s: s.start_us):
            walk(child, depth + 1)

    for root in sorted(children[None], key=lambda s: s.start_us):
        walk(root, 0)
    width0 = max((len(r[0]) for r in rows), default=0)
    width1 = max((len(r[1]) for r in rows), default=0)
    return [f"{a:<{width0}}  {b:<{width1}}  {c}" for a, b, c in rows]


def links(spans: Sequence[TraceSpan]) -> Counter[tuple[str, str]]:
    """(parent service, child service) -> how many spans have a parent in another process."""
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    found: Counter[tuple[str, str]] = Counter()
    for span in spans:
        parent = by_id.get((span.trace_id, span.parent_id or ""))
        if parent is not None and parent.service != span.service:
            found[(parent.service, span.service)] += 1
    return found


def summarize(spans: Sequence[TraceSpan], say: Callable[[str], None]) -> None:
    web_traces = {s.trace_id for s in spans if s.service == "web"}
    all_traces = {s.trace_id for s in spans}
    say(f"traces found: {len(web_traces)} with service=web, {len(all_traces)} in all")
    say("spans per service:")
    per_service: dict[str, Counter[str]] = defaultdict(Counter)
    for span in spans:
        per_service[span.service][span.kind.lower()] += 1
    order = [s for s in SERVICES if s in per_service] + sorted(set(per_service) - set(SERVICES))
    for service in order:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(per_service[service].items()))
        say(f"  {service:<9} {sum(per_service[service].values()):>5}  ({kinds})")
    for service in SERVICES:
        if service not in per_service:
            say(f"  {service:<9}     0")
    say("parent links between processes (a span whose parent is a span of another process):")
    found = links(spans)
    for parent, child in [*EXPECTED_LINKS, *sorted(set(found) - set(EXPECTED_LINKS))]:
        servers = [s for s in spans if s.service == child and s.kind == "SERVER"]
        count = found[(parent, child)]
        line = f"  {parent} -> {child}: {count} of {len(servers)} {child} server spans"
        roots = sum(1 for s in servers if s.parent_id is None)
        if servers and roots == len(servers):
            line += f" (no traceparent reached {child}: each of its server spans roots a trace)"
        say(line)
    trace = pick_trace(spans)
    if not trace:
        say("no trace with a web span to show")
        return
    services = sorted({s.service for s in trace}, key=lambda s: (s not in SERVICES, s))
    say(f"one trace: {trace[0].trace_id} ({len(trace)} spans; {', '.join(services)})")
    for line in render_tree(trace):
        say("  " + line)
    apart = [name for name in ("emoji", "voting") if name not in services]
    if apart:
        say(f"  ({' and '.join(apart)}: the server spans of these calls are traces of their own)")


# --- the scenario --------------------------------------------------------------------------
def _expected_requests(votes: int) -> int:
    """HTTP requests vote-bot sends: a list and a vote per round, plus the leaderboards."""
    return 2 * votes + votes // LEADERBOARD_EVERY


def _wanted_backend() -> str:
    wanted = os.environ.get(ENV_BACKEND, "").strip().lower() or "auto"
    if wanted not in ("auto", "jaeger", "receiver"):
        raise GotelError(f"{ENV_BACKEND}={wanted}: expected jaeger or receiver")
    return wanted


def _choose_backend(wanted: str, cache: Path, say: _Out) -> Backend:
    if wanted == "receiver":
        return ReceiverBackend()
    try:
        return JaegerBackend(build_jaeger(cache / "jaeger" / JAEGER_VERSION, say))
    except GotelError as exc:
        if wanted == "jaeger":
            raise
        reason = str(exc).removeprefix("emojivoto: ")
        say(f"emojivoto: {reason}; falling back to gotel's test OTLP receiver")
        return ReceiverBackend()


def _collect(backend: Backend, since_us: int, want_web_servers: int) -> list[TraceSpan]:
    """Poll the backend until web's server spans are all there and the count is steady."""
    deadline = time.monotonic() + QUERY_TIMEOUT_S
    previous = -1
    spans: list[TraceSpan] = []
    while time.monotonic() < deadline:
        try:
            spans = backend.spans(since_us)
        except (OSError, ValueError) as exc:
            raise GotelError(f"emojivoto: querying {backend.label} failed: {exc}") from exc
        web = sum(1 for s in spans if s.service == "web" and s.kind == "SERVER")
        if web >= want_web_servers and len(spans) == previous:
            break
        previous = len(spans)
        time.sleep(0.5)
    return spans


def run_emojivoto(*, rounds: int, out: TextIO, unused_flags: Sequence[str] = ()) -> int:
    """The scenario; `unused_flags`: demo flags given that it cannot honour (refused)."""
    if unused_flags:
        raise GotelError(
            f"demo emojivoto: {', '.join(unused_flags)} not used here (it exports to its own "
            "backend, and each process is named after its executable)"
        )
    say = _Out(out)
    started = time.monotonic()
    wanted = _wanted_backend()
    require_tracing()
    cache = cache_dir()
    say(f"emojivoto: building web, emoji, voting and vote-bot into {cache / 'bin'}")
    binaries = build_services(cache / "bin", say)
    say(f"emojivoto: built in {_elapsed(started)}")
    backend = _choose_backend(wanted, cache, say)
    (cache / "runs").mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=cache / "runs"))
    procs = Processes(run_dir)
    keep_logs = True
    restore = _sigterm_as_interrupt()
    try:
        backend.start(procs, run_dir)
        say(f"emojivoto: backend: {backend.label} (pid {backend.pid}); {backend.where}")
        since_us = int(time.time() * 1e6) - 10**6
        votes = max(1, rounds) * VOTES_PER_ROUND
        _run_scenario(procs, binaries, backend, votes, say)
        spans = _collect(backend, since_us, _expected_requests(votes))
        say(f"\n=== read back from {backend.label} ===")
        summarize(spans, say)
        if os.environ.get(ENV_SPANS):
            with open(os.environ[ENV_SPANS], "w", encoding="utf-8") as f:
                f.writelines(json.dumps(asdict(span)) + "\n" for span in spans)
        if not any(s.service == "web" for s in spans):
            raise GotelError(f"emojivoto: no web span reached the backend (logs: {run_dir})")
        keep_logs = False
    except KeyboardInterrupt:
        say("emojivoto: interrupted; stopping everything")
        keep_logs = False
        raise
    finally:
        restore()
        with _no_interrupts():  # a second Ctrl-C must not leave processes behind
            procs.stop_all()
        if keep_logs:
            say(f"emojivoto: logs of this run kept in {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    say(f"emojivoto: done in {_elapsed(started)}; every process it started is stopped")
    return EXIT_OK


def _run_scenario(
    procs: Processes, binaries: Mapping[str, Path], backend: Backend, votes: int, say: _Out
) -> None:
    """Start the services, attach one gotel to all four, vote, stop gotel (it flushes)."""
    addresses: dict[str, str] = {}
    pids: dict[str, int] = {}

    def serve(name: str, *flags: str) -> None:
        proc = procs.start(name, [str(binaries[name]), "-addr", "127.0.0.1:0", *flags])
        found = procs.wait_for_line(name, proc, r"listening on (\S+)", START_TIMEOUT_S)
        addresses[name], pids[name] = found.group(1), proc.pid

    serve("emoji")
    serve("voting")
    serve("web", "-emoji-addr", addresses["emoji"], "-voting-addr", addresses["voting"])
    bot_flags = ["-web", f"http://{addresses['web']}", "-hold", "-votes", str(votes)]
    bot_flags += ["-interval", VOTE_INTERVAL, "-leaderboard-every", str(LEADERBOARD_EVERY)]
    bot = procs.start("vote-bot", [str(binaries["vote-bot"]), *bot_flags], stdin=subprocess.PIPE)
    procs.wait_for_line("vote-bot", bot, r"^holding", START_TIMEOUT_S)
    pids["vote-bot"] = bot.pid
    started = [
        f"{n} (pid {pids[n]}{', ' + addresses[n] if n in addresses else ''})" for n in SERVICES
    ]
    say("emojivoto: started " + ", ".join(started))

    gotel = GotelProcess(procs, pids, backend.otlp_endpoint, say)
    say(f"emojivoto: one gotel (pid {gotel.proc.pid}) for all four: {' '.join(gotel.argv)}")
    gotel.wait_attached(pids)

    say(f"emojivoto: vote-bot casts {votes} votes ({_expected_requests(votes)} HTTP requests)")
    assert bot.stdin is not None
    bot.stdin.write(b"go\n")
    bot.stdin.close()
    try:
        bot.wait(timeout=60 + votes * 0.5)
    except subprocess.TimeoutExpired as exc:
        raise GotelError("emojivoto: vote-bot did not finish in time") from exc
    say(f"emojivoto: {procs.tail('vote-bot', 1)}")
    say("emojivoto: stopping gotel: it detaches every probe and flushes its spans")
    code = gotel.stop()
    if code != 0:
        raise GotelError(f"emojivoto: gotel exited with {code}: {procs.tail('gotel')}")


def _sigterm_as_interrupt() -> Callable[[], None]:
    """SIGTERM cleans up like Ctrl-C; returns the function that restores the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
