"""The soak and fault suite's short version (bench/soak.py runs the long one): attach and
detach under saturation, restarts, gotel SIGKILLed, the collector down. Each phase checks
every response body, that the targets live, and that no uprobe or descriptor is left."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gotools import REPO, build_app

sys.path.insert(0, str(REPO / "bench"))
import soak

pytestmark = pytest.mark.usefixtures("require_root")


@pytest.fixture(scope="module")
def binary() -> Path:
    return build_app("httpserver", name="httpserver-soak")


def _passed(report: soak.Report) -> None:
    assert not report.failures, "\n".join(report.lines)


def test_attach_detach_in_one_agent_under_load_leaves_nothing_behind(binary):
    report = soak.Report()
    soak.session_cycles(report, binary, seconds=20, every=2)
    _passed(report)


def test_gotel_started_and_stopped_under_load_never_corrupts_a_response(binary, tmp_path):
    report = soak.Report()
    soak.attach_detach_cycles(report, binary, seconds=20, every=3, tmp=tmp_path)
    _passed(report)


def test_a_target_killed_and_restarted_is_reattached_each_time(binary, tmp_path):
    report = soak.Report()
    soak.restarts(report, binary, count=5, tmp=tmp_path)
    _passed(report)


def test_gotel_killed_leaves_the_targets_serving_and_the_next_gotel_attaches(binary, tmp_path):
    report = soak.Report()
    soak.gotel_killed(report, binary, tmp=tmp_path)
    _passed(report)


def test_collector_down_under_load_bounded_memory_and_loss_counted(binary):
    report = soak.Report()
    soak.collector_down(report, binary, seconds=8)
    _passed(report)
