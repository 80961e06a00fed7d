"""BpfObject against the kernel: constants, load errors, uprobes on a real Go process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ebpf_testing import GoTarget, LoopProcess, bpf_fds

from gotel.ebpf import BpfObject, UnknownNameError, libbpf_version
from gotel.errors import AttachError, BpfLoadError, GotelError

INT3 = 0xCC


@pytest.fixture
def obj(bpf_objects: dict[str, Path]) -> Iterator[BpfObject]:
    with BpfObject(bpf_objects["testprobe"]) as o:
        yield o


def run_and_decode(obj: BpfObject, loop: LoopProcess, n: int, base: int) -> list[dict[str, Any]]:
    """Attach to `loop`, make it call probed n times, return the decoded events."""
    ring = obj.ring_buffer("events")
    decode = obj.struct_layout("event").decoder()
    with obj.attach_uprobe("on_call", loop.target.path, loop.target.offset, loop.pid):
        loop.call(n, base)
    return [decode(record) for record in ring.drain()]


def test_libbpf_version() -> None:
    major, minor = (int(part) for part in libbpf_version().split("."))
    assert (major, minor) >= (1, 1)


def test_open_errors_are_one_line(bpf_objects: dict[str, Path], go_target: GoTarget) -> None:
    missing = bpf_objects["testprobe"].with_name("missing.bpf.o")
    with pytest.raises(BpfLoadError, match=r"missing\.bpf\.o: open failed: No such file") as err:
        BpfObject(missing)
    assert "\n" not in str(err.value)
    with pytest.raises(BpfLoadError, match=r"open failed: .*not a valid eBPF object"):
        BpfObject(go_target.path)  # an ELF, but not BPF


def test_program_and_map_names(obj: BpfObject) -> None:
    assert obj.program_names() == ["on_call"]
    assert {"events", "drops", "scratch"} <= set(obj.map_names())


def test_defaults_without_constants(obj: BpfObject, loop: LoopProcess) -> None:
    obj.load()
    events = run_and_decode(obj, loop, 5, 100)
    assert [e["arg"] for e in events] == [100, 101, 102, 103, 104]
    assert all(e["product"] == e["arg"] for e in events)  # multiplier defaults to 1
    assert all(e["tag"].rstrip(b"\0") == b"default" for e in events)


def test_constants_set_by_name_change_behaviour(obj: BpfObject, loop: LoopProcess) -> None:
    kinds = obj.enum_values("event_kind")
    obj.set_constants(
        {"multiplier": 7, "min_arg": 3, "big_threshold": 5, "tag_text": b"gotel", "discard_odd": 0}
    )
    obj.load()
    events = run_and_decode(obj, loop, 8, 0)  # args 0..7; min_arg drops 0..2
    assert [e["arg"] for e in events] == [3, 4, 5, 6, 7]
    assert [e["product"] for e in events] == [21, 28, 35, 42, 49]
    assert [e["kind"] for e in events] == [kinds["EVENT_KIND_CALL"]] * 2 + [
        kinds["EVENT_KIND_BIG"]
    ] * 3
    assert all(e["tag"] == b"gotel".ljust(12, b"\0") for e in events)


def test_signed_constant_takes_negative_values(obj: BpfObject, loop: LoopProcess) -> None:
    obj.set_constants({"min_arg": -5})
    obj.load()
    assert len(run_and_decode(obj, loop, 3, 0)) == 3


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"min_arg": 2**31}, r"min_arg: 2147483648 out of range \[-2147483648, 2147483647\]"),
        ({"multiplier": -1}, r"multiplier: -1 out of range \[0, 18446744073709551615\]"),
        ({"discard_odd": 256}, r"discard_odd: 256 out of range \[0, 255\]"),
        ({"tag_text": b"x" * 13}, r"tag_text: 13 bytes do not fit its 12 bytes"),
        ({"tag_text": 1}, r"tag_text: is a 12-byte char_array, give bytes"),
    ],
)
def test_bad_constant_values(obj: BpfObject, values: dict[str, Any], message: str) -> None:
    with pytest.raises(GotelError, match=message):
        obj.set_constants(values)


def test_unknown_constant_lists_known_names(obj: BpfObject) -> None:
    with pytest.raises(UnknownNameError) as err:
        obj.set_constants({"multiplyer": 2})
    assert isinstance(err.value, KeyError)
    assert str(err.value) == (
        "bpf object testprobe: no constant 'multiplyer' "
        "(known: big_threshold, discard_odd, min_arg, multiplier, tag_text)"
    )


def test_constants_after_load_are_refused(obj: BpfObject) -> None:
    obj.load()
    with pytest.raises(GotelError, match="before load"):
        obj.set_constants({"multiplier": 2})


def test_verifier_rejection_carries_the_log_tail(bpf_objects: dict[str, Path]) -> None:
    with BpfObject(bpf_objects["badprobe"]) as bad, pytest.raises(BpfLoadError) as err:
        bad.load()
    message = str(err.value)
    first, *rest = message.splitlines()
    assert first == "bpf object badprobe: load failed: Permission denied"
    assert "prog 'out_of_bounds': verifier log (last lines):" in rest[0]
    assert any("invalid access to map value, value_size=8 off=8 size=8" in r for r in rest)
    assert re.search(r"processed \d+ insns", rest[-1])  # the log's last line ends the message
    assert len(rest) <= 21


# Opens the object as root (no bpf() calls yet), drops to nobody, then loads.
_UNPRIVILEGED_LOAD = """
import os, sys
from gotel.ebpf import BpfObject
from gotel.errors import GotelError
obj = BpfObject(sys.argv[1])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
try:
    obj.load()
except GotelError as exc:
    print(type(exc).__name__, exc.exit_code, str(exc).splitlines()[0])
obj.close()
"""


def test_load_without_privileges_is_missing_privilege(bpf_objects: dict[str, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _UNPRIVILEGED_LOAD, str(bpf_objects["testprobe"])],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == (
        "MissingPrivilegeError 3 bpf object testprobe: load failed: Operation not permitted "
        "(run as root, or grant CAP_BPF and CAP_PERFMON)"
    )


def test_attach_uprobe_one_event_per_call_with_pid_filter(
    obj: BpfObject, loop: LoopProcess, other_loop: LoopProcess
) -> None:
    obj.set_max_entries("events", 1 << 16)  # room for every event of this test
    obj.load()
    ring = obj.ring_buffer("events")
    decode = obj.struct_layout("event").decoder()
    target = loop.target
    link = obj.attach_uprobe("on_call", target.path, target.offset, pid=loop.pid)
    other_loop.call(50, 5000)  # same binary, other process: filtered out
    loop.call(200, 1000)
    events = [decode(r) for r in ring.drain()]
    assert len(events) == 200
    assert [e["arg"] for e in events] == list(range(1000, 1200))
    assert [e["aux"] for e in events] == list(range(200))  # second argument, RBX
    assert {e["pid"] for e in events} == {loop.pid}
    assert [e["flag"] for e in events] == [a & 1 for a in range(1000, 1200)]
    assert [e["seq"] for e in events] == list(range(200))
    assert all(e["halves.lo"] == e["arg"] and e["halves.hi"] == 0 for e in events)
    assert all(e["hist"] == (1, 2, 3) for e in events)
    assert events == sorted(events, key=lambda e: e["ts"])
    assert obj.percpu_sum("drops") == 0
    link.destroy()
    link.destroy()  # idempotent
    loop.call(10, 0)
    assert ring.drain() == []


def test_uprobe_breakpoint_is_removed_on_detach_and_close(
    obj: BpfObject, loop: LoopProcess, other_loop: LoopProcess
) -> None:
    original = loop.code_byte()
    assert original != INT3
    obj.load()
    link = obj.attach_uprobe("on_call", loop.target.path, loop.target.offset, loop.pid)
    assert loop.code_byte() == INT3
    assert other_loop.code_byte() == original  # pid filter: only the target is patched
    link.destroy()
    assert loop.code_byte() == original
    obj.attach_uprobe("on_call", loop.target.path, loop.target.offset, loop.pid)
    assert loop.code_byte() == INT3
    obj.close()  # destroys the link it still owns
    assert loop.code_byte() == original


def test_close_releases_every_bpf_fd(bpf_objects: dict[str, Path], loop: LoopProcess) -> None:
    before = bpf_fds()
    obj = BpfObject(bpf_objects["testprobe"])
    obj.load()
    obj.ring_buffer("events")
    obj.attach_uprobe("on_call", loop.target.path, loop.target.offset, loop.pid)
    held = set(bpf_fds()) - set(before)
    kinds = {entry.split(" -> ")[1] for entry in held}
    assert {"anon_inode:bpf-prog", "anon_inode:bpf-map", "anon_inode:bpf_link"} <= kinds
    obj.close()
    assert bpf_fds() == before
    obj.close()  # idempotent
    with pytest.raises(GotelError, match="closed"):
        obj.map_fd("events")


def test_attach_missing_binary(obj: BpfObject, go_target: GoTarget) -> None:
    obj.load()
    missing = go_target.path.with_name("no-such-binary")
    with pytest.raises(AttachError) as err:
        obj.attach_uprobe("on_call", missing, 0x1234)
    assert str(err.value) == (
        f"uprobe on_call at {missing}+0x1234 pid -1: No such file or directory"
    )


def test_attach_offset_past_end_of_file(obj: BpfObject, go_target: GoTarget) -> None:
    obj.load()
    past_end = os.path.getsize(go_target.path) + 0x1000
    with pytest.raises(AttachError, match=rf"on_call at .*loop\+0x{past_end:x} pid -1: Invalid"):
        obj.attach_uprobe("on_call", go_target.path, past_end)
    with pytest.raises(AttachError, match="negative file offset"):
        obj.attach_uprobe("on_call", go_target.path, -8)


def test_attach_needs_a_known_program_and_a_loaded_object(
    obj: BpfObject, go_target: GoTarget
) -> None:
    with pytest.raises(GotelError, match=r"not loaded \(call load\(\) first\)"):
        obj.attach_uprobe("on_call", go_target.path, go_target.offset)
    obj.load()
    with pytest.raises(UnknownNameError, match=r"no program 'nope' \(known: on_call\)"):
        obj.attach_uprobe("nope", go_target.path, go_target.offset)


def test_raw_map_access_and_percpu_sum(obj: BpfObject) -> None:
    obj.load()
    key = (0).to_bytes(4, "little")
    raw = obj.lookup("drops", key)
    assert raw is not None and set(raw) == {0}
    cpus = len(raw) // 8
    obj.update("drops", key, b"".join((i + 1).to_bytes(8, "little") for i in range(cpus)))
    assert obj.percpu_sum("drops") == cpus * (cpus + 1) // 2
    assert obj.lookup("drops", (1).to_bytes(4, "little")) is None  # past max_entries
    with pytest.raises(GotelError, match="key is 2 bytes, expected 4"):
        obj.lookup("drops", b"\0\0")
    with pytest.raises(GotelError, match=rf"value is 8 bytes, expected {8 * cpus}"):
        obj.update("drops", key, b"\0" * 8)
    with pytest.raises(GotelError, match="not a per-CPU map"):
        obj.percpu_sum("events")
    with pytest.raises(UnknownNameError, match=r"no map 'nope' \(known: .*events"):
        obj.map_fd("nope")
    assert obj.map_fd("events") >= 0


def test_uprobe_multi_link_filters_by_pid_and_detaches_in_one_step(
    obj: BpfObject, loop: LoopProcess, other_loop: LoopProcess
) -> None:
    from gotel.ebpf import uprobe_multi

    assert uprobe_multi.supported(), "this kernel (>= 6.6) has uprobe_multi links"
    obj.set_max_entries("events", 1 << 16)
    obj.use_uprobe_multi("on_call")
    obj.load()
    ring = obj.ring_buffer("events")
    decode = obj.struct_layout("event").decoder()
    before = bpf_fds()
    original = loop.code_byte()
    link = obj.attach_uprobe_multi("on_call", loop.target.path, [loop.target.offset], loop.pid)
    assert loop.code_byte() == INT3
    assert other_loop.code_byte() == original
    other_loop.call(50, 5000)  # same binary, other process: filtered out
    loop.call(100, 1000)
    events = [decode(r) for r in ring.drain()]
    assert [e["arg"] for e in events] == list(range(1000, 1100))
    assert {e["pid"] for e in events} == {loop.pid}
    assert len(set(bpf_fds()) - set(before)) == 1  # one link fd for all its offsets
    link.destroy()
    link.destroy()  # idempotent
    assert loop.code_byte() == original
    assert bpf_fds() == before
    loop.call(10, 0)
    assert ring.drain() == []


def test_uprobe_multi_on_a_missing_file_names_it(obj: BpfObject, tmp_path: Path) -> None:
    obj.use_uprobe_multi("on_call")
    obj.load()
    missing = tmp_path / "gone"
    with pytest.raises(AttachError) as err:
        obj.attach_uprobe_multi("on_call", missing, [0x1234, 0x1240])
    assert str(err.value) == (
        f"uprobe_multi on_call at {missing} (2 offsets) pid -1: no such file"
    )
