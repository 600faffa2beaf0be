"""One read of the Redis store over a plain socket, for the headless fast path.

`token` with a valid token only reads the store: one script call. Importing redis-py costs
several times what the whole run costs with a credentials file (it pulls in asyncio and
importlib.metadata up front), so that one call is made here, in RESP2 over a socket: AUTH,
SELECT, EVALSHA (EVAL if the server does not have the script yet). Only for a plain
`redis://` URL with no driver options; anything else (TLS, socket options) is left to redis-py,
and so is an error reply, which redis-py then reads and words. A host that cannot be reached, a
server that trickles its answer past the whole read's deadline, or an answer that is no Redis
reply is said at once (Failed.kind): redis-py would only wait for it again. Standard library only.
"""

from __future__ import annotations

import hashlib
import socket
import time
from typing import Any

MAX_REPLY = 4 << 20  # bytes in one bulk string; the store's own cap is far below it
MAX_ITEMS = 30000  # elements in one array


class Failed(Exception):
    """Anything that went wrong. `kind`: "unreachable" (no connection could be made: redis-py would
    only wait for it again), "deadline" (the whole read took longer than its deadline: a server that
    trickles), "junk" (an answer that is no Redis reply this read can use: nested, too big), or
    "other" (an error reply, a closed connection: redis-py reads instead, and words it)."""

    def __init__(self, reason: str, kind: str = "other") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def _command(*words: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(words)]
    for w in words:
        b = w if isinstance(w, bytes) else str(w).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket, end: float, timeout: float) -> None:
        self.sock = sock
        self.buf = b""
        self.end = end  # time.monotonic() by which the whole read must be done
        self.timeout = timeout

    def _fill(self) -> None:
        left = self.end - time.monotonic()
        if left <= 0:
            raise Failed("the server did not finish its answer within the deadline", "deadline")
        self.sock.settimeout(min(self.timeout, left))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            if time.monotonic() >= self.end:
                raise Failed("the server did not finish its answer within the deadline", "deadline") from None
            raise
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
                raise Failed("a reply too big", "junk")
            return self._exact(n)
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            if n > MAX_ITEMS or depth > 4:
                raise Failed("a reply nested too deep or too long", "junk")
            return [self.reply(depth + 1) for _ in range(n)]
        raise Failed("not a Redis reply", "junk")


class _Error:
    def __init__(self, text: str) -> None:
        self.text = text


def run_script(host: str, port: int, *, username: str | None, password: str | None, db: int, timeout: float,
               deadline: float, script: str, keys: list[str], args: list[Any]) -> Any:
    """The script's reply (bytes, ints, None and lists of them), or Failed. `timeout` bounds the
    connect and each wait; `deadline` the whole call, however the server trickles its bytes."""
    sha = hashlib.sha1(script.encode()).hexdigest()
    end = time.monotonic() + deadline
    try:
        sock = socket.create_connection((host, port), timeout=min(timeout, deadline))
    except OSError as exc:
        raise Failed(_reason(exc), "unreachable") from None
    try:
        with sock:
            sock.settimeout(min(timeout, deadline))
            setup = []
            if password is not None:
                setup.append(_command("AUTH", *([username] if username else []), password))
            if db:
                setup.append(_command("SELECT", db))
            call = [sha, len(keys), *keys, *args]
            sock.sendall(b"".join(setup) + _command("EVALSHA", *call))
            reader = _Reader(sock, end, timeout)
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
    except socket.timeout:
        raise Failed("the server did not answer in time", "deadline" if time.monotonic() >= end else "other") from None
    except (OSError, ValueError) as exc:
        raise Failed(_reason(exc), "junk" if isinstance(exc, ValueError) else "other") from None


def _reason(exc: BaseException) -> str:
    """Why a socket call failed, in words that hold nothing from the server."""
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
