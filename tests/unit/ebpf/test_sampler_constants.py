"""The sampler reaches every object by enumerator name: numbers from BTF, never a copy."""

from __future__ import annotations

import pytest

from gotel.ebpf import BpfObject
from gotel.errors import GotelError
from gotel.instrumentation.registry import all_probes
from gotel.sampling import KINDS, Sampler, enumerator, sampler_from_env


def objects_with_a_sampler() -> list:
    paths = {p.bpf_object for p in all_probes()}
    found = []
    for path in sorted(paths):
        with BpfObject(path) as obj:
            try:
                found.append((path.name, obj.enum_values("sampler_kind")))
            except GotelError:
                continue  # a route object: it starts no span
    return found


def test_every_kind_names_an_enumerator_of_every_object_that_samples():
    found = objects_with_a_sampler()
    assert len(found) >= 6, found  # nethttp, grpc, databasesql, goredis, otelapi, ...
    for name, values in found:
        assert sorted(values) == sorted(enumerator(k) for k in KINDS), name


@pytest.mark.parametrize("kind", KINDS)
def test_the_loader_sets_each_kind_by_name(kind):
    path = next(p.bpf_object for p in all_probes() if p.name == "net/http server")
    with BpfObject(path) as obj:
        obj.set_constants(Sampler(kind, 0.5).constants())


def test_a_name_that_is_no_enumerator_is_refused():
    path = next(p.bpf_object for p in all_probes() if p.name == "net/http server")
    with BpfObject(path) as obj:
        with pytest.raises(GotelError, match="no enumerator 'SAMPLER_SOMETIMES'"):
            obj.set_constants({"sampler": "SAMPLER_SOMETIMES"})
        with pytest.raises(GotelError, match="is a uint"):
            obj.set_constants({"sampler_threshold": "SAMPLER_ALWAYS_ON"})


def test_the_environment_picks_the_kind_and_ratio():
    assert sampler_from_env({}) == Sampler("parentbased_always_on", 1.0)
    assert sampler_from_env({"OTEL_TRACES_SAMPLER": "traceidratio",
                             "OTEL_TRACES_SAMPLER_ARG": "0.25"}) == Sampler("traceidratio", 0.25)
    with pytest.raises(GotelError, match="not supported"):
        sampler_from_env({"OTEL_TRACES_SAMPLER": "jaeger_remote"})
