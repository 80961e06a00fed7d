"""The test receiver itself: OTLP/JSON, gzip, bad requests, clean exit on SIGTERM."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request

import pytest

from otlp_receiver import Receiver


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_otlp_json_with_gzip(receiver: Receiver) -> None:
    trace_id = "5b8efff798038103d269b633813fc60c"
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "js"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "manual"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "json span",
                                "kind": 2,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [
                                    {"key": "n", "value": {"intValue": "42"}},
                                    {"key": "b", "value": {"boolValue": True}},
                                ],
                                "status": {"code": 2, "message": "bad"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    status = _post(
        f"{receiver.http_endpoint}/v1/traces",
        gzip.compress(json.dumps(document).encode()),
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert status == 200
    [span] = receiver.spans(trace_id=trace_id)
    assert span["span_id"] == "eee19b7ec3c1b174"
    assert span["parent_span_id"] == "eee19b7ec3c1b173"
    assert span["kind"] == "SERVER"
    assert span["attributes"] == {"n": 42, "b": True}
    assert span["status"] == {"code": "ERROR", "message": "bad"}
    assert span["resource"] == {"service.name": "js"}
    assert (span["scope"], span["transport"]) == ("manual", "http")
    assert span["duration_ns"] == 1_000_000_000


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/v1/logs", b"", 404),
        ("/v1/traces", b"\xff\xfe not protobuf", 400),
        ("/v1/metrics", b"\xff\xfe not protobuf", 400),
    ],
)
def test_bad_requests(receiver: Receiver, path: str, body: bytes, expected: int) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    assert _post(f"{receiver.http_endpoint}{path}", body, headers) == expected


def test_exits_cleanly_on_sigterm() -> None:
    with Receiver() as running:
        process = running._proc
        assert process is not None and running.returncode is None
    assert process.returncode == 0
