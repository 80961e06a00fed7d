"""End-to-end helpers: real Go servers, a real gotel process, a real OTLP receiver."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gotools import REPO

GOTEL = [sys.executable, "-m", "gotel.cli"]


def free_port() -> int:
    """A loopback TCP port nobody listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> int:
    """GET url; the status (raises on an error status)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()
        return response.status


def read_jsonl(path: Path, want: int, timeout: float = 15) -> list[dict]:
    """The spans a jsonl exporter wrote, once there are `want` of them (or on timeout)."""
    deadline = time.monotonic() + timeout
    spans: list[dict] = []
    while True:  # read at least once, even with no time to wait (spans_until's timeout=0)
        if path.exists():
            # Only whole lines: the exporter may be half-way through writing the last one.
            text = path.read_text()
            text = text[: text.rfind("\n") + 1]
            spans = [json.loads(line) for line in text.splitlines() if line.strip()]
            if len(spans) >= want:
                break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return spans


# ns: clock conversion between the kernel's clock and the wall clock, in span time checks
SLACK = 2_000_000


def spans_until(path: Path, done: Callable[[list[dict]], bool], timeout: float = 20) -> list[dict]:
    """The spans a jsonl exporter wrote, once done(spans) holds (or on timeout)."""
    deadline = time.monotonic() + timeout
    spans: list[dict] = []
    while time.monotonic() < deadline:
        spans = read_jsonl(path, 0, timeout=0)
        if done(spans):
            break
        time.sleep(0.1)
    return spans


def inside(inner: dict, outer: dict) -> bool:
    """inner's time lies within outer's (up to SLACK)."""
    return (outer["start_time_unix_nano"] <= inner["start_time_unix_nano"] + SLACK
            and inner["end_time_unix_nano"] <= outer["end_time_unix_nano"] + SLACK)


class GoServer:
    """A test HTTP server on a free loopback port."""

    def __init__(self, binary: Path, *args: str) -> None:
        self.binary = binary
        self.popen = subprocess.Popen(
            [str(binary), "-addr", "127.0.0.1:0", *args], stdout=subprocess.PIPE, text=True
        )
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline().strip()
        assert line.startswith("listening on "), f"server said {line!r}"
        self.address = line.removeprefix("listening on ")
        self.host, port = self.address.rsplit(":", 1)
        self.port = int(port)
        self.url = f"http://{self.address}"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(timeout=10)


class Gotel:
    """gotel as a user runs it: a separate process whose stderr we watch."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(
            [*GOTEL, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, **(env or {})),
            cwd=REPO,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if m := regex.search(line):
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"gotel never said /{pattern}/; stderr:\n" + self.log)
                self._cond.wait(min(left, 0.2))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self, timeout: float = 15) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


@pytest.fixture
def servers() -> Iterator[list[GoServer]]:
    started: list[GoServer] = []
    yield started
    for s in started:
        s.stop()


@pytest.fixture
def gotels() -> Iterator[list[Gotel]]:
    started: list[Gotel] = []
    yield started
    for g in started:
        if g.popen.poll() is None:
            g.popen.kill()
            g.popen.wait()
