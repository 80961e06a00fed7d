"""Cgroup and socket-map attachments, map iteration, cgroup v2 lookup, pidfd: against the
kernel, with real sockets and processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ebpf_testing import run

from gotel.ebpf import BpfObject, UnknownNameError
from gotel.ebpf.cgroup import cgroup2_dir, cgroup2_mounts, process_cgroup2_path
from gotel.ebpf.pidfd import PidFd
from gotel.errors import AttachError, GotelError, TargetError

HERE = Path(__file__).resolve().parent
SO_COOKIE = 57
ACTIVE_ESTABLISHED_CB = 4  # BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB
# Connects when told to (after it was moved into a cgroup), sends "hello", waits for a byte.
CONNECTOR = (
    "import socket, sys\n"
    "sys.stdin.readline()\n"
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
    "s.sendall(b'hello'); s.recv(1); print('done', flush=True)\n"
)


@pytest.fixture(scope="module")
def sockprobe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clang = shutil.which("clang")
    if clang is None:
        pytest.fail("clang not found: install clang to compile the test BPF programs", False)
    out = tmp_path_factory.mktemp("sockprobe") / "sockprobe.bpf.o"
    run([clang, "-O2", "-g", "-target", "bpf", "-Wall", "-Werror",
         "-I/usr/include/x86_64-linux-gnu", "-c", str(HERE / "sockprobe.bpf.c"), "-o", str(out)])
    return out


@pytest.fixture
def obj(sockprobe: Path) -> Iterator[BpfObject]:
    with BpfObject(sockprobe) as o:
        o.load()
        yield o


@pytest.fixture
def cgroup_dir() -> Iterator[Path]:
    mount = next((point for root, point in cgroup2_mounts() if root == "/"), None)
    assert mount is not None, "cgroup v2 is not mounted"
    path = mount / f"gotel-unit-{os.getpid()}"
    path.mkdir()
    yield path
    # Only this test's helpers are in it; after a failure one may still wait for input.
    for pid in (path / "cgroup.procs").read_text().split():
        os.kill(int(pid), signal.SIGKILL)
    for _ in range(100):
        try:
            path.rmdir()
            return
        except OSError:  # a process that just exited may still count
            time.sleep(0.05)
    raise AssertionError(f"cgroup {path} still busy")


def value(obj: BpfObject, map_name: str, key: int) -> int:
    raw = obj.lookup(map_name, key.to_bytes(4, "little"))
    assert raw is not None
    return int.from_bytes(raw, "little")


def cookie(sock: socket.socket) -> bytes:
    return sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8)


Connection = tuple[socket.socket, subprocess.Popen[str]]


def connect_from(cgroup: Path, port: int, listener: socket.socket) -> Connection:
    """A connection made by a process in `cgroup`: our end, and the peer (still open)."""
    proc = subprocess.Popen([sys.executable, "-c", CONNECTOR, str(port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    (cgroup / "cgroup.procs").write_text(str(proc.pid))
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    conn, _ = listener.accept()
    assert conn.recv(5) == b"hello"
    return conn, proc


def finish(connection: Connection) -> None:
    conn, proc = connection
    assert proc.stdout is not None and proc.stdin is not None
    conn.sendall(b"x")
    assert proc.stdout.readline().strip() == "done"
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stdin.close()
    conn.close()


def test_attach_cgroup_runs_for_the_processes_in_it(obj: BpfObject, cgroup_dir: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        link = obj.attach_cgroup("on_sockops", cgroup_dir)
        assert link.active and str(cgroup_dir) in link.description
        conn = connect_from(cgroup_dir, port, listener)
        assert value(obj, "ops_seen", ACTIVE_ESTABLISHED_CB) == 1
        assert len(obj.keys("socks")) == 1  # the connector's socket, added by the program
        finish(conn)
        assert obj.keys("socks") == []  # a closed socket leaves the map by itself
        # Our own connection is outside the cgroup: not seen.
        with socket.create_connection(("127.0.0.1", port)):
            listener.accept()[0].close()
        assert value(obj, "ops_seen", ACTIVE_ESTABLISHED_CB) == 1
        link.destroy()
        finish(connect_from(cgroup_dir, port, listener))
        assert value(obj, "ops_seen", ACTIVE_ESTABLISHED_CB) == 1


def test_attach_cgroup_errors_are_one_line(obj: BpfObject, tmp_path: Path) -> None:
    with pytest.raises(AttachError, match="no such cgroup directory"):
        obj.attach_cgroup("on_sockops", tmp_path / "missing")
    with pytest.raises(AttachError, match="not a cgroup v2 directory") as err:
        obj.attach_cgroup("on_sockops", tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(UnknownNameError, match="no program 'nope'"):
        obj.attach_cgroup("nope", tmp_path)


def test_sk_msg_on_a_socket_added_by_fd(obj: BpfObject) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname()) as client:
        server, _ = listener.accept()
        with server, obj.attach_sk_msg("on_msg", "socks") as attachment:
            key = cookie(client)
            obj.update_map_fd_value("socks", key, client.fileno())
            assert obj.keys("socks") == [key]
            # From user space a sockhash value reads back as the socket's cookie.
            assert obj.lookup("socks", key) == key
            client.sendall(b"a" * 100)
            client.sendall(b"b" * 5000)
            assert recv_exactly(server, 5100) == b"a" * 100 + b"b" * 5000
            assert (value(obj, "sent", 0), value(obj, "sent", 1)) == (2, 5100)
            assert obj.delete("socks", key) is True
            assert obj.delete("socks", key) is False
            client.sendall(b"c")
            assert server.recv(1) == b"c"
            assert value(obj, "sent", 0) == 2  # out of the map: the program is gone
        assert not attachment.active
        attachment.destroy()  # idempotent


def test_sk_msg_detach_then_object_close(obj: BpfObject) -> None:
    attachment = obj.attach_sk_msg("on_msg", "socks")
    prog_id = obj.program_id("on_msg")
    shown = subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)],
                           capture_output=True, text=True, check=False)
    assert "on_msg" in shown.stdout
    obj.close()  # destroys the attachment too
    assert not attachment.active


def test_sk_msg_needs_a_socket_map(obj: BpfObject) -> None:
    with pytest.raises(GotelError, match="map sent: not a sockmap or sockhash"):
        obj.attach_sk_msg("on_msg", "sent")


def test_update_map_fd_value_rejects_a_non_socket(obj: BpfObject) -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(GotelError, match="map socks: update failed"):
            obj.update_map_fd_value("socks", b"\0" * 8, r)
    finally:
        os.close(r)
        os.close(w)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def test_cgroup2_mounts_parse_mountinfo() -> None:
    text = (
        "25 1 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "26 1 0:24 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n"
        "27 1 0:24 /kube\\040pods /mnt/cg\\040v2 rw - cgroup2 none rw\n"
    )
    assert cgroup2_mounts(text) == [
        ("/", Path("/sys/fs/cgroup/unified")),
        ("/kube pods", Path("/mnt/cg v2")),
    ]


def test_cgroup2_dir_of_a_process(cgroup_dir: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    try:
        (cgroup_dir / "cgroup.procs").write_text(str(proc.pid))
        assert process_cgroup2_path(proc.pid) == "/" + cgroup_dir.name
        assert cgroup2_dir(proc.pid) == cgroup_dir
    finally:
        proc.communicate()
    with pytest.raises(TargetError, match=f"process {proc.pid}: not running"):
        cgroup2_dir(proc.pid)


def test_pidfd_borrows_a_descriptor() -> None:
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE, pass_fds=(w,))
    os.close(w)
    try:
        with PidFd(proc.pid) as pidfd:
            dup = pidfd.getfd(w)  # the child's copy of the pipe's write end
            os.write(dup, b"borrowed")
            os.close(dup)
            assert os.read(r, 8) == b"borrowed"
            with pytest.raises(OSError) as err:
                pidfd.getfd(9999)
            assert err.value.errno == 9  # EBADF
    finally:
        proc.communicate()
        os.close(r)
    with pytest.raises(TargetError, match="not running"):
        PidFd(proc.pid)


def test_socket_cookie_is_stable() -> None:
    with socket.socket() as s:
        assert struct.unpack("<Q", cookie(s))[0] == struct.unpack("<Q", cookie(s))[0] != 0
