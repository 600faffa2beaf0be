"""What Procore's rate-limit headers say, kept between requests and shared between processes.

Procore answers every API call with `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and
`X-Rate-Limit-Reset` (Unix seconds) for whichever window is closer to running out, and counts
refused requests against the quota too: a client that keeps sending after a 429 digs itself
deeper. `RateLimiter` is the one place that decides whether a request may go now:

- never while Remaining is 0 before its Reset, nor while a 429's (or a 503's) wait runs;
- each request sent takes one from the budget the last answer reported, and an answer can only
  lower that budget within its window: so no more requests are in flight than Remaining allows;
- once a Reset has passed the numbers are stale: one request (the probe) goes alone and its answer
  tells the rest (no burst into a window nobody knows yet).

The budget lives in a `MemoryState` (one process), or in a `FileState`: a small owner-only file
beside the credentials file, read and written under an advisory lock, so that every process of
the profile spends one budget, waits for one probe and honours the 429 any of them was refused
with. Standard library only (its file is made, locked and kept owner-only through filesystem.py):
the sync client waits on a Condition, the async one sleeps a little between looks at the state.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import threading
import time
from typing import Any, Awaitable, Callable, Iterator, Mapping

from . import filesystem

RESET_MARGIN = 0.05  # seconds after a Reset before the next request: the server's window must have turned
# Procore's windows are an hour and 10 seconds: a Reset or Retry-After further off than an hour (and
# a little for clocks) is nonsense (a Reset in milliseconds, a typo): unknown, never stored, since a
# stored wait would block every process of the profile.
MAX_PLAUSIBLE_WAIT = 3600.0 + 60.0
UNKNOWN_WAIT = 1.0  # seconds held after "none left" (429, or Remaining 0) that says nothing usable about when
PROBE_TIMEOUT = 5.0  # seconds others wait for a probe's answer before one of them probes instead
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
    if seconds != seconds or seconds > MAX_PLAUSIBLE_WAIT:
        return None
    return max(seconds, 0.0)


SKEW_IGNORED = 2.0  # seconds of difference with the server's Date that are only its rounding


def _clock_skew(headers: Mapping[str, str], now: float) -> float:
    """How far this machine's clock is ahead of the server's (its `Date` header), when that is more
    than the header's rounding: a Reset is the server's time, and is waited for by this clock."""
    raw = headers.get("date")
    if not raw:
        return 0.0
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(raw[:64])
    except (TypeError, ValueError, IndexError):
        return 0.0
    if when is None or when.tzinfo is None:
        return 0.0
    skew = now - when.timestamp()
    if abs(skew) <= SKEW_IGNORED or abs(skew) > MAX_PLAUSIBLE_WAIT:
        return 0.0
    return skew


# -- where the budget lives ------------------------------------------------------------------------

def _clean_state(obj: Any, now: float) -> dict[str, float]:
    """A state read from outside: known keys with plausible numbers only."""
    out: dict[str, float] = {}
    if not isinstance(obj, dict):
        return out
    for key in ("until", "reset", "remaining", "probe"):
        v = obj.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) < 1e12:
            out[key] = float(v)
    for key in ("until", "reset", "probe"):
        if key in out and out[key] > now + MAX_PLAUSIBLE_WAIT:
            del out[key]
    return out


class MemoryState:
    """The budget of one process."""

    shared = False

    def __init__(self) -> None:
        self._state: dict[str, float] = {}

    @contextlib.contextmanager
    def edit(self, now: float) -> Iterator[dict[str, float]]:
        yield self._state  # the limiter's own lock guards it


class FileState:
    """The budget of every process of a profile: `{profile: {until, reset, remaining, probe}}` in a
    JSON file (mode 0600), read and rewritten in place under `flock`. Advisory: a file that cannot be
    parsed is treated as empty; one that cannot be opened (a read-only directory) leaves the process
    pacing alone, in memory."""

    shared = True

    def __init__(self, path: str, key: str) -> None:
        self.path = path
        self.key = key
        self._broken = False
        self._alone: dict[str, float] = {}  # the budget when the file cannot be used: this process's own

    def __repr__(self) -> str:
        return f"FileState({self.path!r}, {self.key!r})"

    def _give_up(self, exc: OSError | None, why: str) -> None:
        """Pace alone, in memory, for the rest of this run, and say so once."""
        self._broken = True
        reason = (exc.strerror or type(exc).__name__) if exc is not None else why
        path = "".join(c if c.isprintable() else "?" for c in self.path)[:300]
        try:
            sys.stderr.write(f"procore-setup: warning: cannot use the rate-limit file {path} ({reason}); this run "
                             "paces its own requests only.\n")
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass

    def _open_locked(self) -> int:
        """The file open and locked, or -1 (the reason said once): never a FIFO, a link, a device or
        another user's file, and nothing here blocks but the lock of a regular file."""
        if self._broken:
            return -1
        fd = -1
        try:
            fd = filesystem.open_lock_file(self.path)
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(0, "not a regular file")
            if filesystem.owned_by_someone_else(st):
                raise OSError(0, "owned by another user")
            filesystem.lock(fd)
            filesystem.make_owner_only(fd, st)  # whatever made it wider
            return fd
        except (OSError, ImportError) as exc:
            if fd >= 0:
                os.close(fd)
            self._give_up(exc if isinstance(exc, OSError) else None, "no file locks on this system")
            return -1

    @contextlib.contextmanager
    def edit(self, now: float) -> Iterator[dict[str, float]]:
        fd = self._open_locked()
        if fd < 0:
            yield self._alone
            return
        try:
            try:
                raw = os.read(fd, STATE_FILE_LIMIT)
            except OSError:
                raw = b""
            try:
                whole = json.loads(raw.decode("utf-8")) if raw.strip() else {}
            except (ValueError, UnicodeDecodeError, RecursionError):
                whole = {}
            if not isinstance(whole, dict):
                whole = {}
            state = _clean_state(whole.get(self.key), now)
            before = dict(state)
            yield state
            if state != before:
                whole[self.key] = {k: round(v, 3) for k, v in state.items()}
                data = json.dumps(whole).encode("utf-8")
                try:
                    os.lseek(fd, 0, os.SEEK_SET)
                    os.ftruncate(fd, 0)
                    os.write(fd, data)
                except OSError:
                    pass  # advisory: the next answer tells again
        finally:
            os.close(fd)  # drops the lock


class RateLimiter:
    """The rate-limit budget of one client, for its threads (or tasks) and, with a `FileState`,
    for the other processes of the profile. Thread-safe."""

    def __init__(self, state: MemoryState | FileState | None = None, clock: Callable[[], float] = time.time) -> None:
        self.state = state or MemoryState()
        self.clock = clock
        self._cond = threading.Condition(threading.Lock())
        self.in_flight = 0
        self._probing = 0  # this process's requests that are the probe of a new window
        self.refused = 0  # 429s seen by this client
        self.heard = 0  # answers (with headers) this client has had: none means a wait came from the state

    def __repr__(self) -> str:
        return f"RateLimiter(state={self.state!r}, in_flight={self.in_flight})"

    # -- deciding ----------------------------------------------------------------------------
    def decide(self) -> tuple[float, float]:
        """Take a slot and return (0, 0), or return (seconds to wait, until when) without one.

        `WAIT_FOR_ANSWER` as the wait: no slot until a request in flight (here or elsewhere) is
        answered. The until-time is the Unix time the limit lifts (0 when waiting for an answer).
        """
        with self._cond:
            return self._decide_locked()

    def _decide_locked(self) -> tuple[float, float]:
        now = self.clock()
        with self.state.edit(now) as s:
            until = s.get("until", 0.0)
            if now < until:
                return until - now, until
            reset = s.get("reset")
            if reset is not None and now >= reset + RESET_MARGIN:
                s.pop("reset", None)  # a new window: its numbers come with the next answer
                s.pop("remaining", None)
            remaining = s.get("remaining")
            if remaining is None:
                probe = s.get("probe")
                if probe is not None and now < probe + PROBE_TIMEOUT and (self.state.shared or self.in_flight):
                    return WAIT_FOR_ANSWER, 0.0
                s["probe"] = now
                self._probing += 1
            elif remaining < 1:
                if reset is not None and reset > now:
                    when = reset + RESET_MARGIN
                    return max(when - now, 0.001), when
                if self.in_flight:
                    return WAIT_FOR_ANSWER, 0.0
                s.pop("remaining", None)  # spent, and no reset known: probe
                s["probe"] = now
                self._probing += 1
            else:
                s["remaining"] = remaining - 1
            self.in_flight += 1
            return 0.0, 0.0

    def _why(self) -> str:
        if self.refused:
            return "refused"
        return "stored" if not self.heard and self.state.shared else "exhausted"

    def shared_file(self) -> str | None:
        """The file the wait is shared through, if any (for messages)."""
        path = getattr(self.state, "path", None)
        return path if isinstance(path, str) and not getattr(self.state, "_broken", False) else None

    def acquire(self, max_wait: float) -> None:
        """Block until a request may go (and count it in flight); RateLimitExceeded when the limit
        lifts later than `max_wait` seconds from now."""
        deadline = self.clock() + max_wait
        with self._cond:
            while True:
                wait, until = self._decide_locked()
                if wait == 0:
                    return
                if until and until > deadline:
                    raise RateLimitExceeded(until, self._why())
                # Woken at once by an answer in this process; other processes' news is looked for
                # every few milliseconds while waiting for an answer.
                self._cond.wait(0.02 if wait == WAIT_FOR_ANSWER else min(wait, 0.25))

    async def acquire_async(self, max_wait: float, sleep: Callable[[float], Awaitable[Any]] | None = None) -> None:
        """`acquire` for an event loop; `sleep` is the loop's (default asyncio's; anyio's runs on trio too)."""
        if sleep is None:
            import asyncio

            sleep = asyncio.sleep
        deadline = self.clock() + max_wait
        while True:
            wait, until = self.decide()
            if wait == 0:
                return
            if until and until > deadline:
                raise RateLimitExceeded(until, self._why())
            await sleep(0.005 if wait == WAIT_FOR_ANSWER else min(wait, 0.25))

    # -- learning ----------------------------------------------------------------------------
    def cancel(self) -> None:
        """A request that took a slot went nowhere (no connection made): give the slot back."""
        with self._cond:
            self.in_flight = max(self.in_flight - 1, 0)
            with self.state.edit(self.clock()) as s:
                if self._probing:
                    self._probing -= 1
                    s.pop("probe", None)
                elif "remaining" in s:
                    s["remaining"] += 1
            self._cond.notify_all()

    def answered(self, status: int | None, headers: Mapping[str, str] | None) -> None:
        """A request that took a slot came back (`status` None: its answer was lost)."""
        with self._cond:
            self.in_flight = max(self.in_flight - 1, 0)
            now = self.clock()
            with self.state.edit(now) as s:
                if self._probing:
                    self._probing -= 1
                    s.pop("probe", None)
                if headers is not None:
                    self.heard += 1
                    self._learn(s, status, headers, now)
                    if "remaining" not in s and "until" not in s and "x-rate-limit-remaining" not in headers:
                        # a server that sends no rate-limit headers: nothing to pace by (look again in a minute)
                        s["remaining"], s["reset"] = 1e9, now + 60
            self._cond.notify_all()

    def _learn(self, s: dict[str, float], status: int | None, headers: Mapping[str, str], now: float) -> None:
        remaining = _number(headers, "x-rate-limit-remaining")
        reset = _number(headers, "x-rate-limit-reset")
        if reset is not None:
            reset += _clock_skew(headers, now)
            if reset > now + MAX_PLAUSIBLE_WAIT:
                reset = None  # milliseconds, or nonsense: not a window of Procore's
        if remaining is not None and remaining < 1 and status != 429 and (reset is None or reset <= now):
            # none left, and no usable Reset (missing, junk, past): a second, then a probe (as after a 429)
            s["until"] = max(s.get("until", 0.0), now + UNKNOWN_WAIT)
            s.pop("remaining", None)
            s.pop("reset", None)
        if remaining is not None and reset is not None and status != 429:
            # What the answer says, less this process's requests still in flight (it may not have
            # counted them); other processes' sends were taken from the budget when they went.
            left = remaining - self.in_flight
            known = s.get("reset")
            if reset + RESET_MARGIN > now:
                if known is None or abs(reset - known) > 0.5 or "remaining" not in s:
                    s["reset"], s["remaining"] = reset, left  # another window: the one that binds now
                else:
                    s["remaining"] = min(s["remaining"], left)
            if remaining < 1 and reset > now:
                s["until"] = max(s.get("until", 0.0), reset + RESET_MARGIN)
        if status == 429:
            self.refused += 1
            wait = retry_after(headers, now)
            until = max(reset + RESET_MARGIN if reset is not None else 0.0,
                        now + wait if wait is not None else 0.0)
            if until <= now:
                until = now + UNKNOWN_WAIT  # a 429 that says nothing about when: a second, then a probe
            s["until"] = max(s.get("until", 0.0), min(until, now + MAX_PLAUSIBLE_WAIT))
            # after the wait nothing is known: one probe first
            s.pop("remaining", None)
            s.pop("reset", None)
        elif status == 503:
            wait = retry_after(headers, now)
            if wait is not None:
                s["until"] = max(s.get("until", 0.0), now + wait)
