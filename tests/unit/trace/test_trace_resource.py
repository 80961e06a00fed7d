"""build_resource: precedence of service.name, OTEL_RESOURCE_ATTRIBUTES parsing."""

from __future__ import annotations

import logging
import os
import socket
import sys

import pytest

import gotel
from gotel.trace import build_resource, parse_resource_attributes


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def _build(**overrides: object) -> dict[str, str | int]:
    arguments: dict[str, object] = {
        "executable": "/srv/bin/checkout",
        "pid": 4242,
        "go_version": "go1.26.8",
        "service_name": None,
        "extra": {},
    }
    arguments.update(overrides)
    return build_resource(**arguments)  # type: ignore[arg-type]


def test_detected_attributes() -> None:
    resource = _build()
    assert resource == {
        "service.name": "checkout",
        "process.pid": 4242,
        "process.executable.name": "checkout",
        "process.executable.path": "/srv/bin/checkout",
        "process.runtime.name": "go",
        "process.runtime.version": "go1.26.8",
        "telemetry.sdk.language": "go",
        "telemetry.distro.name": "gotel",
        "telemetry.distro.version": gotel.__version__,
        "host.name": socket.gethostname(),
    }


def test_unknown_go_version_is_left_out() -> None:
    assert "process.runtime.version" not in _build(go_version=None)


def test_service_name_defaults_to_the_target_never_the_agent() -> None:
    name = _build(executable="/opt/app/payments")["service.name"]
    assert name == "payments"
    assert name not in {os.path.basename(sys.executable), os.path.basename(sys.argv[0]), "gotel"}
    assert _build(executable="")["service.name"] == "unknown_service"


def test_service_name_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")
    assert _build()["service.name"] == "from-attributes"
    assert _build(extra={"service.name": "from-extra"})["service.name"] == "from-extra"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    assert _build(extra={"service.name": "from-extra"})["service.name"] == "from-env"
    assert _build(service_name="explicit")["service.name"] == "explicit"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "  ")  # blank counts as unset
    assert _build()["service.name"] == "from-attributes"


def test_resource_attributes_override_detected_and_extra_overrides_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod,host.name=node-7,team=a"
    )
    resource = _build(extra={"team": "b"})
    assert resource["deployment.environment.name"] == "prod"
    assert resource["host.name"] == "node-7"
    assert resource["team"] == "b"


def test_environ_argument_replaces_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "agent-env")
    resource = _build(environ={"OTEL_SERVICE_NAME": "target-env"})
    assert resource["service.name"] == "target-env"


def test_parse_percent_encoding_and_whitespace() -> None:
    attributes, malformed = parse_resource_attributes(
        " a = 1 ,list=x%2Cy,eq=k%3Dv,utf8=caf%C3%A9,space=a%20b,plus=a+b,empty=,k%2Fslash=ok,"
    )
    assert malformed == []
    assert attributes == {
        "a": "1",
        "list": "x,y",
        "eq": "k=v",
        "utf8": "café",
        "space": "a b",
        "plus": "a+b",  # baggage encoding: '+' is not a space
        "empty": "",
        "k/slash": "ok",
    }


def test_value_may_contain_equals_sign() -> None:
    assert parse_resource_attributes("query=a=b")[0] == {"query": "a=b"}


def test_malformed_entries_are_skipped_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES",
        "good=1,novalue,=noname,bad=%zz,latin1=%E9,half=%4,also.good=2",
    )
    with caplog.at_level(logging.WARNING):
        resource = _build()
    assert resource["good"] == "1"
    assert resource["also.good"] == "2"
    for key in ("novalue", "", "bad", "latin1", "half"):
        assert key not in resource
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "OTEL_RESOURCE_ATTRIBUTES" in message
    assert "5 malformed entries" in message
