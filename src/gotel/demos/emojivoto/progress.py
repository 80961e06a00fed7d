"""What the demo tells its user while it works: whole lines from any thread, elapsed times,
and commands that say every so often that they are still running, and how far they got."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from gotel.errors import GotelError

HEARTBEAT_S = 30.0  # a long step says "still ..." this often

# `go build -v` names each package on a line of its own as it compiles it.
_PACKAGE_LINE = re.compile(r"^[\w.~+-]+(/[\w.~+-]+)*$")


class Say:
    """Lines to the user from several threads, each line whole."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, text: str = "") -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()


def elapsed(start: float) -> str:
    """Time since `start` (a time.monotonic()), as a person reads it: 4.2s, 3m07s."""
    seconds = time.monotonic() - start
    return f"{seconds:.1f}s" if seconds < 90 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def compiled_packages(stderr_text: str) -> int:
    """How many packages `go build -v` said it compiled so far."""
    return sum(1 for line in stderr_text.splitlines() if _PACKAGE_LINE.match(line))


def directory_bytes(root: Path) -> int:
    """Bytes of the files under root (what a download step has written so far)."""
    total = 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


def run_step(
    command: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    what: str,
    say: Say | None = None,
    detail: Callable[[str], str] | None = None,
    heartbeat_s: float = HEARTBEAT_S,
) -> str:
    """Run one command of a build; its stdout, or GotelError with the last lines it printed.

    Every `heartbeat_s` it says `... still <what> (<elapsed>)`, followed by `detail(stderr so
    far)` when that has something to add (packages compiled, megabytes downloaded)."""
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            list(command), cwd=cwd, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        started = time.monotonic()
        output: list[str] = []
        reader = threading.Thread(target=lambda: output.append(proc.stdout.read()))  # type: ignore[union-attr]
        reader.start()
        try:
            next_note = started + heartbeat_s
            while proc.poll() is None:
                now = time.monotonic()
                if now - started > timeout:
                    raise GotelError(f"emojivoto: {what} took longer than {timeout / 60:.0f} min")
                if say is not None and now >= next_note:
                    extra = detail(_read(errors)) if detail is not None else ""
                    extra = f"; {extra}" if extra else ""
                    say(f"emojivoto:   ... still {what} ({elapsed(started)}{extra})")
                    next_note += heartbeat_s
                time.sleep(min(0.2, heartbeat_s / 4))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join()
        stdout = output[0] if output else ""
        if proc.returncode != 0:
            said = "\n".join(
                line for line in _read(errors).splitlines() if not _PACKAGE_LINE.match(line)
            ).strip() or _json_error(stdout)
            tail = [line.strip() for line in said.splitlines() if line.strip()][-3:]
            raise GotelError(f"emojivoto: {what} failed: {' | '.join(tail) or 'no output'}")
    return stdout


def _read(handle: TextIO) -> str:
    """What the command wrote so far; pread leaves the offset it shares with the command."""
    fd = handle.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")


def _json_error(stdout: str) -> str:
    """The Error of `go mod download -json`, which reports on stdout."""
    try:
        return str(json.loads(stdout).get("Error") or "")
    except (ValueError, AttributeError):
        return stdout
