"""The printed report of bench/propagation.py (kept apart: the script is long enough)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from benchlib import CASES, DRAIN_WAIT_S, med, spread
from hitcost import HitCost
from overhead import CaseResult, Derived, derive
from propagation import MODES, SERVICES, ChainSample, Diff, Hits, chain_diff, round_ranges

Chains = dict[str, dict[str, list[ChainSample]]]  # case -> mode -> samples


def rng(r: tuple[float, float]) -> str:
    return f"{r[0]:.1f}..{r[1]:.1f}"


def per_req_med(samples: list[ChainSample], value: Callable[[ChainSample], float]) -> float:
    return med([s.per_req(value(s)) for s in samples])


def print_table(chains: Chains) -> None:
    head = (f"   {'case':<5}{'mode':<8}{'req/s':>7}{'±':>7}{'A':>7}{'B':>7}{'wrk':>6}"
            f"{'gotel':>7}{'sum':>7}{'busy':>6}{'other':>6}{'conns/req':>10}{'lost/req':>9}")
    print(f"   {'':<27}{'- CPU µs per request -':^34}{'machine':^12}")
    print(head)
    print("   " + "-" * (len(head) - 3))
    for case in CASES:
        for mode in MODES:
            ss = chains[case.name][mode]
            rps = [s.rps for s in ss]
            cols = [per_req_med(ss, lambda s, k=k: s.cpu[k]) for k in (*SERVICES, "wrk")]
            gotel = f"{per_req_med(ss, lambda s: s.cpu['gotel']):.1f}" if mode != "off" else "-"
            lost = (f"{sum(s.lost for s in ss) / sum(s.requests for s in ss):.3f}"
                    if mode != "off" else "-")
            print(f"   {case.name:<5}{mode:<8}{med(rps):>7.0f}{spread(rps):>7}"
                  + "".join(f"{v:>7.1f}" for v in cols[:2]) + f"{cols[2]:>6.1f}{gotel:>7}"
                  f"{per_req_med(ss, lambda s: s.ours):>7.1f}"
                  f"{100 * med([s.busy for s in ss]):>5.0f}%"
                  f"{100 * med([s.other_share for s in ss]):>5.0f}%"
                  f"{med([s.opens / max(1, s.requests) for s in ss]):>10.3f}{lost:>9}")
        rounds = zip(*(chains[case.name][m] for m in MODES), strict=True)
        print(f"   {'':<5}req/s per round, {'/'.join(MODES)}: "
              + "  ".join("/".join(f"{s.rps:.0f}" for s in r) for r in rounds))


def gotel_lines(chains: Chains) -> None:
    for mode in MODES[1:]:
        for case in CASES:
            ss = chains[case.name][mode]
            spans, lost = sum(s.spans for s in ss), sum(s.lost for s in ss)
            events = sum(t.events for s in ss for t in s.targets.values())
            requests, secs = sum(s.requests for s in ss), sum(s.seconds for s in ss)
            cpu = sum(s.gotel_cpu for s in ss)
            outs = {f"{k} {v}" for s in ss for k, v in s.out.items()}
            ups = {f"{k} {v}" for s in ss for k, v in s.uprobes.items()}
            undec = sum(t.undecodable for s in ss for t in s.targets.values())
            print(f"   {case.name} {mode:<6}: {cpu:.2f} s for {spans} spans "
                  f"({spans / max(1, requests):.2f}/request) = "
                  f"{1000 * cpu / max(1, spans):.3f} CPU s per 1000 spans; lost {lost} of "
                  f"{events + lost} events ({100 * lost / max(1, events + lost):.2f}%, "
                  f"{lost / max(1, secs):.2f}/s); undecodable {undec}")
            print(f"   {'':<10}traceparent out: {', '.join(sorted(outs))}; uprobes: "
                  f"{', '.join(sorted(ups))}")
            if mode == "on":
                for svc in SERVICES:
                    total: dict[str, int] = {}
                    for s in ss:
                        for k, v in s.targets[svc].injection.items():
                            total[k] = total.get(k, 0) + v
                    text = ", ".join(f"{k} {v / max(1, requests):.3f}"
                                     for k, v in sorted(total.items())) or "no messages"
                    print(f"   {'':<10}traceparent insertion in {svc}, per request: {text}")


def bpf_table(chains: Chains, hellos: dict[str, CaseResult]) -> None:
    acc: dict[tuple[str, str, str], list[int]] = {}  # (mode, case, prog) -> [ns, runs, reqs]
    for case in CASES:
        groups = [(m, chains[case.name][m]) for m in MODES[1:]]
        groups.append(("hello", hellos[case.name].on))  # type: ignore[arg-type]
        for mode, ss in groups:
            for s in ss:
                for prog, (ns, runs) in s.bpf.items():
                    a = acc.setdefault((mode, case.name, prog), [0, 0, 0])
                    a[0] += ns
                    a[1] += runs
                    a[2] += s.requests
    print("   BPF programs (kernel BPF stats on gotel's program fds; A's and B's copies added "
          "up): µs per run, runs per request")
    print(f"   {'program':<22}" + "".join(f"{m + ' ' + c.name:>22}" for m in (*MODES[1:], "hello")
                                          for c in CASES))
    for prog in sorted({k[2] for k in acc}):
        cells = []
        for mode in (*MODES[1:], "hello"):
            for case in CASES:
                ns, runs, reqs = acc.get((mode, case.name, prog), [0, 0, 0])
                cells.append(f"{ns / max(1, runs) / 1000:.2f} x {runs / max(1, reqs):.3f}"
                             if runs else "-")
        print(f"   {prog:<22}" + "".join(f"{c:>22}" for c in cells))


def diff_rows(chains: Chains, hellos: dict[str, CaseResult]) -> dict[tuple[str, str], Diff]:
    rows: dict[tuple[str, str], Diff] = {}
    for case in CASES:
        c = chains[case.name]
        rows[(case.name, "probes - off")] = chain_diff(c["probes"], c["off"])
        rows[(case.name, "on - probes")] = chain_diff(c["on"], c["probes"])
        rows[(case.name, "on - off")] = chain_diff(c["on"], c["off"])
        hr = hellos[case.name]
        h: Derived = derive(hr)
        rows[(case.name, "hello on - off")] = Diff(
            h.wall_us, h.cpu_us, {"A": h.server_us, "B": 0.0, "wrk": h.wrk_us,
                                  "gotel": h.gotel_us}, h.bpf_us, h.bpf_runs,
            *round_ranges([s.rps for s in hr.on], [s.rps for s in hr.off],
                          [s.per_req(s.ours_cpu) for s in hr.on],
                          [s.per_req(s.ours_cpu) for s in hr.off]))
    return rows


def report(args: argparse.Namespace, chains: Chains, hellos: dict[str, CaseResult],
           check: ChainSample, connected: str, hits: dict[str, Hits], hello_hits: Hits,
           cost: HitCost, demo_uprobes: int, hello_uprobes: int, first: str,
           bpf_stats: bool, cgroup: str) -> None:
    print("\n== 1. wrk -> A/chain -> B/chain (src/gotel/demoapp twice; A's handler calls B "
          "with the request's context)")
    print("   off = no gotel; probes = one gotel on A and B, traceparent injector disabled "
          "(same uprobes); on = gotel as shipped")
    print("   c1 = wrk -t1 -c1, c8 = wrk -t2 -c8; medians over rounds, ± = half the range; "
          "conns/req = TCP connections")
    print("   opened on the machine per request (A dials B anew when more than 2 requests "
          "overlap: Go's default Transport)")
    print_table(chains)
    print("   CPU = utime+stime of each process during the wrk run (loopback TCP work is "
          "charged to them);")
    print("   busy = machine utilisation; other = share of the machine busy outside these "
          "processes (noise)")
    for e in sorted({s.errors for c in chains.values() for ss in c.values() for s in ss
                     if s.errors}):
        print(f"   wrk reported: {e}")
    print(f"\n   gotel's own CPU (wrk start until drained {DRAIN_WAIT_S:g} s later), spans "
          "(gotel's summary lines; 3 per request expected), losses:")
    gotel_lines(chains)
    print(f"   without gotel, A/chain answered {first!r}; A and B run in cgroup v2 "
          f"{cgroup!r}: each target's injector attaches its")
    print("   sockops program there, which runs on TCP events of every socket in that cgroup "
          "(track_sockets below)")
    print(f"   connected check (c8, on, --exporter jsonl to a file): {check.requests} requests, "
          f"{check.rps:.0f} req/s, {check.lost} lost, {connected}")

    print("\n== 2. Added per request: wall µs = 1/rps_x - 1/rps_y (medians: the latency added "
          "at c1, machine time")
    print("   at c8); CPU µs = (A + B + wrk + gotel) CPU per request, x - y, split per process "
          "(Δ); BPF = gotel's")
    print("   programs' run time per request (part of A Δ and B Δ)"
          + ("" if bpf_stats else ": UNAVAILABLE (BPF_ENABLE_STATS failed)")
          + "; hello = bench/apps/hello, server probe only (A column = its server)")
    rows = diff_rows(chains, hellos)
    print(f"   {'case':<5}{'step':<16}{'wall µs':>8}{'CPU µs':>8}{'A Δ':>7}{'B Δ':>7}"
          f"{'wrk Δ':>7}{'gotel':>7}{'BPF µs':>8}{'runs':>7}{'wall rounds':>16}"
          f"{'CPU rounds':>16}")
    for (case, name), d in rows.items():
        p = d.parts
        print(f"   {case:<5}{name:<16}{d.wall_us:>8.2f}{d.cpu_us:>8.2f}{p['A']:>7.2f}"
              f"{p['B']:>7.2f}{p['wrk']:>7.2f}{p['gotel']:>7.2f}{d.bpf_us:>8.2f}"
              f"{d.bpf_runs:>7.2f}{rng(d.wall_range):>16}{rng(d.cpu_range):>16}")
    print("   rounds = min..max over rounds of the same difference taken within one round "
          "(its runs were back to back)")
    bpf_table(chains, hellos)

    entry_us, ret_us = cost.added_us("entry"), cost.added_us("ret")
    print(f"\n== 3. Ratios. One uprobe hit (bench/apps/uprobecost, thread CPU, median of 3): "
          f"entry {entry_us:.2f} µs on `{cost.entry_insn}`, RET {ret_us:.2f} µs")
    print(f"   gotel's plan: {demo_uprobes} uprobes per demo service (server: ServeHTTP entry + "
          f"RET; client: roundTrip entry + RETs, Request.write entry); hello {hello_uprobes}")
    print("   hits per request counted under load on each planned site (gotel off; one "
          "counting program per site, pid-filtered):")
    for case, h in hits.items():
        for svc in SERVICES:
            sites = ", ".join(f"{site.label} {v:.3f}" for (s, site), v in h.per_site.items()
                              if s == svc)
            print(f"   {case} {svc}: {sites} = {h.total(svc):.3f}")
        print(f"   {case} chain: {h.total('A') + h.total('B'):.3f} hits over {h.requests} "
              f"requests = {h.total(kind='entry'):.3f} entry + {h.total(kind='RET'):.3f} RET = "
              f"{h.expected_us(cost):.2f} µs expected")
    print(f"   c1 hello: {hello_hits.total():.3f} hits over {hello_hits.requests} requests = "
          f"{hello_hits.expected_us(cost):.2f} µs expected")
    print("   ratio = added / expected (1: the uprobe traps are the whole cost); A+B = the "
          "services' own CPU Δ")
    print(f"   {'case':<5}{'step':<16}{'expected':>9}{'wall ratio':>11}{'CPU ratio':>10}"
          f"{'A+B ratio':>10}")
    for (case, name), d in rows.items():
        if name == "on - probes":
            continue  # the same uprobes on both sides
        exp = (hello_hits if name.startswith("hello") else hits[case]).expected_us(cost)
        print(f"   {case:<5}{name:<16}{exp:>9.2f}{d.wall_us / exp:>11.2f}{d.cpu_us / exp:>10.2f}"
              f"{(d.parts['A'] + d.parts['B']) / exp:>10.2f}")
    headlines(chains, hellos, rows, hits, hello_hits, cost, check, connected, args)


def headlines(chains: Chains, hellos: dict[str, CaseResult], rows: dict[tuple[str, str], Diff],
              hits: dict[str, Hits], hello_hits: Hits, cost: HitCost, check: ChainSample,
              connected: str, args: argparse.Namespace) -> None:
    def rps(case: str, mode: str) -> float:
        return med([s.rps for s in chains[case][mode]])

    print("\nHEADLINES")
    for case in CASES:
        off, probes, on = (rps(case.name, m) for m in MODES)
        h = derive(hellos[case.name])
        print(f"chain {case.name}: {off:.0f} -> {probes:.0f} (probes, "
              f"{100 * (probes / off - 1):+.1f}%) -> {on:.0f} req/s (on, "
              f"{100 * (on / off - 1):+.1f}%);  hello: {h.rps_off:.0f}"
              f" -> {h.rps_on:.0f} ({100 * (h.rps_on / h.rps_off - 1):+.1f}%)")
    exp1, exp8 = hits["c1"].expected_us(cost), hits["c8"].expected_us(cost)
    hexp = hello_hits.expected_us(cost)
    n1 = hits["c1"].total()
    r = rows
    print(f"chain c1 added latency per request: {r[('c1', 'on - off')].wall_us:.2f} µs = "
          f"{r[('c1', 'on - off')].wall_us / exp1:.2f} x the uprobe cost ({n1:.2f} hits = "
          f"{exp1:.2f} µs); of which insertion (on - probes) {r[('c1', 'on - probes')].wall_us:.2f}"
          f" µs (single rounds: {rng(r[('c1', 'on - probes')].wall_range)})")
    print(f"chain c8 added CPU per request: {r[('c8', 'on - off')].cpu_us:.2f} µs = "
          f"{r[('c8', 'on - off')].cpu_us / exp8:.2f} x the uprobe cost ({exp8:.2f} µs); "
          f"insertion alone {r[('c8', 'on - probes')].cpu_us:.2f} µs (single rounds: "
          f"{rng(r[('c8', 'on - probes')].cpu_range)})")
    sk = {}
    for s in chains["c8"]["on"]:
        for prog, (ns, runs) in s.bpf.items():
            if prog.startswith(("inject_", "track_sock")):
                a = sk.setdefault(prog, [0, 0])
                a[0] += ns
                a[1] += runs
    req8 = sum(s.requests for s in chains["c8"]["on"])
    print("insertion's BPF programs at c8: " + (", ".join(
        f"{p} {ns / max(1, runs) / 1000:.2f} µs x {runs / max(1, req8):.3f} runs/request"
        for p, (ns, runs) in sorted(sk.items())) or "not seen (no BPF stats?)"))
    print(f"hello (server probe only): c1 {r[('c1', 'hello on - off')].wall_us:.2f} µs wall = "
          f"{r[('c1', 'hello on - off')].wall_us / hexp:.2f} x, c8 "
          f"{r[('c8', 'hello on - off')].cpu_us:.2f} µs CPU = "
          f"{r[('c8', 'hello on - off')].cpu_us / hexp:.2f} x its uprobe cost ({hexp:.2f} µs)")
    for mode in MODES[1:]:
        ss = [s for c in CASES for s in chains[c.name][mode]]
        spans, lost = sum(s.spans for s in ss), sum(s.lost for s in ss)
        events = sum(t.events for s in ss for t in s.targets.values()) + lost
        secs = sum(s.seconds for s in ss)
        print(f"chain {mode}: gotel {1000 * sum(s.gotel_cpu for s in ss) / max(1, spans):.3f} "
              f"CPU s per 1000 spans ({args.exporter}); events lost {lost} of {events} "
              f"({100 * lost / max(1, events):.2f}%, {lost / max(1, secs):.2f}/s of run)")
    hs = [derive(hellos[c.name]) for c in CASES]
    hspans = sum(h.spans for h in hs)
    print(f"hello: gotel {1000 * sum(h.gotel_cpu for h in hs) / max(1, hspans):.3f} CPU s per "
          f"1000 spans; events lost {sum(h.lost for h in hs)} of {sum(h.requests_on for h in hs)}")
    print(f"connected (c8, jsonl): {connected.split(';', 1)[1].strip()}")
