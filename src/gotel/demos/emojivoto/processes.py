"""The processes the demo starts: each with its output in a log file, waited for with a time
limit, and stopped in reverse order on the way out."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gotel.errors import GotelError

STOP_TIMEOUT_S = 15.0


class Processes:
    """Every process the demo starts, with its output in a log file; stopped in reverse order."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        with open(self.log(name), "wb") as log:
            proc = subprocess.Popen(
                list(argv), stdin=stdin, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self.started.append((name, proc))
        return proc

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def tail(self, name: str, lines: int = 5) -> str:
        try:
            text = self.log(name).read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(line for line in text.splitlines()[-lines:] if line.strip())

    def wait_for_line(
        self, name: str, proc: subprocess.Popen[bytes], pattern: str, timeout: float
    ) -> re.Match[str]:
        """The first line of name's output that matches, or GotelError (it exited, or time)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                for line in self.log(name).read_text(errors="replace").splitlines():
                    if m := regex.search(line):
                        return m
            if proc.poll() is not None:
                raise GotelError(
                    f"emojivoto: {name} exited ({proc.returncode}) before saying /{pattern}/: "
                    + self.tail(name)
                )
            if time.monotonic() > deadline:
                raise GotelError(f"emojivoto: {name} did not say /{pattern}/ in {timeout:.0f}s")
            time.sleep(0.05)

    def stop(
        self, name: str, proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S
    ) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    def stop_all(self) -> None:
        for name, proc in reversed(self.started):
            self.stop(name, proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())
