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
