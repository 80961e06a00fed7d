"""Struct and enum layouts from BTF, diffed against bpftool's reading of the same object."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gotel.ebpf import BpfObject, UnknownNameError
from gotel.errors import GotelError

_MODIFIERS = {"TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"}


class BpftoolBtf:
    """The object's BTF as `bpftool -j btf dump file X` reports it."""

    def __init__(self, path: Path) -> None:
        bpftool = shutil.which("bpftool")
        assert bpftool, "bpftool not found: install bpftool"
        out = subprocess.run(
            [bpftool, "-j", "btf", "dump", "file", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        self.types = {t["id"]: t for t in json.loads(out)["types"]}

    def named(self, kind: str, name: str) -> dict[str, Any]:
        (found,) = [t for t in self.types.values() if t["kind"] == kind and t["name"] == name]
        return found

    def size(self, type_id: int) -> int:
        t = self.types[type_id]
        if t["kind"] in _MODIFIERS:
            return self.size(t["type_id"])
        if t["kind"] == "ARRAY":
            return t["nr_elems"] * self.size(t["type_id"])
        if t["kind"] == "PTR":
            return 8
        return t["size"]

    def leaves(self, struct: dict[str, Any], prefix: str = "", base: int = 0) -> dict[str, tuple]:
        """'outer.inner' -> (offset, size) for members, nested structs flattened."""
        out: dict[str, tuple] = {}
        for m in struct["members"]:
            offset = base + m["bits_offset"] // 8
            t = self.types[m["type_id"]]
            while t["kind"] in _MODIFIERS:
                t = self.types[t["type_id"]]
            if t["kind"] == "STRUCT":
                out.update(self.leaves(t, f"{prefix}{m['name']}.", offset))
            else:
                out[prefix + m["name"]] = (offset, self.size(m["type_id"]))
        return out


@pytest.fixture(scope="module")
def reference(bpf_objects: dict[str, Path]) -> BpftoolBtf:
    return BpftoolBtf(bpf_objects["testprobe"])


@pytest.fixture
def obj(bpf_objects: dict[str, Path]):
    with BpfObject(bpf_objects["testprobe"]) as o:
        yield o


def test_struct_layout_matches_bpftool(obj: BpfObject, reference: BpftoolBtf) -> None:
    layout = obj.struct_layout("event")
    ref = reference.named("STRUCT", "event")
    assert layout.name == "event"
    assert layout.size == ref["size"]
    assert list(layout.fields) == [m["name"] for m in ref["members"]]
    for member in ref["members"]:
        field = layout.fields[member["name"]]
        assert field.offset == member["bits_offset"] // 8, member["name"]
        assert field.size == reference.size(member["type_id"]), member["name"]


def test_field_kinds(obj: BpfObject) -> None:
    fields = obj.struct_layout("event").fields
    assert fields["ts"].kind == "uint"
    assert fields["kind"].kind == "enum"
    assert (fields["tag"].kind, fields["tag"].count) == ("char_array", 12)
    assert (fields["hist"].kind, fields["hist"].count, fields["hist"].elem_kind) == (
        "array",
        3,
        "uint",
    )
    halves = fields["halves"]
    assert halves.kind == "struct"
    assert halves.layout is not None and list(halves.layout.fields) == ["lo", "hi"]


def test_decoder_places_every_field_where_bpftool_says(
    obj: BpfObject, reference: BpftoolBtf
) -> None:
    """Bytes assembled from bpftool's offsets (not ours) decode to the values put there."""
    leaves = reference.leaves(reference.named("STRUCT", "event"))
    raw = bytearray(b"\xee" * reference.named("STRUCT", "event")["size"])  # junk in padding
    expected: dict[str, Any] = {}
    for i, (name, (offset, size)) in enumerate(leaves.items()):
        if name == "tag":
            value: Any = b"tag-bytes\0\0\0"
            raw[offset : offset + size] = value
        elif name == "hist":
            value = (7, 8, 9)
            raw[offset : offset + size] = b"".join(v.to_bytes(2, "little") for v in value)
        else:
            value = (0x0102030405060708 + i) & ((1 << (8 * size)) - 1)
            raw[offset : offset + size] = value.to_bytes(size, "little")
        expected[name] = value
    decode = obj.struct_layout("event").decoder()
    assert decode(bytes(raw)) == expected
    assert decode(memoryview(raw)) == expected
    assert decode(bytes(raw) + b"trailing") == expected  # longer records are accepted


def test_encoder_round_trips_and_zeroes_missing_fields(obj: BpfObject) -> None:
    layout = obj.struct_layout("event")
    encode, decode = layout.encoder(), layout.decoder()
    values = {"arg": 42, "halves.hi": 7, "hist": (1, 2, 3), "tag": b"x"}
    raw = encode(values)
    assert len(raw) == layout.size
    decoded = decode(raw)
    assert decoded["arg"] == 42 and decoded["halves.hi"] == 7 and decoded["hist"] == (1, 2, 3)
    assert decoded["tag"] == b"x" + b"\0" * 11
    assert decoded["ts"] == 0 and decoded["halves.lo"] == 0


def test_decoder_is_built_once(obj: BpfObject) -> None:
    layout = obj.struct_layout("event")
    assert layout.decoder() is layout.decoder()
    assert obj.struct_layout("event") is layout


def test_short_record_is_a_clear_error(obj: BpfObject) -> None:
    decode = obj.struct_layout("event").decoder()
    with pytest.raises(GotelError, match=r"struct event: record of 10 bytes, expected 72"):
        decode(b"\0" * 10)


def test_enum_values_match_bpftool(obj: BpfObject, reference: BpftoolBtf) -> None:
    ref = reference.named("ENUM", "event_kind")
    assert obj.enum_values("event_kind") == {v["name"]: v["val"] for v in ref["values"]}


def test_unknown_names_list_what_exists(obj: BpfObject) -> None:
    with pytest.raises(UnknownNameError, match=r"no struct 'nope'.*known: .*event") as err:
        obj.struct_layout("nope")
    assert isinstance(err.value, KeyError) and isinstance(err.value, GotelError)
    with pytest.raises(UnknownNameError, match=r"no enum 'nope'.*known: event_kind"):
        obj.enum_values("nope")
