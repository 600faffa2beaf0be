"""One read of the PostgreSQL store through libpq itself, for the headless fast path.

`token` with a valid token only reads the store. Importing psycopg costs several times what
the whole run costs with a credentials file (it builds its adapters, its exception classes and
asyncio support up front), while the read itself is one query. So the read goes straight to
libpq through ctypes: the very library psycopg uses (the copy its binary wheel bundles, else
the system's libpq.so.5), with the same URL and the same conninfo rules (PGPASSWORD,
~/.pgpass, PGSERVICE, sslmode, unix sockets), and no code of our own for the protocol,
authentication or TLS. Everything else (the lock, writes, schema) uses psycopg.

Which libpq: the one psycopg's binary wheel bundles (what psycopg itself uses when installed
with [binary]), else the system's as psycopg finds it (psycopg/pq/misc.py, find_libpq_full_path:
ctypes.util.find_library per platform, pg_config's libdir on macOS), after a direct try of the
usual name (libpq.so.5), which is what find_library answers on Linux without its subprocess.
`version()` is its PQlibVersion (170002 for 17.2); libpq refuses connection options newer than
itself (tcp_user_timeout came with 12), so `keepalives(version)` names only the ones it knows.

`read(url, query, ...)` returns the rows as text, or raises `errors.LibpqFailure` with libpq's
message and SQLSTATE; `available()` says whether a libpq can be loaded here. Standard library only.

The rows are read one at a time (PQsendQuery, then PQsetSingleRowMode), and the read stops once
they hold more bytes or rows than the caller allows: PQexec kept the whole result, so a server
that sends rows forever had memory grow until the deadline (1.5 GB in 2 s). One row is still held
whole by libpq, as any client holds one message.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import sys
from importlib.util import find_spec
from typing import Any, Callable, Iterator

from ..errors import LibpqFailure

CONNECTION_OK = 0
PGRES_TUPLES_OK = 2
PGRES_SINGLE_TUPLE = 9
PG_DIAG_SQLSTATE = ord("C")
TCP_USER_TIMEOUT_SINCE = 120000  # PQlibVersion of libpq 12, the first that knows tcp_user_timeout
# Dead peers, found by TCP itself (libpq's own parameters, in milliseconds where they say so).
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
              "tcp_user_timeout": 30000}

_lib: Any = None
_tried = False


def keepalives(version: int) -> dict[str, int]:
    """KEEPALIVES for a libpq of `version` (PQlibVersion): without tcp_user_timeout before 12, which
    refuses it as an invalid option, and would have the URL blamed for it."""
    return {k: v for k, v in KEEPALIVES.items() if k != "tcp_user_timeout" or version >= TCP_USER_TIMEOUT_SINCE}


def _bundled() -> list[str]:
    """The libpq psycopg's binary wheel carries, found without importing it (importing needs psycopg first)."""
    try:
        spec = find_spec("psycopg_binary")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return []
    package = list(spec.submodule_search_locations)[0]
    base = os.path.dirname(package)
    patterns = [os.path.join(base, "psycopg_binary.libs", "libpq-*.so*"),  # Linux (auditwheel)
                os.path.join(package, ".dylibs", "libpq*.dylib"),  # macOS (delocate)
                os.path.join(base, "psycopg_binary.libs", "libpq*.dll")]  # Windows (delvewheel)
    return sorted(path for pattern in patterns for path in glob.glob(pattern))


def _system() -> str | None:
    """The system's libpq as psycopg finds it (psycopg/pq/misc.py, find_libpq_full_path)."""
    import ctypes.util

    if sys.platform == "win32":
        name = ctypes.util.find_library("libpq.dll")
        return os.path.realpath(name) if name else None
    if sys.platform == "darwin":
        name = ctypes.util.find_library("libpq.dylib")
        if not name:
            import subprocess

            try:
                libdir = subprocess.run(["pg_config", "--libdir"], capture_output=True, text=True, timeout=10,
                                        check=True).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                return None
            name = os.path.join(libdir, "libpq.dylib")
            return name if os.path.exists(name) else None
        return name
    return ctypes.util.find_library("pq")


def _open(path: str) -> Any:
    try:
        return ctypes.CDLL(path)
    except OSError:
        return None


def _load() -> Any:
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    lib = None
    for path in [*_bundled(), "libpq.5.dylib" if sys.platform == "darwin" else "libpq.so.5"]:
        lib = _open(path)
        if lib is not None:
            break
    if lib is None:
        found = _system()
        lib = _open(found) if found else None
    if lib is None:
        return None
    vp, cp, ip = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    if not hasattr(lib, "PQlibVersion"):
        return None  # older than 9.1: psycopg (which needs 10 or newer) will say what is wrong
    lib.PQlibVersion.restype, lib.PQlibVersion.argtypes = ip, []
    lib.PQconnectdbParams.restype = vp
    lib.PQconnectdbParams.argtypes = [ctypes.POINTER(cp), ctypes.POINTER(cp), ip]
    lib.PQstatus.restype, lib.PQstatus.argtypes = ip, [vp]
    lib.PQerrorMessage.restype, lib.PQerrorMessage.argtypes = cp, [vp]
    lib.PQsendQuery.restype, lib.PQsendQuery.argtypes = ip, [vp, cp]
    lib.PQsetSingleRowMode.restype, lib.PQsetSingleRowMode.argtypes = ip, [vp]
    lib.PQgetResult.restype, lib.PQgetResult.argtypes = vp, [vp]
    lib.PQresultStatus.restype, lib.PQresultStatus.argtypes = ip, [vp]
    lib.PQresultErrorField.restype, lib.PQresultErrorField.argtypes = cp, [vp, ip]
    lib.PQntuples.restype, lib.PQntuples.argtypes = ip, [vp]
    lib.PQnfields.restype, lib.PQnfields.argtypes = ip, [vp]
    lib.PQgetisnull.restype, lib.PQgetisnull.argtypes = ip, [vp, ip, ip]
    lib.PQgetvalue.restype, lib.PQgetvalue.argtypes = ctypes.POINTER(ctypes.c_char), [vp, ip, ip]
    lib.PQgetlength.restype, lib.PQgetlength.argtypes = ip, [vp, ip, ip]
    lib.PQclear.restype, lib.PQclear.argtypes = None, [vp]
    lib.PQfinish.restype, lib.PQfinish.argtypes = None, [vp]
    lib.PQsocket.restype, lib.PQsocket.argtypes = ip, [vp]
    _lib = lib
    return _lib


def version() -> int:
    """The loaded libpq's PQlibVersion (major * 10000 + minor since 10), 0 when none can be loaded."""
    lib = _load()
    return int(lib.PQlibVersion()) if lib is not None else 0


def available() -> bool:
    return _load() is not None


@contextlib.contextmanager
def shutdown_later(fd: int, seconds: float) -> Iterator[None]:
    """Shut the socket `fd` down (both ways) if the block is still running after `seconds`: a call
    blocked on it then sees the connection end. Used where neither libpq nor psycopg bounds a read."""
    import socket
    import threading

    def shut() -> None:
        with contextlib.suppress(OSError):
            sock = socket.socket(fileno=os.dup(fd))
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.close()

    timer = threading.Timer(seconds, shut)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def read(url: str, query: str, *, connect_timeout: int, application_name: str, max_bytes: int, max_rows: int,
         too_big: Callable[[], Exception], deadline: float = 30.0,
         defaults: dict[str, str] | None = None) -> list[tuple[str | None, ...]]:
    """Run one read-only query on a new connection; every value as text (None for NULL).
    `defaults`: more connection parameters (sslmode), which the URL's own override. Rows whose
    values hold more than `max_bytes` in all, or more than `max_rows` rows, are not read on:
    `too_big()` is raised, and the connection closed."""
    lib = _load()
    if lib is None:
        raise LibpqFailure("no libpq to load", connecting=True)
    # The URL last, expanded: what it says (its own connect_timeout, say) wins over the defaults.
    options = {"connect_timeout": connect_timeout, "application_name": application_name,
               **keepalives(int(lib.PQlibVersion())), "dbname": url}
    words = [key.encode() for key in options]
    values = [str(value).encode() for value in options.values()]
    for key, value in (defaults or {}).items():
        words.insert(0, key.encode())
        values.insert(0, value.encode())
    keys = (ctypes.c_char_p * (len(words) + 1))(*words, None)
    vals = (ctypes.c_char_p * (len(values) + 1))(*values, None)
    conn = lib.PQconnectdbParams(keys, vals, 1)
    if not conn:
        raise LibpqFailure("out of memory", connecting=True)
    try:
        if lib.PQstatus(conn) != CONNECTION_OK:
            raise LibpqFailure(_text(lib.PQerrorMessage(conn)), connecting=True)
        with shutdown_later(lib.PQsocket(conn), deadline):
            if not lib.PQsendQuery(conn, query.encode()) or not lib.PQsetSingleRowMode(conn):
                raise LibpqFailure(_text(lib.PQerrorMessage(conn)))
            return _rows(lib, conn, max_bytes, max_rows, too_big)
    finally:
        lib.PQfinish(conn)  # unread rows and all: the connection is closed, not drained


def _rows(lib: Any, conn: Any, max_bytes: int, max_rows: int,
          too_big: Callable[[], Exception]) -> list[tuple[str | None, ...]]:
    """The results of the query sent on `conn`, one row at a time, within the caller's bounds."""
    rows: list[tuple[str | None, ...]] = []
    size = 0
    failed: LibpqFailure | None = None
    answered = False
    while True:
        res = lib.PQgetResult(conn)
        if not res:
            break
        answered = True
        try:
            status = lib.PQresultStatus(res)
            if status == PGRES_SINGLE_TUPLE:
                row: list[str | None] = []
                for j in range(lib.PQnfields(res)):
                    if lib.PQgetisnull(res, 0, j):
                        row.append(None)
                        continue
                    length = lib.PQgetlength(res, 0, j)
                    size += length
                    if size > max_bytes:
                        raise too_big()
                    row.append(ctypes.string_at(lib.PQgetvalue(res, 0, j), length).decode("utf-8", "replace"))
                rows.append(tuple(row))
                if len(rows) > max_rows:
                    raise too_big()
            elif status != PGRES_TUPLES_OK and failed is None:  # (TUPLES_OK, with no row: the end)
                failed = LibpqFailure(_text(lib.PQerrorMessage(conn)), _text(lib.PQresultErrorField(res, PG_DIAG_SQLSTATE)))
        finally:
            lib.PQclear(res)
    if failed is not None:
        raise failed
    if not answered:
        raise LibpqFailure(_text(lib.PQerrorMessage(conn)))
    return rows


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "replace").strip()
