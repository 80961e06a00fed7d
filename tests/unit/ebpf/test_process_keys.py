"""One loaded object serves every process of its layout: every hash of per-goroutine or
per-object state must be keyed by process too (include/process.h), and the agent must be
able to forget one process's entries. Root: real objects, a real map."""

from __future__ import annotations

import pytest

from gotel.ebpf import BpfObject
from gotel.ebpf import libbpf as lb
from gotel.ebpf.maps import delete_keys_with_prefix
from gotel.instrumentation.nethttp.probe import SERVER
from gotel.instrumentation.registry import all_probes
from gotel.instrumentation.sockinject.injector import OBJECT as INJECTOR
from gotel.shared_objects import PROCESS_KEY_MEMBER

pytestmark = pytest.mark.usefixtures("require_root")

HASHES = {1, 9}  # BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH
# Hashes whose keys are not per process, each with why.
NOT_PER_PROCESS = {
    "node_message_contexts",  # a message's identity: the same in producer and consumer
    "target_tgids",  # the processes themselves
}


def objects() -> list[str]:
    return sorted({str(p.bpf_object) for p in all_probes()} | {str(INJECTOR)})


@pytest.mark.parametrize("path", objects(), ids=lambda p: p.rsplit("/", 2)[-2])
def test_every_state_hash_is_keyed_by_process_first(path: str):
    obj = BpfObject(path)
    try:
        lib = lb.lib()
        checked = 0
        for name in obj.map_names():
            if lib.bpf_map__type(obj._map(name)) not in HASHES or name in NOT_PER_PROCESS:
                continue
            fields = obj.map_key_fields(name)
            assert PROCESS_KEY_MEMBER in fields, f"{name}: key {sorted(fields)} has no tgid"
            assert fields[PROCESS_KEY_MEMBER].offset == 0, name
            assert fields[PROCESS_KEY_MEMBER].size == 4, name
            checked += 1
        assert checked or "route" in path or "kafkago" in path, "no state hash found"
    finally:
        obj.close()


def test_one_process_entries_are_deleted_and_the_others_kept():
    obj = BpfObject(SERVER.bpf_object)
    obj.load()
    try:
        name = "shared_goroutine_spans"
        size = obj.struct_layout("span_context").size
        for tgid in (7, 9):
            for goid in range(1, 51):
                key = tgid.to_bytes(4, "little") + bytes(4) + goid.to_bytes(8, "little")
                obj.update(name, key, bytes(size))
        removed = delete_keys_with_prefix(obj.map_fd(name), obj.key_size(name),
                                          (7).to_bytes(4, "little"), obj.max_entries(name))
        assert removed == 50
        left = obj.keys(name)
        assert len(left) == 50 and {k[:4] for k in left} == {(9).to_bytes(4, "little")}
    finally:
        obj.close()
