"""Selectors against this very process: its executable, a socket it listens on."""

from __future__ import annotations

import os
import socket
import sys

from gotel.target import ExecutableSelector, PortSelector
from gotel.target.selectors import listening_inodes, socket_inodes

ME = os.getpid()
MY_EXE = os.path.realpath(f"/proc/{ME}/exe")


def test_executable_selector_matches_by_file_glob_and_foreign_path() -> None:
    assert ExecutableSelector(sys.executable).matches(ME)  # a symlink to the same inode too
    assert ME in ExecutableSelector(sys.executable).scan()
    glob = ExecutableSelector(os.path.dirname(MY_EXE) + "/*")
    assert glob.is_glob and glob.matches(ME)
    assert not ExecutableSelector("/nowhere/*/python*").matches(ME)
    # A path that exists only in another mount namespace is matched as the process sees it.
    foreign = ExecutableSelector("/in/another/container/app")
    assert foreign.local_file is None and not foreign.matches(ME)


def test_port_selector_finds_the_listening_process_ipv4_and_ipv6() -> None:
    with socket.socket() as v4, socket.socket(socket.AF_INET6) as v6:
        v4.bind(("127.0.0.1", 0))
        v4.listen()
        port = v4.getsockname()[1]
        v6.bind(("::1", 0))
        v6.listen()
        port6 = v6.getsockname()[1]
        inode = os.fstat(v4.fileno()).st_ino
        assert listening_inodes(port) == {inode}
        assert inode in socket_inodes(ME)
        assert PortSelector(port).scan() == [ME]
        assert PortSelector(port).matches(ME)
        assert PortSelector(port6).scan() == [ME]
    assert PortSelector(port).scan() == []  # closed: nobody listens


def test_a_connected_socket_is_not_a_listener() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            client_port = client.getsockname()[1]
            assert listening_inodes(client_port) == set()
