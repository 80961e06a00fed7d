"""The go-redis probe as data: enum values and sizes shared with C, hooks, declared fields."""

from __future__ import annotations

from gotel.ebpf import BpfObject
from gotel.instrumentation.goredis import probe
from gotel.instrumentation.goredis.probe import CLIENT, FIELDS, MODULE, PROBES
from gotel.instrumentation.registry import all_probes
from gotel.offsets import database


def test_python_constants_match_the_objects_enum_and_sizes():
    with BpfObject(CLIENT.bpf_object) as obj:
        kinds = obj.enum_values("redis_call_kind")
        layout = obj.struct_layout(CLIENT.event)
    assert kinds == {"REDIS_COMMAND": probe.COMMAND, "REDIS_PIPELINE": probe.PIPELINE,
                     "REDIS_TRANSACTION": probe.TRANSACTION}
    assert layout.fields["names"].size == probe.BATCH_NAMES * probe.NAME_SIZE
    assert layout.fields["name_lens"].size == probe.BATCH_NAMES * 4
    assert layout.fields["argcs"].size == probe.BATCH_NAMES * 4


def test_every_constant_and_program_exists_in_the_object():
    with BpfObject(CLIENT.bpf_object) as obj:
        programs = set(obj.program_names())
        for hook in CLIENT.hooks:
            assert {hook.entry, hook.returns} - {None} <= programs
        obj.set_constants({f.const: 0 for f in FIELDS})


def test_the_registry_finds_the_probe():
    assert CLIENT in all_probes()
    assert PROBES == (CLIENT,)


def test_one_function_per_command_and_per_batch():
    # Two uprobe hits per command or batch: the entry and the RET it leaves by.
    assert [(h.symbol.rpartition(".")[2], h.optional) for h in CLIENT.hooks] == [
        ("process", False), ("processPipeline", True), ("processTxPipeline", True)]
    assert all(h.entry and h.returns for h in CLIENT.hooks)


def test_go_redis_fields_are_declared_with_their_module():
    redis = [f for f in FIELDS if f.struct.startswith(MODULE + ".")]
    assert redis and all(f.module == MODULE and f.required for f in redis)


def test_the_bundled_database_covers_go_redis_v9_since_v9_0_0():
    db = database.load(database.BUNDLED)
    keys = [f.key for f in FIELDS if f.module == MODULE]
    for version in ("v9.0.0", "v9.5.5", "v9.7.3", "v9.17.3", "v9.22.0"):
        assert db.scanned(MODULE, version, keys), version
