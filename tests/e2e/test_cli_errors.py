"""Bad input and missing privileges: one clear line on stderr, the documented exit code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gotools import REPO, build_app

GOTEL = [sys.executable, "-m", "gotel.cli"]


# Root without any capability: what a container without privileges gets.
NO_CAPS = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", "--"]


def gotel(*args: str, no_caps: bool = False) -> subprocess.CompletedProcess[str]:
    prefix = NO_CAPS if no_caps else []
    return subprocess.run(
        [*prefix, *GOTEL, *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("gotel: ")
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    text = d / "notes.txt"
    text.write_text("not a binary\n")
    text.chmod(0o755)
    empty = d / "empty"
    empty.write_bytes(b"")
    empty.chmod(0o755)
    truncated = d / "truncated"
    truncated.write_bytes(build_app("httpserver").read_bytes()[:5000])
    truncated.chmod(0o755)
    return {"text": text, "empty": empty, "truncated": truncated}


@pytest.mark.parametrize("name", ["text", "empty", "truncated"])
def test_inspect_rejects_bad_files(bad_files, name):
    one_line_error(gotel("inspect", str(bad_files[name])), 2, str(bad_files[name]))


def test_inspect_rejects_non_go_elf():
    one_line_error(gotel("inspect", "/bin/ls"), 2, "/bin/ls", "go")


def test_missing_file():
    one_line_error(gotel("inspect", "/no/such/file"), 2, "/no/such/file")
    one_line_error(gotel("run", "--", "/no/such/file"), 2, "/no/such/file")


def test_attach_exe_refuses_a_file_that_is_no_go_program(bad_files):
    one_line_error(gotel("attach", "--exe", str(bad_files["text"])), 2, "not an ELF")
    one_line_error(gotel("attach", "--exe", "/bin/ls"), 2, "/bin/ls", "go")


def test_run_refuses_non_go_program():
    one_line_error(gotel("run", "--", "/bin/true"), 2, "go")


def test_no_such_pid():
    one_line_error(gotel("attach", "--pid", "999999999"), 2, "999999999")
    one_line_error(gotel("attach", "--pid", "-4"), 2)


def test_process_that_exited():
    p = subprocess.Popen(["/bin/true"])
    p.wait()
    one_line_error(gotel("attach", "--pid", str(p.pid)), 2, str(p.pid))


def test_attach_non_go_process():
    sleeper = subprocess.Popen(["/bin/sleep", "30"])
    try:
        one_line_error(gotel("attach", "--pid", str(sleeper.pid)), 2, "go")
    finally:
        sleeper.kill()
        sleeper.wait()


def test_bad_usage():
    one_line_error(gotel("attach"), 2, "gotel attach --help")
    one_line_error(gotel("attach", "--pid", "abc"), 2, "--pid", "'abc'", "gotel attach --help")
    one_line_error(gotel("frobnicate"), 2, "unknown command 'frobnicate'", "attach")
    one_line_error(gotel(), 2, "a command is needed")
    one_line_error(gotel("run"), 2, "nothing to run")
    one_line_error(gotel("inspect", "--bogus"), 2, "--bogus", "gotel inspect --help")
    one_line_error(gotel("offsets", "show", "--nope"), 2, "gotel offsets show --help")
    one_line_error(gotel("offsets", "frob"), 2, "unknown offsets command 'frob'")
    one_line_error(gotel("attach", "--exe", "./no-such-app"), 2, "./no-such-app", "no such file")
    for bad in (gotel("frobnicate"), gotel(), gotel("offsets")):
        # argparse's internal names for positional arguments never reach the user
        assert "argument" not in bad.stderr and "_command" not in bad.stderr, bad.stderr


def test_verbose_flag_after_the_subcommand():
    binary = str(build_app("httpserver"))
    for args in (("-v", "inspect", binary), ("inspect", "-v", binary),
                 ("inspect", binary, "--verbose")):
        result = gotel(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "net/http" in result.stdout


def test_missing_privileges_exit_3():
    binary = build_app("httpserver")
    result = gotel("run", "--", str(binary), "-addr", "127.0.0.1:0", no_caps=True)
    one_line_error(result, 3, "privileges")
    server = subprocess.Popen([str(binary), "-addr", "127.0.0.1:0"], stdout=subprocess.PIPE)
    try:
        one_line_error(gotel("attach", "--pid", str(server.pid), no_caps=True), 3, "privileges")
    finally:
        server.kill()
        server.wait()


def test_doctor_reports_every_check():
    result = gotel("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("kernel", "privileges", "libbpf", "uprobes", "ring buffer", "kernel BTF",
                 "lockdown", "bpf_probe_write_user"):
        assert name in result.stdout
    # every kernel feature the socket injector loads is asked of the kernel, and all are here
    from gotel.doctor import INJECTOR_NEEDS

    needed = len(INJECTOR_NEEDS) + 1  # and kernel BTF
    assert f"✓ socket injector       {needed} of {needed} kernel features" in result.stdout
    assert "gotel can run here" in result.stdout
    # This machine forces lockdown=integrity: doctor must see it.
    assert "integrity" in result.stdout


def test_doctor_never_mounts_anything():
    """In a private mount namespace without securityfs, doctor reports and leaves it so."""
    script = (f"umount /sys/kernel/security && {' '.join(GOTEL)} doctor; "
              "mountpoint -q /sys/kernel/security && echo MOUNTED || echo UNMOUNTED")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert "lockdown" in result.stdout and "securityfs not mounted" in result.stdout, result
    assert result.stdout.strip().endswith("UNMOUNTED"), result.stdout
