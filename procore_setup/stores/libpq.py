"""One read of the PostgreSQL store through libpq itself, for the headless fast path.

`token` with a valid token only reads the store. Importing psycopg costs several times what
the whole run costs with a credentials file (it builds its adapters, its exception classes and
asyncio support up front), while the read itself is one query. So the read goes straight to
libpq through ctypes: the very library psycopg uses (the copy its binary wheel bundles, else
the system's libpq.so.5), with the same URL and the same conninfo rules (PGPASSWORD,
~/.pgpass, PGSERVICE, sslmode, unix sockets), and no code of our own for the protocol,
authentication or TLS. Everything else (the lock, writes, schema) uses psycopg.

`read(url, query, ...)` returns the rows as text, or raises `Failed` with libpq's message and
SQLSTATE; `available()` says whether a libpq can be loaded here. Standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
from importlib.util import find_spec
from typing import Any, Iterator

CONNECTION_OK = 0
PGRES_TUPLES_OK = 2
PG_DIAG_SQLSTATE = ord("C")

_lib: Any = None
_tried = False


class Failed(Exception):
    """libpq said no: `message` (its text, which never holds the password) and `sqlstate` ('' when
    the server was never reached); `connecting` when it happened before a connection existed."""

    def __init__(self, message: str, sqlstate: str = "", *, connecting: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.connecting = connecting


def _candidates() -> list[str]:
    found = []
    try:
        spec = find_spec("psycopg_binary")  # found without importing it (importing needs psycopg first)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        base = os.path.dirname(list(spec.submodule_search_locations)[0])
        found += sorted(glob.glob(os.path.join(base, "psycopg_binary.libs", "libpq-*.so*")))
    found += ["libpq.so.5", "libpq.5.dylib"]
    return found


def _load() -> Any:
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        vp, cp, ip = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        lib.PQconnectdbParams.restype = vp
        lib.PQconnectdbParams.argtypes = [ctypes.POINTER(cp), ctypes.POINTER(cp), ip]
        lib.PQstatus.restype, lib.PQstatus.argtypes = ip, [vp]
        lib.PQerrorMessage.restype, lib.PQerrorMessage.argtypes = cp, [vp]
        lib.PQexec.restype, lib.PQexec.argtypes = vp, [vp, cp]
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
        break
    return _lib


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


def read(url: str, query: str, *, connect_timeout: int, application_name: str,
         deadline: float = 30.0, defaults: dict[str, str] | None = None) -> list[tuple[str | None, ...]]:
    """Run one read-only query on a new connection; every value as text (None for NULL).
    `defaults`: more connection parameters (sslmode), which the URL's own override."""
    lib = _load()
    if lib is None:
        raise Failed("no libpq to load", connecting=True)
    # The URL last, expanded: what it says (its own connect_timeout, say) wins over the defaults.
    words = [b"connect_timeout", b"application_name", b"keepalives", b"keepalives_idle", b"tcp_user_timeout", b"dbname"]
    values = [str(connect_timeout).encode(), application_name.encode(), b"1", b"10", b"30000", url.encode()]
    for key, value in (defaults or {}).items():
        words.insert(0, key.encode())
        values.insert(0, value.encode())
    keys = (ctypes.c_char_p * (len(words) + 1))(*words, None)
    vals = (ctypes.c_char_p * (len(values) + 1))(*values, None)
    conn = lib.PQconnectdbParams(keys, vals, 1)
    if not conn:
        raise Failed("out of memory", connecting=True)
    try:
        if lib.PQstatus(conn) != CONNECTION_OK:
            raise Failed(_text(lib.PQerrorMessage(conn)), connecting=True)
        with shutdown_later(lib.PQsocket(conn), deadline):
            res = lib.PQexec(conn, query.encode())
        if not res:
            raise Failed(_text(lib.PQerrorMessage(conn)))
        try:
            if lib.PQresultStatus(res) != PGRES_TUPLES_OK:
                raise Failed(_text(lib.PQerrorMessage(conn)), _text(lib.PQresultErrorField(res, PG_DIAG_SQLSTATE)))
            rows: list[tuple[str | None, ...]] = []
            width = lib.PQnfields(res)
            for i in range(lib.PQntuples(res)):
                row: list[str | None] = []
                for j in range(width):
                    if lib.PQgetisnull(res, i, j):
                        row.append(None)
                    else:
                        size = lib.PQgetlength(res, i, j)
                        row.append(ctypes.string_at(lib.PQgetvalue(res, i, j), size).decode("utf-8", "replace"))
                rows.append(tuple(row))
            return rows
        finally:
            lib.PQclear(res)
    finally:
        lib.PQfinish(conn)


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "replace").strip()
