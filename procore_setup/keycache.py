"""A per-user cache of derived keys in the Linux kernel keyring: scrypt paid once per token life.

Every `token` on an encrypted store would otherwise derive its key again (scrypt, n=2**15,
32 MiB, about a tenth of a second of a core). The key, once derived and checked, is kept:

* what: the 32-byte key scrypt derived, never the passphrase;
* where: a "user" key in the kernel's per-user keyring (`keyctl show @u`), in kernel memory,
  never on disk. Its name is ``procore-setup:`` and a SHA-256 of the store's identity (a
  file's path, a store's URL) and its [encryption] salt and scrypt parameters, so it says
  nothing about the store, and a new salt (`passphrase`, `encrypt` again) never finds an old key;
* who can read it: processes of the same user (possessor and user: all; group and others:
  nothing); another user cannot, and no file holds it;
* how long: the longest remaining life of the store's access tokens (at most a day), after
  which the kernel drops it; `passphrase` and `decrypt` drop it at once;
* trust: none. A key from the cache is used only if it opens the store's key check (AES-GCM),
  else it is removed and the passphrase asked for as before;
* off: PROCORE_SETUP_KEY_CACHE=0. Where the keyring cannot be had (not Linux, an
  architecture without known syscall numbers, a container whose seccomp profile blocks
  keyctl, a full quota) the cache is simply not used: the key is derived every time.

The keyctl(2) and add_key(2) system calls are made through ctypes: the Python bindings on
PyPI are unmaintained or need libkeyutils' headers to build, and six calls do not need one.
"""

from __future__ import annotations

import os
from typing import Any

ENV = "PROCORE_SETUP_KEY_CACHE"
MAX_SECONDS = 86400
_PREFIX = "procore-setup:"

# (add_key, keyctl) system call numbers; other architectures go without the cache.
_SYSCALLS = {"x86_64": (248, 250), "aarch64": (217, 219)}
_KEY_SPEC_THREAD_KEYRING = -1
_KEY_SPEC_USER_KEYRING = -4
_KEYCTL_SETPERM = 5
_KEYCTL_LINK = 8
_KEYCTL_UNLINK = 9
_KEYCTL_SEARCH = 10
_KEYCTL_READ = 11
_KEYCTL_SET_TIMEOUT = 15
_KEYCTL_INVALIDATE = 21
# possessor: everything; the same user: everything (view, read, write, search, link, setattr);
# group and others: nothing
_PERM = 0x3F3F0000

_state: dict[str, Any] = {}  # "libc" once loaded; "off" once the keyring proved unavailable


def enabled(environ: Any = None) -> bool:
    """Whether the cache may be used: not turned off with PROCORE_SETUP_KEY_CACHE=0 (or false/no/off)."""
    value = (os.environ if environ is None else environ).get(ENV, "")
    return value.strip().lower() not in ("0", "false", "no", "off")


def name(identity: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    """The key's description in the keyring: nothing in it names the store."""
    # cryptography's SHA-256, not hashlib's: it is loaded anyway to open the store, and hashlib's
    # OpenSSL would cost another 3 ms on every `token`
    from cryptography.hazmat.primitives import hashes

    digest = hashes.Hash(hashes.SHA256())
    digest.update(f"{identity}\0{salt.hex()}\0{n}\0{r}\0{p}".encode("utf-8", "surrogatepass"))
    return (_PREFIX + digest.finalize().hex()[:48]).encode("ascii")


def _calls() -> tuple[Any, int, int] | None:
    """(libc, add_key, keyctl), or None where the keyring cannot be used."""
    if _state.get("off"):
        return None
    numbers = _SYSCALLS.get(os.uname().machine) if hasattr(os, "uname") else None
    if numbers is None or not os.uname().sysname == "Linux":
        _state["off"] = True
        return None
    libc = _state.get("libc")
    if libc is None:
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
        except (OSError, AttributeError):
            _state["off"] = True
            return None
        _state["libc"] = libc
    return libc, numbers[0], numbers[1]


def _keyctl(libc: Any, nr: int, *args: Any) -> int:
    """One keyctl(2)/add_key(2) call; OSError with its errno if it fails."""
    import ctypes

    converted = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result = libc.syscall(ctypes.c_long(nr), *converted)
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(result)


def _blocked(exc: OSError) -> bool:
    """A keyring that is not there for this process (seccomp, no kernel support), rather than a
    key that is not there: stop asking for the rest of the run."""
    import errno

    return exc.errno in (errno.ENOSYS, errno.EPERM)


def _find(libc: Any, keyctl: int, description: bytes) -> int | None:
    try:
        return _keyctl(libc, keyctl, _KEYCTL_SEARCH, _KEY_SPEC_USER_KEYRING, b"user", description, 0)
    except OSError as exc:
        if _blocked(exc):
            _state["off"] = True
        return None


def lookup(description: bytes) -> bytes | None:
    """The cached key of that description, or None (none, expired, or no keyring here)."""
    calls = _calls()
    if calls is None:
        return None
    libc, _, keyctl = calls
    key_id = _find(libc, keyctl, description)
    if key_id is None:
        return None
    import ctypes

    buf = ctypes.create_string_buffer(64)
    try:
        size = _keyctl(libc, keyctl, _KEYCTL_READ, key_id, buf, ctypes.c_size_t(len(buf)))
    except OSError:
        return None
    if size != 32:  # not a key of ours (it is checked against the store anyway)
        return None
    return buf.raw[:size]


def store(description: bytes, key: bytes, seconds: float) -> bool:
    """Keep `key` for `seconds` (at most MAX_SECONDS); False if it could not be kept.

    The key is made in this thread's own keyring, given its permissions and timeout there,
    and only then linked into the user's keyring: a process killed halfway leaves no key
    without a timeout behind.
    """
    seconds = int(min(seconds, MAX_SECONDS))
    if seconds < 1 or len(key) != 32:
        return False
    calls = _calls()
    if calls is None:
        return False
    libc, add_key, keyctl = calls
    import ctypes

    try:
        key_id = _keyctl(libc, add_key, b"user", description, ctypes.c_char_p(key), ctypes.c_size_t(len(key)),
                         _KEY_SPEC_THREAD_KEYRING)
    except OSError as exc:
        if _blocked(exc):
            _state["off"] = True
        return False
    try:
        _keyctl(libc, keyctl, _KEYCTL_SETPERM, key_id, ctypes.c_ulong(_PERM))
        _keyctl(libc, keyctl, _KEYCTL_SET_TIMEOUT, key_id, ctypes.c_ulong(seconds))
        _keyctl(libc, keyctl, _KEYCTL_LINK, key_id, _KEY_SPEC_USER_KEYRING)
    except OSError:
        _invalidate(libc, keyctl, key_id)
        return False
    finally:
        try:
            _keyctl(libc, keyctl, _KEYCTL_UNLINK, key_id, _KEY_SPEC_THREAD_KEYRING)
        except OSError:
            pass
    return True


def drop(description: bytes) -> None:
    """Remove the cached key of that description, if there is one."""
    calls = _calls()
    if calls is None:
        return
    libc, _, keyctl = calls
    for _ in range(4):  # one is linked at a time; a race with another process's store may add one
        key_id = _find(libc, keyctl, description)
        if key_id is None:
            return
        _invalidate(libc, keyctl, key_id)


def _invalidate(libc: Any, keyctl: int, key_id: int) -> None:
    try:
        _keyctl(libc, keyctl, _KEYCTL_INVALIDATE, key_id)
    except OSError:
        try:
            _keyctl(libc, keyctl, _KEYCTL_UNLINK, key_id, _KEY_SPEC_USER_KEYRING)
        except OSError:
            pass
