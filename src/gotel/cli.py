"""gotel's command line: run | attach | inspect | doctor | offsets | demo."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from gotel import __version__
from gotel.config import ENV_TRACES_EXPORTER, EXPORTERS, Config, make_config
from gotel.errors import EXIT_BAD_INPUT, EXIT_OK, GotelError
from gotel.offsets.command import add_arguments as add_offsets_arguments
from gotel.trace import env as env_names

log = logging.getLogger("gotel")
SHUTDOWN_TIMEOUT_S = 30.0  # after the first signal (export flushes take up to ~15 s): then out
EXIT_SHUTDOWN_OVERDUE = 1


COMMANDS = ("run", "attach", "inspect", "doctor", "offsets", "demo")


class _Parser(argparse.ArgumentParser):
    def innermost(self, args: argparse.Namespace) -> argparse.ArgumentParser:
        """The (sub)subcommand's parser that `args` came through: `gotel offsets show`."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(args, action.dest, None) or "")
                if isinstance(chosen, _Parser):
                    return chosen.innermost(args)
        return self

    def error(self, message: str) -> None:  # one line, not usage + line
        print(f"gotel: {_plain(message)} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _plain(message: str) -> str:
    """argparse's message without the internal names of positional arguments."""
    if m := re.match(r"argument (\w+): invalid choice: '([^']*)'", message):
        what = {"command": "command", "offsets_command": "offsets command"}.get(m[1], m[1])
        choices = message.partition("(choose from ")[2].rstrip(")").replace("'", "")
        return f"unknown {what} '{m[2]}' (one of: {choices})"
    if m := re.match(r"the following arguments are required: (\w+)$", message):
        if m[1] == "command":
            return f"a command is needed: {', '.join(COMMANDS)}"
        if m[1] == "offsets_command":
            return "offsets needs a command: update or show"
    message = re.sub(r"^argument (-[^:]*): ", r"\1: ", message)  # --pid/-p: keep the flag
    return re.sub(r"^argument \w+: ", "", message)


def _common() -> argparse.ArgumentParser:
    """Flags every subcommand also takes after its name (`gotel attach -v ...`); the
    suppressed default leaves the top-level value alone when they are not given."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="debug logging")
    return common


def _export_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exporter", choices=EXPORTERS, help="overrides OTEL_TRACES_EXPORTER")
    p.add_argument("--output", help="file for --exporter jsonl (default: stdout)")
    p.add_argument("--metrics-output",
                   help="file for OTEL_METRICS_EXPORTER=jsonl (default: stdout)")
    p.add_argument("--service-name", help="overrides OTEL_SERVICE_NAME")


def build_parser() -> _Parser:
    parser = _Parser(prog="gotel", description="Zero-code OpenTelemetry for Go programs (eBPF).")
    parser.add_argument("--version", action="version", version=f"gotel {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = [_common()]

    run = sub.add_parser(
        "run", parents=common, help="start a program and instrument it from its first instruction"
    )
    _export_flags(run)
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- ./app args...")

    attach = sub.add_parser("attach", parents=common, help="instrument running processes")
    _export_flags(attach)
    attach.add_argument(
        "--pid",
        type=int,
        action="append",
        default=[],
        help="a running process (repeat for several)",
    )
    attach.add_argument(
        "--exe",
        action="append",
        default=[],
        metavar="PATH|GLOB",
        help="every process running this executable, now and later, caught at exec "
        "(repeatable; a glob such as '/app/*' matches the path each process sees)",
    )
    attach.add_argument(
        "--port",
        type=_port,
        action="append",
        default=[],
        metavar="N",
        help="whatever process listens on TCP port N, now and later (repeatable)",
    )

    inspect = sub.add_parser("inspect", parents=common, help="what gotel sees in a Go binary")
    inspect.add_argument("binary", nargs="?", help="path to a Go executable")
    inspect.add_argument("--pid", type=int, help="inspect a running process's executable")

    sub.add_parser("doctor", parents=common, help="can this machine run gotel?")

    add_offsets_arguments(
        sub.add_parser("offsets", parents=common, help="build or show the offsets database")
    )

    demo = sub.add_parser(
        "demo", parents=common, help="build the bundled demo service, trace it, print its spans"
    )
    _export_flags(demo)
    demo.add_argument("--requests", type=int, default=1, help="rounds of demo requests")
    demo.add_argument(
        "scenario",
        nargs="?",
        choices=("emojivoto",),
        help="emojivoto: web, emoji, voting, vote-bot under one gotel, read back from Jaeger "
        "(--requests N: N x 20 votes)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the subcommand's parser, so that the hint names its help
        parser.innermost(args).error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="gotel: %(message)s",
        stream=sys.stderr,
    )
    try:
        return _dispatch(args)
    except GotelError as exc:
        print(f"gotel: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "doctor":
        from gotel.doctor import run_doctor

        return run_doctor(sys.stdout)
    if args.command == "offsets":
        from gotel.instrumentation.registry import all_probes
        from gotel.offsets.command import run as run_offsets

        return run_offsets(args, all_probes)
    if args.command == "inspect":
        from gotel.inspect_report import run_inspect

        return run_inspect(args.binary, args.pid, sys.stdout)
    if args.command == "demo" and args.scenario == "emojivoto":
        from gotel.demos.emojivoto import run_emojivoto

        flags = {"--exporter": args.exporter, "--output": args.output,
                 "--metrics-output": args.metrics_output}
        flags["--service-name"] = args.service_name
        unused = [flag for flag, value in flags.items() if value]
        return run_emojivoto(rounds=args.requests, out=sys.stdout, unused_flags=unused)
    exporter = args.exporter
    if args.command == "demo" and not exporter and not os.environ.get(ENV_TRACES_EXPORTER):
        exporter = "console"  # the demo's point is to show the spans right here
    config = make_config(exporter=exporter, output=args.output, service_name=args.service_name,
                         metrics_output=args.metrics_output)
    if args.command == "demo":
        from gotel.demo import run_demo

        return run_demo(config, rounds=args.requests, out=sys.stdout)
    if args.command == "run":
        return _run(config, args.argv)
    return _attach(config, pids=args.pid, exes=args.exe, ports=args.port)


def _require_privileges() -> None:
    from gotel.privileges import missing_wanted, require_tracing

    require_tracing()
    for name, loss in missing_wanted().items():
        log.warning("without %s: %s", name, loss)


def _stop_on_signals() -> threading.Event:
    """The first SIGINT/SIGTERM starts a clean detach, bounded by $GOTEL_SHUTDOWN_TIMEOUT;
    a second one exits at once. Exiting early harms no target: the kernel removes the
    uprobes and socket programs with gotel's file descriptors; only queued spans are lost."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: exiting now, before the detach finished", name)
            _exit_now()
        log.info("%s: detaching", name)
        stop.set()
        deadline = _shutdown_timeout()
        timer = threading.Timer(deadline, _shutdown_overdue, (deadline,))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _shutdown_timeout() -> float:
    raw = os.environ.get(env_names.GOTEL_SHUTDOWN_TIMEOUT, "")
    try:
        value = float(raw) if raw else SHUTDOWN_TIMEOUT_S
    except ValueError:
        value = -1.0
    if value <= 0:
        log.warning("%s=%r is not a number of seconds > 0; using %g",
                    env_names.GOTEL_SHUTDOWN_TIMEOUT, raw, SHUTDOWN_TIMEOUT_S)
        value = SHUTDOWN_TIMEOUT_S
    return value


def _shutdown_overdue(deadline: float) -> None:
    # Where it is stuck, for the bug report, then out: an operator's stop must stop it.
    log.warning("detach not finished after %g s; exiting now (threads' stacks follow)",
                deadline)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    _exit_now()


def _exit_now() -> None:
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_SHUTDOWN_OVERDUE)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"'{text}' is not a TCP port (1-65535)")
    return int(text)


def _attach(config: Config, *, pids: list[int], exes: list[str], ports: list[int]) -> int:
    from gotel.instrumentation.registry import all_probes
    from gotel.supervisor import Supervisor
    from gotel.target import ExecutableSelector, PortSelector, Selector, process_from_pid

    if not pids and not exes and not ports:
        raise GotelError(
            "attach needs --pid PID, --exe PATH or --port N (see gotel attach --help)"
        )
    processes = [process_from_pid(pid) for pid in pids]
    selectors: list[Selector] = [ExecutableSelector(_watchable(exe)) for exe in exes]
    selectors += [PortSelector(port) for port in ports]
    _require_privileges()
    stop = _stop_on_signals()
    supervisor = Supervisor(config, all_probes())
    try:
        for process in processes:
            supervisor.attach(process)
        for selector in selectors:
            log.info("watching for processes: %s", selector)
            supervisor.watch(selector)
        # With only PIDs, gotel is done when they are; with selectors it waits for more.
        supervisor.run(stop, exit_when_idle=not selectors)
    finally:
        supervisor.close()
    return EXIT_OK


def _watchable(exe: str) -> Path | str:
    from gotel.target import resolve_executable
    from gotel.target.selectors import GLOB_CHARS

    if GLOB_CHARS & set(exe):
        if not os.path.isabs(exe):
            raise GotelError(f"{exe}: a glob must be an absolute path pattern (e.g. '/app/*')")
        return exe
    if os.path.lexists(exe):
        path = Path(exe).resolve()
        if path.is_dir() or not path.exists():
            return resolve_executable(exe)  # says what is wrong with it
        # A file that is no Go program could never be instrumented: say so now rather than
        # watch for its processes forever.
        from gotel.goelf import open_binary

        with open_binary(path):
            pass
        return path  # gotel only reads it: no need for it to be executable by gotel
    if os.path.isabs(exe):
        # Not in this filesystem: a binary in another container, matched by its path there.
        return exe
    raise GotelError(f"{exe}: no such file (an absolute path matches other containers)")


def _run(config: Config, argv: list[str]) -> int:
    from gotel.goelf import open_binary
    from gotel.instrumentation.registry import all_probes
    from gotel.supervisor import Supervisor
    from gotel.target import HeldLaunch, Process, resolve_executable

    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise GotelError("nothing to run (usage: gotel run -- ./app args...)")
    # Bad input is refused before the program starts; a program gotel cannot
    # instrument for other reasons still runs, with a warning.
    open_binary(resolve_executable(argv[0])).close()
    _require_privileges()
    launch = HeldLaunch(argv)
    stop = _stop_on_signals()
    supervisor = Supervisor(config, all_probes())
    try:
        try:
            process = Process(launch.pid, launch.executable, str(launch.executable))
            supervisor.attach(process)
        except GotelError as exc:
            log.warning("%s; running it uninstrumented", exc)
        launch.release()
        supervisor.run(stop, exit_when_idle=True)
    finally:
        launch.release()
        supervisor.close()
    if stop.is_set() and launch.popen.poll() is None:
        return EXIT_OK  # gotel was stopped; the program keeps running
    code = launch.popen.wait()
    return 128 - code if code < 0 else code  # killed by signal N: 128+N, as shells report


def entry() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
