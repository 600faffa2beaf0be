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

hiredis has no cap of its own on an aggregate: on reading `*N` it allocates a list of N slots
before any element arrives (`*4294967295` is a MemoryError, `*2147483647` seconds of CPU), and it
nests up to 1024 deep. So it never sees one it should not: every line is looked at before it is
fed (`_Guard`), and the connection may carry at most one aggregate header (`*`, `%`, `~`, `>`, `|`),
the script's one flat array, of at most `max_items` elements.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from ..errors import RespFailure

MAX_REPLY = 4 << 20  # bytes in all; the store's own cap (MAX_DOCUMENT_BYTES) is far below it
_AGGREGATES = frozenset(b"*%~>|")  # RESP2's array and RESP3's map, set, push and attribute
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


class _Guard:
    """The aggregate headers in what a server sent, checked before hiredis reads them: at most one
    on the connection (so nothing nests), of at most `max_items` elements.

    It looks at the start of every line, without parsing: a bulk string's content is looked at too,
    so a value holding a raw CRLF followed by `*5` (or `%`, `~`, `>`, `|`) counts as a header. Such
    a reply is refused as junk, and that is never one of ours: what procore-setup stores is JSON
    text (a line break in it is written `\\n`), the status, version and schema are short words and
    numbers, and a profile name holding a raw line break is not one to use either."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self.aggregates = 0
        self.carry = b""  # the start of the line that the last chunk left unfinished (and its last byte)

    def check(self, chunk: bytes) -> None:
        lines = (self.carry + chunk).split(b"\r\n")
        for line in lines[:-1]:
            self._line(line)
        last = lines[-1]
        # the first bytes are all a header needs; the last one may be the CR of a CRLF split between chunks
        self.carry = last if len(last) <= 64 else last[:32] + b"." + last[-1:]

    def _line(self, line: bytes) -> None:
        if not line or line[0] not in _AGGREGATES:
            return
        self.aggregates += 1
        count = line[1:24]
        if self.aggregates > 1:
            raise RespFailure("junk", "a reply nested, or more than one list, where the read gives one flat list")
        if count != b"-1" and not (count.isdigit() and int(count) <= self.max_items):
            raise RespFailure("junk", f"a list of more than {self.max_items} values, or of no number of them")


class _Replies:
    """The replies on one connection, read through hiredis within one deadline."""

    def __init__(self, sock: socket.socket, end: float, wait: float, max_items: int) -> None:
        import hiredis

        self._hiredis = hiredis
        self.reader = hiredis.Reader(notEnoughData=_WAIT)
        self.guard = _Guard(max_items)
        self.sock = sock
        self.end = end  # time.monotonic() by which the whole read must be done
        self.wait = wait  # the longest silence between two pieces of an answer
        self.size = 0

    def next(self) -> Any:
        """The next reply: bytes, ints, None, a flat list of them, or a hiredis.ReplyError."""
        while True:
            try:
                out = self.reader.gets()
            except self._hiredis.ProtocolError as exc:
                raise RespFailure("junk", _first_line(str(exc))) from None
            except (MemoryError, RecursionError):  # the guard stops what causes these; never exit 1 anyway
                raise RespFailure("junk", "a reply too big or nested too deep") from None
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
            self.guard.check(chunk)
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
               wait: float, deadline: float, script: str, keys: list[str], args: list[Any], max_items: int,
               sha: str | None = None) -> Any:
    """The script's reply (bytes, ints, None, or one flat list of them), or RespFailure. `timeout`
    bounds the connect, `wait` each silence of the server, `deadline` the whole call, however the
    server trickles its bytes; `max_items` the length of the one list the script may return."""
    if sha is None:  # the caller may give it, keeping hashlib off `token`'s path
        import hashlib

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
        replies = _Replies(sock, end, wait, max_items)
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
