"""Every platform-specific file operation in one place: owners and modes, locks, fsync, processes.

The stores and the rest of the program never ask which operating system they run on, never
pass a mode to `os.open` or `os.mkdir` and never look at permission bits themselves: they
create, open and check files through the functions here (as certbot's `compat/filesystem.py`).
So a port changes this module only: on Windows, an owner-only DACL where a mode is given
here (pywin32's `win32security`, as certbot does), msvcrt/LockFileEx for the lock, no
directory fsync (docs/platforms.md says what each needs). Standard library only: it sits on
the headless fast path.
"""

from __future__ import annotations

import os
import stat
import sys

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
PRIVATE_DIR = 0o700  # what "owner-only" means for a directory here; on Windows, a DACL for the owner alone
PRIVATE_FILE = 0o600  # and for a file


# -- making and opening files ------------------------------------------------------------------
def make_private_dirs(path: str) -> None:
    """Create `path` and every missing directory above it owner-only (0700). Not os.makedirs:
    that gives the parents the umask's default, which under `umask 000` is world-writable.
    A level made meanwhile by another process is left as it is (the caller checks it)."""
    missing = []
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    for level in reversed(missing):
        try:
            os.mkdir(level, PRIVATE_DIR)
        except FileExistsError:
            pass


def create_private(path: str) -> int:
    """A new file (never an existing one, nor a link) opened to write, owner-only from its first
    byte: the descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_CLOEXEC, PRIVATE_FILE)


def open_lock_file(path: str) -> int:
    """The lock file at `path`, made owner-only if missing, opened read-write without following a
    link and without blocking (a FIFO planted there must not hang us): the descriptor. Whose it
    is and who else can open it is the caller's to check (fstat the descriptor)."""
    return os.open(path, os.O_RDWR | os.O_CREAT | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW, PRIVATE_FILE)


def make_owner_only(fd: int, st: os.stat_result) -> None:
    """Take group's and others' access away from the open file `fd` (whose fstat is `st`), if
    anything made it wider than owner-only (on Windows: reset its DACL to the owner alone)."""
    if open_to_others(st):
        os.fchmod(fd, PRIVATE_FILE)


def silence_stdout() -> None:
    """Point this process's standard output at the null device (a reader that went away: nothing
    more is written, and the interpreter's own flush at exit finds nothing to complain about)."""
    devnull = os.open(os.devnull, os.O_WRONLY | O_CLOEXEC)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def open_to_read(path: str) -> int:
    """An existing file opened to read, without following a link at `path` itself and without
    blocking on a FIFO or a device: the descriptor (fstat it before reading)."""
    return os.open(path, os.O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)


def open_to_overwrite(path: str) -> int:
    """An existing file opened to write in place (never created, no link followed): the descriptor."""
    return os.open(path, os.O_WRONLY | O_CLOEXEC | O_NOFOLLOW)


# -- who may use a file ----------------------------------------------------------------------------


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


def shared_dir(st: os.stat_result) -> bool:
    """Whether group or others may create files in the directory of `st`, sticky (like /tmp) or
    not: anyone there can plant a file or a link beside ours."""
    return bool(st.st_mode & 0o022)


def mode_of(st: os.stat_result) -> str:
    """The permission bits of `st` as 0600-style text, for messages (on Windows: what its DACL
    grants, in those terms)."""
    return f"{stat.S_IMODE(st.st_mode):04o}"


def mode_text(path: str) -> str:
    """The file's permission bits as 0600-style text, or '?' when unreadable."""
    try:
        return mode_of(os.stat(path))
    except OSError:
        return "?"


# -- locks, durability, processes ---------------------------------------------------------------------


def lock(fd: int) -> None:
    """Take the exclusive lock on `fd`, waiting for another process to let it go. ImportError where
    the system has no file locks."""
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX)


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
