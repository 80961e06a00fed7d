#!/usr/bin/env python3
"""What gotel adds to one SQL query, Redis command, manual (OpenTelemetry API) span or Kafka
produce/consume call: uprobe hits and µs, from the slope between two loads.

Run as root from the repository (BPF objects built with `make bpf`):

    .venv/bin/python bench/db_overhead.py                 # SQL, ~1.5 min
    .venv/bin/python bench/db_overhead.py --target redis  # go-redis against redis-server
    .venv/bin/python bench/db_overhead.py --target otel   # spans started with the OTel API
    .venv/bin/python bench/db_overhead.py --target kafka-send   # kafka-go, a real broker
    .venv/bin/python bench/db_overhead.py --target kafka-fetch  # or kafka-read
    .venv/bin/python bench/db_overhead.py --rounds 5 --duration 5

--target sql: tests/apps/sqlapp (database/sql over modernc.org/sqlite: a real database
file, no server to share the 2 CPUs with); --target redis: tests/apps/redisapp (go-redis v9)
against a real redis-server on a free port; --target otel: tests/apps/otelapp (the global
tracer, no SDK: the API bridge; each span has two attributes at Start and one set later);
--target kafka-*: tests/apps/kafkaapp (kafka-go) against a real Kafka broker
(tests/kafka_broker.py): one message per WriteMessages call (send), or FetchMessage /
ReadMessage calls on a topic of 20000 messages read over and over.
Each serves a URL with n=N: N queries, GETs, spans or Kafka calls per request. Under wrk -c1, rounds
alternate without / with `gotel attach`, at N=1 and N=11; the difference of the added time
between the two, over 10, is what one call gains (the
HTTP server span's cost cancels out). The hits per call are counted on the real uprobe
sites of gotel's plan. It prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchlib import (
    CLK_TCK,
    Case,
    Children,
    GoService,
    bench_main,
    cpu_seconds,
    med,
    run_wrk,
    spread,
    start_gotel,
    step,
    stop_gotel,
)
from hitcost import compile_counter, count_site_hits, plan_hits

from gotools import APPS, build_app
from kafka_broker import KafkaBroker

LOW, HIGH = 1, 11
KAFKA_APP = "tests/apps/kafkaapp (kafka-go, a Kafka 4.4 broker)"
# --target -> (the app, what one call is)
TARGETS = {
    "sql": ("tests/apps/sqlapp (modernc.org/sqlite)", "SQL query"),
    "redis": ("tests/apps/redisapp (go-redis v9, redis-server)", "Redis command"),
    "otel": ("tests/apps/otelapp (OpenTelemetry API, no SDK)", "manual span"),
    "kafka-send": (KAFKA_APP, "WriteMessages"),
    "kafka-fetch": (KAFKA_APP, "FetchMessage"),
    "kafka-read": (KAFKA_APP, "ReadMessage"),
}
C1 = Case("c1", 1, 1)
KAFKA_TOPIC = "bench"
KAFKA_MESSAGES = 20_000  # the consume targets' topic, read from its start again at its end
# The request each target repeats, n calls per request.
PATHS = {
    "kafka-send": f"/repeat?topic={KAFKA_TOPIC}&n={{n}}",
    "kafka-fetch": f"/consume?topic={KAFKA_TOPIC}&wrap={KAFKA_MESSAGES}&n={{n}}",
    "kafka-read": f"/consume?topic={KAFKA_TOPIC}&wrap={KAFKA_MESSAGES}&read=1&n={{n}}",
}


class Service(GoService):
    path = "/repeat?n={n}"

    def repeat(self, n: int) -> str:
        return self.base + self.path.format(n=n)


def fill_topic(server: Service) -> None:
    """KAFKA_MESSAGES messages in the bench topic, 1000 per WriteMessages call."""
    for i in range(KAFKA_MESSAGES // 1000):
        create = "&create=1" if i == 0 else ""
        request = urllib.request.Request(
            f"{server.base}/produce?topic={KAFKA_TOPIC}&n=1000{create}", data=b"m",
            method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()


def start_redis(children: Children, tmp: Path) -> int:
    """A real redis-server without persistence on a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    children.start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return port
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def one(children: Children, server: Service, n: int, on: bool, duration: float
        ) -> tuple[float, float, int]:
    """(req/s, gotel CPU s, requests) of one wrk -c1 run."""
    run = start_gotel(children, [server.pid], "none", None) if on else None
    try:
        g0 = cpu_seconds(run.proc.pid) if run else 0.0
        res = run_wrk(server.repeat(n), 1, 1, duration)
        gotel_cpu = cpu_seconds(run.proc.pid) - g0 if run else 0.0
    finally:
        if run:
            stop_gotel(children, run)
    return res.rps, gotel_cpu, res.requests


def run(args: argparse.Namespace, children: Children, tmp: Path, _stats: bool) -> int:
    broker: KafkaBroker | None = None
    try:
        if args.target.startswith("kafka"):
            with step("starting a Kafka broker"):
                broker = KafkaBroker(tmp)
        return measure(args, children, tmp, broker)
    finally:
        if broker is not None:
            broker.stop()


def measure(args: argparse.Namespace, children: Children, tmp: Path,
            broker: KafkaBroker | None) -> int:
    app = TARGETS[args.target][0]
    with step(f"building {app} and the hit counter"):
        if args.target == "sql":
            binary = build_app(APPS / "sqlapp", package="./modernc")
            flags = ["-dsn", str(tmp / "bench.db")]
        elif args.target == "otel":
            binary = build_app(APPS / "otelapp")
            flags = []
        elif broker is not None:
            binary = build_app(APPS / "kafkaapp")
            flags = ["-role", "producer", "-broker", broker.bootstrap]
        else:
            binary = build_app(APPS / "redisapp")
            flags = ["-redis", f"127.0.0.1:{start_redis(children, tmp)}"]
        counter = compile_counter(tmp)
        plan = plan_hits(binary)
    server = Service(children, binary, *flags)
    server.path = PATHS.get(args.target, server.path)
    if broker is not None:
        with step(f"filling topic {KAFKA_TOPIC} with {KAFKA_MESSAGES} messages"):
            fill_topic(server)
    with step("warm-up"):
        run_wrk(server.repeat(HIGH), 1, 1, 1)
    rps: dict[tuple[int, bool], list[float]] = {}
    gotel_us: dict[int, list[float]] = {}
    with step(f"{args.rounds} rounds x n={LOW},{HIGH} x off/on, {args.duration:g} s each"):
        for rnd in range(args.rounds):
            for n in (LOW, HIGH):
                for on in ((False, True) if rnd % 2 == 0 else (True, False)):
                    r, cpu, requests = one(children, server, n, on, args.duration)
                    rps.setdefault((n, on), []).append(r)
                    if on:
                        gotel_us.setdefault(n, []).append(1e6 * cpu / max(1, requests))
    with step("hits per request on gotel's planned sites"):
        hits = {}
        for n in (LOW, HIGH):
            counted, requests = count_site_hits(counter, [(server.pid, binary, plan.sites)],
                                                server.repeat(n), C1, min(2.0, args.duration))
            hits[n] = sum(counted.values()) / max(1, requests)
            per_site = {site.label: c / max(1, requests) for (_, site), c in counted.items()}
    children.end(server.proc)

    def added(n: int) -> float:
        return 1e6 * (1 / med(rps[(n, True)]) - 1 / med(rps[(n, False)]))

    call = TARGETS[args.target][1]
    print(f"gotel per {call}: {app}, wrk -c1, "
          f"{args.rounds} rounds x {args.duration:g} s, gotel --exporter none; CLK_TCK {CLK_TCK}")
    print(f"{'n':>4}{'off req/s':>11}{'±':>8}{'on req/s':>10}{'±':>8}{'added µs/req':>14}"
          f"{'hits/req':>10}{'gotel CPU µs/req':>18}")
    for n in (LOW, HIGH):
        off, on = rps[(n, False)], rps[(n, True)]
        print(f"{n:>4}{med(off):>11.0f}{spread(off):>8}{med(on):>10.0f}{spread(on):>8}"
              f"{added(n):>14.2f}{hits[n]:>10.2f}{med(gotel_us[n]):>18.2f}")
    per_query = (added(HIGH) - added(LOW)) / (HIGH - LOW)
    hits_per_query = (hits[HIGH] - hits[LOW]) / (HIGH - LOW)
    cpu_per_query = (med(gotel_us[HIGH]) - med(gotel_us[LOW])) / (HIGH - LOW)
    print(f"hits at n={HIGH} by site: " + ", ".join(f"{k} {v:.2f}" for k, v in per_site.items()))
    print(f"\nper {call}: {hits_per_query:.2f} uprobe hits, {per_query:.2f} µs added latency, "
          f"{cpu_per_query:.2f} µs of gotel CPU")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--target", choices=tuple(TARGETS), default="sql",
                    help="sql: database/sql on SQLite; redis: go-redis on redis-server; "
                    "otel: manual spans of the OpenTelemetry API; kafka-send, kafka-fetch, "
                    "kafka-read: kafka-go on a Kafka broker")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run (default 3)")
    ap.add_argument("--rounds", type=int, default=4, help="rounds (default 4)")
    args = ap.parse_args()
    if args.rounds < 1 or args.duration < 1:
        ap.error("need --rounds >= 1 and --duration >= 1")
    return bench_main("db_overhead", args, run)


if __name__ == "__main__":
    sys.exit(main())
