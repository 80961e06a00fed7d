"""`gotel doctor`: can this machine run gotel, and what does each missing piece cost the user."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from gotel import privileges
from gotel.errors import EXIT_ENVIRONMENT, EXIT_OK, GotelError

LOCKDOWN = Path("/sys/kernel/security/lockdown")
UPROBE_PMU = Path("/sys/bus/event_source/devices/uprobe/type")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    meaning: str  # what it means for the user, most useful when not ok
    required: bool = True


def _kernel() -> Check:
    release = platform.release()
    parts = release.split(".")
    version = (int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0))
    ok = version >= (5, 8)
    return Check(
        "kernel", ok, release,
        "5.8+ needed for BPF ring buffers" if not ok else "ring buffers and uprobes available",
    )


def _btf() -> Check:
    ok = Path("/sys/kernel/btf/vmlinux").exists()
    return Check(
        "kernel BTF", ok, "/sys/kernel/btf/vmlinux" + ("" if ok else " missing"),
        "needed by the socket-level traceparent injection (reads the Go g from the task)",
        required=False,
    )


def _uprobes() -> Check:
    if UPROBE_PMU.exists():
        return Check("uprobes", True, "perf uprobe PMU", "functions in Go binaries can be probed")
    tracefs = Path("/sys/kernel/tracing/uprobe_events")
    ok = tracefs.exists()
    return Check(
        "uprobes", ok, "tracefs uprobe_events" if ok else "not available",
        "the kernel needs CONFIG_UPROBE_EVENTS; without it gotel cannot trace anything",
    )


def _feature(name: str, probe: Callable[[], bool], meaning: str, required: bool = True) -> Check:
    try:
        ok = probe()
        detail = "supported" if ok else "not supported"
    except GotelError as exc:
        ok, detail = False, str(exc)
    return Check(name, ok, detail, meaning, required)


def _cgroup_v2() -> Check:
    from gotel.ebpf.cgroup import cgroup2_mounts

    mounts = cgroup2_mounts()
    ok = bool(mounts)
    return Check(
        "cgroup v2", ok, f"mounted at {mounts[0][1]}" if ok else "not mounted",
        "outgoing traceparent is inserted by programs attached to the target's cgroup v2"
        if ok else "without cgroup v2 traces do not connect across services",
        required=False,
    )


def _lockdown() -> Check:
    # doctor only looks: where securityfs is not mounted (many containers) it says so.
    try:
        text = LOCKDOWN.read_text().strip()
    except OSError:
        return Check("lockdown", True, "unknown (securityfs not mounted here)",
                     "gotel never writes into the target's memory: lockdown cannot limit it",
                     required=False)
    mode = text[text.find("[") + 1 : text.find("]")] if "[" in text else text
    return Check(
        "lockdown", True, mode,
        "gotel never writes into the target's memory, so lockdown does not limit it"
        if mode != "none" else "no lockdown",
        required=False,
    )


def _capabilities() -> Check:
    missing = privileges.missing_for_tracing()
    if os.geteuid() == 0 and not missing:
        return Check("privileges", True, "root", "may load BPF and attach uprobes")
    ok = not missing
    return Check(
        "privileges", ok, "ok" if ok else "missing " + ", ".join(missing),
        "run as root or grant CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE",
    )


def _libbpf() -> Check:
    try:
        from gotel.ebpf import libbpf_version

        version = libbpf_version()
    except GotelError as exc:
        return Check("libbpf", False, str(exc), "install libbpf1 (1.1 or newer)")
    major, minor = (int(x) for x in version.split(".")[:2])
    ok = (major, minor) >= (1, 1)
    return Check("libbpf", ok, version, "1.1 or newer needed" if not ok else "loader ready")


def collect_checks() -> list[Check]:
    from gotel.ebpf import features

    return [
        _kernel(),
        _capabilities(),
        _libbpf(),
        _uprobes(),
        _feature(
            "ring buffer", lambda: features.map_type_supported("ringbuf"),
            "events reach gotel through BPF ring buffers",
        ),
        _btf(),
        _lockdown(),
        _feature(
            "bpf_probe_write_user", lambda: features.helper_supported("kprobe", "probe_write_user"),
            "not used: gotel propagates context at the socket layer instead", required=False,
        ),
        _injector(),
        _cgroup_v2(),
    ]


# What the socket-level traceparent injector loads (instrumentation/sockinject and the
# client probes that feed it): program types, map types, and helpers per program type.
INJECTOR_NEEDS: tuple[tuple[str, str, str], ...] = (
    ("program", "sock_ops", ""),
    ("program", "sk_msg", ""),
    ("map", "sockhash", ""),
    ("map", "sk_storage", ""),
    ("helper", "sock_ops", "sock_hash_update"),
    ("helper", "sock_ops", "get_socket_cookie"),
    ("helper", "sock_ops", "skc_to_tcp_sock"),
    ("helper", "sk_msg", "msg_pull_data"),
    ("helper", "sk_msg", "msg_push_data"),
    ("helper", "sk_msg", "msg_pop_data"),
    ("helper", "sk_msg", "sk_storage_get"),
    ("helper", "sk_msg", "loop"),
    ("helper", "kprobe", "get_current_task_btf"),
    ("helper", "kprobe", "probe_read_kernel"),
)


def _injector_feature(kind: str, name: str, helper: str) -> bool:
    from gotel.ebpf import features

    if kind == "program":
        return features.prog_type_supported(name)
    if kind == "map":
        return features.map_type_supported(name)
    return features.helper_supported(name, helper)


def _injector_needs() -> tuple[tuple[str, str, str], ...]:
    from gotel.target.process import agent_pid_namespace

    if not agent_pid_namespace():
        return INJECTOR_NEEDS
    # A sidecar's pid namespace: targets are told by the pids gotel sees (Linux 6.10).
    return (*INJECTOR_NEEDS, ("helper", "sock_ops", "get_ns_current_pid_tgid"),
            ("helper", "sk_msg", "get_ns_current_pid_tgid"))


def _injector() -> Check:
    """Every kernel feature the injector needs, each asked of the kernel; one line."""
    missing, errors = [], []
    needs = _injector_needs()
    for kind, name, helper in needs:
        label = f"{name}:{helper}" if helper else f"{kind} {name}"
        try:
            if not _injector_feature(kind, name, helper):
                missing.append(label)
        except GotelError as exc:
            errors.append(f"{label} ({exc})")
    if not Path("/sys/kernel/btf/vmlinux").exists():
        missing.append("kernel BTF")
    ok = not missing and not errors
    detail = (f"{len(needs) + 1} of {len(needs) + 1} kernel features" if ok
              else "missing " + ", ".join(missing + errors))
    return Check(
        "socket injector", ok, detail,
        "outgoing traceparent inserted at the socket layer (sockops + sk_msg), needs "
        "CAP_NET_ADMIN" if ok else "spans still work; traces stop at this service's outgoing "
        "calls", required=False,
    )


def run_doctor(out: TextIO) -> int:
    checks = collect_checks()
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = "✓" if c.ok else ("✗" if c.required else "-")
        out.write(f"{mark} {c.name:<{width}}  {c.detail}")
        out.write(f"  — {c.meaning}\n" if c.meaning else "\n")
    failed = [c.name for c in checks if c.required and not c.ok]
    out.write(
        "gotel can run here\n" if not failed else f"gotel cannot run here: {', '.join(failed)}\n"
    )
    return EXIT_OK if not failed else EXIT_ENVIRONMENT
