"""Throwaway PostgreSQL and Redis servers of our own: the one recipe for the tests and the bench.

- `PostgresServer`: a PostgreSQL cluster in a temporary directory, on a free loopback port,
  password-only (scram-sha-256), with a login role `app`; databases (`create_database`) and roles
  come and go. As root it runs as Debian's unprivileged `postgres` user, since PostgreSQL
  refuses root.
- `RedisServer`: a redis-server with a password (in a config file, not argv) and AOF persistence
  (`appendfsync always`, so a restart or a SIGKILL keeps every acknowledged write), or with the
  redis-server arguments a test gives instead (no persistence, an eviction policy), and with TLS
  only when given certificates (`tls_files()`).

`running_postgres()` / `running_redis()` start one for a `with` block and throw it away after
(at exit at the latest), or raise ServerUnavailable saying why there can be none here (not
installed, no user to run it as, no driver). tests/servers.py turns them into pytest fixtures
(one server per test session, so one per xdist worker, and servers of a test's own), which skip
or fail on ServerUnavailable; bench/_servers.py starts one for a bench run.

Standard library only at module level (no pytest): psycopg and redis-py are imported when a
server of theirs is used, so the bench runs this from a plain venv. Everything waits on state (a
connection, a ping, a process exit) with a bounded deadline.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

# Set (scripts/test does in CI): a store test whose server cannot be had fails instead of skipping.
REQUIRE_ENV = "PROCORE_SETUP_REQUIRE_SERVERS"
DEADLINE = 60.0  # seconds any server gets to start, stop or answer
APP_USER = "app"
SUPERUSER = "postgres"


def free_port() -> int:
    """A port free on 127.0.0.1 now. Another process may take it before the server binds it,
    so the servers retry with a new one when the bind fails."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _password() -> str:
    return secrets.token_urlsafe(24)  # URL- and .pgpass-safe: no ':', '@', '/' or '\\'


def _wait(ready: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Poll `ready` until it is true; fail naming `what` after `deadline` seconds."""
    end = time.monotonic() + deadline
    while not ready():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {deadline:.0f}s waiting for {what}")
        time.sleep(0.05)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Cleanup:
    """Stops what a session started, once: at teardown, or at exit if teardown never ran."""

    def __init__(self, close: Callable[[], None]) -> None:
        self._close: Callable[[], None] | None = close
        atexit.register(self)

    def __call__(self) -> None:
        close, self._close = self._close, None
        if close is not None:
            atexit.unregister(self)
            close()


# -- PostgreSQL ------------------------------------------------------------------------------------


PG_PROGRAMS = ("initdb", "pg_ctl", "postgres", "pg_dump")


def _pg_bindir() -> Path | None:
    """The directory that holds initdb, pg_ctl, postgres and pg_dump together: where initdb on
    PATH really lives (symlinks resolved), else Debian's newest /usr/lib/postgresql/N/bin."""
    def version(d: Path) -> int:
        return int(d.parent.name) if d.parent.name.isdigit() else 0

    debian = sorted((Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")), key=version, reverse=True)
    found = shutil.which("initdb")
    for d in ([Path(found).resolve().parent] if found else []) + debian:
        if all((d / name).exists() for name in PG_PROGRAMS):
            return d
    return None


def postgres_unavailable() -> str | None:
    """Why a PostgreSQL server cannot be had here (not installed, no user to run it as, no
    driver), or None when it can."""
    if _pg_bindir() is None:
        return ("PostgreSQL is not installed (no initdb, pg_ctl, postgres and pg_dump together on PATH or in "
                "/usr/lib/postgresql/*/bin); scripts/test installs Debian's postgresql when run as root with apt-get")
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and there is no runuser to run PostgreSQL as 'postgres'"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver is not installed (pip install 'procore-setup[postgres]')"
    return None


def new_postgres_server() -> "PostgresServer":
    """A new, not yet started PostgresServer (check postgres_unavailable() first); .init() starts it."""
    bindir = _pg_bindir()
    assert bindir is not None, "PostgreSQL is not installed"
    return PostgresServer(bindir, SUPERUSER if os.geteuid() == 0 else None)


class PostgresServer:
    """One PostgreSQL cluster for the session. Databases and roles come and go per test."""

    def __init__(self, bindir: Path, run_as: str | None) -> None:
        self.bindir = bindir
        self.run_as = run_as  # "postgres" when we are root, else None (run the binaries directly)
        self.password = _password()  # the superuser's
        self.app_password = _password()
        self.port = 0
        self.dir = Path(tempfile.mkdtemp(prefix="procore-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._cmdlog = self.dir / "commands.log"
        self._pgpass = self.dir / "pgpass"  # for pg_dump, which we run as ourselves
        self._roles: dict[str, list[str]] = {}  # database -> roles made for it (role_without_rights)
        self._names = itertools.count(1)
        self.guard: Any = None  # the secret guard of the current test (pg_store_url sets it)

    # running the server's own programs

    def _cmd(self, name: str, *args: str) -> list[str]:
        argv = [str(self.bindir / name), *args]
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else argv

    def _run(self, name: str, *args: str, timeout: float = DEADLINE) -> None:
        start = self._cmdlog.stat().st_size if self._cmdlog.exists() else 0
        with open(self._cmdlog, "ab") as out:
            r = subprocess.run(self._cmd(name, *args), stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT, cwd=self.dir, timeout=timeout)
        if r.returncode != 0:
            with open(self._cmdlog, "rb") as f:
                f.seek(start)
                said = f.read().decode(errors="replace").strip()
            raise RuntimeError(f"{name} {' '.join(args)} failed (exit {r.returncode}):\n{said}\n"
                               f"server log ({self.log}):\n{_tail(self.log)}")

    def _own(self, path: Path) -> None:
        if self.run_as:
            shutil.chown(path, self.run_as, self.run_as)

    def init(self) -> None:
        """initdb, start on a free port, make the role `app`."""
        self._own(self.dir)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self._own(pwfile)
        try:
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=scram-sha-256",
                      f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync")
        finally:
            pwfile.unlink()
        for attempt in range(5):
            self.port = free_port()
            with open(self.data / "postgresql.conf", "a") as conf:  # the last setting wins
                conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                           f"unix_socket_directories = '{self.dir}'\nmax_connections = 200\n")
            try:
                self.start()
                break
            except RuntimeError:
                if attempt == 4 or "already in use" not in _tail(self.log, 40):
                    raise
        self._pgpass.write_text(f"127.0.0.1:{self.port}:*:{SUPERUSER}:{self.password}\n")
        self._pgpass.chmod(0o600)
        from psycopg import sql

        self.superuser_sql(None, sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(APP_USER), sql.Literal(self.app_password)))

    def running(self) -> bool:
        r = subprocess.run(self._cmd("pg_ctl", "-D", str(self.data), "status"), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir)
        return r.returncode == 0

    def start(self) -> None:
        """Start the server (same port, same data) and wait until it takes connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(DEADLINE)), "start")
        _wait(self._answers, f"PostgreSQL on port {self.port} to take connections")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server: 'immediate' is a crash (recovery on the next start), 'fast' a clean
        shutdown that ends every session, 'smart' waits for the sessions to end."""
        if self.running():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", str(int(DEADLINE)), "stop")

    def restart(self, mode: str = "immediate") -> None:
        """Stop (by default as a crash) and start again on the same port with the same data."""
        self.stop(mode)
        self.start()

    def _answers(self) -> bool:
        import psycopg

        try:
            with self._connect(None):
                return True
        except psycopg.OperationalError:
            return False

    # SQL as the superuser

    def _connect(self, db: str | None) -> Any:
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password,
                               dbname=_dbname(db), autocommit=True, connect_timeout=10)

    def superuser_sql(self, db: str | None, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser in database `db` (a name or a store URL; None: the
        `postgres` database), autocommit; the rows it returned, or []."""
        with self._connect(db) as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return list(cur.fetchall()) if cur.description else []

    def create_database(self) -> str:
        """A new empty database owned by `app`; its name."""
        from psycopg import sql

        name = f"store_{next(self._names)}_{secrets.token_hex(3)}"
        self.superuser_sql(None, sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(APP_USER)))
        return name

    def drop_database(self, db: str) -> None:
        """Drop `db` (its sessions terminated first) and the roles made for it."""
        from psycopg import sql

        if not self.running():
            self.start()  # a test that stopped the server does not break the next one
        name = _dbname(db)
        self.terminate(name, usename=None)
        self.superuser_sql(None, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        for role in self._roles.pop(name, []):
            self.superuser_sql(None, sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))

    def terminate(self, db: str | None = None, usename: str | None = APP_USER) -> int:
        """pg_terminate_backend every session of `usename` (None: of anyone but us) in `db`
        (None: in every database); waits until each is gone; how many were terminated."""
        rows = self.superuser_sql(
            None,
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
            " AND (%(user)s::text IS NULL OR usename = %(user)s) AND (%(db)s::text IS NULL OR datname = %(db)s)",
            {"user": usename, "db": None if db is None else _dbname(db)})
        return int(rows[0][0])

    def dump(self, db: str) -> str:
        """The text of `pg_dump` of database `db` (a name or a store URL): schema and data."""
        out = self.dir / f"dump-{secrets.token_hex(4)}.sql"
        # to a file, not a pipe: what the dump holds is for the test to judge, not the secret guard
        r = subprocess.run([str(self.bindir / "pg_dump"), "--no-password", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", SUPERUSER, "-d", _dbname(db), "-f", str(out)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=DEADLINE,
                           env={**os.environ, "PGPASSFILE": str(self._pgpass)})
        try:
            if r.returncode != 0:
                raise RuntimeError(f"pg_dump of {_dbname(db)} failed (exit {r.returncode}): {r.stderr.strip()}")
            return out.read_text()
        finally:
            out.unlink(missing_ok=True)

    def role_without_rights(self, db: str) -> str:
        """A URL for a new login role that may connect to `db` and do nothing else there: it can
        read no table, create none (PostgreSQL 15 gives PUBLIC no CREATE on schema public) and no
        temporary one. It keeps PUBLIC's USAGE on schema public, as a role a DBA forgot to grant
        to would, so a query fails with "permission denied", not "does not exist". Dropped with
        the database."""
        from psycopg import sql

        name, password = f"norights_{secrets.token_hex(4)}", _password()
        self._note_secret(password, "the password of a PostgreSQL role without rights")
        dbname = _dbname(db)
        self.superuser_sql(None, sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(password)))
        self._roles.setdefault(dbname, []).append(name)
        self.superuser_sql(None, sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname)))
        self.superuser_sql(None, sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(dbname), sql.Identifier(name)))
        return self.url(dbname, password=password, user=name)

    def url(self, db: str, password: str | None = None, user: str = APP_USER) -> str:
        """postgresql://USER:PASSWORD@127.0.0.1:PORT/DB; the password defaults to app's (give
        another to make a wrong-password URL)."""
        pw = self.app_password if password is None else password
        return f"postgresql://{quote(user, safe='')}:{quote(pw, safe='')}@127.0.0.1:{self.port}/{quote(_dbname(db), safe='')}"

    def _note_secret(self, secret: str, what: str) -> None:
        if self.guard is not None:
            self.guard.add(secret, what)

    def close(self) -> None:
        try:
            if self.data.exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _dbname(db: str | None) -> str:
    """A database name from a name, a postgresql:// URL, or None (the `postgres` database)."""
    if db is None:
        return "postgres"
    if "://" in db:
        return urlsplit(db).path.lstrip("/")
    return db


# -- Redis -----------------------------------------------------------------------------------------

REDIS_DATABASES = 16
ADMIN_CLIENT = "test-admin"  # CLIENT SETNAME of the server's own admin connection


class RedisServer:
    """A redis-server with a password (in a config file, not argv) and one admin connection of
    its own (which kill_clients spares; named ADMIN_CLIENT, so tests can tell it from
    procore-setup's connections).

    By default with AOF persistence (`appendfsync always`), as the session's server; `extra`
    redis-server arguments replace that (e.g. "--save", "", "--appendonly", "no" for a server that
    keeps nothing). `tls`: a directory with ca.crt, server.crt and server.key (tls_files()) makes
    it listen with TLS only."""

    def __init__(self, exe: str, *extra: str, tls: Path | None = None) -> None:
        self.exe = exe
        self.extra = extra
        self.tls = tls
        self.password = _password()
        self.port = 0
        self.dir = Path(tempfile.mkdtemp(prefix="procore-redis-"))
        self.log = self.dir / "server.log"
        self._conf = self.dir / "redis.conf"  # the password, out of the process's argv
        self._conf.write_text(f"requirepass {self.password}\n")
        self._conf.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None
        self._admin: Any = None
        self._admin_lock = threading.Lock()  # the fake's request threads run hooks that use it too
        self._next_db = itertools.cycle(range(REDIS_DATABASES))

    def init(self) -> None:
        """Start on a free port (another one if that was taken before the server bound it)."""
        for attempt in range(5):
            self.port = free_port()
            try:
                self.start()
                return
            except RuntimeError:
                if attempt == 4 or "already in use" not in _tail(self.log, 40):
                    raise

    def start(self) -> None:
        """Start redis-server (on the same port, with the same directory, after the first start);
        wait for a PING."""
        if self.port == 0:
            self.init()
            return
        if self.proc is not None and self.proc.poll() is None:
            return
        ports = ["--port", str(self.port)] if self.tls is None else [
            "--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls / "server.crt"),
            "--tls-key-file", str(self.tls / "server.key"), "--tls-ca-cert-file", str(self.tls / "ca.crt"),
            "--tls-auth-clients", "no"]
        keep = self.extra or ("--save", "", "--appendonly", "yes", "--appendfsync", "always")
        with open(self.log, "ab") as log:
            # its own session: a Ctrl-C of the test run reaches pytest, whose teardown stops it
            self.proc = subprocess.Popen(
                [self.exe, str(self._conf), *ports, "--bind", "127.0.0.1", "--dir", str(self.dir),
                 "--databases", str(REDIS_DATABASES), "--daemonize", "no", *keep],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{_tail(self.log)}")
            return self._ping()

        _wait(up, f"redis-server on port {self.port} to answer PING")

    def _client(self, db: int = 0) -> Any:
        import redis

        tls: dict[str, Any] = {} if self.tls is None else {"ssl": True, "ssl_ca_certs": str(self.tls / "ca.crt")}
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, db=db,
                           client_name=ADMIN_CLIENT, single_connection_client=True, decode_responses=True,
                           socket_connect_timeout=5, socket_timeout=DEADLINE, **tls)

    def _ping(self) -> bool:
        import redis

        try:
            client = self._client()
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return False

    @property
    def admin(self) -> Any:
        """The fixture's own connection (db 0), opened on first use after each start."""
        if self._admin is None:
            self._admin = self._client()
        return self._admin

    def cli(self, *args: Any, db: int | str | None = None) -> Any:
        """Run one command on the admin connection, in logical database `db` (a number or a
        store URL; None: 0); its decoded reply, e.g. cli("DBSIZE", db=url) -> 0."""
        n = redis_db(db)
        with self._admin_lock:
            if n == 0:
                return self.admin.execute_command(*args)
            self.admin.execute_command("SELECT", n)
            try:
                return self.admin.execute_command(*args)
            finally:
                self.admin.execute_command("SELECT", 0)

    def kill_clients(self) -> int:
        """CLIENT KILL TYPE normal, sparing the admin connection: how many were killed."""
        return int(self.cli("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))

    def stop(self, hard: bool = False) -> None:
        """SHUTDOWN (the AOF is fsynced on every write anyway), or SIGKILL when `hard`."""
        import redis

        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if not hard:
            try:
                self.cli("SHUTDOWN")
            except (redis.ConnectionError, redis.TimeoutError):
                pass  # the server closes the connection as it exits
            except redis.ResponseError:
                proc.terminate()  # it refused (e.g. busy); SIGTERM is a clean shutdown too
        else:
            proc.send_signal(signal.SIGKILL)
        try:
            proc.wait(timeout=DEADLINE)
        finally:
            self._drop_admin()

    def restart(self, hard: bool = False) -> None:
        """Stop and start again on the same port with the same AOF: every key survives."""
        self.stop(hard)
        self.start()

    def _drop_admin(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                admin.close()
            except Exception:  # noqa: BLE001 - a connection to a dead server may fail to close
                pass

    def fresh_db(self) -> int:
        """The next logical database in turn, flushed."""
        self.start()  # a test that stopped the server does not break the next one
        n = next(self._next_db)
        self.cli("FLUSHDB", db=n)
        return n

    def url(self, db: int | str, password: str | None = None) -> str:
        """redis://:PASSWORD@127.0.0.1:PORT/N; another password makes a wrong-password URL."""
        pw = self.password if password is None else password
        return f"redis://:{quote(pw, safe='')}@127.0.0.1:{self.port}/{redis_db(db)}"

    def close(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)  # the data is thrown away with the directory
                self.proc.wait(timeout=DEADLINE)
        finally:
            self._drop_admin()
            shutil.rmtree(self.dir, ignore_errors=True)


def redis_db(db: int | str | None) -> int:
    """A logical database number from a number, a redis:// URL, or None (0)."""
    if db is None:
        return 0
    if isinstance(db, str) and "://" in db:
        return int(urlsplit(db).path.lstrip("/") or 0)
    return int(db)


def redis_unavailable() -> str | None:
    """Why a redis-server cannot be had here (not installed, no driver), or None when it can."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed; scripts/test installs Debian's redis-server when run as root with apt-get"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the Redis driver is not installed (pip install 'procore-setup[redis]')"
    return None


def new_redis_server(*extra: str, tls: Path | None = None) -> "RedisServer":
    """A new, not yet started RedisServer (check redis_unavailable() first); .init() starts it.
    `extra` and `tls` as RedisServer's."""
    exe = shutil.which("redis-server")
    assert exe is not None, "redis-server is not installed"
    return RedisServer(exe, *extra, tls=tls)


def tls_files(directory: Path) -> Path | None:
    """A CA and a server certificate for 127.0.0.1 in `directory` (openssl), for
    RedisServer(tls=...); None without openssl."""
    if shutil.which("openssl") is None:
        return None

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=DEADLINE)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=procore-setup test CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (directory / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "ext")
    return directory


# -- started for a while: the one way the tests and the bench get a server ---------------------------


class ServerUnavailable(RuntimeError):
    """The server cannot be had here (not installed, no user to run it as, no driver): the reason."""


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A started PostgresServer, stopped and thrown away at the end (or at exit, when the end
    never comes); ServerUnavailable, with the reason, when there can be none here."""
    reason = postgres_unavailable()
    if reason is not None:
        raise ServerUnavailable(reason)
    server = new_postgres_server()
    cleanup = Cleanup(server.close)
    try:
        server.init()
        yield server
    finally:
        cleanup()


@contextlib.contextmanager
def running_redis(*extra: str, tls: Path | None = None) -> Iterator[RedisServer]:
    """A started RedisServer (`extra` and `tls` as RedisServer's), stopped and thrown away at the
    end (or at exit); ServerUnavailable, with the reason, when there can be none here."""
    reason = redis_unavailable()
    if reason is not None:
        raise ServerUnavailable(reason)
    server = new_redis_server(*extra, tls=tls)
    cleanup = Cleanup(server.close)
    try:
        server.init()
        yield server
    finally:
        cleanup()
