"""The program a scan builds: which packages it keeps, what main.go says, what a scan measures."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gotel.instrumentation.probe import STD, Probe, StructField
from gotel.offsets.program import (
    Package,
    StructRef,
    declared_fields,
    keepers,
    main_source,
    std_floor,
    struct_ref,
)
from gotel.offsets.scan import GoRunner, Job, _values, build_lister, find_go, scan


def fake_probe(*fields: StructField, min_go: str = "1.21", module: str = STD) -> Probe:
    return Probe(name="fake", module=module, bpf_object=Path("/nonexistent.bpf.o"), hooks=(),
                 fields=fields, event="fake_event", describe=lambda _e: None, scope="test",
                 min_go=min_go)


@pytest.mark.parametrize(
    ("name", "package", "typ"),
    [
        ("net/http.Request", "net/http", "Request"),
        ("runtime.g", "runtime", "g"),
        ("internal/runtime/maps.Map", "internal/runtime/maps", "Map"),
        ("gopkg.in/yaml.v3.Node", "gopkg.in/yaml.v3", "Node"),
        ("gopkg.in/yaml%2ev3.Node", "gopkg.in/yaml.v3", "Node"),
        ("sync/atomic.Pointer[net/http.response]", "sync/atomic", "Pointer"),
    ],
)
def test_struct_ref(name, package, typ):
    assert struct_ref(name) == StructRef(name, package, typ)


def test_declared_fields_group_by_module_and_floor():
    probes = [
        fake_probe(StructField("net/http.Request", "Method", "a"),
                   StructField("net/http.Request", "Pattern", "b", required=False),
                   min_go="1.22"),
        fake_probe(StructField("runtime.g", "goid", "c"), min_go="1.21"),
        fake_probe(StructField("google.golang.org/grpc.Server", "opts", "d",
                               module="google.golang.org/grpc"),
                   module="google.golang.org/grpc", min_go="1.20"),
    ]
    assert declared_fields(probes) == {
        STD: {"net/http.Request": {"Method", "Pattern"}, "runtime.g": {"goid"}},
        "google.golang.org/grpc": {"google.golang.org/grpc.Server": {"opts"}},
    }
    assert std_floor(probes) == "1.21.0"  # the grpc probe declares no std field
    assert std_floor(probes[:1]) == "1.22.0"


def test_keepers_reach_internal_and_vendored_packages_through_importers():
    universe = {p.path: p for p in [
        Package("m", name="m", imports=["m/internal/transport"]),
        Package("m/internal/transport", name="transport"),
        Package("m/internal/other", name="other", imports=["m/internal/transport"]),
        Package("m/credentials", name="credentials", imports=["m/internal/other"]),
        Package("m/cmd/tool", name="main", imports=["m/internal/transport"]),
        Package("net/http", name="http", imports=["vendor/golang.org/x/net/http2/hpack"]),
        Package("vendor/golang.org/x/net/http2/hpack", name="hpack"),
    ]}
    # Nearest importable importers only: m (one hop), not m/credentials (two), never a main.
    assert keepers(["m/internal/transport"], universe) == ["m"]
    assert keepers(["m/internal/other"], universe) == ["m/credentials"]
    assert keepers(["vendor/golang.org/x/net/http2/hpack"], universe) == ["net/http"]
    assert keepers(["net/http", "m/credentials"], universe) == ["m/credentials", "net/http"]


def test_main_source_references_the_api_and_exported_structs():
    http = Package("net/http", funcs=["ListenAndServe", "Get", "Get"],
                   methods=[("Server", "Serve"), ("HandlerFunc", "ServeHTTP")])
    empty = Package("runtime/metrics")
    structs = [struct_ref("net/http.Request"), struct_ref("net/http.response"),
               struct_ref("runtime.g")]
    src = main_source([http, empty], structs)
    assert '\tp0 "net/http"' in src
    assert '\t_ "runtime/metrics"' in src  # nothing to reference: a blank import still links it
    for entry in ["p0.Get,", "p0.ListenAndServe,", "(*p0.Server).Serve,",
                  "(*p0.HandlerFunc).ServeHTTP,", "(*p0.Request)(nil),"]:
        assert f"\t{entry}\n" in src
    assert src.count("p0.Get,") == 1
    assert "response" not in src  # unexported: kept by the API, cannot be named
    assert "func main() { println(len(keep)) }" in src


def test_values_tell_absent_from_dropped():
    job = Job(STD, "1.22.0", {"net/http.pattern": frozenset({"str"}),
                              "net/http.response": frozenset({"status"}),
                              "net/http.Request": frozenset({"Method", "Pattern"}),
                              "net/nosuch.T": frozenset({"f"})})
    universe = {
        "net/http": Package("net/http", go_files=["server.go"],
                             types={"pattern", "response", "Request"}),
        "net/nosuch": Package("net/nosuch", error="package net/nosuch is not in std (...)"),
    }
    found = {"net/http.pattern": {"str": 0}, "net/http.Request": {"Method": 0},
             "net/http.response": None, "net/nosuch.T": None}
    refs = [struct_ref(s) for s in job.structs]
    values, problems = _values(job, refs, found, universe)
    assert values == {"net/http.pattern.str": 0, "net/http.Request.Method": 0,
                      "net/http.Request.Pattern": None, "net/nosuch.T.f": None}
    assert problems == ["net/http.response is declared but the linker dropped it"]


# --- a real scan with the local toolchain -------------------------------------------------------
@pytest.fixture(scope="module")
def local_go() -> str:
    out = subprocess.run([find_go(), "env", "GOVERSION"], capture_output=True, text=True,
                         check=True, env=dict(os.environ, GOTOOLCHAIN="local"))
    return out.stdout.strip().removeprefix("go")


def test_scan_keeps_unexported_internal_and_vendored_types(local_go, tmp_path):
    runner = GoRunner(find_go())
    lister = build_lister(runner, tmp_path)
    job = Job(STD, local_go, {
        "net/http.response": frozenset({"status", "req"}),
        "net/http.Request": frozenset({"Method", "NoSuchField"}),
        "net/http.noSuchType": frozenset({"x"}),
        "internal/poll.FD": frozenset({"Sysfd"}),
        "vendor/golang.org/x/net/http2/hpack.Decoder": frozenset({"dynTab"}),
        "net/nosuchpkg.T": frozenset({"f"}),
    })
    result = scan(job, runner, lister, tmp_path / "work")
    assert result.failure is None
    v = result.values
    assert v["net/http.Request.Method"] == 0
    for key in ["net/http.response.status", "net/http.response.req", "internal/poll.FD.Sysfd",
                "vendor/golang.org/x/net/http2/hpack.Decoder.dynTab"]:
        assert isinstance(v[key], int), key
    assert v["net/http.Request.NoSuchField"] is None
    assert v["net/http.noSuchType.x"] is None
    assert v["net/nosuchpkg.T.f"] is None
    assert not (tmp_path / "work").exists()  # scans clean up after themselves


def test_scan_failure_is_one_line(tmp_path):
    runner = GoRunner(find_go())
    job = Job(STD, "1.21.999", {"net/http.Request": frozenset({"Method"})})
    result = scan(job, runner, tmp_path / "lister-unused", tmp_path / "work")
    assert result.values == {}
    assert result.failure is not None and "go1.21.999" in result.failure
    assert "\n" not in result.failure
