"""The one gotel of the demo: `gotel attach --pid ...` for all four services, as a user runs
it, exporting over OTLP/HTTP to the demo's backend; its log lines are echoed as they come."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Mapping

from gotel.demos.emojivoto.processes import Processes
from gotel.demos.emojivoto.progress import Say

ATTACH_TIMEOUT_S = 120.0


class GotelProcess:
    """`gotel attach --pid ...` as a user runs it; its log lines are echoed as they come."""

    def __init__(self, procs: Processes, pids: Mapping[str, int], endpoint: str, say: Say):
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("OTEL_EXPORTER_OTLP")
            and k not in ("OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER")
        }
        env.update(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        )
        self.argv = ["gotel", "attach"]
        for pid in pids.values():
            self.argv += ["--pid", str(pid)]
        self.procs = procs
        self.say = say
        self.proc = procs.start(
            "gotel", [sys.executable, "-m", "gotel.cli", *self.argv[1:]], env=env
        )
        self._echoed = 0
        self._echo_stop = threading.Event()
        self._echo = threading.Thread(target=self._echo_lines, daemon=True)
        self._echo.start()

    def _echo_lines(self) -> None:
        while True:
            finished = self._echo_stop.is_set()
            with contextlib.suppress(OSError):
                lines = self.procs.log("gotel").read_text(errors="replace").splitlines()
                for line in lines[self._echoed :]:
                    self.say(f"  {line}")
                self._echoed = len(lines)
            if finished:
                return
            self._echo_stop.wait(0.1)

    def wait_attached(self, pids: Mapping[str, int]) -> None:
        for pid in pids.values():
            self.procs.wait_for_line(
                "gotel", self.proc, rf"pid {pid} \(.*\): attached [1-9]", ATTACH_TIMEOUT_S
            )

    def stop(self) -> int:
        """SIGTERM: gotel detaches every probe and flushes its exporters."""
        self.procs.stop("gotel", self.proc, timeout=30)
        self._echo_stop.set()
        self._echo.join(5)
        return self.proc.returncode
