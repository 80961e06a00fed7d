"""RED metrics end to end: real Go services, real BPF, a real OTLP metrics receiver.

The histograms are counted in the kernel at each span's end, sampled or not, so the
counts the receiver gets must equal the requests made, exactly, under a 1 % sampler; and
with every span kept, the histograms must agree with the spans' own durations.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable

import pytest
from test_databasesql import (  # noqa: F401 (postgres: the fixture)
    EXPECTED,
    SECRETS,
    dsn_for,
    exercise,
    postgres,
    sql_binary,
    stop_run,
)
from test_goredis import (  # noqa: F401 (redis_port: the fixture)
    COMMANDS,
    DB_INDEX,
    build_redisapp,
    post,
    redis_port,
)
from test_goredis import PINNED as REDIS_PINNED

from conftest import GoServer, Gotel, get
from gotel.instrumentation.metric import (
    DB_DURATION_BOUNDS,
    OVERFLOW_ATTRIBUTE,
    REQUEST_DURATION_BOUNDS,
)
from gotools import build_app
from otlp_receiver import Receiver

pytestmark = pytest.mark.usefixtures("require_root")

HTTP_SERVER = "http.server.request.duration"
HTTP_CLIENT = "http.client.request.duration"
RPC_SERVER = "rpc.server.duration"
RPC_CLIENT = "rpc.client.duration"
DB_CLIENT = "db.client.operation.duration"
RATIO_1_PERCENT = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}
INTERVAL = {"OTEL_METRIC_EXPORT_INTERVAL": "500"}


def status_of(url: str, method: str = "GET") -> int:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


def attach(receiver: Receiver, gotels: list[Gotel], pid: int, protocol: str = "http/protobuf",
           **env: str) -> Gotel:
    gotel = Gotel("attach", "--pid", str(pid), env={**receiver.otlp_env(protocol), **env})
    gotels.append(gotel)
    gotel.wait_for(rf"pid {pid} .*attached")
    return gotel


def wait_points(receiver: Receiver, name: str, ready: Callable[[list[dict]], bool],
                timeout: float = 15, **kw: object) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        points = receiver.latest_points(name, **kw)
        if ready(points) or time.monotonic() > deadline:
            return points
        time.sleep(0.1)


def by(points: list[dict], *keys: str) -> dict[tuple, dict]:
    out = {}
    for point in points:
        key = tuple(point["attributes"].get(k) for k in keys)
        assert key not in out, f"two series for {key}: {points}"
        out[key] = point
    return out


def check_histogram(point: dict) -> None:
    assert point["kind"] == "histogram" and point["temporality"] == "cumulative"
    assert point["unit"] == "s"
    assert point["explicit_bounds"] == list(REQUEST_DURATION_BOUNDS)
    assert sum(point["bucket_counts"]) == point["count"]
    assert point["start_time_unix_nano"] < point["time_unix_nano"]


def test_http_counts_per_route_are_exact_when_1_percent_of_traces_are_sampled(servers, gotels):
    server = GoServer(build_app("httpserver"))
    servers.append(server)
    plan = [("GET", "/hello/{i}", 200, "/hello/{id}", 240), ("POST", "/items", 201, "/items", 60),
            ("GET", "/fail", 500, "/fail", 40), ("GET", "/no/such/{i}", 404, None, 30)]
    with Receiver() as receiver:
        gotel = attach(receiver, gotels, server.pid, **RATIO_1_PERCENT, **INTERVAL)
        for method, path, status, _, n in plan:
            for i in range(n):
                assert status_of(server.url + path.format(i=i), method) == status
        total = sum(n for *_, n in plan)
        # An export while attached already holds every request (the interval works) ...
        points = wait_points(receiver, HTTP_SERVER,
                             lambda p: sum(x["count"] for x in p) == total, pid=server.pid)
        assert sum(p["count"] for p in points) == total, points
        assert gotel.stop() == 0, gotel.log
        exports = {p["time_unix_nano"] for p in receiver.metric_points()}
        spans = receiver.read()
        # ... and the last one too, per route, status and method, exactly.
        points = receiver.latest_points(HTTP_SERVER, pid=server.pid)
    series = by(points, "http.request.method", "http.route", "http.response.status_code")
    assert set(series) == {(m, r, s) for m, _, s, r, _ in plan}
    for method, _, status, route, n in plan:
        point = series[(method, route, status)]
        check_histogram(point)
        assert point["count"] == n, point
        assert point["attributes"]["url.scheme"] == "http"
        assert ("error.type" in point["attributes"]) == (status >= 500)
        assert point["resource"]["service.name"] == server.binary.name
        assert point["resource"]["process.pid"] == server.pid
        assert point["scope"] == "gotel/net/http"
    # The raw path never becomes an attribute: 30 distinct 404 paths are one series.
    assert all("url.path" not in p["attributes"] for p in points)
    # The traces were sampled (about 1 %), the metrics were not.
    assert len(spans) < total // 10, len(spans)
    assert len(exports) >= 2, "expected an export while attached and one at detach"


def test_two_processes_of_one_binary_count_apart_in_their_shared_object(servers, gotels):
    """One loaded object counts for both (the same binary): each process's exports hold
    its own requests only, and a detached process's series leave with it."""
    binary = build_app("httpserver")
    one, two = GoServer(binary), GoServer(binary)
    servers.extend([one, two])
    with Receiver() as receiver:
        gotel = Gotel("attach", "--pid", str(one.pid), "--pid", str(two.pid),
                      env={**receiver.otlp_env("http/protobuf"), **INTERVAL})
        gotels.append(gotel)
        gotel.wait_for(rf"pid {two.pid} .*attached.*shared with other processes")
        gotel.wait_for(rf"pid {one.pid} .*attached")
        for i in range(30):
            assert status_of(f"{one.url}/hello/{i}") == 200
        for _ in range(20):
            assert status_of(f"{two.url}/fail") == 500
        wanted = {one.pid: {("/hello/{id}", 200): 30}, two.pid: {("/fail", 500): 20}}

        def counts(pid: int) -> dict[tuple, int]:
            points = receiver.latest_points(HTTP_SERVER, pid=pid)
            return {(p["attributes"].get("http.route"),
                     p["attributes"]["http.response.status_code"]): p["count"] for p in points}

        for pid, want in wanted.items():
            wait_points(receiver, HTTP_SERVER, lambda _p, pid=pid, want=want: counts(pid) == want)
            assert counts(pid) == want, (pid, receiver.latest_points(HTTP_SERVER, pid=pid))
        # One goes: the other still counts in the same object, from where it was.
        one.stop()
        gotel.wait_for(rf"pid {one.pid}: detached")
        for _ in range(5):
            assert status_of(f"{two.url}/fail") == 500
        wait_points(receiver, HTTP_SERVER, lambda _p: counts(two.pid) == {("/fail", 500): 25})
        assert counts(two.pid) == {("/fail", 500): 25}
        assert counts(one.pid) == {("/hello/{id}", 200): 30}  # its last export, unchanged
        assert gotel.stop() == 0, gotel.log


def bucket_of(duration_s: float) -> int:
    return next((i for i, b in enumerate(REQUEST_DURATION_BOUNDS) if duration_s <= b),
                len(REQUEST_DURATION_BOUNDS))


def near_bound(duration_s: float, slack_s: float) -> bool:
    return any(abs(duration_s - b) <= slack_s for b in REQUEST_DURATION_BOUNDS)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_http_histograms_match_the_spans_durations_when_every_span_is_kept(
        protocol, servers, gotels):
    back = GoServer(build_app("httpserver"))
    servers.append(back)
    front = GoServer(build_app("httpserver"), "-downstream", back.url)
    servers.append(front)
    with Receiver() as receiver:
        gotel_front = attach(receiver, gotels, front.pid, protocol,
                             OTEL_TRACES_SAMPLER="always_on")
        for ms in (0, 3, 8, 20, 30, 60, 120):
            for _ in range(4):
                assert get(f"{front.url}/slow?ms={ms}") == 200
        for _ in range(20):
            assert get(f"{front.url}/chain") == 200
        assert gotel_front.stop() == 0, gotel_front.log
        spans = receiver.spans(wait_for=28 + 40, timeout=15)
        assert {s["transport"] for s in spans} == {"grpc" if protocol == "grpc" else "http"}
        latest = {name: receiver.latest_points(name, pid=front.pid)
                  for name in (HTTP_SERVER, HTTP_CLIENT)}

    points = latest[HTTP_SERVER]
    assert {p["transport"] for p in points} == {"grpc" if protocol == "grpc" else "http"}
    kinds = {"SERVER": HTTP_SERVER, "CLIENT": HTTP_CLIENT}
    for kind, name in kinds.items():
        points = latest[name]
        mine = [s for s in spans if s["kind"] == kind]
        for point in points:
            check_histogram(point)
            attrs = point["attributes"]
            if kind == "SERVER":
                same = [s for s in mine if s["attributes"].get("http.route") == attrs["http.route"]]
            else:
                same = mine
                assert attrs["server.address"] == back.host
                assert attrs["server.port"] == back.port
                assert attrs["http.response.status_code"] == 200
            assert point["count"] == len(same), (attrs, point["count"], len(same))
            durations = [s["duration_ns"] / 1e9 for s in same]
            # The kernel measures to the same RET the span ends at: a few µs apart at most.
            assert point["sum"] == pytest.approx(sum(durations), abs=50e-6 * len(same))
            expected = Counter(bucket_of(d) for d in durations)
            if not any(near_bound(d, 50e-6) for d in durations):
                assert point["bucket_counts"] == [expected[i] for i in
                                                  range(len(REQUEST_DURATION_BOUNDS) + 1)]
        assert sum(p["count"] for p in points) == len(mine), (kind, points)
    slow = [p for p in latest[HTTP_SERVER]
            if p["attributes"].get("http.route") == "/slow"]
    assert len(slow) == 1 and slow[0]["count"] == 28
    # 60 and 120 ms requests land above the 50 ms bound; 0 ms ones in the first bucket.
    assert sum(slow[0]["bucket_counts"][bucket_of(0.06):]) >= 8
    assert slow[0]["bucket_counts"][0] >= 4


def test_series_beyond_the_cardinality_limit_are_counted_as_overflow(servers, gotels):
    server = GoServer(build_app("httpserver"))
    servers.append(server)
    with Receiver() as receiver:
        gotel = attach(receiver, gotels, server.pid, GOTEL_METRICS_CARDINALITY_LIMIT="2")
        # Unknown methods are each their own series in the kernel (Python folds them into
        # _OTHER): six of them, five requests each, against room for two.
        for i in range(6):
            for _ in range(5):
                assert status_of(f"{server.url}/hello/x", f"PURGE{i}") == 405
        assert gotel.stop() == 0, gotel.log
        points = receiver.latest_points(HTTP_SERVER, pid=server.pid)
    overflow = [p for p in points if p["attributes"] == {OVERFLOW_ATTRIBUTE: True}]
    assert len(overflow) == 1, points
    assert overflow[0]["count"] == 20  # the four methods that found no room
    assert sum(p["count"] for p in points) == 30
    assert "over the cardinality limit" in gotel.log


def test_no_metrics_exporter_sends_no_metrics(servers, gotels):
    server = GoServer(build_app("httpserver"))
    servers.append(server)
    with Receiver() as receiver:
        gotel = attach(receiver, gotels, server.pid, OTEL_METRICS_EXPORTER="none", **INTERVAL)
        for i in range(10):
            get(f"{server.url}/hello/{i}")
        receiver.spans(wait_for=10)
        time.sleep(1.0)
        assert gotel.stop() == 0, gotel.log
        assert receiver.metric_points() == []


def test_jsonl_metrics(servers, gotels, tmp_path):
    server = GoServer(build_app("httpserver"))
    servers.append(server)
    out = tmp_path / "metrics.jsonl"
    gotel = Gotel("attach", "--pid", str(server.pid), "--exporter", "none",
                  "--metrics-output", str(out), env={"OTEL_METRICS_EXPORTER": "jsonl"})
    gotels.append(gotel)
    gotel.wait_for(rf"pid {server.pid} .*attached")
    for i in range(7):
        get(f"{server.url}/hello/{i}")
    assert gotel.stop() == 0, gotel.log
    records = [json.loads(line) for line in out.read_text().splitlines()]
    [last] = [r for r in records if r["attributes"].get("http.route") == "/hello/{id}"][-1:]
    assert last["name"] == HTTP_SERVER and last["count"] == 7
    assert sum(last["bucket_counts"]) == 7


def greeter(binary, servers: list[GoServer], *, http: bool = False) -> tuple[GoServer, str]:
    server = GoServer(binary, *(("-http", "127.0.0.1:0") if http else ()))
    servers.append(server)
    base = ""
    if http:
        assert server.popen.stdout is not None
        line = server.popen.stdout.readline().strip()
        assert line.startswith("http on "), line
        base = "http://" + line.removeprefix("http on ")
    return server, base


def test_grpc_counts_per_method_and_code_are_exact_when_1_percent_of_traces_are_sampled(
        servers, gotels):
    binary = build_app("grpcgreeter")
    with Receiver() as receiver:
        gotel = Gotel("attach", "--exe", str(binary),
                      env={**receiver.otlp_env("grpc"), **RATIO_1_PERCENT, **INTERVAL})
        gotels.append(gotel)
        gotel.wait_for("watching for processes")
        backend, _ = greeter(binary, servers)
        front, http = greeter(binary, servers, http=True)
        for server in (backend, front):
            gotel.wait_for(rf"pid {server.pid} .*attached")
        target = backend.address
        answers = [
            get(f"{http}/load?target={target}&n=150&c=2"),  # 300 OK Checks
            get(f"{http}/load?target={target}&n=40&c=1&service=fail:5"),  # 40 NOT_FOUND
        ]
        for _ in range(12):
            answers.append(get(f"{http}/call?target={target}&rpc=missing"))  # UNIMPLEMENTED
        for _ in range(6):
            answers.append(get(f"{http}/call?target={target}&rpc=watch"))  # a stream each
        assert answers == [200] * len(answers)
        wait_points(receiver, RPC_SERVER, lambda p: sum(x["count"] for x in p) == 358,
                    pid=backend.pid)
        assert gotel.stop(timeout=60) == 0, gotel.log  # two processes' uprobes to remove
        server_points = receiver.latest_points(RPC_SERVER, pid=backend.pid)
        client_points = receiver.latest_points(RPC_CLIENT, pid=front.pid)
        http_points = receiver.latest_points(HTTP_SERVER, pid=front.pid)
        spans = receiver.read()

    health = "grpc.health.v1.Health"
    expected = {(health, "Check", 0): 300, (health, "Check", 5): 40,
                ("gotel.test.Missing", "Nope", 12): 12, (health, "Watch", 0): 6}
    for points, side in ((server_points, "server"), (client_points, "client")):
        series = by(points, "rpc.service", "rpc.method", "rpc.grpc.status_code")
        assert {k: p["count"] for k, p in series.items()} == expected, (side, points)
        for (_, _, code), point in series.items():
            check_histogram(point)
            attrs = point["attributes"]
            assert attrs["rpc.system"] == "grpc"
            assert point["scope"] == "gotel/google.golang.org/grpc"
            assert point["transport"] == "grpc"
            # Server: an error only for the server's faults; client: for any non-OK code.
            errors = {12} if side == "server" else {5, 12}
            assert ("error.type" in attrs) == (code in errors), (side, attrs)
            if side == "client":
                assert attrs["server.address"] == backend.host
                assert attrs["server.port"] == backend.port
    routes = by(http_points, "http.route")
    assert {k: p["count"] for k, p in routes.items()} == {("/load",): 2, ("/call",): 18}
    assert len(spans) < 358 // 10, len(spans)


def test_grpc_histograms_match_the_spans_durations_when_every_span_is_kept(servers, gotels):
    binary = build_app("grpcgreeter")
    with Receiver() as receiver:
        gotel = Gotel("attach", "--exe", str(binary),
                      env={**receiver.otlp_env(), "OTEL_TRACES_SAMPLER": "always_on"})
        gotels.append(gotel)
        gotel.wait_for("watching for processes")
        backend, _ = greeter(binary, servers)
        front, http = greeter(binary, servers, http=True)
        for server in (backend, front):
            gotel.wait_for(rf"pid {server.pid} .*attached")
        assert get(f"{http}/load?target={backend.address}&n=40&c=2") == 200
        for _ in range(5):
            assert get(f"{http}/call?target={backend.address}&rpc=missing") == 200
        spans = receiver.spans(wait_for=2 * 85 + 6, timeout=20)
        assert gotel.stop(timeout=60) == 0, gotel.log  # two processes' uprobes to remove
        latest = {(name, pid): receiver.latest_points(name, pid=pid)
                  for name, pid in ((RPC_SERVER, backend.pid), (RPC_CLIENT, front.pid))}

    for (name, pid), points in latest.items():
        kind = "SERVER" if name == RPC_SERVER else "CLIENT"
        mine = [s for s in spans if s["kind"] == kind and s["resource"]["process.pid"] == pid
                and s["attributes"].get("rpc.system") == "grpc"]
        assert sum(p["count"] for p in points) == len(mine) == 85, (name, points)
        for point in points:
            check_histogram(point)
            attrs = point["attributes"]
            same = [s for s in mine if s["attributes"]["rpc.method"] == attrs["rpc.method"]
                    and s["attributes"]["rpc.grpc.status_code"] == attrs["rpc.grpc.status_code"]]
            assert point["count"] == len(same)
            durations = [s["duration_ns"] / 1e9 for s in same]
            assert point["sum"] == pytest.approx(sum(durations), abs=50e-6 * len(same))


def test_database_sql_counts_per_operation_are_exact_when_1_percent_of_traces_are_sampled(
        postgres, gotels, tmp_path):  # noqa: F811 (the fixture imported above)
    metrics = tmp_path / "metrics.jsonl"
    gotel = Gotel("run", "--exporter", "none", "--metrics-output", str(metrics), "--",
                  str(sql_binary("pgx")), "-addr", "127.0.0.1:0",
                  "-dsn", dsn_for("pgx", postgres, tmp_path),
                  env={"OTEL_METRICS_EXPORTER": "jsonl", **RATIO_1_PERCENT, **INTERVAL})
    gotels.append(gotel)
    assert gotel.popen.stdout is not None
    line = gotel.popen.stdout.readline().strip()
    assert line.startswith("listening on "), gotel.log
    url = "http://" + line.removeprefix("listening on ")

    def latest() -> dict[tuple, dict]:
        text = metrics.read_text() if metrics.exists() else ""
        points: dict[tuple, dict] = {}
        for record in (json.loads(x) for x in text.splitlines() if x.endswith("}")):
            if record["name"] == DB_CLIENT:
                attrs = record["attributes"]
                points[(attrs.get("db.operation.name"), "error.type" in attrs)] = record
        return points

    time.sleep(1.5)  # the start-up's own statements (CREATE, INSERT) are exported by now
    before = {k: p["count"] for k, p in latest().items()}
    rounds = 10
    for _ in range(rounds):
        exercise(url)
    stop_run(gotel)
    after = latest()
    made = {k: p["count"] - before.get(k, 0) for k, p in after.items()}
    made = {k: n for k, n in made.items() if n}
    # The spans EXPECTED says each round makes, by operation (a Prepare's is its statement's).
    want: Counter[tuple[str, bool]] = Counter()
    for path, names in EXPECTED.items():
        for name in names:
            want[(name.removeprefix("PREPARE ").split()[0], path == "/error")] += rounds
    assert made == dict(want), after
    for point in after.values():
        attrs = point["attributes"]
        assert attrs["db.system.name"] == "postgresql"
        assert (attrs["server.address"], attrs["server.port"]) == ("127.0.0.1", postgres)
        assert attrs["db.namespace"] == "postgres"
        assert point["explicit_bounds"] == list(DB_DURATION_BOUNDS)
        assert sum(point["bucket_counts"]) == point["count"]
        assert point["scope"] == "gotel/database/sql"
    text = metrics.read_text()
    assert "pw@" not in text and "sslmode" not in text  # the DSN never leaves
    for secret in SECRETS:
        assert secret not in text


def test_go_redis_counts_per_command_are_exact_when_1_percent_of_traces_are_sampled(
        redis_port, servers, gotels, tmp_path):  # noqa: F811 (the fixture imported above)
    binary = build_redisapp(REDIS_PINNED)
    app = GoServer(binary, "-redis", f"127.0.0.1:{redis_port}", "-db", str(DB_INDEX))
    servers.append(app)
    metrics = tmp_path / "metrics.jsonl"
    gotel = Gotel("attach", "--pid", str(app.pid), "--exporter", "none",
                  "--metrics-output", str(metrics),
                  env={"OTEL_METRICS_EXPORTER": "jsonl", **RATIO_1_PERCENT, **INTERVAL})
    gotels.append(gotel)
    gotel.wait_for(rf"pid {app.pid} .*attached")
    # The connection's setup (HELLO, CLIENT ...) happens on first use: before the count.
    assert post(f"{app.url}/commands?key=warm", "1")
    time.sleep(1.2)

    def latest() -> dict[tuple, dict]:
        points: dict[tuple, dict] = {}
        for line in metrics.read_text().splitlines() if metrics.exists() else []:
            record = json.loads(line)
            if record["name"] == DB_CLIENT:
                attrs = record["attributes"]
                points[(attrs.get("db.operation.name"), attrs.get("error.type"))] = record
        return points

    before = {k: p["count"] for k, p in latest().items()}
    rounds = 12
    for i in range(rounds):
        assert post(f"{app.url}/commands?key=r{i}", "not-a-number").split()[4] == (
            "INCR-TEXT=error")
    assert gotel.stop() == 0, gotel.log
    after = latest()
    made = {k: p["count"] - before.get(k, 0) for k, p in after.items()}
    want = Counter[tuple]()
    for name, _, _, error in COMMANDS:  # a miss (redis.Nil) is no error
        want[(name, error)] += rounds
    assert {k: n for k, n in made.items() if n} == dict(want), after
    for point in after.values():
        attrs = point["attributes"]
        assert attrs["db.system.name"] == "redis"
        assert (attrs["server.address"], attrs["server.port"]) == ("127.0.0.1", redis_port)
        assert attrs["db.namespace"] == str(DB_INDEX)
        assert sum(point["bucket_counts"]) == point["count"]
        assert point["scope"] == "gotel/github.com/redis/go-redis/v9"
    assert after[("INCR", "ERR")]["attributes"]["db.response.status_code"] == "ERR"
