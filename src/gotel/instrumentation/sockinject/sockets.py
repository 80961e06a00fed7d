"""A process's established client TCP sockets, found in /proc (for sockets opened before
the sockops program was attached: it only sees connections made afterwards)."""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

TCP_ESTABLISHED = 0x01
TCP_LISTEN = 0x0A
SO_COOKIE = 57  # <asm-generic/socket.h>; Python's socket module lacks the name


@dataclass(frozen=True)
class TcpSocket:
    fd: int  # the descriptor in the target process
    inode: int
    local_port: int


def socket_inodes(pid: int) -> dict[int, int]:
    """fd -> socket inode, for the process's socket descriptors."""
    found = {}
    fd_dir = Path(f"/proc/{pid}/fd")
    for entry in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / entry)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:[") and target.endswith("]"):
            found[int(entry)] = int(target[8:-1])
    return found


def tcp_table(pid: int) -> list[tuple[int, int, int]]:
    """(inode, state, local port) of every TCP socket in the process's network namespace."""
    rows = []
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except FileNotFoundError:  # no IPv6
            continue
        for line in lines:
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            fields = line.split()
            if len(fields) < 10:
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            rows.append((int(fields[9]), int(fields[3], 16), port))
    return rows


def established_client_sockets(pid: int) -> list[TcpSocket]:
    """The process's established TCP sockets that it connected (not accepted): an accepted
    socket has the local port of a listening socket."""
    table = tcp_table(pid)
    listening = {port for _inode, state, port in table if state == TCP_LISTEN}
    established = {
        inode: port
        for inode, state, port in table
        if state == TCP_ESTABLISHED and inode and port not in listening
    }
    return [
        TcpSocket(fd, inode, established[inode])
        for fd, inode in sorted(socket_inodes(pid).items())
        if inode in established
    ]


def socket_cookie(fd: int) -> int:
    """The kernel's cookie of a socket (what bpf_get_socket_cookie() returns)."""
    sock = socket.socket(fileno=fd)
    try:
        return int(struct.unpack("<Q", sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0])
    finally:
        sock.detach()  # the caller owns the fd
