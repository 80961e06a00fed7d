"""OTEL_TRACES_SAMPLER, decided in the kernel at span start, end to end on the demo server:
what is exported, and whether an incoming traceparent's sampled flag is followed."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

from conftest import GoServer, Gotel, get, read_jsonl
from gotools import build_app

pytestmark = pytest.mark.usefixtures("require_root")

REQUESTS = 400
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def traced(tmp_path: Path, servers: list, gotels: list, sampler: str, ratio: str = "1.0"
           ) -> tuple[GoServer, Gotel, Path]:
    server = GoServer(build_app("httpserver"))
    servers.append(server)
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--pid", str(server.pid), "--exporter", "jsonl", "--output",
                  str(out), env={"OTEL_TRACES_SAMPLER": sampler,
                                 "OTEL_TRACES_SAMPLER_ARG": ratio})
    gotels.append(gotel)
    gotel.wait_for(rf"pid {server.pid} .*attached")
    return server, gotel, out


def get_with_parent(url: str, flags: str, span: str) -> None:
    request = urllib.request.Request(url, headers={"traceparent": f"00-{TRACE}-{span}-{flags}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def finish(gotel: Gotel, out: Path, want: int) -> list[dict]:
    spans = read_jsonl(out, want, timeout=5 if want else 1.5)
    assert gotel.stop() == 0, gotel.log
    return read_jsonl(out, len(spans), timeout=0.5)


@pytest.mark.parametrize(("sampler", "ratio", "low", "high"), [
    ("always_on", "1.0", REQUESTS, REQUESTS),
    ("always_off", "1.0", 0, 0),
    # Binomial(400, 0.25): mean 100, sd 8.7; the bounds are > 5 sd away.
    ("traceidratio", "0.25", 55, 145),
    ("parentbased_traceidratio", "0.25", 55, 145),  # roots: the ratio decides
])
def test_roots_are_kept_as_the_sampler_says(sampler, ratio, low, high, tmp_path, servers,
                                             gotels):
    server, gotel, out = traced(tmp_path, servers, gotels, sampler, ratio)
    for i in range(REQUESTS):
        get(f"{server.url}/hello/{i}")
    spans = finish(gotel, out, high)
    assert low <= len(spans) <= high, (sampler, len(spans))
    if 0 < len(spans) < REQUESTS:  # a kept trace id is one the ratio admits
        for span in spans:
            assert int(span["trace_id"][16:], 16) < 0.25 * 2**64, span["trace_id"]


@pytest.mark.parametrize(("sampler", "kept"), [
    ("parentbased_always_on", {"01"}),  # the parent's flag decides
    ("parentbased_always_off", {"01"}),  # roots dropped, sampled parents kept
    ("always_on", {"00", "01"}),  # not parent-based: every span kept
    ("always_off", set()),
])
def test_an_incoming_sampled_flag_is_followed_by_parent_based_samplers(
        sampler, kept, tmp_path, servers, gotels):
    server, gotel, out = traced(tmp_path, servers, gotels, sampler)
    for i, flags in enumerate(("00", "01") * 5):
        get_with_parent(f"{server.url}/hello/{flags}", flags, f"{i + 1:016x}")
    time.sleep(0.2)
    spans = finish(gotel, out, 5 * len(kept))
    assert {span["attributes"]["url.path"][-2:] for span in spans} == kept, spans
    assert len(spans) == 5 * len(kept)
    for span in spans:
        assert span["trace_id"] == TRACE and span["remote_parent"] is True
