"""The gRPC probes as data: enum values shared with C, features derived from DWARF offsets."""

from __future__ import annotations

import pytest

from gotel.ebpf import BpfObject
from gotel.instrumentation.grpc import probe
from gotel.instrumentation.grpc.probe import CLIENT, PROBES, SERVER

STATUS = {"GRPC_STATUS_NONE": probe.STATUS_NONE, "GRPC_STATUS_OK": probe.STATUS_OK,
          "GRPC_STATUS_READ": probe.STATUS_READ, "GRPC_STATUS_NOT_STATUS": probe.STATUS_NOT_STATUS}


@pytest.mark.parametrize(("obj", "enum", "values"), [
    (SERVER, "grpc_stream_layout", {"GRPC_STREAM_PLAIN": probe.STREAM_PLAIN,
                                    "GRPC_STREAM_EMBED_PTR": probe.STREAM_EMBED_PTR,
                                    "GRPC_STREAM_EMBED_VALUE": probe.STREAM_EMBED_VALUE}),
    (SERVER, "grpc_frame_arg", {"GRPC_FRAME_ARG_2": probe.FRAME_ARG_2,
                                "GRPC_FRAME_ARG_4": probe.FRAME_ARG_4}),
    (SERVER, "grpc_status_source", STATUS),
    (CLIENT, "grpc_status_source", STATUS),
    (CLIENT, "grpc_call_kind", {"GRPC_CALL_UNARY": probe.CALL_UNARY,
                                "GRPC_CALL_STREAM": probe.CALL_STREAM}),
])
def test_python_constants_match_the_objects_enums(obj, enum, values):
    with BpfObject(obj.bpf_object) as o:
        got = o.enum_values(enum)
    for name, value in values.items():
        assert got[name] == value


def test_every_constant_and_program_exists_in_the_objects():
    for p in PROBES:
        with BpfObject(p.bpf_object) as o:
            programs = set(o.program_names())
            for hook in p.hooks:
                assert {hook.entry, hook.returns} - {None} <= programs
            # Every declared field fills a constant the object has (set_constants would refuse).
            o.set_constants({f.const: 0 for f in p.fields})
            o.set_constants(p.features({f.const: 8 * i for i, f in enumerate(p.fields)}))
            assert p.event in {"grpc_server_event", "grpc_client_event"}
            o.struct_layout(p.event)


def test_probes_apply_to_the_grpc_module():
    assert SERVER.module == CLIENT.module == "google.golang.org/grpc"


# Offsets as the DWARF of each layout gives them (see tests/e2e/test_grpc.py for real builds).
V1_59 = {"off_h2s_ctx": 8, "off_h2s_remote_addr": 64, "off_stream_id": 0}
V1_68 = {"off_h2s_peer": 56, "off_stream_id": 0}
V1_76 = {"off_h2s_peer": 56, "off_server_stream_stream": 0, "off_server_stream_st": 8}
V1_85 = {"off_h2s_peer": 56, "off_server_stream_stream": 0, "off_server_stream_st": 360}


@pytest.mark.parametrize(("offsets", "frame_arg", "layout"), [
    (V1_59, probe.FRAME_ARG_2, probe.STREAM_PLAIN),
    (V1_68, probe.FRAME_ARG_4, probe.STREAM_PLAIN),
    (V1_76, probe.FRAME_ARG_4, probe.STREAM_EMBED_PTR),
    (V1_85, probe.FRAME_ARG_4, probe.STREAM_EMBED_VALUE),
])
def test_server_features(offsets, frame_arg, layout):
    assert SERVER.features(offsets) == {"frame_arg": frame_arg, "server_stream_layout": layout}


def test_unknown_layouts_stay_unset():
    # Neither http2Server field nor the field after ServerStream.Stream: read nothing.
    assert SERVER.features({"off_server_stream_stream": 0}) == {}
