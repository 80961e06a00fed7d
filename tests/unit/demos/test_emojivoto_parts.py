"""The emojivoto demo's parts that need no root: build progress, the Jaeger cache path, the
fallback OTLP receiver (a real process fed by gotel's own encoder)."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gotel.demos.emojivoto import build, receiver
from gotel.demos.emojivoto.progress import Say, compiled_packages, run_step
from gotel.demos.emojivoto.traces import TraceSpan
from gotel.errors import GotelError
from gotel.export.otlp_encode import encode_request
from gotel.trace.span import Span, SpanKind

# A stand-in for `go build -v`: names packages on stderr, one every 50 ms.
_COMPILER = """
import sys, time
for i in range(12):
    print(f"example.com/mod/pkg{i}", file=sys.stderr, flush=True)
    time.sleep(0.05)
print("built")
"""


def test_a_long_step_says_it_is_still_running_and_how_far_it_got() -> None:
    stream = io.StringIO()
    out = run_step(
        [sys.executable, "-c", _COMPILER],
        cwd=Path.cwd(),
        timeout=60,
        what="compiling Example",
        say=Say(stream),
        detail=lambda stderr: f"{compiled_packages(stderr)} of at most 12 packages compiled",
        heartbeat_s=0.15,
    )
    assert out == "built\n"
    notes = stream.getvalue().splitlines()
    assert len(notes) >= 2, notes
    counts = []
    for note in notes:
        assert note.startswith("emojivoto:   ... still compiling Example (")
        counts.append(int(note.split("; ")[1].split()[0]))
        assert note.endswith(" of at most 12 packages compiled)")
    assert counts == sorted(counts) and 0 < counts[-1] <= 12


def test_a_failed_step_names_its_last_error_lines_not_the_packages() -> None:
    failing = "import sys; print('example.com/a', file=sys.stderr); sys.exit('x.go:3: broken')"
    with pytest.raises(GotelError, match=r"^emojivoto: compiling Example failed: x\.go:3: broken$"):
        run_step(
            [sys.executable, "-c", failing], cwd=Path.cwd(), timeout=60, what="compiling Example"
        )


def test_jaeger_is_the_approved_release_cached_under_its_version(tmp_path: Path) -> None:
    assert build.JAEGER_VERSION == "v1.75.0"
    assert build.JAEGER_RELEASE == "Jaeger v2.12.0"  # v1.75.0's CHANGELOG: v1.75.0 / v2.12.0
    assert build.jaeger_home(tmp_path) == tmp_path / "jaeger" / "v1.75.0"
    # A build of another version left in the cache is not this one's.
    old = tmp_path / "jaeger" / "v1.76.0" / "jaeger"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"")
    assert not (build.jaeger_home(tmp_path) / "jaeger").exists()


def test_a_second_build_says_it_waits_for_the_first(tmp_path: Path) -> None:
    waits: list[str] = []
    with build._file_lock(tmp_path / ".lock", lambda: waits.append("first")):
        second = threading.Thread(
            target=lambda: build._file_lock(
                tmp_path / ".lock", lambda: waits.append("second")
            ).__enter__()
        )
        second.start()
        second.join(0.5)
        assert second.is_alive() and waits == ["second"]
    second.join(10)
    assert not second.is_alive()


def test_the_services_sources_ship_inside_the_package() -> None:
    source = build.SERVICES_SOURCE
    assert source.is_relative_to(Path(build.__file__).parent)
    assert (source / "go.mod").read_text().startswith("module gotel.example/emojivoto")
    for name in build.SERVICES:
        assert (source / "cmd" / name / "main.go").is_file(), name


@pytest.fixture
def receiver_url(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    out = tmp_path / "spans.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", receiver.__name__, "--out", str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(20)
        assert line and line[0].startswith("ready http="), line
        yield f"http://127.0.0.1:{line[0].split('=')[1].strip()}", out
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        proc.stdout.close()  # type: ignore[union-attr]


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.read() == b""
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_fallback_receiver_reads_what_gotel_sends(receiver_url: tuple[str, Path]) -> None:
    url, out = receiver_url
    parent = Span(
        "GET /api/vote",
        SpanKind.SERVER,
        b"\x01" * 16,
        b"\x02" * 8,
        None,
        1_000_000,
        3_000_000,
        {"http.route": "/api/vote", "http.response.status_code": 500},
        error=True,
    )
    child = Span(
        "emojivoto.v1.VotingService/Vote",
        SpanKind.CLIENT,
        b"\x01" * 16,
        b"\x03" * 8,
        b"\x02" * 8,
        1_500_000,
        2_500_000,
        {"rpc.grpc.status_code": 2},
    )
    payload = encode_request({"service.name": "web"}, [parent, child], "0.1.0")
    protobuf = {"Content-Type": "application/x-protobuf"}
    assert _post(url + "/v1/traces", payload, protobuf) == 200
    assert (
        _post(url + "/v1/traces", gzip.compress(payload), protobuf | {"Content-Encoding": "gzip"})
        == 200
    )
    assert _post(url + "/v1/traces", b"\x0a\xff", protobuf) == 400
    assert _post(url + "/v1/logs", payload, protobuf) == 404
    spans = [TraceSpan(**json.loads(line)) for line in out.read_text().splitlines()]
    assert len(spans) == 4
    assert spans[0] == TraceSpan(
        "01" * 16,
        "02" * 8,
        None,
        "web",
        "GET /api/vote",
        "SERVER",
        1000,
        2000,
        True,
        {"http.route": "/api/vote", "http.response.status_code": 500},
    )
    assert spans[1].parent_id == "02" * 8 and spans[1].kind == "CLIENT"
    assert spans[1].attributes == {"rpc.grpc.status_code": 2} and not spans[1].error
    assert spans[2:] == spans[:2]
