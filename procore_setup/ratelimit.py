"""What Procore's rate-limit headers say, kept between requests and shared between processes.

Procore answers every API call with `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and
`X-Rate-Limit-Reset` (Unix seconds) for whichever window is closer to running out, and counts
refused requests against the quota too: a client that keeps sending after a 429 digs itself
deeper. `RateLimiter` is the one place that decides whether a request may go now:

- never while Remaining is 0 before its Reset, nor while a 429's (or a 503's) wait runs;
- never more requests in flight than the last answer's Remaining, less those sent since;
- after a Reset has passed the numbers are stale: one request goes alone and its answer tells
  the rest (no burst into a window whose size nobody knows yet).

`SharedLimit` is a small owner-only file beside the credentials file where a process that was
refused (or saw Remaining reach 0) writes when the limit resets; the other processes of the
profile read it before each request and wait instead of being refused too.

Standard library only, no I/O but that file: the sync client waits on a Condition, the async
one polls `decide` between short sleeps.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Callable, Mapping

RESET_MARGIN = 0.05  # seconds after a Reset before the next request: the server's window must have turned
MAX_PLAUSIBLE_WAIT = 2 * 3600.0  # a Reset or Retry-After further off than this is nonsense: capped
STATE_FILE_LIMIT = 64 * 1024  # bytes of the shared file read, at most
WAIT_FOR_ANSWER = -1.0  # `decide`: no slot until an answer comes back


class RateLimitExceeded(Exception):
    """`RateLimiter.acquire` would have to wait until `until` (Unix seconds), past the caller's deadline."""

    def __init__(self, until: float, why: str) -> None:
        super().__init__(why)
        self.until = until
        self.why = why


def _number(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw.strip()[:32])
    except ValueError:
        return None
    return value if value == value and value >= 0 else None  # NaN and negatives: unknown


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds a `Retry-After` header asks for (a number or an HTTP date), capped; None without one."""
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()[:64]
    try:
        seconds = float(raw)
    except ValueError:
        import email.utils

        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - now
    if seconds != seconds:
        return None
    return min(max(seconds, 0.0), MAX_PLAUSIBLE_WAIT)


class SharedLimit:
    """The reset times a profile's processes learnt from 429s (and from Remaining reaching 0).

    A JSON object `{profile: unix_seconds}` in `path` (mode 0600, replaced atomically). Advisory:
    a lost update between two writers costs at most one more 429, never a wrong answer, so there
    is no lock; a file that cannot be read or written is ignored.
    """

    def __init__(self, path: str, key: str, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.key = key
        self.clock = clock
        self._seen: tuple[int, int] | None = None
        self._until = 0.0

    def __repr__(self) -> str:
        return f"SharedLimit({self.path!r}, {self.key!r})"

    def _read_all(self) -> dict[str, float]:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return {}
        try:
            data = os.read(fd, STATE_FILE_LIMIT)
        except OSError:
            return {}
        finally:
            os.close(fd)
        try:
            obj = json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return {}
        if not isinstance(obj, dict):
            return {}
        now = self.clock()
        out: dict[str, float] = {}
        for k, v in obj.items():
            if isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) \
                    and now < v < now + MAX_PLAUSIBLE_WAIT:
                out[k] = float(v)
        return out

    def until(self) -> float:
        """The recorded reset time of this profile (0 when none is ahead). Re-read only when the file changed."""
        try:
            st = os.stat(self.path)
        except OSError:
            return 0.0
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp != self._seen:
            self._seen = stamp
            self._until = self._read_all().get(self.key, 0.0)
        return self._until

    def record(self, until: float) -> None:
        """Note that this profile's limit holds until `until`, unless a later time is noted already."""
        try:
            current = self._read_all()
            if current.get(self.key, 0.0) >= until - 0.01:
                return
            current[self.key] = round(until, 3)
            directory = os.path.dirname(self.path) or "."
            tmp = os.path.join(directory, f".{os.path.basename(self.path)}.{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                os.write(fd, json.dumps(current).encode("utf-8"))
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError:
            try:
                os.unlink(tmp)  # noqa: F821 - bound when the failure came after it was made
            except (OSError, NameError):
                pass


class RateLimiter:
    """The rate-limit state of one client, shared by its threads (or tasks) and, through
    `shared`, by the other processes of the profile. Thread-safe."""

    def __init__(self, shared: SharedLimit | None = None, clock: Callable[[], float] = time.time) -> None:
        self.shared = shared
        self.clock = clock
        self._cond = threading.Condition(threading.Lock())
        self.limit: float | None = None
        self.remaining: float | None = None  # what may still be sent in this window (estimate, after sends)
        self.reset: float | None = None  # the window's end, Unix seconds (the server's clock)
        self.blocked_until = 0.0  # a 429's or a 503's wait, or Remaining 0 until Reset
        self.in_flight = 0
        self.refused = 0  # 429s seen by this client

    def __repr__(self) -> str:
        return (f"RateLimiter(limit={self.limit}, remaining={self.remaining}, reset={self.reset}, "
                f"in_flight={self.in_flight})")

    # -- deciding ----------------------------------------------------------------------------
    def decide(self) -> tuple[float, float]:
        """Take a slot and return (0, 0), or return (seconds to wait, until when) without one.

        `WAIT_FOR_ANSWER` as the wait: no slot until a request in flight is answered. The
        until-time is the Unix time the limit lifts (0 when the wait is only for an answer).
        """
        with self._cond:
            return self._decide_locked()

    def _decide_locked(self) -> tuple[float, float]:
        now = self.clock()
        until = self.blocked_until
        if self.shared is not None:
            until = max(until, self.shared.until())
        if now < until:
            return until - now, until
        if self.reset is not None and now >= self.reset + RESET_MARGIN:
            self.remaining = None  # a new window: its numbers come with the next answer
            self.reset = None
        if self.remaining is None:
            if self.in_flight > 0:
                return WAIT_FOR_ANSWER, 0.0
        elif self.remaining < 1:
            if self.in_flight > 0:
                return WAIT_FOR_ANSWER, 0.0  # their answers may report a new window
            if self.reset is not None:
                when = self.reset + RESET_MARGIN
                return max(when - now, 0.001), when
            self.remaining = None  # no reset known: probe with one request
        self.in_flight += 1
        if self.remaining is not None:
            self.remaining -= 1
        return 0.0, 0.0

    def acquire(self, max_wait: float, sleep: Callable[[float], None] | None = None) -> None:
        """Block until a request may go (and count it in flight); RateLimitExceeded when the limit
        lifts later than `max_wait` seconds from now."""
        deadline = self.clock() + max_wait
        with self._cond:
            while True:
                wait, until = self._decide_locked()
                if wait == 0:
                    return
                if until and until > deadline:
                    raise RateLimitExceeded(until, "refused" if self.refused else "exhausted")
                # Woken early by any answer; otherwise at the end of the wait (or every 0.25 s, to
                # see a shared file's news).
                self._cond.wait(0.25 if wait == WAIT_FOR_ANSWER else min(wait, 0.25))

    async def acquire_async(self, max_wait: float) -> None:
        """`acquire` for an event loop: polls between short sleeps (an answer frees a slot at once)."""
        import asyncio

        deadline = self.clock() + max_wait
        while True:
            wait, until = self.decide()
            if wait == 0:
                return
            if until and until > deadline:
                raise RateLimitExceeded(until, "refused" if self.refused else "exhausted")
            await asyncio.sleep(0.005 if wait == WAIT_FOR_ANSWER else min(wait, 0.25))

    # -- learning ----------------------------------------------------------------------------
    def cancel(self) -> None:
        """A request that took a slot went nowhere (no connection made): give the slot back."""
        with self._cond:
            self.in_flight = max(self.in_flight - 1, 0)
            if self.remaining is not None:
                self.remaining += 1
            self._cond.notify_all()

    def answered(self, status: int | None, headers: Mapping[str, str] | None) -> None:
        """A request that took a slot came back (`status` None: its answer was lost)."""
        record: float | None = None
        with self._cond:
            self.in_flight = max(self.in_flight - 1, 0)
            now = self.clock()
            if headers is not None:
                limit = _number(headers, "x-rate-limit-limit")
                remaining = _number(headers, "x-rate-limit-remaining")
                reset = _number(headers, "x-rate-limit-reset")
                if reset is not None:
                    reset = min(reset, now + MAX_PLAUSIBLE_WAIT)
                if remaining is not None and reset is not None:
                    self.limit = limit
                    # What the answer says, less the requests still in flight (it may not have
                    # counted them yet): an estimate that never lets too many go.
                    left = remaining - self.in_flight
                    if self.reset is None or reset > self.reset + 0.5:
                        self.reset, self.remaining = reset, left  # a new window
                    elif reset >= self.reset - 0.5:
                        self.remaining = left if self.remaining is None else min(self.remaining, left)
                    # an older window's answer, come late: nothing to learn
                    if remaining < 1 and reset > now:
                        self.blocked_until = max(self.blocked_until, reset + RESET_MARGIN)
                        record = self.blocked_until
                if status == 429:
                    self.refused += 1
                    wait = retry_after(headers, now)
                    until = max(reset + RESET_MARGIN if reset is not None else 0.0,
                                now + wait if wait is not None else 0.0)
                    if until <= now:
                        until = now + 1.0  # a 429 that says nothing about when: a second, then again
                    self.blocked_until = max(self.blocked_until, until)
                    self.remaining = 0
                    record = self.blocked_until
                elif status == 503:
                    wait = retry_after(headers, now)
                    if wait is not None:
                        self.blocked_until = max(self.blocked_until, now + wait)
            self._cond.notify_all()
        if record is not None and self.shared is not None:
            self.shared.record(record)
