"""`gotel demo`: build the bundled Go service, trace it from its first instruction, print spans."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import TextIO

from gotel.config import Config
from gotel.errors import EXIT_OK, GotelError, NotSupportedError
from gotel.instrumentation.registry import all_probes
from gotel.privileges import require_tracing
from gotel.supervisor import Supervisor
from gotel.target import HeldLaunch, Process

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "demoapp"
REQUESTS = (
    ("GET", "/hello/gopher"),
    ("POST", "/items"),
    ("GET", "/slow?ms=25"),
    ("GET", "/fail"),
    ("GET", "/no/such/page"),
)


def go_command() -> str:
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None
    )
    if not found:
        raise NotSupportedError("go toolchain not found (install Go 1.21 or newer, put it on PATH)")
    return found


def build_demo(cache: Path | None = None) -> Path:
    """Compile the demo service (Go's build cache makes rebuilds instant)."""
    out_dir = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gotel"
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / "gotel-demo-service"
    result = subprocess.run(
        [go_command(), "build", "-o", str(binary), "."],
        cwd=SOURCE,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise GotelError(f"building the demo service failed: {last}")
    return binary


def run_demo(config: Config, *, rounds: int, out: TextIO) -> int:
    require_tracing()
    binary = build_demo()
    out.write(f"demo: built {binary}; starting it under gotel\n")
    out.flush()
    launch = HeldLaunch([str(binary), "-addr", "127.0.0.1:0"], stdout=subprocess.PIPE)
    supervisor = Supervisor(config, all_probes())
    stop = threading.Event()
    loop = threading.Thread(target=supervisor.run, args=(stop,), kwargs={"exit_when_idle": False})
    try:
        supervisor.attach(Process(launch.pid, launch.executable, str(launch.executable)))
        launch.release()
        assert launch.popen.stdout is not None
        line = launch.popen.stdout.readline().decode().strip()
        if not line.startswith("listening on "):
            raise GotelError(f"demo service did not start (said {line!r})")
        base = "http://" + line.removeprefix("listening on ")
        loop.start()
        sent = 0
        for _ in range(max(1, rounds)):
            for method, path in REQUESTS:
                status = _send(method, base + path)
                out.write(f"demo: {method} {path} -> {status}\n")
                sent += 1
        out.flush()
        _wait_for_spans(supervisor, sent)
    finally:
        stop.set()
        if loop.is_alive():
            loop.join()
        launch.release()
        supervisor.close()
        launch.popen.terminate()
        launch.popen.wait()
    out.write(
        f"demo: {supervisor.totals.spans} spans from {sent} requests, "
        f"{supervisor.totals.lost} events lost; service stopped\n"
    )
    return EXIT_OK


def _send(method: str, url: str) -> int:
    data = b'{"name":"gopher"}' if method == "POST" else None
    request = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _wait_for_spans(supervisor: Supervisor, want: int, timeout_s: float = 5.0) -> None:
    deadline = threading.Event()
    timer = threading.Timer(timeout_s, deadline.set)
    timer.start()
    try:
        while not deadline.is_set():
            made = sum(s.stats.spans for s in supervisor.sessions.values())
            if made >= want:
                return
            deadline.wait(0.05)
    finally:
        timer.cancel()
