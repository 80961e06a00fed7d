"""Spans as read back from a trace backend, and the summary the demo prints of them."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gotel.demos.emojivoto.build import SERVICES
from gotel.instrumentation.grpc.semconv import code_name
from gotel.trace.span import Span

EMOJI_SERVICE = "emojivoto.v1.EmojiService"
VOTING_SERVICE = "emojivoto.v1.VotingService"


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


def span_from_otlp(resource: Mapping[str, Any], span: Span) -> TraceSpan:
    """A span decoded from an OTLP request (gotel.export.otlp_decode), as the demo reads it."""
    return TraceSpan(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_id.hex() if span.parent_id else None,
        service=str(resource.get("service.name", "?")),
        name=span.name,
        kind=span.kind.name,
        start_us=span.start_ns // 1000,
        duration_us=span.duration_ns() // 1000,
        error=span.error,
        attributes={k: v.hex() if isinstance(v, bytes) else v for k, v in span.attributes.items()},
    )


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
