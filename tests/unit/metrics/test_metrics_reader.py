"""MetricReader on a real loaded object's maps: per-CPU values added up, keys that give the
same attributes merged, the overflow series, the bucket constants the object counts with.
Root: the object (net/http server's, not attached) really loads into the kernel."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator

import pytest

from gotel.ebpf import BpfObject
from gotel.ebpf import libbpf as lb
from gotel.instrumentation.metric import OVERFLOW_ATTRIBUTE, REQUEST_DURATION_BOUNDS
from gotel.instrumentation.nethttp.probe import SERVER
from gotel.metrics import MetricReader
from gotel.metrics.reader import OVERFLOW_MAP, SERIES_MAP, metric_constants

pytestmark = pytest.mark.usefixtures("require_root")

BUCKETS = len(REQUEST_DURATION_BOUNDS) + 1
STRUCT_BUCKETS = 17  # RED_MAX_BOUNDS + 1


def percpu(*cpus: tuple[int, int, dict[int, int]]) -> bytes:
    """A per-CPU red_histogram value: (count, sum_ns, {bucket: n}) per CPU, then zeros."""
    ncpu = lb.lib().libbpf_num_possible_cpus()
    words: list[int] = []
    for cpu in range(ncpu):
        count, sum_ns, buckets = cpus[cpu] if cpu < len(cpus) else (0, 0, {})
        words += [count, sum_ns] + [buckets.get(i, 0) for i in range(BUCKETS)]
        words += [0] * (STRUCT_BUCKETS - BUCKETS)
    return bytes((ctypes.c_uint64 * len(words))(*words))


@pytest.fixture
def loaded() -> Iterator[BpfObject]:
    obj = BpfObject(SERVER.bpf_object)
    obj.set_constants(metric_constants(SERVER.metric))
    obj.set_max_entries(SERIES_MAP, 8)
    obj.load()
    yield obj
    obj.close()


def key(encode: Callable[[dict[str, object]], bytes], **fields: object) -> bytes:
    return encode({"pid": 1, **fields})


def test_series_are_summed_over_cpus_and_merged_by_attributes(loaded: BpfObject):
    encode = loaded.struct_layout("red_key").encoder()
    get = key(encode, code=200, word=b"GET", name=b"GET /hello/{id}")
    # Two unknown methods: two kernel keys, one _OTHER series.
    purge = key(encode, code=405, word=b"PURGE", name=b"")
    brew = key(encode, code=405, word=b"BREW", name=b"")
    loaded.update(SERIES_MAP, get, percpu((3, 3_000_000, {0: 3}), (2, 40_000_000, {3: 2})))
    loaded.update(SERIES_MAP, purge, percpu((1, 1000, {0: 1})))
    loaded.update(SERIES_MAP, brew, percpu((0, 0, {}), (4, 4000, {0: 4})))
    loaded.update(OVERFLOW_MAP, (1).to_bytes(4, "little"), percpu((5, 5_000, {0: 5})))

    [metric] = MetricReader(loaded, SERVER.metric, SERVER.scope).read_by_pid().values()
    assert metric.name == "http.server.request.duration" and metric.unit == "s"
    assert metric.bounds_s == REQUEST_DURATION_BOUNDS
    series = {tuple(sorted(s.attributes.items())): s for s in metric.series}
    hello = series[(("http.request.method", "GET"), ("http.response.status_code", 200),
                    ("http.route", "/hello/{id}"), ("url.scheme", "http"))]
    assert (hello.count, hello.sum_ns) == (5, 43_000_000)
    assert hello.buckets == (3, 0, 0, 2) + (0,) * (BUCKETS - 4)
    other = series[(("http.request.method", "_OTHER"), ("http.response.status_code", 405),
                    ("url.scheme", "http"))]
    assert (other.count, other.sum_ns, other.buckets[0]) == (5, 5000, 5)
    overflow = series[((OVERFLOW_ATTRIBUTE, True),)]
    assert overflow.count == 5
    assert len(metric.series) == 3


def test_series_are_read_per_process_and_a_detached_process_is_forgotten(loaded: BpfObject):
    encode = loaded.struct_layout("red_key").encoder()
    route = {"code": 200, "word": b"GET", "name": b"GET /a"}
    loaded.update(SERIES_MAP, encode({"pid": 7, **route}), percpu((2, 2000, {0: 2})))
    loaded.update(SERIES_MAP, encode({"pid": 9, **route}), percpu((3, 3000, {0: 3})))
    loaded.update(OVERFLOW_MAP, (9).to_bytes(4, "little"), percpu((4, 4000, {0: 4})))
    reader = MetricReader(loaded, SERVER.metric, SERVER.scope)

    by_pid = reader.read_by_pid()
    assert sorted(by_pid) == [7, 9]
    assert [s.count for s in by_pid[7].series] == [2]
    assert sorted(s.count for s in by_pid[9].series) == [3, 4]  # its route, its overflow
    assert list(reader.read_by_pid([7])) == [7]

    reader.forget(9)
    assert list(reader.read_by_pid()) == [7]
    assert len(loaded.keys(SERIES_MAP)) == 1 and not loaded.keys(OVERFLOW_MAP)


def test_bucket_constants_are_the_bounds_in_nanoseconds():
    constants = metric_constants(SERVER.metric)
    assert constants["red_bound_count"] == len(REQUEST_DURATION_BOUNDS)
    raw = constants["red_bounds_ns"]
    bounds = [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw), 8)]
    assert bounds == [5_000_000, 10_000_000, 25_000_000, 50_000_000, 75_000_000, 100_000_000,
                      250_000_000, 500_000_000, 750_000_000, 1_000_000_000, 2_500_000_000,
                      5_000_000_000, 7_500_000_000, 10_000_000_000]
    assert constants["red_metrics_on"] == 1
