"""What can go wrong between a client and Procore, as values: `Fault`, `Chaos` and how they bend an answer.

A `Fault` is one frozen value saying what the next matching requests get instead of (or on top
of) Procore's real answer: an error status, a rate limit, a hang, a dropped connection, the
"processed but the answer was lost" case, or a hostile answer (a gzip bomb, an endless body, a
body that breaks off). `FakeProcore.inject(Fault(...))` queues one; `Chaos` faults a random
share of requests. `apply()` is the one place that says in which order a fault's parts happen
around the real answer. No sockets here: the server sends what `apply()` returns.
"""

from __future__ import annotations

import functools
import json
import math
import random
import struct
import zlib
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any, Callable, Iterable, Mapping, Sequence

from .messages import Response, json_bytes

__all__ = ["Chaos", "Fault", "FaultQueue", "apply", "make_gzip_bomb"]

_ZEROS = bytes(1 << 20)


@functools.lru_cache(maxsize=4)
def make_gzip_bomb(size: int) -> bytes:
    """A valid gzip stream of `size` zero bytes (rounded up to whole MiB), about 1 KB per MiB.

    Built from one independently compressed MiB repeated (a full flush resets the compressor,
    so every MiB compresses to the same bytes): quick even for gigabytes.
    """
    mib = max(1, -(-size // len(_ZEROS)))
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = z.compress(b"")
    block = z.compress(_ZEROS) + z.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(_ZEROS, crc)
    tail = b"\x03\x00" + struct.pack("<II", crc, (mib * len(_ZEROS)) & 0xFFFFFFFF)  # last block, CRC, size
    return head + block * mib + tail


def _huge_body(size: int) -> Iterable[bytes]:
    """`size` bytes of a token answer that never ends, made as they are sent, in chunked encoding
    (so no Content-Length warns the client)."""
    start = b'{"access_token":"'
    left = size
    chunk = start + b"a" * (65536 - len(start))
    while left > 0:
        piece = chunk[: min(left, len(chunk))]
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
        left -= len(piece)
        chunk = b"a" * 65536
    yield b"0\r\n\r\n"


def _refuse(field_name: str, value: Any, why: str) -> ValueError:
    return ValueError(f"Fault({field_name}={value!r}): {why}")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Fault:
    """What the next `times` requests whose path starts with one of `paths` (None: any non-admin
    path) get. Checked when made: a bad field is refused with a ValueError (or a TypeError for a
    wrong type) naming it.

    `status` answers that status with a JSON error body (or `body`, with `content_type`; a body
    without a status is a 500); 429 also gets `X-Rate-Limit-*` headers and `retry_after` a
    `Retry-After` header. `hang` sleeps that many seconds first (then answers normally if nothing
    else is set). `drop` closes the socket without answering. `consume=True` processes the request
    first (a refresh token is rotated, a code is used) and then replaces the answer with the fault:
    the "response lost" case (with `hang`, the answer is held after processing).

    Hostile answers: `gzip_bomb=N` answers (status 200 unless given) a gzip-encoded body that
    inflates to N bytes; `huge_body=N` streams an N-byte body in chunked encoding; `headers`
    ((name, value) pairs) are added to a made-up answer. `edit` (a function of the real answer's
    JSON, returning the JSON to send) processes the request and changes its answer; `hook` is
    called after processing, just before the answer goes out (e.g. to change the client's files
    while it waits); `gate` is called before the request is looked at (e.g. to hold it until the
    test lets it through). `cut` sends the answer's headers and half of its body, then closes the
    connection (a body that breaks off mid-read).
    """

    status: int | None = None
    times: int = 1
    paths: str | Sequence[str] | None = None  # kept as a tuple
    retry_after: int | float | str | None = None
    hang: float | None = None
    drop: bool = False
    consume: bool = False
    body: Any = None
    content_type: str | None = None
    headers: Sequence[Sequence[str]] = ()  # kept as a tuple of (name, value)
    gzip_bomb: int | None = None
    huge_body: int | None = None
    edit: Callable[[Any], Any] | None = field(default=None, compare=False)
    hook: Callable[[], object] | None = field(default=None, compare=False)
    gate: Callable[[], object] | None = field(default=None, compare=False)
    cut: bool = False

    def __post_init__(self) -> None:
        def keep(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if not _whole(self.times) or self.times < 1:
            raise _refuse("times", self.times, "how many requests get the fault: a whole number, 1 or more")
        for name in ("gzip_bomb", "huge_body"):
            size = getattr(self, name)
            if size is not None and (not _whole(size) or size < 1):
                raise _refuse(name, size, "a size in bytes: a whole number, 1 or more")
        status = self.status
        if status is None and (self.gzip_bomb is not None or self.huge_body is not None):
            status = 200
        if status is None and self.body is not None:
            status = 500
        if status is not None and (not _whole(status) or not 100 <= status <= 599):
            raise _refuse("status", self.status, "not an HTTP status: a whole number from 100 to 599 "
                          "(1xx to 5xx; use drop=True for no answer at all)")
        keep("status", status)
        if self.hang is not None:
            if isinstance(self.hang, bool) or not isinstance(self.hang, (int, float)) \
                    or not math.isfinite(self.hang) or self.hang < 0:
                raise _refuse("hang", self.hang, "seconds to wait: a finite number, 0 or more")
        keep("hang", None if self.hang is None else float(self.hang))
        ra = self.retry_after
        if ra is not None and (isinstance(ra, bool) or not isinstance(ra, (int, float, str))):
            raise _refuse("retry_after", ra, "a Retry-After value: seconds (a number) or the header's text")
        if isinstance(ra, str) and any(c in ra for c in "\r\n"):
            raise _refuse("retry_after", ra, "one header value: no line breaks")
        keep("paths", _norm_paths(self.paths))
        pairs = []
        for pair in self.headers:
            if isinstance(pair, str) or len(pair) != 2:
                raise _refuse("headers", self.headers, "a sequence of (name, value) pairs")
            pairs.append((str(pair[0]), str(pair[1])))
        keep("headers", tuple(pairs))
        if self.content_type is not None and not isinstance(self.content_type, str):
            raise TypeError(f"Fault(content_type={self.content_type!r}): a media type string, or None")
        for name in ("edit", "hook", "gate"):
            fn = getattr(self, name)
            if fn is not None and not callable(fn):
                raise TypeError(f"Fault({name}={fn!r}): a Python function, or None")
        for name in ("drop", "consume", "cut"):
            keep(name, bool(getattr(self, name)))
        if (status is None and not self.drop and self.hang is None and self.edit is None and self.hook is None
                and self.gate is None and not self.cut):
            raise ValueError("Fault() does nothing: give status, body, hang, drop, gzip_bomb, huge_body, "
                             "edit, hook, gate or cut")

    # named constructors for the common cases

    @classmethod
    def rate_limited(cls, retry_after: int | float | str | None = None, **more: Any) -> "Fault":
        """A 429 from the rate limiter (never after processing: a limiter answers first)."""
        return cls(status=429, retry_after=retry_after, **more)

    @classmethod
    def dropped(cls, **more: Any) -> "Fault":
        """The connection reset with no answer (with consume=True: after Procore processed it)."""
        return cls(drop=True, **more)

    @classmethod
    def lost_answer(cls, **more: Any) -> "Fault":
        """Procore processes the request (a refresh token is used), then the answer is lost."""
        return cls(drop=True, consume=True, **more)

    @classmethod
    def held(cls, seconds: float, **more: Any) -> "Fault":
        """The request waits `seconds` (before processing; with consume=True, after), then goes on."""
        return cls(hang=seconds, **more)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Fault":
        """A Fault from the JSON of `POST /_fake/faults`: its fields by name ("count" is taken
        for "times", the admin API's first name for it); no Python functions."""
        if not isinstance(data, Mapping):
            raise TypeError("each fault must be a JSON object")
        fields = dict(data)
        if any(name in fields for name in ("edit", "hook", "gate")):
            raise TypeError("edit, hook and gate take Python functions: use FakeProcore.inject(Fault(...))")
        if "count" in fields:
            if "times" in fields:
                raise TypeError("give times or count (the same thing), not both")
            fields["times"] = fields.pop("count")
        return cls(**fields)

    # reading it

    def matches(self, path: str) -> bool:
        return self.paths is None or any(path.startswith(p) for p in self.paths)

    @property
    def replaces(self) -> bool:
        """Whether the answer is a made-up one (not the real answer, possibly edited)."""
        return self.drop or self.status is not None or self.gzip_bomb is not None or self.huge_body is not None

    def describe(self) -> dict[str, Any]:
        """The fault as JSON (functions as whether they are set)."""
        return {
            "status": self.status,
            "times": self.times,
            "paths": list(self.paths) if self.paths is not None else None,
            "retry_after": self.retry_after,
            "hang": self.hang,
            "drop": self.drop,
            "consume": self.consume,
            "body": self.body,
            "content_type": self.content_type,
            "headers": [list(h) for h in self.headers],
            "gzip_bomb": self.gzip_bomb,
            "huge_body": self.huge_body,
            "edit": self.edit is not None,
            "hook": self.hook is not None,
            "gate": self.gate is not None,
            "cut": self.cut,
        }


def _norm_paths(paths: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if paths is None:
        return None
    if isinstance(paths, str):
        return (paths,)
    if not all(isinstance(p, str) for p in paths):
        raise TypeError(f"Fault(paths={paths!r}): a path prefix or a sequence of them")
    return tuple(paths)


@dataclass
class Chaos:
    """Fault a random share `rate` of requests (on `paths`, None: all) with one of `kinds`."""

    rate: float
    kinds: tuple[str, ...]
    rng: random.Random
    consume_share: float
    delay: float
    paths: tuple[str, ...] | None

    @classmethod
    def make(cls, rate: float, kinds: Sequence[str], seed: int | None, consume_share: float, delay: float,
             paths: str | Sequence[str] | None) -> "Chaos | None":
        """Checked settings (None: no chaos at all)."""
        kinds_t = tuple(str(k) for k in kinds)
        for k in kinds_t:
            if k not in ("drop", "delay") and not (k.isdigit() and 100 <= int(k) <= 599):
                raise ValueError(f"unknown chaos kind {k!r}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if not (rate > 0 and kinds_t):
            return None
        return cls(rate=float(rate), kinds=kinds_t, rng=random.Random(seed), consume_share=float(consume_share),
                   delay=float(delay), paths=_norm_paths(paths))

    def pick(self, path: str) -> Fault | None:
        if self.paths is not None and not any(path.startswith(p) for p in self.paths):
            return None
        if self.rng.random() >= self.rate:
            return None
        kind = self.rng.choice(self.kinds)
        # A rate limiter answers before the application sees the request: never consume a 429.
        consume = kind not in ("delay", "429") and self.rng.random() < self.consume_share
        if kind == "delay":
            return Fault(hang=self.delay)
        if kind == "drop":
            return Fault(drop=True, consume=consume)
        status = int(kind)
        return Fault(status=status, consume=consume, retry_after=1 if status in (429, 503) else None)


@dataclass
class _Pending:
    fault: Fault
    left: int


class FaultQueue:
    """Injected faults waiting for their requests, and the chaos setting. Not locked: the
    server calls it with its own lock held."""

    def __init__(self) -> None:
        self._pending: list[_Pending] = []
        self.chaos: Chaos | None = None

    def add(self, fault: Fault) -> None:
        if fault.gzip_bomb is not None:
            make_gzip_bomb(fault.gzip_bomb)  # made now (and cached), not while a client waits
        self._pending.append(_Pending(fault, fault.times))

    def clear(self) -> None:
        self._pending.clear()
        self.chaos = None

    def pending(self) -> list[dict[str, Any]]:
        """The faults not used up yet, as JSON, with `count`: how many requests still get each."""
        return [{**p.fault.describe(), "count": p.left} for p in self._pending]

    def take(self, path: str) -> Fault | None:
        """The fault for this request, if any: the first injected one that matches it, else chaos's pick."""
        for i, p in enumerate(self._pending):
            if p.fault.matches(path):
                p.left -= 1
                if p.left <= 0:
                    del self._pending[i]
                return p.fault
        return self.chaos.pick(path) if self.chaos is not None else None


def apply(fault: Fault, real: Callable[[], Response], sleep: Callable[[float | None], None],
          now: Callable[[], float]) -> Response:
    """The answer to send for a faulted request. `real()` has Procore process the request and
    gives its answer; `sleep` waits (and wakes when the server stops); `now` is the fake's clock."""
    if fault.gate is not None:
        fault.gate()  # before Procore looks at the request
    if fault.consume or not fault.replaces:
        if not fault.consume:
            sleep(fault.hang)
        answer = real()
        if fault.consume:
            sleep(fault.hang)
        made_up = _made_up(fault, now)
        if made_up is not None:
            answer = made_up
        elif fault.edit is not None:
            answer = _edited(answer, fault.edit)
    else:
        sleep(fault.hang)
        answer = _made_up(fault, now) or real()
    if fault.hook is not None:
        fault.hook()
    if fault.cut and not answer.drop:
        answer = replace(answer, cut=True)
    return answer


def _edited(real: Response, edit: Callable[[Any], Any]) -> Response:
    try:
        obj = json.loads(real.body.decode("utf-8"))
    except ValueError:
        return real
    kept = [(k, v) for k, v in real.headers if k.lower() not in ("content-type", "content-length")]
    return Response.json(real.status, edit(obj), kept)


def _made_up(fault: Fault, now: Callable[[], float]) -> Response | None:
    """The answer that replaces the real one (with the fault's extra headers), or None."""
    resp = _made_up_answer(fault, now)
    if resp is not None and fault.headers:
        resp.headers += [(str(k), str(v)) for k, v in fault.headers]
    return resp


def _made_up_answer(fault: Fault, now: Callable[[], float]) -> Response | None:
    if fault.drop:
        return Response(0, drop=True)
    if fault.status is None:
        return None
    json_type = ("Content-Type", fault.content_type or "application/json; charset=utf-8")
    if fault.gzip_bomb is not None:
        return Response(fault.status, make_gzip_bomb(fault.gzip_bomb), [json_type, ("Content-Encoding", "gzip")])
    if fault.huge_body is not None:
        return Response(fault.status, b"", [json_type, ("Transfer-Encoding", "chunked")],
                        stream=_huge_body(fault.huge_body))
    headers: list[tuple[str, str]] = []
    if fault.retry_after is not None:
        ra = fault.retry_after
        headers.append(("Retry-After", str(int(ra)) if isinstance(ra, float) and ra.is_integer() else str(ra)))
    if fault.status == 429:
        try:
            wait = float(fault.retry_after) if fault.retry_after is not None else 1.0
        except ValueError:
            wait = 1.0
        headers += [
            ("X-Rate-Limit-Limit", "3600"),
            ("X-Rate-Limit-Remaining", "0"),
            ("X-Rate-Limit-Reset", str(int(now() + max(wait, 1.0)))),
        ]
    if fault.body is None:
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:
            phrase = "Error"
        obj = {
            "error": phrase.lower().replace(" ", "_").replace("-", "_") or "error",
            "error_description": f"Fake Procore injected fault: {fault.status} {phrase}",
        }
        return Response.json(fault.status, obj, headers)
    if isinstance(fault.body, (bytes, bytearray)):
        data = bytes(fault.body)
        ctype = fault.content_type or "application/octet-stream"
    elif isinstance(fault.body, str):
        data = fault.body.encode("utf-8")
        ctype = fault.content_type or (
            "text/html; charset=utf-8" if fault.body.lstrip().startswith("<") else "text/plain; charset=utf-8"
        )
    else:
        data = json_bytes(fault.body)
        ctype = fault.content_type or "application/json; charset=utf-8"
    return Response(fault.status, data, [("Content-Type", ctype), *headers])
