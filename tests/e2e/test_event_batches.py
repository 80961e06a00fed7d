"""Ring blocks of real events: one copy per batch decodes to what per-record decoding gives."""

from __future__ import annotations

import pytest

from conftest import GoServer, get
from gotel.ebpf import HEADER_SIZE
from gotel.export import ExportPipeline, NoneExporter
from gotel.goelf import open_binary
from gotel.instrumentation.nethttp.probe import SERVER
from gotel.planning import plan_probe
from gotel.session import Session
from gotel.target import process_from_pid
from gotel.trace import BootClock
from gotools import build_app

pytestmark = pytest.mark.usefixtures("require_root")


def test_block_decode_equals_per_record_decode_on_real_events(servers):
    server = GoServer(build_app("httpserver"))
    servers.append(server)
    with open_binary(server.binary) as binary:
        plan = plan_probe(binary, SERVER)
    pipeline = ExportPipeline(NoneExporter())
    session = Session(
        process_from_pid(server.pid), [plan], pipeline, BootClock(), resource=b""
    )
    session.attach()
    try:
        [loaded] = session.loaded
        paths = [f"/hello/{'x' * (i % 40)}{i}" for i in range(300)]
        for path in paths:
            assert get(server.url + path) == 200
        block, count = loaded.rings[0].drain_block(loaded.decoder.size)
        assert count == len(paths)
        stride, size = loaded.decoder.stride, loaded.decoder.size
        # The records as drain() would have copied them out, one by one.
        records = [block[i * stride + HEADER_SIZE :][:size] for i in range(count)]
        by_block = loaded.decoder.decode_block(block, count)
        by_record = [loaded.decoder.decode(record) for record in records]
        assert by_block == by_record
        assert [e["path"] for e in by_block] == paths
        assert all(e["route"] == "GET /hello/{id}" and e["status"] == 200 for e in by_block)
        assert len({e["span_id"] for e in by_block}) == count
        assert loaded.rings[0].drain_block(size) == (b"", 0)
    finally:
        session.close()
        pipeline.shutdown()
