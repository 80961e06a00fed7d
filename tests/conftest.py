"""Fixtures shared by every test tree. BPF tests need root; nothing may skip on our machines."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # tests/gotools.py, tests/otlp_receiver.py

if Path("/usr/local/go/bin").is_dir():
    os.environ["PATH"] = "/usr/local/go/bin:" + os.environ.get("PATH", "")


@pytest.fixture(scope="session")
def require_root() -> None:
    # Fails (does not skip): a BPF test that cannot run is a failure on our machines.
    assert os.geteuid() == 0, "BPF tests must run as root (sudo ./scripts/test.sh)"


# --------------------------------------------------------------------------- no silent skips
# A skipped test proves nothing, and a missing toolchain or tool would hide whole suites:
# every skip fails the run, with its reason. scripts/test.sh installs what the tests need.
# GOTEL_ALLOW_SKIPS=1 lets a developer without, say, the old Go toolchains run the rest.
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped and not os.environ.get("GOTEL_ALLOW_SKIPS") and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped and not os.environ.get("GOTEL_ALLOW_SKIPS"):
        terminalreporter.section("skipped tests fail this run (GOTEL_ALLOW_SKIPS=1 to allow)")
        for line in _skipped:
            terminalreporter.line(line)
