"""Reading and writing a loaded object's maps from user space, by name: raw keys and values,
per-CPU sums, key walks, socket fds into socket maps."""

from __future__ import annotations

import ctypes
import errno

from gotel.ebpf import libbpf
from gotel.errors import GotelError


class MapAccess:
    """The map operations of BpfObject; it provides `_map(name)` (the libbpf map pointer)
    and `_require_loaded()`."""

    def _map(self, name: str) -> int:
        raise NotImplementedError

    def _require_loaded(self) -> int:
        raise NotImplementedError

    def percpu_sum(self, map_name: str, key: int = 0) -> int:
        """Sum over all CPUs of a per-CPU u64 value; 0 if the key is absent."""
        lib = libbpf.lib()
        map_ptr = self._map(map_name)
        if lib.bpf_map__type(map_ptr) not in libbpf.PERCPU_MAP_TYPES:
            raise GotelError(f"map {map_name}: not a per-CPU map")
        if lib.bpf_map__value_size(map_ptr) != 8:
            raise GotelError(f"map {map_name}: per-CPU value is not a u64")
        key_bytes = key.to_bytes(lib.bpf_map__key_size(map_ptr), "little")
        raw = self.lookup(map_name, key_bytes)
        if raw is None:
            return 0
        values = (ctypes.c_uint64 * (len(raw) // 8)).from_buffer_copy(raw)
        return sum(values)

    def lookup(self, map_name: str, key: bytes) -> bytes | None:
        """The raw value for `key`, or None. Per-CPU maps give every CPU's value, each
        padded to 8 bytes, in CPU order."""
        self._require_loaded()
        map_ptr = self._map(map_name)
        key_size, value_size = self._sizes(map_name, map_ptr, key)
        value = ctypes.create_string_buffer(value_size)
        err = libbpf.lib().bpf_map__lookup_elem(map_ptr, key, key_size, value, value_size, 0)
        if err == -errno.ENOENT:
            return None
        if err < 0:
            raise GotelError(f"map {map_name}: lookup failed: {libbpf.strerror(err)}")
        return value.raw

    def update(self, map_name: str, key: bytes, value: bytes) -> None:
        """Create or replace the raw value for `key` (BPF_ANY)."""
        self._require_loaded()
        map_ptr = self._map(map_name)
        key_size, value_size = self._sizes(map_name, map_ptr, key)
        if len(value) != value_size:
            raise GotelError(f"map {map_name}: value is {len(value)} bytes, expected {value_size}")
        err = libbpf.lib().bpf_map__update_elem(
            map_ptr, key, key_size, value, value_size, libbpf.BPF_ANY
        )
        if err < 0:
            raise GotelError(f"map {map_name}: update failed: {libbpf.strerror(err)}")

    def delete(self, map_name: str, key: bytes) -> bool:
        """Remove `key`; False if it was not there."""
        self._require_loaded()
        map_ptr = self._map(map_name)
        key_size, _ = self._sizes(map_name, map_ptr, key)
        err = libbpf.lib().bpf_map__delete_elem(map_ptr, key, key_size, 0)
        if err == -errno.ENOENT:
            return False
        if err < 0:
            raise GotelError(f"map {map_name}: delete failed: {libbpf.strerror(err)}")
        return True

    def keys(self, map_name: str) -> list[bytes]:
        """The keys of a hash-like map at the time of the call (it may change meanwhile:
        a walk restarts when its current key is deleted, hence the bound and the set)."""
        self._require_loaded()
        map_ptr = self._map(map_name)
        lib = libbpf.lib()
        size, bound = lib.bpf_map__key_size(map_ptr), lib.bpf_map__max_entries(map_ptr)
        found: dict[bytes, None] = {}
        cur, nxt, err = None, ctypes.create_string_buffer(size), 0
        for _ in range(2 * bound):
            if (err := lib.bpf_map__get_next_key(map_ptr, cur, nxt, size)) != 0:
                break
            found[nxt.raw] = None
            cur = ctypes.create_string_buffer(nxt.raw, size)
        if err not in (0, -errno.ENOENT):
            raise GotelError(f"map {map_name}: iteration failed: {libbpf.strerror(err)}")
        return list(found)

    def update_map_fd_value(self, map_name: str, key: bytes, fd: int) -> None:
        """Set `key` to the object behind a file descriptor: from user space, the value of a
        sockmap/sockhash is a socket's fd (the map then holds the socket, not the fd)."""
        size = libbpf.lib().bpf_map__value_size(self._map(map_name))
        self.update(map_name, key, fd.to_bytes(size, "little"))

    def _sizes(self, map_name: str, map_ptr: int, key: bytes) -> tuple[int, int]:
        lib = libbpf.lib()
        key_size = lib.bpf_map__key_size(map_ptr)
        if len(key) != key_size:
            raise GotelError(f"map {map_name}: key is {len(key)} bytes, expected {key_size}")
        value_size = lib.bpf_map__value_size(map_ptr)
        if lib.bpf_map__type(map_ptr) in libbpf.PERCPU_MAP_TYPES:
            value_size = ((value_size + 7) & ~7) * lib.libbpf_num_possible_cpus()
        return key_size, value_size


def delete_keys_with_prefix(fd: int, key_size: int, prefix: bytes, bound: int) -> int:
    """Delete every entry of the hash-like map behind `fd` whose key starts with `prefix`;
    returns how many. `bound`: its max_entries (a walk restarts when its key is deleted)."""
    lib = libbpf.lib()
    doomed: dict[bytes, None] = {}
    cur, nxt = None, ctypes.create_string_buffer(key_size)
    for _ in range(2 * bound):
        if lib.bpf_map_get_next_key(fd, cur, nxt) != 0:
            break
        if nxt.raw.startswith(prefix):
            doomed[nxt.raw] = None
        cur = ctypes.create_string_buffer(nxt.raw, key_size)
    return sum(1 for key in doomed if lib.bpf_map_delete_elem(fd, key) == 0)
