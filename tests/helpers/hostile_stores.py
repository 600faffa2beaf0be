"""Hostile servers for the store attack tests: just enough of the PostgreSQL and Redis (RESP)
protocols to do what an attacker's server would, on a free port of 127.0.0.1.

- `HostilePostgres`: refuses TLS ('N' to SSLRequest and GSSENCRequest), then asks for the password
  in clear text (AuthenticationCleartextPassword) and keeps whatever the client sends.
  `HostilePostgres(flood=True)` lets the client in instead (AuthenticationOk), answers the store's
  read with rows of 1 MiB, forever, until the client goes (`sent` counts their bytes, `flooded`
  says through which protocol), and every other query with one row 't'. Given `read_rows`, it
  answers the first read with them (the fast read's), and floods only the later ones (the read
  under the lock).
- `HostileRedis(mode)`: "trickle" answers every connection with one byte of a reply line every
  `interval` seconds, forever; "nested" answers EVAL/EVALSHA with a reply nested `depth` arrays
  deep and every other command with +OK; "silent" takes the connection and what is sent on it,
  and never answers; "no-crlf" answers EVAL/EVALSHA with a reply whose last bulk string lacks its
  CRLF, then keeps the connection open; "lying-length" answers with a bulk string followed by two
  bytes that are not its CRLF (a reader that skips them unread takes the rest for a good reply);
  "raw" answers EVAL/EVALSHA with the bytes `reply` (a header that declares millions of elements,
  say), then keeps the connection open, sending nothing more.

Each runs in daemon threads and is a context manager; `connections` counts what connected, and
`passwords` holds what a client sent as its password (a test asserts it stays empty).
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

from helpers.net import stop_serving

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


class _Server:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        stop_serving(self.sock, self._thread)  # sock.close() alone leaves the thread accepting

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve_safely, args=(conn,), daemon=True).start()

    def _serve_safely(self, conn: socket.socket) -> None:
        try:
            with conn:
                self.serve(conn)
        except OSError:
            pass

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


def _exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


class HostilePostgres(_Server):
    """No TLS, and a request for the password in clear text."""

    def __init__(self, *, flood: bool = False, read_rows: list[tuple[str | None, ...]] | None = None) -> None:
        super().__init__()
        self.read_rows = read_rows
        self.passwords: list[bytes] = []
        self.tls_requests = 0
        self.flood = flood
        self.sent = 0
        self.flooded: list[str] = []
        self.answered = False

    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        while True:
            (length,) = struct.unpack("!I", _exact(conn, 4))
            body = _exact(conn, length - 4)
            (code,) = struct.unpack("!I", body[:4])
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                self.tls_requests += code == SSL_REQUEST
                conn.sendall(b"N")  # no TLS here: go on in clear text, if you will
                continue
            break  # the startup message
        if self.flood:
            self._flood(conn)
            return
        conn.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        kind = _exact(conn, 1)
        (length,) = struct.unpack("!I", _exact(conn, 4))
        body = _exact(conn, length - 4)
        if kind == b"p":
            self.passwords.append(body.rstrip(b"\0"))
        error = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"
        conn.sendall(b"E" + struct.pack("!I", len(error) + 4) + error)


    def _flood(self, conn: socket.socket) -> None:
        """Answer every query with one row 't' (a bool: a lock taken, a check passed), but the store's
        read (the query on pg_class) with rows of 1 MiB forever; through the simple protocol (libpq's
        fast read) or the extended one (psycopg), which `flooded` records."""
        conn.sendall(b"R" + struct.pack("!II", 8, 0) + b"Z" + struct.pack("!I", 5) + b"I")  # in, and ready
        query = b""
        while not self.stop.is_set():
            kind = _exact(conn, 1)
            (length,) = struct.unpack("!I", _exact(conn, 4))
            body = _exact(conn, length - 4)
            if kind == b"X":
                return
            if kind == b"P":  # Parse: a statement name, then the query
                query = body.split(b"\0", 2)[1]
                continue
            if kind in (b"B", b"D", b"E", b"H", b"C"):
                continue  # Bind, Describe, Execute, Flush, Close: answered at the Sync
            extended = kind == b"S"
            if not extended:
                query = body
            if extended:
                conn.sendall(b"1" + struct.pack("!I", 4) + b"2" + struct.pack("!I", 4))  # parsed, bound
            if b"pg_class" in query and self.read_rows is not None and not self.answered:
                self.answered = True
                self._answer(conn, self.read_rows)
                continue
            if b"pg_class" in query:
                self.flooded.append("extended" if extended else "simple")
                self._rows_forever(conn)
                return
            name = b"a\0"
            conn.sendall(b"T" + struct.pack("!IH", 4 + 2 + len(name) + 18, 1) + name
                         + struct.pack("!IhIhih", 0, 0, 16, 1, -1, 0)
                         + b"D" + struct.pack("!IHI", 4 + 2 + 4 + 1, 1, 1) + b"t"
                         + b"C" + struct.pack("!I", 4 + 9) + b"SELECT 1\0"
                         + b"Z" + struct.pack("!I", 5) + b"T")

    def _answer(self, conn: socket.socket, rows: list[tuple[str | None, ...]]) -> None:
        """`rows` as a whole result of text columns (a store's own read, taken from a real server)."""
        width = len(rows[0])
        columns = b"".join(b"c%d\0" % i + struct.pack("!IhIhih", 0, 0, 25, -1, -1, 0) for i in range(width))
        out = [b"T" + struct.pack("!IH", 4 + 2 + len(columns), width) + columns]
        for row in rows:
            cells = b"".join(struct.pack("!i", -1) if v is None else struct.pack("!I", len(v.encode())) + v.encode()
                             for v in row)
            out.append(b"D" + struct.pack("!IH", 4 + 2 + len(cells), width) + cells)
        out.append(b"C" + struct.pack("!I", 4 + 9) + b"SELECT 1\0" + b"Z" + struct.pack("!I", 5) + b"I")
        conn.sendall(b"".join(out))

    def _rows_forever(self, conn: socket.socket) -> None:
        name = b"a\0"  # one text column
        conn.sendall(b"T" + struct.pack("!IH", 4 + 2 + len(name) + 18, 1) + name + struct.pack("!IhIhih", 0, 0, 25, -1, -1, 0))
        value = b"x" * (1 << 20)
        row = b"D" + struct.pack("!IHI", 4 + 2 + 4 + len(value), 1, len(value)) + value
        while not self.stop.is_set():
            conn.sendall(row)
            self.sent += len(row)


class HostileRedis(_Server):
    def __init__(self, mode: str, *, interval: float = 0.25, depth: int = 5000, reply: bytes = b"") -> None:
        super().__init__()
        self.mode = mode
        self.interval = interval
        self.depth = depth
        self.reply = reply

    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(60)
        if self.mode == "trickle":
            conn.recv(65536)
            conn.sendall(b"+")
            while not self.stop.wait(self.interval):
                conn.sendall(b"a")  # a status line that never ends, one byte at a time
            return
        if self.mode == "silent":
            while not self.stop.is_set() and conn.recv(65536):
                pass
            return
        buf = b""
        while True:
            command, buf = _command(conn, buf)
            name = command[0].upper() if command else b""
            if name in (b"EVALSHA", b"EVAL") and self.mode == "no-crlf":
                conn.sendall(b"*4\r\n$2\r\nok\r\n$1\r\n1\r\n$0\r\n\r\n$2\r\n{}")  # and never its CRLF
                self.stop.wait(60)
                return
            if name in (b"EVALSHA", b"EVAL") and self.mode == "raw":
                conn.sendall(self.reply)
                self.stop.wait(60)
                return
            if name in (b"EVALSHA", b"EVAL") and self.mode == "lying-length":
                # the last bulk string: "{}", then "xy" where its CRLF belongs, then a CRLF
                conn.sendall(b"*4\r\n$2\r\nok\r\n$1\r\n1\r\n$0\r\n\r\n$2\r\n{}xy\r\n")
            elif name in (b"EVALSHA", b"EVAL"):
                conn.sendall(b"*1\r\n" * self.depth + b":1\r\n")
            elif name == b"HELLO":  # RESP3's handshake (redis-py 8 asks for it): a map that says so
                conn.sendall(b"%1\r\n+proto\r\n:3\r\n")
            else:
                conn.sendall(b"+OK\r\n")


def _command(conn: socket.socket, buf: bytes) -> tuple[list[bytes], bytes]:
    """One RESP command (an array of bulk strings) from the connection."""
    def line() -> bytes:
        nonlocal buf
        while b"\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                raise OSError("closed")
            buf += chunk
        out, buf = buf.split(b"\r\n", 1)
        return out

    head = line()
    if not head.startswith(b"*"):
        return head.split(), buf  # an inline command
    words = []
    for _ in range(int(head[1:])):
        n = int(line()[1:])
        while len(buf) < n + 2:
            chunk = conn.recv(65536)
            if not chunk:
                raise OSError("closed")
            buf += chunk
        words.append(buf[:n])
        buf = buf[n + 2:]
    return words, buf


_CONNECT_LOG = '''\
import os, sys

def _log_connect(event, args, _path=os.environ.get("PROCORE_TEST_CONNECT_LOG")):
    if event == "socket.connect" and _path and isinstance(args[1], tuple):
        with open(_path, "a") as f:
            f.write(f"{args[1][1]}\\n")

sys.addaudithook(_log_connect)
'''


class ConnectLog:
    """Every TCP connection attempt of a child process, by port: a sitecustomize that logs Python's
    `socket.connect` audit event (the standard library's and the drivers' sockets alike) to a
    file. `env` goes into the child's environment; `attempts(port)` counts what it tried."""

    def __init__(self, directory: Any) -> None:
        from pathlib import Path

        site = Path(directory) / "connect-log-site"
        site.mkdir(parents=True, exist_ok=True)
        (site / "sitecustomize.py").write_text(_CONNECT_LOG)
        self.path = Path(directory) / "connects.log"
        self.env = {"PYTHONPATH": str(site), "PROCORE_TEST_CONNECT_LOG": str(self.path)}

    def attempts(self, port: int) -> int:
        if not self.path.exists():
            return 0
        return self.path.read_text().split().count(str(port))
