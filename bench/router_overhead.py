#!/usr/bin/env python3
"""What a router's route probe adds to an HTTP request: uprobe hits and µs per request, for
gin, echo, chi and gorilla/mux.

Run as root from the repository (BPF objects built with `make bpf`):

    .venv/bin/python bench/router_overhead.py                 # ~4 min
    .venv/bin/python bench/router_overhead.py --rounds 2 --duration 2

The apps are the router e2e tests' (tests/apps/{ginapp,echoapp,chiapp,muxapp}), two routes
each: a top-level one (/health) and one behind two route groups / sub-routers / mounts
(/api/v1/users/7). Under wrk -c1, rounds alternate three modes: no gotel (`off`), `gotel
attach --exporter none` with every probe but the router's (`noroute`, a launcher in this
script drops the probe from gotel's registry), and gotel as shipped (`on`). Added µs per
request = 1/rps_on - 1/rps_off; the route's own µs = 1/rps_on - 1/rps_noroute. Hits per
request are counted on the real uprobe sites of gotel's plan, per site. It prints numbers;
it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchlib import (
    Case,
    Children,
    GoService,
    bench_main,
    med,
    run_wrk,
    spread,
    start_gotel,
    step,
    stop_gotel,
)
from hitcost import compile_counter, count_site_hits, plan_hits

from gotools import APPS, build_app

C1 = Case("c1", 1, 1)
# name -> (app, top-level route, nested route)
APPS_ = {
    "gin": (str(APPS / "ginapp"), "/health", "/api/v1/users/7"),
    "echo": (str(APPS / "echoapp"), "/health", "/api/v1/users/7"),
    "chi": (str(APPS / "chiapp"), "/health", "/api/v1/users/7"),
    "gorilla/mux": (str(APPS / "muxapp"), "/health", "/api/v1/users/7"),
}
ROUTES = ("top", "nested")
MODES = ("off", "noroute", "on")
# `gotel` without the router probes (their names end in " route").
NO_ROUTE = [sys.executable, "-c",
            "import sys; import gotel.instrumentation.registry as r; every = r.all_probes; "
            "r.all_probes = lambda: [p for p in every() if not p.name.endswith(' route')]; "
            "from gotel.cli import main; sys.exit(main())"]


def one(children: Children, pid: int, url: str, mode: str, duration: float
        ) -> tuple[float, int]:
    """(req/s, uprobes attached) of one wrk -c1 run in `mode`."""
    run = None
    if mode != "off":
        run = start_gotel(children, [pid], "none", None, NO_ROUTE if mode == "noroute" else None)
    try:
        return run_wrk(url, 1, 1, duration).rps, run.uprobes[pid] if run else 0
    finally:
        if run:
            stop_gotel(children, run)


def run(args: argparse.Namespace, children: Children, tmp: Path, _stats: bool) -> int:
    with step("building the apps and the hit counter"):
        binaries = {name: build_app(app) for name, (app, _, _) in APPS_.items()}
        counter = compile_counter(tmp)
    rps: dict[tuple[str, str, str], list[float]] = {}
    uprobes: dict[tuple[str, str], int] = {}
    hits: dict[tuple[str, str], tuple[float, dict[str, float]]] = {}
    for name, (_, top, nested) in APPS_.items():
        binary = binaries[name]
        server = GoService(children, binary)
        urls = {"top": server.base + top, "nested": server.base + nested}
        plan = plan_hits(binary)
        with step(f"{name}: {args.rounds} rounds x {len(ROUTES)} routes x {'/'.join(MODES)}"):
            run_wrk(urls["nested"], 1, 1, 1)  # warm-up
            for rnd in range(args.rounds):
                for route in ROUTES:
                    for mode in MODES if rnd % 2 == 0 else MODES[::-1]:
                        r, attached = one(children, server.pid, urls[route], mode, args.duration)
                        rps.setdefault((name, route, mode), []).append(r)
                        uprobes[(name, mode)] = attached
        with step(f"{name}: hits per request on gotel's planned sites"):
            for route in ROUTES:
                counted, requests = count_site_hits(
                    counter, [(server.pid, binary, plan.sites)], urls[route], C1,
                    min(2.0, args.duration))
                per_site = {f"{site.probe}: {site.label}": c / max(1, requests)
                            for (_, site), c in counted.items()}
                hits[(name, route)] = (sum(per_site.values()), per_site)
        children.end(server.proc)

    def us(name: str, route: str, mode: str) -> float:
        return 1e6 / med(rps[(name, route, mode)])

    print(f"router route probes: wrk -c1, {args.rounds} rounds x {args.duration:g} s, "
          "gotel --exporter none; uprobes attached noroute -> on: " + ", ".join(
              f"{n} {uprobes[(n, 'noroute')]} -> {uprobes[(n, 'on')]}" for n in APPS_))
    print(f"{'app':<13}{'route':<8}" + "".join(f"{m + ' req/s':>14}{'±':>7}" for m in MODES)
          + f"{'added µs':>10}{'hits':>6}{'route hits':>11}{'route µs':>10}")
    for name in APPS_:
        for route in ROUTES:
            total, per_site = hits[(name, route)]
            router_hits = sum(v for k, v in per_site.items() if not k.startswith("net/http"))
            cells = "".join(f"{med(rps[(name, route, m)]):>14.0f}{spread(rps[(name, route, m)]):>7}"
                            for m in MODES)
            added = us(name, route, "on") - us(name, route, "off")
            route_us = us(name, route, "on") - us(name, route, "noroute")
            print(f"{name:<13}{route:<8}{cells}{added:>10.1f}{total:>6.2f}{router_hits:>11.2f}"
                  f"{route_us:>10.1f}")
    print("\nhits per request by site (nested route):")
    for name in APPS_:
        _, per_site = hits[(name, "nested")]
        print(f"  {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in per_site.items() if v))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run (default 3)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    args = ap.parse_args()
    if args.rounds < 1 or args.duration < 1:
        ap.error("need --rounds >= 1 and --duration >= 1")
    return bench_main("router_overhead", args, run)


if __name__ == "__main__":
    sys.exit(main())
