"""Every platform-specific file operation in one place: owners and modes, locks, fsync, processes.

The stores and the rest of the program never ask which operating system they run on; a
Windows port changes this module (ACLs for modes, msvcrt/LockFileEx for the lock, no
directory fsync). Standard library only: it sits on the headless fast path.
"""

from __future__ import annotations

import os
import stat
import sys

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def owned_by_someone_else(st: os.stat_result) -> bool:
    """Whether the file of `st` belongs to another user than the one running this."""
    return hasattr(os, "geteuid") and st.st_uid != os.geteuid()


def link_owned_by_stranger(st: os.stat_result) -> bool:
    """Whether `st` (an lstat) is a symlink owned neither by this user nor by root."""
    return stat.S_ISLNK(st.st_mode) and hasattr(os, "geteuid") and st.st_uid not in (os.geteuid(), 0)


def open_to_others(st: os.stat_result) -> bool:
    """Whether group or others have any access to the file of `st`."""
    return bool(st.st_mode & 0o077)


def writable_by_others(st: os.stat_result) -> bool:
    """Whether group or others may write in the directory of `st`, which is not sticky."""
    return bool(st.st_mode & 0o022) and not st.st_mode & stat.S_ISVTX


def mode_text(path: str) -> str:
    """The file's permission bits as 0600-style text, or '?' when unreadable."""
    try:
        return f"{stat.S_IMODE(os.stat(path).st_mode):04o}"
    except OSError:
        return "?"


def try_lock(fd: int) -> bool:
    """Take the exclusive lock on `fd` without waiting; False when another process holds it."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def unlock(fd: int) -> None:
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


def fsync_dir(path: str) -> None:
    """Make a rename in the directory `path` durable (a no-op where directories cannot be synced)."""
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists (someone else's counts as alive: leave its files alone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
