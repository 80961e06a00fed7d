"""A signalled gotel stops within its deadline, whatever its detach is stuck on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

# A process that installs gotel's signal handling, signals itself, then never finishes
# "detaching" (the main thread sleeps): only the deadline or a second signal ends it.
STUCK = """
import os, signal, sys, time
from gotel import cli
cli.logging.basicConfig(level="INFO", format="gotel: %(message)s")
stop = cli._stop_on_signals()
print("ready", flush=True)
os.kill(os.getpid(), signal.SIGTERM)
stop.wait()
time.sleep(60)
"""


def start(env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", STUCK], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, **(env or {})))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_stuck_detach_ends_at_the_deadline_with_the_threads_stacks():
    t0 = time.monotonic()
    proc = start({"GOTEL_SHUTDOWN_TIMEOUT": "0.5"})
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, err
    assert time.monotonic() - t0 < 15
    assert "SIGTERM: detaching" in err
    assert "detach not finished after 0.5 s; exiting now" in err
    # faulthandler's dump: the main thread, stuck in the program's last line
    assert "(most recent call first)" in err and 'File "<string>"' in err, err


def test_a_second_signal_exits_at_once():
    proc = start({"GOTEL_SHUTDOWN_TIMEOUT": "30"})
    time.sleep(0.3)  # the first SIGTERM handled
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 1, err
    assert time.monotonic() - t0 < 5
    assert "SIGTERM again: exiting now, before the detach finished" in err


def test_a_bad_timeout_is_said_and_the_default_kept():
    proc = start({"GOTEL_SHUTDOWN_TIMEOUT": "soon"})
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert "GOTEL_SHUTDOWN_TIMEOUT='soon' is not a number of seconds > 0; using 30" in err
