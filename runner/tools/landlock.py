"""Run a command under Landlock: `python -I -S landlock.py [--write P]... [--protect P]... [--no-net] -- ARGV`.

Standard library only, so that the sandbox backend can run it as a script without importing the
package. It restricts itself, then execs ARGV, which inherits the restriction for good:

- writes (create, remove, rename, truncate) only beneath the `--write` paths; reads are free;
- a `--protect` path inside a writable one stays unwritable. Landlock only grants, never denies,
  so a folder on the way to a protected path is not granted as a whole: its unprotected files
  may be rewritten in place and its unprotected subfolders are granted whole, but nothing is
  created, removed or renamed in the folder itself;
- `--no-net` refuses every TCP connect and bind (Landlock ABI 4 and later);
- signals and abstract unix sockets reach no process outside the sandbox (ABI 6 and later).

`abi()` tells which Landlock ABI the kernel has (0: none); the runner asks before choosing it.
"""

from __future__ import annotations

import ctypes
import os
import sys

CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446  # the same on x86_64 and aarch64
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2
PR_SET_NO_NEW_PRIVS = 38
WRITE_FILE, REMOVE_DIR, REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
MAKE = sum(1 << bit for bit in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
REFER, TRUNCATE = 1 << 13, 1 << 14
NET_BIND, NET_CONNECT = 1 << 0, 1 << 1
SCOPE_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _Ruleset(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi() -> int:
    version = _libc.syscall(CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(version), 0)


def rights(version: int) -> tuple[int, int]:
    """(all write rights, the rights a single file can be granted) for this ABI."""
    every = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE | (REFER if version >= 2 else 0)
    file_rights = WRITE_FILE | (TRUNCATE if version >= 3 else 0)
    return every | (TRUNCATE if version >= 3 else 0), file_rights


def grants(root: str, protected: list[str], every: int, file_rights: int) -> list[tuple[str, int]]:
    """The (path, rights) rules that make `root` writable except for the protected paths in it."""
    inside = [p for p in protected if p == root or p.startswith(root.rstrip("/") + "/")]
    if not inside:
        return [(root, every)]
    if root in inside or os.path.islink(root):
        return []
    found: list[tuple[str, int]] = []
    for entry in os.scandir(root):
        if entry.is_dir(follow_symlinks=False):
            found += grants(entry.path, inside, every, file_rights)
        elif entry.is_file(follow_symlinks=False) and entry.path not in inside:
            found.append((entry.path, file_rights))
    return found


def restrict(writable: list[str], protected: list[str], no_net: bool) -> None:
    version = abi()
    if version < 1:
        raise OSError("Landlock is not available in this kernel")
    every, file_rights = rights(version)
    attr = _Ruleset(every, NET_BIND | NET_CONNECT if no_net and version >= 4 else 0,
                    SCOPE_UNIX | SCOPE_SIGNAL if version >= 6 else 0)
    size = ctypes.sizeof(_Ruleset) if version >= 6 else 16 if version >= 4 else 8
    ruleset = _libc.syscall(CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    rules = [("/dev", WRITE_FILE)] + [g for root in writable if os.path.isdir(root)
                                      for g in grants(os.path.realpath(root), protected, every, file_rights)]
    for path, allowed in rules:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            rule = _PathBeneath(allowed, fd)
            if _libc.syscall(ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(rule), ctypes.c_uint32(0)) < 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
        finally:
            os.close(fd)
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or _libc.syscall(RESTRICT_SELF, ruleset, 0) < 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")


def main(argv: list[str]) -> None:
    split = argv.index("--")
    writable: list[str] = []
    protected: list[str] = []
    options = iter(argv[:split])
    for flag in options:
        if flag in ("--write", "--protect"):
            (writable if flag == "--write" else protected).append(os.path.realpath(next(options)))
    restrict(writable, protected, "--no-net" in argv[:split])
    os.execvp(argv[split + 1], argv[split + 1:])


if __name__ == "__main__":
    main(sys.argv[1:])
