"""Soak and chaos runs: many processes keep one token chain alive against the fake Procore server.

Soak: 8 worker processes, each in a loop, run `procore-setup token`, `procore-setup refresh`
or a small Python worker that calls /rest/v1.0/me through `ProcoreAuth`, against the fake
server (in this process) with a 2-second access-token life, for --duration seconds.

Chaos (--chaos, or bench/chaos.py): the same, while the server drops, delays or fails
(500, 503 with Retry-After, 429) a share of requests -- some of them after processing them,
the "answer lost" case -- and a killer sends SIGKILL to workers, mostly to the one holding the
refresh lock (in the middle of a refresh). Every lost chain is classified: unavoidable when
Procore had used the refresh token but the answer never reached the file (the answer was
replaced by a fault, or the process was killed before its write), avoidable (a bug) otherwise.
After an unavoidable loss the run checks the tool's message, logs in again and goes on.

Shared stores (--store URL, or --store postgres / --store redis to start a throwaway server for
the run, see bench/_servers.py): the chain lives in the store, and --hosts N splits the workers
into N "hosts", each with its own HOME and no credentials file at all (the run checks that no
file under any HOME holds the chain). The monitor reads the store instead of the file, and in
a chaos run a second killer terminates the workers' store connections (PostgreSQL:
pg_terminate_backend; Redis: CLIENT KILL) at random moments, mostly the refresh-lock holder's
and those of a worker whose refresh Procore is handling.

    .venv/bin/python bench/soak.py [--duration 120] [--workers 8] [--json]
    .venv/bin/python bench/soak.py --chaos [--duration 120] [--kills 200] [--json]
    .venv/bin/python bench/soak.py --store postgres --hosts 2 [--chaos --conn-kills 100]

Exit status 0 when every must-be-zero figure is zero, 1 otherwise. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from procore_setup.testing import FakeProcore, Fault

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _servers import ServerUnavailable, store_scheme, store_url  # noqa: E402

EXE = str(Path(sys.executable).with_name("procore-setup"))
CLIENT_ID = "demo-client-id"
CLIENT_SECRET = "demo-client-secret"
KINDS = ("token", "refresh", "auth")
WEIGHTS = (5, 2, 3)
# What a message must say when a chain was lost unavoidably: the interrupted (or answer-lost) refresh.
EXPLAINS_LOSS = re.compile(r"interrupted|answer (?:was|is) lost|answer was lost|lost on the way", re.I)


# -- the fake server, with books on every refresh ---------------------------------------------

@dataclass
class Rotation:
    """Procore (the fake) used refresh token `old` and issued `new`."""

    old: str
    new: str
    t: float
    pid: int | None  # the process holding the refresh lock when the request arrived: the sender
    fault: str | None  # the fault that replaced the answer, if any ("drop", "500", ...)


class RecordingFake(FakeProcore):
    """FakeProcore that records every rotation and its sender, and can hold refreshes open.

    `hold` (seconds, max) delays each refresh request before and after Procore processes it,
    so that a SIGKILL lands in the middle of a refresh: before (the chain survives) or after
    (the token is used but the answer never reaches the file).
    """

    def __init__(self, *args: Any, lock_holder: Callable[[], int | None], hold: float = 0.0, seed: int = 0,
                 **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._lock_holder = lock_holder
        self.hold = hold
        self.candidates: Callable[[], list[int]] = lambda: []  # the live worker pids
        self.rotations: dict[str, Rotation] = {}
        self.invalid_grants: list[tuple[float, int | None]] = []
        self.fault_kinds: Counter[str] = Counter()
        self.senders: set[int] = set()  # pids whose refresh request reached the server
        self.inflight: set[int] = set()  # pids whose refresh request the server is handling now
        self._tl = threading.local()
        self._hold_rng = random.Random(seed)

    def lock_holder(self) -> int | None:
        """The worker pid holding the refresh lock (of the file, or of the shared store), or None."""
        return self._lock_holder()

    def _track(self, conn: socket.socket, add: bool) -> None:
        super()._track(conn, add)
        if add:
            self._tl.conn = conn  # the handler thread then handles this connection's requests

    def sender_pid(self) -> int | None:
        """The pid of the worker at the other end of this thread's connection; None if it is gone."""
        conn = getattr(self._tl, "conn", None)
        try:
            port = conn.getpeername()[1] if conn is not None else None
        except OSError:
            return None
        return socket_owner(port, self.port, self.candidates()) if port else None

    def _take_fault(self, path: str) -> Any:
        fault = super()._take_fault(path)
        if fault is not None and fault.consume and fault.status == 429:
            # A rate limiter answers before the application sees the request: a 429 after
            # processing is not a thing a real server does.
            fault = dataclasses.replace(fault, consume=False)
        self._tl.fault = fault
        if fault is not None:
            kind = "drop" if fault.drop else str(fault.status) if fault.status else "delay"
            with self._lock:
                self.fault_kinds[kind + (" after processing" if fault.consume else "")] += 1
        return fault

    def _handle(self, req: Any) -> Any:
        refresh = req.path.rstrip("/") == "/oauth/token" and req.method == "POST"
        old = None
        if refresh:
            params = req.params()
            refresh = params.get("grant_type") == "refresh_token"
            old = params.get("refresh_token")
        # The sender, found by its socket: the lock holder at this moment may already be the next
        # process, when the sender was killed after sending and the server read the request late.
        pid = self.sender_pid() if refresh else None
        if pid is not None:
            with self._lock:
                self.senders.add(pid)
                self.inflight.add(pid)
        try:
            return self._handle_refresh(req, refresh, old, pid)
        finally:
            if pid is not None:
                with self._lock:
                    self.inflight.discard(pid)

    def _handle_refresh(self, req: Any, refresh: bool, old: str | None, pid: int | None) -> Any:
        if refresh and self.hold:
            self._stopping.wait(self._hold_rng.uniform(0, self.hold))
        resp = super()._handle(req)
        if refresh:
            fault = getattr(self._tl, "fault", None)
            replaced = None
            if fault is not None and fault.consume and (fault.drop or fault.status is not None):
                replaced = "drop" if fault.drop else str(fault.status)
            with self._lock:
                if resp.status == 200 and old:
                    new = json.loads(resp.body)["refresh_token"]
                    self.rotations[old] = Rotation(old, new, time.time(), pid, replaced)
                elif resp.status == 400 and b"invalid_grant" in resp.body:
                    self.invalid_grants.append((time.time(), pid))
            if self.hold:
                self._stopping.wait(self._hold_rng.uniform(0, self.hold))
        return resp

    def issued_access(self, token: str) -> tuple[bool, float]:
        """(issued by this server at all, seconds of life left by the clock)."""
        with self._lock:
            pair = self._access.get(token)
            if pair is None:
                return False, 0.0
            return True, pair.issued_at + pair.life - self.clock()


def socket_owner(client_port: int, server_port: int, pids: list[int]) -> int | None:
    """Which of `pids` owns the TCP socket 127.0.0.1:client_port -> :server_port (Linux /proc)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            local, remote = parts[1], parts[2]
            if int(local.rsplit(":", 1)[1], 16) == client_port and int(remote.rsplit(":", 1)[1], 16) == server_port:
                inode = parts[9]
                break
        if inode:
            break
    if not inode or inode == "0":
        return None  # closed: the process that opened it is dead
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
        except OSError:
            continue
    return None


def lock_holder(lock_path: str) -> int | None:
    """The pid holding the flock on `lock_path`, from /proc/locks (Linux), or None."""
    try:
        ino = os.stat(lock_path).st_ino
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].endswith(f":{ino}"):
                    if parts[2] == "->":  # a waiter, not the holder
                        continue
                    return int(parts[4])
    except (OSError, ValueError):
        return None
    return None


# -- a shared store, seen from outside: who holds its lock, and its connections to kill -------------

class PostgresAdmin:
    """The workers' sessions on the store's database, through a connection of the store's own role
    (a role may see and terminate its own sessions: no superuser needed, so a given URL works)."""

    LOCK_CLASS = 1347571523  # procore_setup.stores.postgres.LOCK_CLASS: the advisory lock's first key

    def __init__(self, url: str) -> None:
        from urllib.parse import urlsplit

        self.url = url
        self.port = urlsplit(url).port or 5432
        self._conn: Any = None
        self._mu = threading.Lock()  # one connection, used by the killers and the classifier

    def _query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        import psycopg

        with self._mu:
            for attempt in range(2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                                     application_name="procore-bench-admin")
                    return list(self._conn.execute(sql, params).fetchall())
                except psycopg.OperationalError:
                    self._conn = None
                    if attempt:
                        raise
        return []

    def sessions(self) -> list[tuple[int, int, bool]]:
        """(backend pid, client port, holds the refresh lock) of every other session of this role here."""
        rows = self._query(
            "SELECT a.pid, a.client_port, EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted"
            " AND l.locktype = 'advisory' AND l.classid = %s) FROM pg_stat_activity a"
            " WHERE a.usename = current_user AND a.datname = current_database() AND a.pid <> pg_backend_pid()"
            " AND a.backend_type = 'client backend' AND a.client_port IS NOT NULL", (self.LOCK_CLASS,))
        return [(int(pid), int(port), bool(lock)) for pid, port, lock in rows]

    def owner(self, client_port: int, pids: list[int]) -> int | None:
        return socket_owner(client_port, self.port, pids)

    def lock_holder(self, pids: list[int]) -> int | None:
        try:
            for _backend, port, lock in self.sessions():
                if lock:
                    return self.owner(port, pids)
        except Exception:  # noqa: BLE001 - a lookup that failed finds no holder; the killer picks another
            return None
        return None

    def worker_sessions(self, pids: list[int]) -> list[tuple[int, int, bool]]:
        """(backend, worker pid, is the lock connection) for the sessions that belong to workers."""
        out = []
        for backend, port, lock in self.sessions():
            owner = self.owner(port, pids)
            if owner is not None:
                out.append((backend, owner, lock))
        return out

    def kill(self, backend: int) -> bool:
        rows = self._query("SELECT pg_terminate_backend(%s)", (backend,))
        return bool(rows and rows[0][0])

    def close(self) -> None:
        with self._mu:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class RedisAdmin:
    """The workers' connections to the store's Redis (CLIENT LIST / CLIENT KILL ID), and the lock
    holder where it can be told from outside.

    The lock is a key holding a random token, so no server view names its owner. But a run holds
    it on a connection of its own (RedisStore._hold_lock), and that connection's last command
    tells: a SET NX that took the lock is the last thing it sends until its first lease extension
    (an EVALSHA after lease/3, 10 s by default), while a waiter's refused SET is followed at once
    by a GET. So while the lock key exists, a connection whose last command is `set` is the
    holder's lock connection. A holder that has extended its lease once is not told apart (its
    connections all show `evalsha`): the killers then pick another target.
    """

    def __init__(self, url: str) -> None:
        import redis
        from urllib.parse import parse_qsl, urlsplit

        parts = urlsplit(url)
        self.port = parts.port or 6379
        prefix = dict(parse_qsl(parts.query, keep_blank_values=True)).get("prefix", "procore-setup:")
        self.lock_key = prefix + "lock"  # procore_setup.stores.redis: <prefix>lock
        self._client = redis.Redis.from_url(url, socket_timeout=10, single_connection_client=True)
        self._me: int | None = None
        self._mu = threading.Lock()

    def _clients(self) -> tuple[list[dict[str, Any]], bool]:
        """CLIENT LIST (normal clients but this one), and whether the lock key exists."""
        with self._mu:
            if self._me is None:
                self._me = int(self._client.client_id())
            clients = self._client.client_list(_type="normal")
            locked = self._client.exists(self.lock_key)
        return [c for c in clients if int(c["id"]) != self._me], bool(locked)

    def sessions(self) -> list[tuple[int, int, bool]]:
        """(client id, client port, is the lock holder's lock connection) of every other client."""
        clients, locked = self._clients()
        out = []
        for c in clients:
            port = int(str(c.get("addr", ":0")).rsplit(":", 1)[1])
            out.append((int(c["id"]), port, locked and str(c.get("cmd", "")).lower() == "set"))
        return out

    def lock_holder(self, pids: list[int]) -> int | None:
        try:
            for _id, port, lock in self.sessions():
                if lock:
                    owner = socket_owner(port, self.port, pids)
                    if owner is not None:
                        return owner
        except Exception:  # noqa: BLE001 - a lookup that failed finds no holder; the killer picks another
            return None
        return None

    def worker_sessions(self, pids: list[int]) -> list[tuple[int, int, bool]]:
        """(client id, worker pid, is the lock connection) for the clients that belong to workers."""
        out = []
        for client_id, port, lock in self.sessions():
            owner = socket_owner(port, self.port, pids)
            if owner is not None:
                out.append((client_id, owner, lock))
        return out

    def kill(self, client_id: int) -> bool:
        with self._mu:
            return bool(self._client.execute_command("CLIENT", "KILL", "ID", client_id))

    def close(self) -> None:
        with self._mu:
            self._client.close()


def store_admin(url: str) -> PostgresAdmin | RedisAdmin:
    return PostgresAdmin(url) if store_scheme(url) == "postgres" else RedisAdmin(url)


def no_password(url: str) -> str:
    from procore_setup.stores.shared import without_password

    return without_password(url)


# -- one run of a worker process ---------------------------------------------------------------

@dataclass
class Outcome:
    kind: str
    args: str
    rc: int
    seconds: float
    generation: int
    started: float
    pid: int
    first_line: str = ""
    stderr: str = ""
    host: int = 0
    refreshed: bool | None = None
    api: dict[str, int] = field(default_factory=dict)


@dataclass
class Loss:
    """One lost chain, and what the tool and the server knew about it."""

    at: float
    unavoidable: bool
    reason: str
    explained: bool  # the run that met invalid_grant said the refresh was interrupted / its answer lost
    message: str  # that run's first line
    later_message: str  # the first line a later run printed (reauth_required already set)
    relogin_attempts: int = 0
    # No chain was lost: the stored refresh token is live and the profile not marked for a new
    # login, yet a run said it needed one (a false alarm; no re-login follows).
    chain_alive: bool = False


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def pattern(line: str) -> str:
    """A message's first line with times, numbers and paths blanked, for a histogram of outcomes."""
    line = re.sub(r"'[^']*'", "'…'", line)
    line = re.sub(r"/\S+", "/…", line)
    line = re.sub(r"\d{4}-\d\d-\d\dT[\d:+]+", "T", line)
    line = re.sub(r"\d+(\.\d+)?", "N", line)
    return line[:160]


class Soak:
    def __init__(self, *, duration: float, workers: int, chaos: bool, kills: int, token_life: int = 2,
                 seed: int = 1, rate: float = 0.15, hold: float = 0.15, quiet: bool = False,
                 inject: list[dict[str, Any]] | None = None, store: str | None = None, hosts: int = 1,
                 conn_kills: int = 0) -> None:
        if hosts < 1 or (hosts > 1 and store is None):
            raise ValueError("--hosts N (N > 1) needs a shared store (--store): hosts share no file")
        self.duration = duration
        self.store = store  # a shared store's URL (with its password: never printed), or None: the file
        self.hosts = hosts
        self.conn_kills_target = conn_kills if chaos and store is not None else 0
        self.workers = workers
        self.chaos = chaos
        self.kills_target = kills if chaos else 0
        self.token_life = token_life
        self.seed = seed
        self.rate = rate
        self.hold = hold if chaos else 0.0
        self.quiet = quiet
        self.inject = inject or []  # fake.inject(Fault(**f)) for each, right after the first login
        self.rng = random.Random(seed)
        self.tmp = Path(tempfile.mkdtemp(prefix="procore-soak-"))
        self.config = self.tmp / "conf" / "credentials.toml"
        self.admin = store_admin(store) if store is not None else None
        lock_path = str(self.config) + ".lock"
        holder: Callable[[], int | None] = (lambda: lock_holder(lock_path)) if self.admin is None else \
            (lambda: self.admin.lock_holder(list(self.live)) if self.admin is not None else None)
        self.fake = RecordingFake(access_token_life=token_life, lock_holder=holder, hold=self.hold,
                                  seed=seed, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PROCORE_", "COVERAGE", "XDG_"))}
        base.update(PROCORE_SETUP_LOCK_TIMEOUT="30", PROCORE_SETUP_HTTP_TIMEOUT="10")
        self.homes: list[Path] = []
        self.envs: list[dict[str, str]] = []
        if store is None:
            self.envs.append(dict(base, PROCORE_SETUP_CONFIG=str(self.config)))
        else:
            # Each host: its own HOME (and config dir), the store's URL, and no credentials file.
            for k in range(hosts):
                home = self.tmp / f"host{k}"
                home.mkdir(parents=True)
                self.homes.append(home)
                self.envs.append(dict(base, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                                      PROCORE_SETUP_STORE=store))
        self.env = self.envs[0]  # logins and the final check run on host 0
        self.conn_kills: list[dict[str, Any]] = []
        self.store_reads = 0
        self.store_read_failures: list[str] = []
        self.mu = threading.Lock()
        self.live: dict[int, tuple[str, subprocess.Popen[str]]] = {}
        self.fake.candidates = lambda: list(self.live)
        self.busy = 0  # runs started and not yet in self.outcomes
        self.gate = threading.Event()  # set: workers may start processes
        self.done = threading.Event()
        self.loss_lock = threading.Lock()
        self.generation = 0
        self.outcomes: list[Outcome] = []
        self.losses: list[Loss] = []
        self.false_alarms: list[Loss] = []
        self.kills: list[dict[str, Any]] = []
        self.relogins = 0
        self.relogin_failures: Counter[str] = Counter()
        self.file_checks = 0
        self.parse_failures: list[str] = []
        self.mode_failures: list[str] = []
        self.unknown_tokens = 0
        self.expired_tokens = 0
        self.internal_errors: list[str] = []

    # -- set-up -------------------------------------------------------------------------------
    def log(self, text: str) -> None:
        if not self.quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def login(self) -> int:
        """Log in through `login --plain` (as a person re-authorizing would); retries under chaos."""
        attempts = 0
        while True:
            attempts += 1
            code = self.fake.issue_code()
            r = subprocess.run(
                [EXE, "login", "--plain", "--profile", "default", "--environment", "custom",
                 "--login-url", self.fake.url, "--api-url", self.fake.url, "--client-id", CLIENT_ID,
                 "--code=" + code],
                input="1\n", capture_output=True, text=True, timeout=120,
                env=dict(self.env, PROCORE_CLIENT_SECRET=CLIENT_SECRET),
            )
            if r.returncode == 0:
                return attempts
            last = [line for line in r.stderr.splitlines() if line.strip()][-1:] or [""]
            self.relogin_failures[f"exit {r.returncode}: {pattern(first_line(r.stderr))} ... {last[0][:200]}"] += 1
            if attempts >= 20:
                raise RuntimeError(f"login keeps failing: {first_line(r.stderr)}")
            time.sleep(0.2)

    # -- workers --------------------------------------------------------------------------------
    def command(self, kind: str) -> list[str]:
        if kind == "token":
            return [EXE, "token", "--min-valid", "1"]
        if kind == "refresh":
            force = ["--force"] if self.rng.random() < 0.15 else []
            return [EXE, "refresh", "--min-valid", "1", "--json", *force]
        return [sys.executable, os.path.abspath(__file__), "--auth-worker", self.fake.url, "6"]

    def slot(self, idx: int) -> None:
        rng = random.Random(self.seed * 1000 + idx)
        while not self.done.is_set():
            if not self.gate.wait(0.2):
                continue
            kind = rng.choices(KINDS, WEIGHTS)[0]
            with self.mu:
                if self.done.is_set() or not self.gate.is_set():
                    continue
                cmd = self.command(kind)
                gen = self.generation
                started = time.time()
                t0 = time.perf_counter()
                p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=self.envs[idx % len(self.envs)])
                self.live[p.pid] = (kind, p)
                self.busy += 1
            try:
                out, err = p.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
                err = "soak: worker hung for 120 s and was killed\n" + err
            dt = time.perf_counter() - t0
            with self.mu:
                self.live.pop(p.pid, None)
            o = Outcome(kind, " ".join(os.path.basename(c) for c in cmd[1:]), p.returncode, dt, gen, started, p.pid,
                        first_line(err), err, host=idx % len(self.envs))
            self.check_outcome(o, out)
            with self.mu:
                self.outcomes.append(o)
                self.busy -= 1
            if o.rc == 4:
                self.on_reauth(o)

    def check_outcome(self, o: Outcome, out: str) -> None:
        if o.rc == 1:
            self.internal_errors.append(o.first_line)
        if o.kind == "token" and o.rc == 0:
            tok = out.strip()
            issued, left = self.fake.issued_access(tok)
            if not issued or out != tok + "\n":
                self.unknown_tokens += 1
            elif left <= 0:
                self.expired_tokens += 1
        elif o.kind == "refresh" and o.rc >= 0:
            try:
                result = json.loads(out)
            except ValueError:
                if o.rc in (0, 4, 5):  # those report through --json; 1, 2, 3 and 6 fail before it
                    self.internal_errors.append(f"refresh --json printed no JSON (exit {o.rc})")
                return
            o.refreshed = bool(result.get("refreshed"))
            if not result.get("ok", True):  # --json reports the error on stdout, not stderr
                o.stderr = f"{result.get('error') or ''}\n{result.get('hint') or ''}\n{o.stderr}"
                o.first_line = first_line(o.stderr)
        elif o.kind == "auth":
            try:
                o.api = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
            except (ValueError, IndexError):
                o.api = {}

    # -- a lost chain -----------------------------------------------------------------------
    def on_reauth(self, trigger: Outcome) -> None:
        if trigger.generation != self.generation or not self.loss_lock.acquire(blocking=False):
            return
        try:
            if trigger.generation != self.generation:
                return
            self.gate.clear()
            self.drain()
            try:
                loss = self.classify()
            except Exception as exc:  # a bug here must show in the report, not hang the run
                loss = Loss(time.time(), False, f"soak harness error: {exc!r}", False, "", "")
            if loss.chain_alive:
                self.log(f"FALSE ALARM: {loss.reason}: {loss.message[:200]}")
                self.false_alarms.append(loss)
            else:
                self.log(f"chain lost ({'unavoidable' if loss.unavoidable else 'AVOIDABLE'}): {loss.reason}; "
                         f"message {'explains it' if loss.explained else 'DOES NOT explain it'}")
                loss.relogin_attempts = self.login()
                self.relogins += 1
                self.losses.append(loss)
            with self.mu:
                self.generation += 1
            if not self.done.is_set():
                self.gate.set()
        finally:
            self.loss_lock.release()

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for running workers to end (they meet the lost chain and exit 4 at once)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.mu:
                if not self.busy:
                    return
            time.sleep(0.02)
        with self.mu:
            stragglers = list(self.live.values())
        for _kind, p in stragglers:
            p.kill()
        while True:
            with self.mu:
                if not self.busy:
                    return
            time.sleep(0.02)

    def classify(self) -> Loss:
        now = time.time()
        with self.mu:
            gen = [o for o in self.outcomes if o.generation == self.generation and o.rc == 4]
        try:
            prof = self.stored_profile()
        except Exception as exc:  # noqa: BLE001 - the file or the store: either way it is in the report
            return Loss(now, False, f"credentials unreadable after the loss: {exc}", False, "", "")
        rt = prof.get("refresh_token", "")
        state = self.fake.refresh_token_state(rt)
        # The run that met invalid_grant at Procore wrote the explanation; later runs repeat the stored one.
        first = [o for o in gen if "needs a new login" not in o.first_line]
        later = [o for o in gen if "needs a new login" in o.first_line]
        message = first[0].stderr if first else ""
        explained = bool(EXPLAINS_LOSS.search(message)) if first else bool(
            later and EXPLAINS_LOSS.search(later[0].stderr))
        later_line = later[0].first_line if later else ""
        # (when the run that met invalid_grant was itself killed, its stored explanation is what later runs say)
        msg_line = first_line(message) or f"(that run was killed; later runs:) {later_line}"
        if state == "active":
            alive = not prof.get("reauth_required")
            what = ("a false alarm: exit 4 while the chain was alive (the stored refresh token is live and the "
                    "profile is not marked for a new login)") if alive else \
                "exit 4 while the stored refresh token was still good, and the profile is marked for a new login"
            return Loss(now, False, what + self.conn_kills_near(now, [o.pid for o in gen]), explained, msg_line,
                        later_line, chain_alive=alive)
        rot = self.fake.rotations.get(rt)
        if state != "used" or rot is None:
            return Loss(now, False, f"stored refresh token is {state} and was never rotated", explained, msg_line,
                        later_line)
        if rot.fault is not None:
            return Loss(now, True, f"Procore used the token, then the answer was replaced by a fault ({rot.fault})",
                        explained, msg_line, later_line)
        if rot.pid is None and any(rot.t - 10 <= k["t"] <= rot.t and k["mid_refresh"] for k in self.kills):
            return Loss(now, True, "Procore used the token after its sender had been SIGKILLed mid-refresh "
                        "(the request was still on its way)", explained, msg_line, later_line)
        killed = [k for k in self.kills if k["pid"] == rot.pid and k["t"] >= rot.t - 5]
        if killed:
            return Loss(now, True, "Procore used the token and answered; the process was SIGKILLed before its write",
                        explained, msg_line, later_line)
        with self.mu:
            runs = [f"{o.kind} exit {o.rc} after {o.seconds:.2f} s: {o.first_line[:120]}" for o in self.outcomes
                    if o.pid == rot.pid]
        # A killed store connection never excuses a loss: the pair is in memory, and the store must
        # reconnect and save it. The kills near it are named, for the reproduction.
        return Loss(now, False, f"Procore used the token and answered pid {rot.pid}, which was not killed, "
                    f"yet the new token never reached the {'store' if self.store else 'file'} (new token "
                    f"{self.fake.refresh_token_state(rot.new)}; that run: {runs or 'unknown'})"
                    + self.conn_kills_near(rot.t, [rot.pid]), explained, msg_line, later_line)

    def conn_kills_near(self, t: float, pids: list[int | None]) -> str:
        """The store-connection kills of the 30 s before `t` (those of `pids` marked), for a loss's reason."""
        near = [k for k in self.conn_kills if t - 30 <= k["t"] <= t + 1]
        if not near:
            return ""
        parts = [f"{'*' if k['pid'] in pids else ''}pid {k['pid']} {t - k['t']:.1f} s before "
                 f"({'lock' if k['lock_connection'] else 'data'} connection{', at the server' if k['at_server'] else ''})"
                 for k in near[-6:]]
        return f"; store connections killed just before: {', '.join(parts)}"

    # -- chaos: the killer ----------------------------------------------------------------------
    def killer(self) -> None:
        """SIGKILL workers, mostly in the middle of a refresh, until the target is reached."""
        rng = random.Random(self.seed + 7)
        t_end = time.monotonic() + self.duration
        while not self.done.is_set():
            left = self.kills_target - len(self.kills)
            t_end = max(t_end, time.monotonic() + 1.0)  # overtime: keep going until the target
            # front-loaded: re-logins after lost chains pause the workers (and the killer) for seconds
            interval = 0.05 if left <= 0 else max(0.05, (t_end - time.monotonic()) * 0.6 / left)
            if left <= 0:
                interval = self.duration / max(self.kills_target, 1)
            if self.done.wait(interval * rng.uniform(0.5, 1.5)):
                return
            if not self.gate.is_set():
                continue
            with self.mu:
                ours = {pid: kind for pid, (kind, _p) in self.live.items()}
            if not ours:
                continue
            roll = rng.random()
            pid, where = None, "anywhere"
            if roll < 0.15:
                # while Procore handles its refresh: before or after it uses the token
                for _ in range(50):
                    with self.fake._lock:
                        busy = [p for p in self.fake.inflight if p in ours]
                    if busy:
                        pid, where = busy[0], "at the server"
                        break
                    time.sleep(0.01)
            elif roll < 0.5:
                for _ in range(50):  # whoever holds the refresh lock: reading, marking, importing, sending
                    h = self.fake.lock_holder()
                    if h in ours:
                        pid, where = h, "holding the lock"
                        break
                    time.sleep(0.01)
            if pid is None:
                pid = rng.choice(list(ours))
            with self.mu:
                if pid not in self.live:
                    continue
                try:
                    # through Popen, which will not signal a pid it has already reaped (and the
                    # system may have given to another process, such as a re-login)
                    self.live[pid][1].send_signal(signal.SIGKILL)
                except ProcessLookupError:
                    continue
                if self.live[pid][1].returncode is not None:
                    continue  # it had ended: not a kill
                self.kills.append({"pid": pid, "t": time.time(), "kind": ours.get(pid, "?"),
                                   "mid_refresh": where != "anywhere", "where": where})

    # -- chaos on a shared store: the connection killer ----------------------------------------------
    def conn_killer(self) -> None:
        """Terminate workers' store connections at random moments until the target is reached:
        the refresh-lock holder's lock connection, every connection of a worker whose refresh
        Procore is handling (its answer must still be saved: reconnect and save), or any one."""
        assert self.admin is not None
        rng = random.Random(self.seed + 11)
        t_end = time.monotonic() + self.duration
        while not self.done.is_set():
            left = self.conn_kills_target - len(self.conn_kills)
            t_end = max(t_end, time.monotonic() + 1.0)
            interval = self.duration / max(self.conn_kills_target, 1) if left <= 0 else \
                max(0.05, (t_end - time.monotonic()) * 0.6 / left)
            if self.done.wait(interval * rng.uniform(0.5, 1.5)):
                return
            if not self.gate.is_set():
                continue
            try:
                self.kill_connections(rng)
            except Exception as exc:  # noqa: BLE001 - a failed lookup is one kill fewer, not a crash
                self.log(f"connection killer: {type(exc).__name__}: {str(exc)[:120]}")

    def kill_connections(self, rng: random.Random) -> None:
        assert self.admin is not None
        roll = rng.random()
        where, targets = "any connection", []
        # A target is looked for during half a second of wall time, not 50 tries: each look (the
        # server's client list, then /proc for every worker) is slow on a loaded machine, and on
        # Redis a SIGKILLed holder's lease keeps the lock for up to 30 s with no holder to find.
        # With 50 tries the Redis chaos run managed about 0.7 kills a second in its overtime
        # (attempts every 0.05 s) and ended short of its target (92 of 100).
        deadline = time.monotonic() + 0.5
        while True:
            with self.mu:
                pids = list(self.live)
            sessions = self.admin.worker_sessions(pids)
            if roll < 0.4:
                targets = [s for s in sessions if s[2]]
                where = "the lock holder's lock connection"
            elif roll < 0.7:
                with self.fake._lock:
                    busy = set(self.fake.inflight)
                targets = [s for s in sessions if s[1] in busy]
                where = "every connection of a worker whose refresh Procore is handling"
            if targets or roll >= 0.7 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not targets:
            where = "any connection"
            targets = [rng.choice(sessions)] if sessions else []
        for backend, pid, lock in targets:
            if self.done.is_set() or not self.gate.is_set():
                return
            if self.admin.kill(backend):
                with self.fake._lock:
                    at_server = pid in self.fake.inflight
                self.conn_kills.append({"pid": pid, "t": time.time(), "lock_connection": lock, "where": where,
                                        "at_server": at_server})

    # -- the stored chain: the file, or the shared store ------------------------------------------
    def open_shared(self) -> Any:
        from procore_setup.stores import open_store

        assert self.store is not None
        return open_store(store=self.store, environ={})

    def stored_profile(self) -> dict[str, Any]:
        """The profile as stored now: the file parsed, or `open_store(store=URL).load()` (retried
        for a while if the store cannot be reached: the harness reads, it must not give up early)."""
        if self.store is None:
            return dict(tomllib.loads(self.config.read_text())["profiles"]["default"])
        from procore_setup.errors import StoreUnavailable

        deadline = time.monotonic() + 60
        while True:
            store = self.open_shared()
            try:
                return dict(store.load().raw["profiles"]["default"])
            except StoreUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
            finally:
                store.close()

    def files_holding_the_chain(self) -> list[str]:
        """Files under the hosts' HOMEs that hold a refresh token the server issued, or any
        credentials file: with a shared store there must be none."""
        with self.fake._lock:
            tokens = {r.old for r in self.fake.rotations.values()} | {r.new for r in self.fake.rotations.values()}
        found = []
        for home in self.homes:
            for path in home.rglob("*"):
                if not path.is_file():
                    continue
                try:
                    data = path.read_bytes()[:1 << 20].decode("utf-8", "replace")
                except OSError:
                    continue
                if path.name.startswith("credentials") or "refresh_token" in data or \
                        any(t in data for t in tokens):
                    found.append(str(path.relative_to(self.tmp)))
        return found

    def monitor(self) -> None:
        if self.store is not None:
            self.monitor_store()
            return
        while not self.done.wait(0.01):
            try:
                st = os.stat(self.config)
                data = self.config.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                self.parse_failures.append(f"unreadable: {exc}")
                continue
            self.file_checks += 1
            if st.st_mode & 0o777 != 0o600:
                self.mode_failures.append(f"{st.st_mode & 0o777:04o}")
            try:
                doc = tomllib.loads(data.decode("utf-8"))
                prof = doc["profiles"]["default"]
                if not prof.get("refresh_token") or not prof.get("client_secret"):
                    raise ValueError("a profile without its refresh token or client secret")
            except (ValueError, KeyError, UnicodeDecodeError) as exc:
                self.parse_failures.append(f"{type(exc).__name__}: {str(exc)[:100]}")

    def monitor_store(self) -> None:
        """Read the shared store every 50 ms (a query each; the file is read every 10 ms): it must
        always load, and the profile always hold its refresh token and client secret."""
        from procore_setup.errors import ProcoreSetupError

        store = self.open_shared()
        try:
            while not self.done.wait(0.05):
                try:
                    prof = store.load().raw["profiles"]["default"]
                except ProcoreSetupError as exc:
                    self.store_read_failures.append(f"{type(exc).__name__}: {str(exc)[:150]}")
                    store.close()
                    continue
                except KeyError as exc:
                    self.parse_failures.append(f"no profile {exc}")
                    continue
                self.store_reads += 1
                self.file_checks += 1
                if not prof.get("refresh_token") or not prof.get("client_secret"):
                    self.parse_failures.append("a profile without its refresh token or client secret")
        finally:
            store.close()

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        if self.store is not None:
            store = self.open_shared()
            try:
                if store.exists():
                    raise SystemExit(f"The store {no_password(self.store)} already holds profiles: the soak logs in "
                                     "afresh and would overwrite them. Give it an empty store (or --store postgres).")
            finally:
                store.close()
        self.fake.start()
        try:
            self.login()
            for fault in self.inject:
                self.fake.inject(Fault(**fault))
            threads = [threading.Thread(target=self.slot, args=(i,), daemon=True) for i in range(self.workers)]
            threads.append(threading.Thread(target=self.monitor, daemon=True))
            if self.chaos:
                self.fake.chaos(rate=self.rate, kinds=("drop", "500", "503", "429", "delay"), seed=self.seed,
                                consume_share=0.3, delay=0.3)
                threads.append(threading.Thread(target=self.killer, daemon=True))
            if self.conn_kills_target:
                threads.append(threading.Thread(target=self.conn_killer, daemon=True))
            self.log(f"{'chaos' if self.chaos else 'soak'}: {self.workers} workers on {self.hosts} host(s) for "
                     f"{self.duration:g} s against {self.fake.url}, access tokens live {self.token_life} s, store "
                     f"{no_password(self.store) if self.store else self.config}")
            t_start = time.monotonic()
            self.gate.set()
            for t in threads:
                t.start()
            next_note = 10.0
            def going() -> bool:
                elapsed = time.monotonic() - t_start
                if elapsed < self.duration:
                    return True
                # chaos: past the duration only to finish the kills that re-logins delayed (at most 60 s)
                return self.chaos and (len(self.kills) < self.kills_target or
                                       len(self.conn_kills) < self.conn_kills_target) and elapsed < self.duration + 60

            while going():
                time.sleep(0.2)
                if not self.quiet and time.monotonic() - t_start >= next_note:
                    next_note += 10
                    c = self.fake.counts
                    self.log(f"{time.monotonic() - t_start:5.0f} s: {len(self.outcomes)} runs, "
                             f"{c['refresh_ok']} refreshes, {len(self.kills)} kills, "
                             f"{len(self.conn_kills)} connections killed, {len(self.losses)} chains lost")
            # finish: let the running workers end, then stop everything
            with self.loss_lock:
                self.gate.clear()
                self.done.set()
            self.drain()
            for t in threads:
                t.join(timeout=30)
            elapsed = time.monotonic() - t_start
            self.fake.clear_faults()
            self.fake.hold = 0.0
            final = self.final_check()
            return self.report(elapsed, final)
        finally:
            self.fake.stop()
            if self.admin is not None:
                self.admin.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def final_check(self) -> dict[str, Any]:
        """The chain still works: one more forced refresh, and Procore agrees it holds the live token."""
        prof = self.stored_profile()
        pending = prof.get("refresh_started_at") is not None
        r = subprocess.run([EXE, "refresh", "--force", "--quiet"], capture_output=True, text=True, env=self.env,
                           timeout=120)
        prof = self.stored_profile()
        live = self.fake.refresh_token_state(prof["refresh_token"]) == "active"
        temp_files = [] if self.store is not None else \
            [p.name for p in self.config.parent.iterdir() if p.name.endswith(".tmp")]
        return {"refresh_force_exit": r.returncode, "message": first_line(r.stderr), "chain_alive": live,
                "marker_pending_before": pending, "temp_files_left": len(temp_files),
                "files_holding_the_chain": self.files_holding_the_chain() if self.store is not None else []}

    def report(self, elapsed: float, final: dict[str, Any]) -> dict[str, Any]:
        c = self.fake.counts
        outs = self.outcomes
        token_lat = [o.seconds for o in outs if o.kind == "token" and o.rc == 0]
        hist: dict[str, dict[str, int]] = {}
        for kind in KINDS:
            h = Counter(str(o.rc) for o in outs if o.kind == kind)
            hist[kind] = dict(sorted(h.items()))
        other = Counter(f"{o.kind} exit {o.rc}: {pattern(o.first_line)}" for o in outs
                        if o.rc not in (0, -9) and o.first_line)
        notes = Counter(f"{o.kind} exit {o.rc}: {pattern(o.first_line)}" for o in outs if o.rc == 0 and o.first_line)
        api: Counter[str] = Counter()
        for o in outs:
            api.update(o.api)
        unavoidable = [x for x in self.losses if x.unavoidable]
        avoidable = [x for x in self.losses if not x.unavoidable]
        unexplained = [x for x in unavoidable if not x.explained]
        rep: dict[str, Any] = {
            "mode": "chaos" if self.chaos else "soak",
            "store": no_password(self.store) if self.store else "file",
            "hosts": self.hosts,
            "duration_s": round(elapsed, 1),
            "workers": self.workers,
            "access_token_life_s": self.token_life,
            "machine": machine(),
            "runs": len(outs),
            "runs_by_kind": {k: sum(1 for o in outs if o.kind == k) for k in KINDS},
            "exit_codes": hist,
            "refreshes_done": c["refresh_ok"],
            "refreshes_seen_by_server": c["token:refresh_token"],
            "refresh_cmd_said_refreshed": sum(1 for o in outs if o.refreshed),
            "answered_401_by_server": c["status_401"],
            "api_calls": dict(sorted(api.items())),
            "invalid_grant": c["invalid_grant"],
            "chains_lost": len(self.losses),
            "chains_lost_unavoidable": len(unavoidable),
            "chains_lost_avoidable": len(avoidable),
            "losses_not_explained_by_the_next_run": len(unexplained),
            "losses": [asdict(x) for x in self.losses],
            "false_alarms_chain_alive": len(self.false_alarms),
            "false_alarms": [asdict(x) for x in self.false_alarms],
            "relogins": self.relogins,
            "relogin_failures": dict(self.relogin_failures),
            "token_latency_ms": {"p50": round(percentile(token_lat, 50) * 1000, 1),
                                 "p99": round(percentile(token_lat, 99) * 1000, 1),
                                 "max": round(max(token_lat, default=float("nan")) * 1000, 1),
                                 "n": len(token_lat)},
            "tokens_not_issued_by_server": self.unknown_tokens,
            "tokens_expired_when_printed": self.expired_tokens,
            "internal_errors": len(self.internal_errors),
            "file_checks": self.file_checks,
            "file_parse_failures": len(self.parse_failures),
            "file_mode_failures": len(self.mode_failures),
            "other_outcomes": dict(other.most_common()),
            "notes_on_success": dict(notes.most_common()),
            "final_check": final,
        }
        if self.store is not None:
            rep["store_reads"] = self.store_reads
            rep["store_read_failures"] = len(self.store_read_failures)
            rep["store_read_failure_messages"] = dict(Counter(pattern(m) for m in self.store_read_failures))
            rep["files_holding_the_chain"] = len(final["files_holding_the_chain"])
            rep["runs_by_host"] = dict(sorted(Counter(str(o.host) for o in outs).items()))
            rep["connections_killed"] = len(self.conn_kills)
            rep["connections_killed_by_target"] = dict(Counter(k["where"] for k in self.conn_kills))
            rep["connections_killed_lock"] = sum(1 for k in self.conn_kills if k["lock_connection"])
            rep["connections_killed_at_the_server"] = sum(1 for k in self.conn_kills if k["at_server"])
        if self.chaos:
            rep["kills"] = len(self.kills)
            rep["kills_mid_refresh"] = sum(1 for k in self.kills if k["mid_refresh"])
            rep["kills_after_the_request_reached_the_server"] = sum(1 for k in self.kills if k["pid"] in self.fake.senders)
            rep["kills_by_kind"] = dict(Counter(k["kind"] for k in self.kills))
            rep["kills_by_moment"] = dict(Counter(k["where"] for k in self.kills))
            rep["faults_injected"] = c["faults"]
            rep["faults_by_kind"] = dict(sorted(self.fake.fault_kinds.items()))
        problems = []
        if not self.chaos and c["invalid_grant"]:
            problems.append("invalid_grant")
        for key in ("chains_lost_avoidable", "losses_not_explained_by_the_next_run", "false_alarms_chain_alive",
                    "tokens_not_issued_by_server",
                    "internal_errors", "file_parse_failures", "file_mode_failures"):
            if rep[key]:
                problems.append(key)
        if not self.chaos and self.losses:
            problems.append("chains_lost")
        if any(o.rc == 6 for o in outs):
            problems.append("exit 6 (file unusable)")
        if final["refresh_force_exit"] != 0 or not final["chain_alive"]:
            problems.append("final refresh --force")
        if self.chaos and len(self.kills) < self.kills_target:
            problems.append(f"only {len(self.kills)} kills (target {self.kills_target})")
        if self.store is not None:
            if rep["store_read_failures"]:
                problems.append("store_read_failures")
            if rep["files_holding_the_chain"]:
                problems.append("files_holding_the_chain")
            if len(self.conn_kills) < self.conn_kills_target:
                problems.append(f"only {len(self.conn_kills)} connections killed (target {self.conn_kills_target})")
        rep["problems"] = problems
        return rep


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = open("/proc/loadavg").read().split()[0]
    except OSError:
        load = "?"
    return f"{os.cpu_count()} CPUs ({cpu}), load {load} at the end, Python {sys.version.split()[0]}, {sys.platform}"


def summary(rep: dict[str, Any]) -> str:
    lat = rep["token_latency_ms"]
    lines = [
        f"{rep['mode']}: {rep['workers']} workers on {rep['hosts']} host(s), store {rep['store']}, "
        f"{rep['duration_s']} s, access tokens live {rep['access_token_life_s']} s",
        f"  machine: {rep['machine']}",
        f"  runs: {rep['runs']} {rep['runs_by_kind']}",
        f"  exit codes: {rep['exit_codes']}",
        f"  refreshes done (refresh_token successes at the server): {rep['refreshes_done']}",
        f"  refresh requests the server saw: {rep['refreshes_seen_by_server']}",
        f"  requests answered 401: {rep['answered_401_by_server']}   API calls by the ProcoreAuth worker: {rep['api_calls']}",
        f"  invalid_grant: {rep['invalid_grant']}",
        f"  chains lost: {rep['chains_lost']} (unavoidable {rep['chains_lost_unavoidable']}, avoidable "
        f"{rep['chains_lost_avoidable']}; not explained by the next run: {rep['losses_not_explained_by_the_next_run']})",
        f"  token latency: p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms (n={lat['n']})",
        (f"  file: {rep['file_checks']} checks, {rep['file_parse_failures']} parse failures, "
         f"{rep['file_mode_failures']} not 0600") if rep["store"] == "file" else
        (f"  store: {rep['store_reads']} reads, {rep['store_read_failures']} failed, {rep['file_parse_failures']} "
         f"without the chain; runs by host {rep['runs_by_host']}; files under the hosts' HOMEs holding the chain: "
         f"{rep['files_holding_the_chain']}"),
        f"  tokens printed that the server never issued: {rep['tokens_not_issued_by_server']}; "
        f"already expired when printed: {rep['tokens_expired_when_printed']}; internal errors: {rep['internal_errors']}",
    ]
    if rep["mode"] == "chaos":
        lines += [
            f"  kills: {rep['kills']} ({rep['kills_mid_refresh']} of the refresh-lock holder, "
            f"{rep['kills_after_the_request_reached_the_server']} after their refresh request reached the server) "
            f"by kind {rep['kills_by_kind']}, by moment {rep['kills_by_moment']}",
            f"  faults injected: {rep['faults_injected']} {rep['faults_by_kind']}",
        ]
        if rep["store"] != "file":
            lines.append(f"  store connections killed: {rep['connections_killed']} ({rep['connections_killed_lock']} "
                         f"lock connections, {rep['connections_killed_at_the_server']} while Procore handled that "
                         f"worker's refresh) by target {rep['connections_killed_by_target']}")
        lines += [
            f"  re-logins: {rep['relogins']} (failed login attempts: {sum(rep['relogin_failures'].values())})",
        ]
        for i, loss in enumerate(rep["losses"], 1):
            lines.append(f"    loss {i}: {'unavoidable' if loss['unavoidable'] else 'AVOIDABLE'}: {loss['reason']}; "
                         f"explained: {loss['explained']}: {loss['message'][:150]}")
    lines.append(f"  false alarms (exit 4 while the chain was alive; no re-login): {rep['false_alarms_chain_alive']}")
    for i, loss in enumerate(rep["false_alarms"], 1):
        lines.append(f"    false alarm {i}: {loss['reason']}: {loss['message'][:150]}")
    if rep["other_outcomes"]:
        lines.append("  other outcomes (exit code: message):")
        lines += [f"    {n:5d}  {k}" for k, n in rep["other_outcomes"].items()]
    if rep["notes_on_success"]:
        lines.append("  notes printed on success:")
        lines += [f"    {n:5d}  {k}" for k, n in rep["notes_on_success"].items()]
    f = rep["final_check"]
    lines.append(f"  final refresh --force: exit {f['refresh_force_exit']}, chain alive: {f['chain_alive']}, "
                 f"temp files left by killed processes: {f['temp_files_left']}")
    lines.append("  RESULT: " + ("ok" if not rep["problems"] else "PROBLEMS: " + ", ".join(rep["problems"])))
    return "\n".join(lines)


# -- the ProcoreAuth worker (a separate process) -------------------------------------------------

def auth_worker(url: str, n: int) -> int:
    """Call /rest/v1.0/me `n` times through ProcoreAuth; print a JSON tally; exit like the CLI would."""
    import httpx

    from procore_setup import ProcoreAuth
    from procore_setup.errors import ProcoreSetupError

    tally: Counter[str] = Counter()
    code = 0
    try:
        with httpx.Client(base_url=url, auth=ProcoreAuth(min_valid=1), timeout=10) as api:
            for _ in range(n):
                try:
                    r = api.get("/rest/v1.0/me")
                    tally[f"status {r.status_code}"] += 1
                except httpx.HTTPError as exc:
                    tally[f"transport error {type(exc).__name__}"] += 1
                time.sleep(0.05)
    except ProcoreSetupError as exc:
        print(str(exc), file=sys.stderr)
        code = exc.exit_code
    print(json.dumps(tally))
    return code


def main(argv: list[str] | None = None, *, chaos_default: bool = False) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--auth-worker"]:
        return auth_worker(argv[1], int(argv[2]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chaos", action="store_true", default=chaos_default, help="faults and SIGKILLs")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds (default 120)")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--kills", type=int, default=200, help="SIGKILLs to aim for in a chaos run (default 200)")
    ap.add_argument("--rate", type=float, default=0.15, help="share of requests faulted in a chaos run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE ('-' for stdout)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    ap.add_argument("--store", metavar="URL|postgres|redis",
                    help="a shared store: its URL (an empty one), or postgres / redis to start a throwaway server")
    ap.add_argument("--hosts", type=int, default=1, help="groups of workers, each with its own HOME (needs --store)")
    ap.add_argument("--conn-kills", type=int, default=None,
                    help="store connections to kill in a chaos run (default 100 with --store, 0 to turn off)")
    args = ap.parse_args(argv)
    if args.hosts < 1 or (args.hosts > 1 and args.store is None):
        ap.error("--hosts N (N > 1) needs --store: the hosts share no file, only the store")
    if args.store is not None and store_scheme(args.store) == "file":
        ap.error("--store takes a postgresql:// or redis:// URL, or the word postgres or redis")
    conn_kills = args.conn_kills if args.conn_kills is not None else (100 if args.store else 0)
    try:
        with store_url(args.store) as url:
            soak = Soak(duration=args.duration, workers=args.workers, chaos=args.chaos, kills=args.kills,
                        seed=args.seed, rate=args.rate, quiet=args.quiet, store=url, hosts=args.hosts,
                        conn_kills=conn_kills)
            rep = soak.run()
    except ServerUnavailable as exc:
        print(f"cannot start a server for --store {args.store}: {exc}", file=sys.stderr)
        return 2
    if args.json == "-":
        print(json.dumps(rep, indent=2))
    else:
        print(summary(rep))
        if args.json:
            Path(args.json).write_text(json.dumps(rep, indent=2) + "\n")
    return 0 if not rep["problems"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
