"""Which of the capabilities gotel needs this process holds."""

from __future__ import annotations

from gotel.errors import MissingPrivilegeError

CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

CAPABILITY_NAMES = {
    CAP_BPF: "CAP_BPF",
    CAP_PERFMON: "CAP_PERFMON",
    CAP_SYS_PTRACE: "CAP_SYS_PTRACE",
    CAP_SYS_ADMIN: "CAP_SYS_ADMIN",
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


def require_tracing() -> None:
    missing = missing_for_tracing()
    if missing:
        raise MissingPrivilegeError(
            f"missing privileges: {', '.join(missing)} "
            "(run gotel as root, or grant CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE)"
        )
