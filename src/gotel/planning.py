"""Which probes apply to a binary, at which file offsets, with which constants.

A pure function of the binary file (no process, no kernel), shared by
`gotel inspect` and the sessions that load the probes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gotel.goelf import Function, GoBinary
from gotel.goversion import at_least
from gotel.instrumentation.probe import Describe, Hook, Probe
from gotel.offsets.resolve import (
    Resolved,
    missing_offsets_reason,
    module_version,
    resolve_fields,
)


@dataclass(frozen=True)
class HookPlan:
    hook: Hook
    function: Function
    return_offsets: tuple[int, ...]


@dataclass
class ProbePlan:
    probe: Probe
    hooks: list[HookPlan] = field(default_factory=list)
    constants: dict[str, int] = field(default_factory=dict)
    fields: dict[str, Resolved] = field(default_factory=dict)  # "struct.field" -> resolution
    skip_reason: str | None = None
    linked: bool = True  # False: the library is not in this binary, nothing to report
    notes: list[str] = field(default_factory=list)  # optional hooks left out, and why
    describe: Describe | None = None  # for this binary's events; None: the probe's own

    @property
    def describer(self) -> Describe:
        return self.describe or self.probe.describe

    @property
    def applies(self) -> bool:
        return self.skip_reason is None

    @property
    def uprobe_count(self) -> int:
        return sum(
            (1 if h.hook.entry else 0) + (len(h.return_offsets) if h.hook.returns else 0)
            for h in self.hooks
        )


def plan_probes(binary: GoBinary, probes: Iterable[Probe]) -> list[ProbePlan]:
    return [plan_probe(binary, probe) for probe in probes]


def plan_probe(binary: GoBinary, probe: Probe) -> ProbePlan:
    plan = ProbePlan(probe)
    if not at_least(binary.go_version, probe.min_go):
        plan.skip_reason = f"needs go{probe.min_go} or newer (binary: {binary.go_version})"
        return plan
    version = module_version(binary, probe.module)
    if version is None:
        plan.skip_reason = f"module {probe.module} is not linked into this binary"
        plan.linked = False
        return plan

    functions = binary.functions(h.symbol for h in probe.hooks)
    if not functions:
        # None of the library's functions is in the binary: like an unlinked module (the
        # standard library's packages are "linked" into every program), nothing to report.
        plan.skip_reason = "the program does not use it"
        plan.linked = False
        return plan
    for hook in probe.hooks:
        fn = functions.get(hook.symbol)
        returns = tuple(binary.return_offsets(fn)) if fn and hook.returns else ()
        problem = None
        if fn is None:
            problem = f"symbol {hook.symbol} not found (the program does not use it)"
        elif hook.returns and not returns:
            problem = f"no RET instruction found in {hook.symbol}"
        if problem and hook.optional:
            plan.notes.append(problem)
            continue
        if problem:
            plan.skip_reason = problem
            return plan
        plan.hooks.append(HookPlan(hook, fn, returns))

    resolved = resolve_fields(binary, probe.fields)
    missing = []
    for f, res in resolved.items():
        plan.fields[f.key] = res
        if res.offset is not None:
            plan.constants[f.const] = res.offset
        elif f.required:
            missing.append(f.key)
    if missing:
        plan.skip_reason = missing_offsets_reason({k: plan.fields[k] for k in missing})
        return plan
    plan.constants.update(probe.features(plan.constants))
    plan.constants.update(probe.module_constants(binary.modules))
    plan.constants.update(probe.binary_constants(binary))
    if probe.binary_describe is not None:
        plan.describe = probe.binary_describe(binary)
    return plan
