from gotel.target.exec_events import Exec, ExecEvents
from gotel.target.process import (
    HeldLaunch,
    Process,
    all_pids,
    binary_identity,
    exe_link,
    is_alive,
    process_from_pid,
    resolve_executable,
)
from gotel.target.selectors import ExecutableSelector, PortSelector, Selector

__all__ = [
    "Exec",
    "ExecEvents",
    "ExecutableSelector",
    "HeldLaunch",
    "PortSelector",
    "Process",
    "Selector",
    "all_pids",
    "binary_identity",
    "exe_link",
    "is_alive",
    "process_from_pid",
    "resolve_executable",
]
