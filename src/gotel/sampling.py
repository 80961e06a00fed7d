"""OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG -> the constants the BPF programs sample with.

Sampling is decided in the kernel at span start, so that a span's children,
its outgoing traceparent and the exported spans always agree.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from gotel.errors import GotelError
from gotel.trace import env as env_names

log = logging.getLogger(__name__)

ENV_SAMPLER = env_names.OTEL_TRACES_SAMPLER
ENV_SAMPLER_ARG = env_names.OTEL_TRACES_SAMPLER_ARG

# OTEL_TRACES_SAMPLER's values; `enum sampler_kind` (include/trace_context.h) names each
# SAMPLER_<NAME> (parentbased_ -> PARENT_), and its numbers come from each object's BTF.
KINDS = ("always_on", "always_off", "traceidratio", "parentbased_always_on",
         "parentbased_always_off", "parentbased_traceidratio")


def enumerator(kind: str) -> str:
    """The `enum sampler_kind` enumerator of an OTEL_TRACES_SAMPLER value."""
    return "SAMPLER_" + kind.upper().replace("PARENTBASED_", "PARENT_")


DEFAULT = "parentbased_always_on"


@dataclass(frozen=True)
class Sampler:
    kind: str = DEFAULT
    ratio: float = 1.0

    def constants(self) -> dict[str, int | str]:
        # A trace is kept when its id's low 8 bytes, as an integer, fall below ratio * 2^64.
        threshold = min(int(self.ratio * 2**64), 2**64 - 1)
        return {"sampler": enumerator(self.kind), "sampler_threshold": threshold}


def sampler_from_env(env: Mapping[str, str] | None = None) -> Sampler:
    env = os.environ if env is None else env
    kind = env.get(ENV_SAMPLER, DEFAULT).strip().lower() or DEFAULT
    if kind not in KINDS:
        raise GotelError(
            f"{ENV_SAMPLER}={kind!r} is not supported (expected one of {', '.join(KINDS)})"
        )
    ratio = 1.0
    if kind.endswith("traceidratio"):
        raw = env.get(ENV_SAMPLER_ARG, "1.0")
        try:
            ratio = float(raw)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            log.warning("%s=%r is not a ratio in [0, 1]; using 1.0", ENV_SAMPLER_ARG, raw)
            ratio = 1.0
    return Sampler(kind, ratio)
