"""One read of the Redis store over a plain socket, for the headless fast path.

`token` with a valid token only reads the store: one script call. Importing redis-py costs
several times what the whole run costs with a credentials file (it pulls in asyncio and
importlib.metadata up front), so that one call is made here over a socket: AUTH, SELECT,
EVALSHA (EVAL if the server does not have the script yet), sent at once. The replies are read by
hiredis' `Reader`, the parser redis-py itself uses when hiredis is installed (the `redis` extra
installs it), so no code of ours parses the protocol. Only for a plain `redis://` URL with no
driver options, and only where hiredis is importable (`available()`); anything else (TLS, socket
options) is left to redis-py.

Every failure is a `RespFailure` (errors.py) whose `kind` says what happened; the store maps it
through the same table as redis-py's errors, so an unreachable host, a refused password or a
server that trickles is said at once, never asked again through redis-py. Only a connection that
ended before its answer ("closed": a server restarting) is left to redis-py's reconnect.

hiredis (like redis-py's own parser) takes the two bytes after a bulk string for its CRLF without
looking at them; a reply whose lengths lie is caught here by what is left over after it, and a
reply that never ends by the deadline.
"""

from __future__ import annotations

import hashlib
import socket
import time
from typing import Any

from ..errors import RespFailure

MAX_REPLY = 4 << 20  # bytes in all; the store's own cap (MAX_DOCUMENT_BYTES) is far below it
_WAIT = object()  # what the Reader hands back while a reply is incomplete (False is a RESP3 value)


def available() -> bool:
    """Whether hiredis can be imported here (found without importing it)."""
    from importlib.util import find_spec

    try:
        return find_spec("hiredis") is not None
    except (ImportError, ValueError):
        return False


def _command(*words: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(words)]
    for w in words:
        b = w if isinstance(w, bytes) else str(w).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Replies:
    """The replies on one connection, read through hiredis within one deadline."""

    def __init__(self, sock: socket.socket, end: float, wait: float) -> None:
        import hiredis

        self._hiredis = hiredis
        self.reader = hiredis.Reader(notEnoughData=_WAIT)
        self.sock = sock
        self.end = end  # time.monotonic() by which the whole read must be done
        self.wait = wait  # the longest silence between two pieces of an answer
        self.size = 0

    def next(self) -> Any:
        """The next reply: bytes, ints, None, lists of them, or a hiredis.ReplyError."""
        while True:
            try:
                out = self.reader.gets()
            except self._hiredis.ProtocolError as exc:
                raise RespFailure("junk", _first_line(str(exc))) from None
            if out is not _WAIT:
                return out
            left = self.end - time.monotonic()
            if left <= 0:
                raise RespFailure("deadline", "the server did not finish its answer within the deadline")
            self.sock.settimeout(min(self.wait, left))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                if time.monotonic() >= self.end:
                    raise RespFailure("deadline", "the server did not finish its answer within the deadline") from None
                raise RespFailure("timeout", f"the server said nothing for {self.wait:g} s") from None
            except OSError as exc:
                raise RespFailure("closed", _reason(exc)) from None
            if not chunk:
                raise RespFailure("closed", "the server closed the connection")
            self.size += len(chunk)
            if self.size > MAX_REPLY:
                raise RespFailure("junk", "a reply too big")
            self.reader.feed(chunk)

    def error(self, reply: Any) -> RespFailure | None:
        """The failure an error reply means (None for any other reply)."""
        if not isinstance(reply, self._hiredis.ReplyError):
            return None
        text = _first_line(str(reply))
        return RespFailure("reply", text, code=text.split(" ", 1)[0])

    def done(self) -> None:
        """Nothing may follow the last reply: bytes left over mean its lengths lied (a bulk string
        whose CRLF was something else), and so the reply read is not what the server meant."""
        if self.reader.has_data():
            raise RespFailure("junk", "bytes after the end of its reply")


def run_script(host: str, port: int, *, username: str | None, password: str | None, db: int, timeout: float,
               wait: float, deadline: float, script: str, keys: list[str], args: list[Any]) -> Any:
    """The script's reply (bytes, ints, None and lists of them), or RespFailure. `timeout` bounds
    the connect, `wait` each silence of the server, `deadline` the whole call, however the server
    trickles its bytes."""
    sha = hashlib.sha1(script.encode()).hexdigest()
    end = time.monotonic() + deadline
    try:
        sock = socket.create_connection((host, port), timeout=min(timeout, deadline))
    except OSError as exc:
        raise RespFailure("unreachable", _reason(exc)) from None
    with sock:
        setup = []
        if password is not None:
            setup.append(_command("AUTH", *([username] if username else []), password))
        if db:
            setup.append(_command("SELECT", db))
        call = [sha, len(keys), *keys, *args]
        replies = _Replies(sock, end, wait)
        _send(sock, b"".join(setup) + _command("EVALSHA", *call), end)
        for _ in setup:
            failed = replies.error(replies.next())
            if failed is not None:
                raise failed
        out = replies.next()
        failed = replies.error(out)
        if failed is not None and failed.code == "NOSCRIPT":
            replies.done()
            _send(sock, _command("EVAL", script, *call[1:]), end)
            out = replies.next()
            failed = replies.error(out)
        if failed is not None:
            raise failed
        replies.done()
        return out


def _send(sock: socket.socket, data: bytes, end: float) -> None:
    left = end - time.monotonic()
    if left <= 0:
        raise RespFailure("deadline", "the server did not finish its answer within the deadline")
    sock.settimeout(left)
    try:
        sock.sendall(data)
    except socket.timeout:
        raise RespFailure("deadline", "the server did not take the request within the deadline") from None
    except OSError as exc:
        raise RespFailure("closed", _reason(exc)) from None


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


def _reason(exc: BaseException) -> str:
    """Why a socket call failed, in words that hold nothing from the server."""
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
