"""One read of the Redis store over a plain socket, for the headless fast path.

`token` with a valid token only reads the store: one script call. Importing redis-py costs
several times what the whole run costs with a credentials file (it pulls in asyncio and
importlib.metadata up front), so that one call is made here, in RESP2 over a socket: AUTH,
SELECT, EVALSHA (EVAL if the server does not have the script yet). Only for a plain
`redis://` URL with no driver options; anything else (TLS, socket options, any error at all)
is left to redis-py, which then reads and words the errors. Standard library only.
"""

from __future__ import annotations

import hashlib
import socket
from typing import Any

MAX_REPLY = 4 << 20  # bytes in one bulk string; the store's own cap is far below it
MAX_ITEMS = 30000  # elements in one array


class Failed(Exception):
    """Anything that went wrong: the caller falls back to redis-py."""


def _command(*words: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(words)]
    for w in words:
        b = w if isinstance(w, bytes) else str(w).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Failed("connection closed")
        self.buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if len(self.buf) > 4096:
                raise Failed("a reply line too long")
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self, depth: int = 0) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return _Error(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            if n > MAX_REPLY:
                raise Failed("a reply too big")
            return self._exact(n)
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            if n > MAX_ITEMS or depth > 4:
                raise Failed("a reply too big")
            return [self.reply(depth + 1) for _ in range(n)]
        raise Failed("not a Redis reply")


class _Error:
    def __init__(self, text: str) -> None:
        self.text = text


def run_script(host: str, port: int, *, username: str | None, password: str | None, db: int, timeout: float,
               script: str, keys: list[str], args: list[Any]) -> Any:
    """The script's reply (bytes, ints, None and lists of them), or Failed."""
    sha = hashlib.sha1(script.encode()).hexdigest()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            setup = []
            if password is not None:
                setup.append(_command("AUTH", *([username] if username else []), password))
            if db:
                setup.append(_command("SELECT", db))
            call = [sha, len(keys), *keys, *args]
            sock.sendall(b"".join(setup) + _command("EVALSHA", *call))
            reader = _Reader(sock)
            for _ in setup:
                if isinstance(reader.reply(), _Error):
                    raise Failed("refused")
            out = reader.reply()
            if isinstance(out, _Error) and out.text.startswith("NOSCRIPT"):
                sock.sendall(_command("EVAL", script, *call[1:]))
                out = reader.reply()
            if isinstance(out, _Error):
                raise Failed("an error reply")
            return out
    except (OSError, ValueError) as exc:
        raise Failed(type(exc).__name__) from None
