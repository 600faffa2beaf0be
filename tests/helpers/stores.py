"""Two "hosts" sharing one store, and what the store tests look at inside the servers.

`Shared` is one store (a file, a PostgreSQL database or a Redis database of tests/servers.py),
the fake Procore, and the store's raw contents; each of its two `Host`s has its own HOME and
runs the real executable with PROCORE_SETUP_STORE set. The `shared` (every store) and `pg`
(PostgreSQL) fixtures of tests/conftest.py build them.
"""

from __future__ import annotations

import subprocess
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, cast

from helpers.cli import CLIENT_ID, CLIENT_SECRET, EXE, base_env
from helpers.engine import assert_no_secrets, issued_secrets
from procore_setup.profile import utcnow
from procore_setup.stores import open_store
from procore_setup.testing import FakeProcore, Fault

TOKEN_PATH = ["/oauth/token"]
KINDS = ("file", "postgres", "redis")
# A shared store's run refused after finding another holder's in-flight mark waits for that
# holder's answer while the holder could still save it, on the holder's own limits written into
# its mark (oauth.holder_time_left), never on its own: where the test knows that holder is dead or
# held, Shared.outlive_mark dates the mark back past them. NO_WAIT only shortens the run's own requests.
NO_WAIT = {"PROCORE_SETUP_HTTP_TIMEOUT": "1"}
# A Redis lock is a lease: a holder the test SIGKILLs keeps the lock until its lease runs out
# (30 s by default), and the other host waits for that. A holder given a short lease lets the
# test go on in seconds; the file and PostgreSQL ignore the setting (their locks die with the
# process or its connection).
SHORT_LEASE = {"PROCORE_SETUP_REDIS_LEASE": "5"}


class Host:
    """One machine's view: its own HOME (so nothing can be shared through ~/.config), the store's URL."""

    def __init__(self, shared: "Shared", home: Path) -> None:
        self.shared = shared
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.env = base_env(HOME=str(home), PROCORE_SETUP_STORE=shared.url, PROCORE_SETUP_LOCK_TIMEOUT="30",
                            XDG_CONFIG_HOME=str(home / ".config"))

    def run(self, *args: str, input: str = "", env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([EXE, *args], input=input, capture_output=True, text=True,
                           env=dict(self.env, **(env or {})), timeout=timeout)
        return self.shared.check(r, token=args[:1] == ("token",))

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([EXE, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=dict(self.env, **(env or {})))

    def collect(self, proc: subprocess.Popen[str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
        out, err = proc.communicate(timeout=timeout)
        r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return self.shared.check(r, token=cast("list[str]", proc.args)[1:2] == ["token"])

    def token(self) -> str:
        r = self.run("token")
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def login(self, profile: str = "default", *extra: str) -> subprocess.CompletedProcess[str]:
        fake = self.shared.fake
        r = self.run("login", "--plain", "--profile", profile, "--environment", "custom", "--login-url", fake.url,
                     "--api-url", fake.url, "--client-id", CLIENT_ID, "--code=" + fake.issue_code(), *extra,
                     input="1\n", env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
        assert r.returncode == 0, r.stderr
        return r

    def nothing_written_here(self) -> bool:
        """No credentials file (nor anything else of ours) under this host's HOME."""
        return not any(p.name.startswith(("credentials", "procore")) for p in self.home.rglob("*"))


class Shared:
    """One store, the fake Procore, and what the test may look at: the store's rows, raw."""

    def __init__(self, kind: str, url: str, fake: FakeProcore, tmp: Path, raw: Callable[[], str],
                 secrets: list[str]) -> None:
        self.kind = kind
        self.url = url
        self.fake = fake
        self.tmp = tmp
        self.raw = raw  # everything the store holds, as text (the file; pg_dump; every Redis key)
        self.hosts = [Host(self, tmp / f"host{i}") for i in (1, 2)]
        self._secrets = secrets  # the store's own password(s)
        self._seen: list[tuple[subprocess.CompletedProcess[str], str | None]] = []
        self._opened: list[Any] = []  # the stores `store()` opened, closed by `finish`

    def store(self, **kw: Any) -> Any:
        """The store, opened in this process; closed when the test ends (`finish`)."""
        store = open_store(store=self.url, environ={}, **kw)
        self._opened.append(store)
        return store

    def profile(self, name: str = "default") -> dict[str, Any]:
        store = open_store(store=self.url, environ={})
        try:
            return dict(store.load().profiles[name].data)
        finally:
            close_store(store)

    def edit(self, change: Callable[[Any], object]) -> None:
        """Change the stored document the way the program does (under the lock, versioned)."""
        store = open_store(store=self.url, environ={})
        try:
            with store.lock():
                doc = store.load()
                change(doc)
                store.save(doc)
        finally:
            close_store(store)

    def outlive_mark(self, name: str = "default", left: float = 0.0) -> None:
        """Date the in-flight mark back until its holder's own limits (written into it, or the
        defaults) leave `left` seconds: as if the holder had been gone that long. The mark stays
        its holder's; only its time moves."""
        from procore_setup.oauth import CLOCK_SKEW, MARK_ROUNDING, holder_budget

        def back(doc: Any) -> None:
            prof = doc.profiles[name]
            budget = prof.refresh_budget if prof.refresh_budget is not None else holder_budget()
            prof.set(refresh_started_at=utcnow() - timedelta(seconds=budget + MARK_ROUNDING + CLOCK_SKEW - left))

        self.edit(back)

    def expire(self, name: str = "default") -> None:
        self.fake.expire_access_tokens()
        self.edit(lambda doc: doc.profiles[name].set(expires_at=utcnow() - timedelta(seconds=60)))

    def secrets(self) -> set[str]:
        return issued_secrets(self.fake) | set(self._secrets)

    def check(self, r: subprocess.CompletedProcess[str], *, token: bool) -> subprocess.CompletedProcess[str]:
        printed = r.stdout.strip() if token and r.returncode == 0 else None
        assert_no_secrets(r, self.secrets(), printed_token=printed)
        self._seen.append((r, printed))
        return r

    def finish(self) -> None:
        while self._opened:
            close_store(self._opened.pop())
        for r, printed in self._seen:
            assert_no_secrets(r, self.secrets(), printed_token=printed)


def close_store(store: Any) -> None:
    """Close a store opened in the test's process (a shared store's connections; a file has none)."""
    close = getattr(store, "close", None)
    if close is not None:
        close()


def redis_dump(url: str) -> str:
    """Every key of the store's Redis database and what it holds, as text."""
    import redis

    client = redis.Redis.from_url(url)
    out = []
    try:
        for key in client.scan_iter(count=1000):
            raw_kind = client.type(key)
            kind = raw_kind.decode() if isinstance(raw_kind, bytes) else str(raw_kind)
            value: Any = {"string": client.get, "hash": client.hgetall, "list": lambda k: client.lrange(k, 0, -1),
                          "set": client.smembers, "zset": lambda k: client.zrange(k, 0, -1)}.get(kind, client.dump)(key)
            out.append(f"{key!r} {kind} {value!r}")
    finally:
        client.close()
    return "\n".join(out)


def hold_answers(fake: FakeProcore, **fault: Any) -> threading.Event:
    """The fake holds the next token request just before its answer goes out, until the event is set."""
    release = threading.Event()

    def hold() -> None:
        release.wait(120)

    fake.inject(Fault(hook=hold, paths=TOKEN_PATH, **fault))
    return release


def pg_lock_waiters(shared: Shared) -> int:
    import psycopg

    with psycopg.connect(shared.url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()
    return int(row[0]) if row else 0


# -- inside PostgreSQL -------------------------------------------------------------------------------

def pg_activity(server: Any, url: str, where: str) -> list[int]:
    """The pids of the app's client backends in the store's database that match `where` (SQL)."""
    rows = server.superuser_sql(
        None,
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND usename = 'app' AND backend_type = 'client backend'"
        f" AND pid <> pg_backend_pid() AND ({where})",
        (url.rsplit("/", 1)[1],))
    return [int(r[0]) for r in rows]


def pg_lock_holders(server: Any, url: str) -> list[int]:
    """Connections that took the store's advisory lock and keep it (idle in their transaction)."""
    return pg_activity(server, url, "query LIKE '%%pg_advisory_xact_lock%%' AND state LIKE 'idle in transaction%%'")


def pg_advisory_waiters(server: Any, url: str) -> list[int]:
    return pg_activity(server, url, "wait_event_type = 'Lock' AND wait_event = 'advisory'")


def kill_backend(server: Any, pid: int) -> None:
    assert server.superuser_sql(None, "SELECT pg_terminate_backend(%s, 10000)", (pid,)) == [(True,)]


def chain_intact(pg: Shared) -> dict[str, Any]:
    """The stored profile, checked: its refresh token is the live one at Procore, no mark is left."""
    prof = pg.profile()
    assert pg.fake.refresh_token_state(prof["refresh_token"]) == "active", "the stored chain is not the live one"
    assert prof.get("refresh_started_at") is None and not prof.get("reauth_required")
    return prof


def store_rows(server: Any, url: str) -> list[tuple[Any, ...]]:
    return server.superuser_sql(url, "SELECT kind, name, fields::text, version, updated_at FROM procore_setup "
                                     "ORDER BY kind, name")


BLOCK_SQL = """
CREATE FUNCTION pg_temp_block() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN COALESCE(NEW, OLD); END $$;
"""


def redis_client_ids(server: Any, url: str) -> set[str]:
    """The ids of the clients connected to the store's logical database (CLIENT LIST; the
    fixture's own admin connection sits on database 0, which no store URL of the fixtures uses)."""
    db = url.rsplit("/", 1)[1]
    return {line.split(" ", 1)[0] for line in str(server.cli("CLIENT", "LIST")).splitlines()
            if f" db={db} " in f" {line} "}


def shared_on(kind: str, request: Any, fake: Any, tmp_path: Path) -> tuple[Shared, str, Callable[[], set[Any]]]:
    """A `Shared` on the conftest server of `kind` ("postgres" or "redis"), its store URL, and the
    connections its server holds to that store now (pids or client ids: count them with len)."""
    connections: Callable[[], set[Any]]
    if kind == "postgres":
        server = request.getfixturevalue("pg_server")
        url = request.getfixturevalue("pg_store_url")
        shared = Shared(kind, url, fake, tmp_path, lambda: server.dump(url), [server.app_password])
        connections = lambda: set(pg_activity(server, url, "true"))  # noqa: E731
    else:
        server = request.getfixturevalue("redis_server")
        url = request.getfixturevalue("redis_store_url")
        shared = Shared(kind, url, fake, tmp_path, lambda: redis_dump(url), [server.password])
        connections = lambda: redis_client_ids(server, url)  # noqa: E731
    return shared, url, connections
