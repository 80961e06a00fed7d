"""`gotel inspect`: what gotel sees in a Go binary and what it would attach."""

from __future__ import annotations

from typing import TextIO

from gotel.errors import EXIT_OK, GotelError
from gotel.goelf import GoBinary, open_binary
from gotel.instrumentation.registry import all_extensions, all_probes
from gotel.planning import ProbePlan, plan_probes


def run_inspect(path: str | None, pid: int | None, out: TextIO) -> int:
    if (path is None) == (pid is None):
        raise GotelError("inspect needs a binary path or --pid PID, not both")
    if pid is not None:
        from gotel.target import process_from_pid

        target = str(process_from_pid(pid).binary)
    else:
        target = str(path)
    with open_binary(target) as binary:
        plans = plan_probes(binary, all_probes())
        write_report(binary, plans, out)
    return EXIT_OK


def write_report(binary: GoBinary, plans: list[ProbePlan], out: TextIO) -> None:
    w = out.write
    w(f"binary:      {binary.path}\n")
    w(f"go version:  {binary.go_version}\n")
    main = f"{binary.main.path} {binary.main.version}" if binary.main else "(none recorded)"
    w(f"main module: {main}\n")
    w(f"build id:    {binary.build_id}\n")
    w(f"symbols:     {'symtab' if binary.has_symtab else 'pclntab only (stripped)'}\n")
    w(f"dwarf:       {'yes' if binary.has_dwarf else 'no (stripped)'}\n")
    w(f"pie:         {'yes' if binary.pie else 'no'}\n")
    if binary.modules:
        w(f"modules ({len(binary.modules)}):\n")
        for mod, version in sorted(binary.modules.items()):
            w(f"  {mod} {version}\n")
    else:
        w("modules:     none recorded in buildinfo\n")
    w("\nprobes:\n")
    # Context leaves a process through its extensions (the socket-level injector).
    blocked = [reason for ext in all_extensions() if (reason := ext.unavailable())]
    out_here = " — on here" if not blocked else f" — off here: {'; '.join(blocked)}"
    for plan in plans:
        mark = "✓" if plan.applies else "✗"
        w(f"  {mark} {plan.probe.name}")
        if plan.applies:
            w(f"  ({plan.uprobe_count} uprobes)\n")
        else:
            w(f"  skipped: {plan.skip_reason}\n")
        for hp in plan.hooks:
            fn = hp.function
            w(f"      {fn.name}  vaddr {fn.address:#x}  size {fn.size}\n")
            if hp.hook.entry:
                w(f"        entry  file offset {fn.file_offset:#x} -> {hp.hook.entry}\n")
            if hp.hook.returns:
                rets = ", ".join(f"{o:#x}" for o in hp.return_offsets)
                w(f"        {len(hp.return_offsets)} RETs  [{rets}] -> {hp.hook.returns}\n")
        if plan.probe.context_in:
            w(f"      context in:  {plan.probe.context_in}\n")
        if plan.probe.context_out:
            # Whether the injector can run here matters to what leaves the process, not to "none".
            here = "" if plan.probe.context_out.startswith("none") else out_here
            w(f"      context out: {plan.probe.context_out}{here}\n")
        if plan.probe.metric:
            w(f"      metric:      {plan.probe.metric.name} (counted at the span's end probe,"
              " no uprobe of its own)\n")
        for note in plan.notes:
            w(f"      note: {note}\n")
        for key, res in plan.fields.items():
            if res.source == "unlinked":  # another module's optional field: not this program's
                continue
            value = f"{res.offset}" if res.offset is not None else "-"
            w(f"      offset {key:48s} {value:>6s}  {res.source}\n")
