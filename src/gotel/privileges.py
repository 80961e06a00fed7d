"""Which of the capabilities gotel needs this process holds.

Needed: CAP_BPF and CAP_PERFMON (load BPF, attach uprobes and tracepoints). Wanted:
CAP_SYS_PTRACE (other users' processes: /proc/PID/exe, their sockets), CAP_NET_ADMIN
(the socket programs that insert outgoing traceparent), CAP_DAC_READ_SEARCH (executables
that other users own and keep unreadable). These five are enough; root has them all.
"""

from __future__ import annotations

from gotel.errors import MissingPrivilegeError

CAP_DAC_READ_SEARCH = 2
CAP_NET_ADMIN = 12
CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

CAPABILITY_NAMES = {
    CAP_BPF: "CAP_BPF",
    CAP_PERFMON: "CAP_PERFMON",
    CAP_SYS_PTRACE: "CAP_SYS_PTRACE",
    CAP_NET_ADMIN: "CAP_NET_ADMIN",
    CAP_DAC_READ_SEARCH: "CAP_DAC_READ_SEARCH",
    CAP_SYS_ADMIN: "CAP_SYS_ADMIN",
}
LEAST = "CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_NET_ADMIN and CAP_DAC_READ_SEARCH"
# What is lost without each wanted capability.
WITHOUT = {
    CAP_SYS_PTRACE: "processes of other users cannot be found or instrumented",
    CAP_NET_ADMIN: "no outgoing traceparent (socket programs need it)",
    CAP_DAC_READ_SEARCH: "executables other users keep unreadable cannot be analysed",
}


def effective_capabilities() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def has(cap: int, caps: int | None = None) -> bool:
    caps = effective_capabilities() if caps is None else caps
    return bool(caps >> cap & 1)


def missing_for_tracing(caps: int | None = None) -> list[str]:
    """Capabilities missing to load BPF and attach uprobes (CAP_SYS_ADMIN covers all)."""
    caps = effective_capabilities() if caps is None else caps
    if has(CAP_SYS_ADMIN, caps):
        return []
    return [CAPABILITY_NAMES[c] for c in (CAP_BPF, CAP_PERFMON) if not has(c, caps)]


def missing_wanted(caps: int | None = None) -> dict[str, str]:
    """Wanted capabilities this process lacks, each with what is lost without it."""
    caps = effective_capabilities() if caps is None else caps
    found = {}
    for cap, loss in WITHOUT.items():
        covered = cap == CAP_NET_ADMIN and has(CAP_SYS_ADMIN, caps)  # bpf_net_capable()
        if not has(cap, caps) and not covered:
            found[CAPABILITY_NAMES[cap]] = loss
    return found


def require_tracing() -> None:
    missing = missing_for_tracing()
    if missing:
        raise MissingPrivilegeError(
            f"missing privileges: {', '.join(missing)} (run gotel as root, or grant {LEAST})"
        )


def lacking(cap: int, what: str) -> MissingPrivilegeError | None:
    """The error to raise when `what` was refused and this process lacks `cap`."""
    if has(cap):
        return None
    return MissingPrivilegeError(f"{what}: missing {CAPABILITY_NAMES[cap]} (grant it, or run "
                                 "gotel as root)")
