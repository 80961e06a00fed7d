"""`gotel demo emojivoto`: a voting app of four Go processes, traced by one gotel, read back
from a real trace backend.

    vote-bot --HTTP/1--> web --gRPC--> emoji   (emojivoto.v1.EmojiService)
                             --gRPC--> voting  (emojivoto.v1.VotingService)

The services' Go sources ship inside this package (services/); the backend is Jaeger v2,
built from its Go module through the proxy (build.py), with in-memory storage;
`GOTEL_EMOJIVOTO_BACKEND=receiver` uses this package's OTLP receiver instead (also the
fallback when Jaeger cannot be built). Every build goes to ~/.cache/gotel/emojivoto; every
process started here is stopped on exit, error or Ctrl-C, and every wait has a time limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from gotel.demos.emojivoto.backends import Backend, JaegerBackend, ReceiverBackend
from gotel.demos.emojivoto.build import (
    SERVICES,
    SERVICES_SOURCE,
    build_jaeger,
    build_services,
    cache_dir,
    jaeger_home,
)
from gotel.demos.emojivoto.gotel_process import GotelProcess
from gotel.demos.emojivoto.processes import Processes
from gotel.demos.emojivoto.progress import Say, elapsed
from gotel.demos.emojivoto.traces import TraceSpan, summarize
from gotel.errors import EXIT_OK, GotelError
from gotel.privileges import require_tracing

VOTES_PER_ROUND = 20  # `--requests N` casts N * 20 votes
LEADERBOARD_EVERY = 5  # vote-bot reads the leaderboard after every 5th vote
VOTE_INTERVAL = "30ms"
START_TIMEOUT_S = 60.0
QUERY_TIMEOUT_S = 30.0

ENV_BACKEND = "GOTEL_EMOJIVOTO_BACKEND"  # jaeger (default) | receiver
ENV_SPANS = "GOTEL_EMOJIVOTO_SPANS"  # also write the spans read back, one JSON per line


def _expected_requests(votes: int) -> int:
    """HTTP requests vote-bot sends: a list and a vote per round, plus the leaderboards."""
    return 2 * votes + votes // LEADERBOARD_EVERY


def _wanted_backend() -> str:
    wanted = os.environ.get(ENV_BACKEND, "").strip().lower() or "auto"
    if wanted not in ("auto", "jaeger", "receiver"):
        raise GotelError(f"{ENV_BACKEND}={wanted}: expected jaeger or receiver")
    return wanted


def _choose_backend(wanted: str, cache: Path, say: Say) -> Backend:
    if wanted == "receiver":
        return ReceiverBackend()
    try:
        return JaegerBackend(build_jaeger(jaeger_home(cache), say))
    except GotelError as exc:
        if wanted == "jaeger":
            raise
        reason = str(exc).removeprefix("emojivoto: ")
        say(f"emojivoto: {reason}; falling back to gotel's OTLP receiver")
        return ReceiverBackend()


def _collect(backend: Backend, since_us: int, want_web_servers: int) -> list[TraceSpan]:
    """Poll the backend until web's server spans are all there and the count is steady."""
    deadline = time.monotonic() + QUERY_TIMEOUT_S
    previous = -1
    spans: list[TraceSpan] = []
    while time.monotonic() < deadline:
        try:
            spans = backend.spans(since_us)
        except (OSError, ValueError) as exc:
            raise GotelError(f"emojivoto: querying {backend.label} failed: {exc}") from exc
        web = sum(1 for s in spans if s.service == "web" and s.kind == "SERVER")
        if web >= want_web_servers and len(spans) == previous:
            break
        previous = len(spans)
        time.sleep(0.5)
    return spans


def run_emojivoto(*, rounds: int, out: TextIO, unused_flags: Sequence[str] = ()) -> int:
    """The scenario; `unused_flags`: demo flags given that it cannot honour (refused)."""
    if unused_flags:
        raise GotelError(
            f"demo emojivoto: {', '.join(unused_flags)} not used here (it exports to its own "
            "backend, and each process is named after its executable)"
        )
    say = Say(out)
    started = time.monotonic()
    wanted = _wanted_backend()
    require_tracing()
    cache = cache_dir()
    say(
        f"emojivoto: building web, emoji, voting and vote-bot from {SERVICES_SOURCE} "
        f"into {cache / 'bin'}"
    )
    binaries = build_services(cache / "bin", say)
    say(f"emojivoto: built in {elapsed(started)}")
    backend = _choose_backend(wanted, cache, say)
    (cache / "runs").mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=cache / "runs"))
    procs = Processes(run_dir)
    keep_logs = True
    restore = _sigterm_as_interrupt()
    try:
        backend.start(procs, run_dir)
        say(f"emojivoto: backend: {backend.label} (pid {backend.pid}); {backend.where}")
        since_us = int(time.time() * 1e6) - 10**6
        votes = max(1, rounds) * VOTES_PER_ROUND
        _run_scenario(procs, binaries, backend, votes, say)
        spans = _collect(backend, since_us, _expected_requests(votes))
        say(f"\n=== read back from {backend.label} ===")
        summarize(spans, say)
        if os.environ.get(ENV_SPANS):
            with open(os.environ[ENV_SPANS], "w", encoding="utf-8") as f:
                f.writelines(json.dumps(asdict(span)) + "\n" for span in spans)
        if not any(s.service == "web" for s in spans):
            raise GotelError(f"emojivoto: no web span reached the backend (logs: {run_dir})")
        keep_logs = False
    except KeyboardInterrupt:
        say("emojivoto: interrupted; stopping everything")
        keep_logs = False
        raise
    finally:
        restore()
        with _no_interrupts():  # a second Ctrl-C must not leave processes behind
            procs.stop_all()
        if keep_logs:
            say(f"emojivoto: logs of this run kept in {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    say(f"emojivoto: done in {elapsed(started)}; every process it started is stopped")
    return EXIT_OK


def _run_scenario(
    procs: Processes, binaries: Mapping[str, Path], backend: Backend, votes: int, say: Say
) -> None:
    """Start the services, attach one gotel to all four, vote, stop gotel (it flushes)."""
    addresses: dict[str, str] = {}
    pids: dict[str, int] = {}

    def serve(name: str, *flags: str) -> None:
        proc = procs.start(name, [str(binaries[name]), "-addr", "127.0.0.1:0", *flags])
        found = procs.wait_for_line(name, proc, r"listening on (\S+)", START_TIMEOUT_S)
        addresses[name], pids[name] = found.group(1), proc.pid

    serve("emoji")
    serve("voting")
    serve("web", "-emoji-addr", addresses["emoji"], "-voting-addr", addresses["voting"])
    bot_flags = ["-web", f"http://{addresses['web']}", "-hold", "-votes", str(votes)]
    bot_flags += ["-interval", VOTE_INTERVAL, "-leaderboard-every", str(LEADERBOARD_EVERY)]
    bot = procs.start("vote-bot", [str(binaries["vote-bot"]), *bot_flags], stdin=subprocess.PIPE)
    procs.wait_for_line("vote-bot", bot, r"^holding", START_TIMEOUT_S)
    pids["vote-bot"] = bot.pid
    started = [
        f"{n} (pid {pids[n]}{', ' + addresses[n] if n in addresses else ''})" for n in SERVICES
    ]
    say("emojivoto: started " + ", ".join(started))

    gotel = GotelProcess(procs, pids, backend.otlp_endpoint, say)
    say(f"emojivoto: one gotel (pid {gotel.proc.pid}) for all four: {' '.join(gotel.argv)}")
    gotel.wait_attached(pids)

    say(f"emojivoto: vote-bot casts {votes} votes ({_expected_requests(votes)} HTTP requests)")
    assert bot.stdin is not None
    bot.stdin.write(b"go\n")
    bot.stdin.close()
    try:
        bot.wait(timeout=60 + votes * 0.5)
    except subprocess.TimeoutExpired as exc:
        raise GotelError("emojivoto: vote-bot did not finish in time") from exc
    say(f"emojivoto: {procs.tail('vote-bot', 1)}")
    say("emojivoto: stopping gotel: it detaches every probe and flushes its spans")
    code = gotel.stop()
    if code != 0:
        raise GotelError(f"emojivoto: gotel exited with {code}: {procs.tail('gotel')}")


def _sigterm_as_interrupt() -> Callable[[], None]:
    """SIGTERM cleans up like Ctrl-C; returns the function that restores the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
