from gotel.target.process import (
    HeldLaunch,
    Process,
    is_alive,
    pids_running,
    process_from_pid,
    resolve_executable,
)

__all__ = [
    "HeldLaunch",
    "Process",
    "is_alive",
    "pids_running",
    "process_from_pid",
    "resolve_executable",
]
