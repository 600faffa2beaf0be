"""Throwaway PostgreSQL and Redis servers for the bench scripts, started the way tests/servers.py does.

`--store postgres` / `--store redis` on a bench script means "start one for this run": a
PostgreSQL cluster in a temporary directory (initdb/pg_ctl; as root through `runuser -u
postgres`, since PostgreSQL refuses root), or a redis-server with a password and AOF, on a
free loopback port, thrown away at the end. Any other value is a store URL, used as it is.

tests/servers.py is a pytest plugin (it skips or fails tests); this is the same recipe without
pytest, so the bench runs from a plain venv on a fresh machine. Standard library only at
module level; psycopg and redis-py are imported when a server of theirs is used.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote, urlsplit

DEADLINE = 60.0  # seconds a server gets to start or stop
APP_USER = "app"
SUPERUSER = "postgres"


class ServerUnavailable(RuntimeError):
    """The server cannot be had here (not installed, no user to run it as, no driver)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _password() -> str:
    return secrets.token_urlsafe(24)


def _wait(ready: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not ready():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out after {DEADLINE:.0f}s waiting for {what}")
        time.sleep(0.05)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def store_scheme(url: str) -> str:
    """'postgres', 'redis' or 'file' for a store URL (or the words postgres / redis)."""
    if url in ("postgres", "postgresql"):
        return "postgres"
    if url == "redis":
        return "redis"
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("postgres", "postgresql"):
        return "postgres"
    if scheme in ("redis", "rediss"):
        return "redis"
    return "file"


# -- PostgreSQL ------------------------------------------------------------------------------------

def _pg_bindir() -> Path | None:
    def version(d: Path) -> int:
        return int(d.parent.name) if d.parent.name.isdigit() else 0

    debian = sorted((Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")), key=version, reverse=True)
    found = shutil.which("initdb")
    for d in ([Path(found).resolve().parent] if found else []) + debian:
        if all((d / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


class Postgres:
    """One throwaway cluster with a login role `app` owning database `bench`."""

    def __init__(self) -> None:
        bindir = _pg_bindir()
        if bindir is None:
            raise ServerUnavailable("PostgreSQL is not installed (no initdb/pg_ctl/postgres; Debian: apt-get install postgresql)")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ServerUnavailable("psycopg is not installed (pip install 'procore-setup[postgres]')") from None
        self.run_as: str | None = None
        if os.geteuid() == 0:
            import pwd

            try:
                pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise ServerUnavailable("running as root and there is no 'postgres' user to run PostgreSQL as") from None
            self.run_as = SUPERUSER
        self.bindir = bindir
        self.password = _password()
        self.app_password = _password()
        self.port = 0
        self.dir = Path(tempfile.mkdtemp(prefix="procore-bench-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.db = "bench"

    def _cmd(self, name: str, *args: str) -> list[str]:
        argv = [str(self.bindir / name), *args]
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else argv

    def _run(self, name: str, *args: str) -> None:
        r = subprocess.run(self._cmd(name, *args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           cwd=self.dir, timeout=DEADLINE)
        if r.returncode != 0:
            raise RuntimeError(f"{name} failed (exit {r.returncode}): {r.stdout}{r.stderr}\n{_tail(self.log)}")

    def start(self) -> None:
        if self.run_as:
            shutil.chown(self.dir, self.run_as, self.run_as)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self.run_as:
            shutil.chown(pwfile, self.run_as, self.run_as)
        try:
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=scram-sha-256", f"--pwfile={pwfile}",
                      "-E", "UTF8", "--locale=C", "--no-sync")
        finally:
            pwfile.unlink()
        for attempt in range(5):
            self.port = free_port()
            with open(self.data / "postgresql.conf", "a") as conf:  # the last setting wins
                conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                           f"unix_socket_directories = '{self.dir}'\nmax_connections = 200\n")
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(DEADLINE)), "start")
                break
            except RuntimeError:
                if attempt == 4 or "already in use" not in _tail(self.log, 40):
                    raise
        _wait(self._answers, f"PostgreSQL on port {self.port}")
        from psycopg import sql

        self.sql(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(APP_USER),
                                                                    sql.Literal(self.app_password)))
        self.sql(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(self.db), sql.Identifier(APP_USER)))

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password,
                               dbname="postgres", autocommit=True, connect_timeout=10)

    def _answers(self) -> bool:
        import psycopg

        try:
            with self._connect():
                return True
        except psycopg.OperationalError:
            return False

    def sql(self, query: Any) -> None:
        with self._connect() as conn:
            conn.execute(query)

    @property
    def url(self) -> str:
        return f"postgresql://{APP_USER}:{quote(self.app_password, safe='')}@127.0.0.1:{self.port}/{self.db}"

    def stop(self) -> None:
        try:
            if self.data.exists():
                subprocess.run(self._cmd("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"),
                               stdin=subprocess.DEVNULL, capture_output=True, cwd=self.dir, timeout=DEADLINE)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# -- Redis -----------------------------------------------------------------------------------------

class Redis:
    """One throwaway redis-server with a password and AOF persistence (appendfsync always)."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise ServerUnavailable("redis-server is not installed (Debian: apt-get install redis-server)")
        try:
            import redis  # noqa: F401
        except ImportError:
            raise ServerUnavailable("redis-py is not installed (pip install 'procore-setup[redis]')") from None
        self.exe = exe
        self.password = _password()
        self.port = 0
        self.dir = Path(tempfile.mkdtemp(prefix="procore-bench-redis-"))
        self.log = self.dir / "server.log"
        self.conf = self.dir / "redis.conf"  # the password, out of the process's argv
        self.conf.write_text(f"requirepass {self.password}\n")
        self.conf.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        for attempt in range(5):
            self.port = free_port()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [self.exe, str(self.conf), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                     "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            proc = self.proc

            def up() -> bool:
                if proc.poll() is not None:
                    return True
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                                         socket_connect_timeout=2)
                    try:
                        return bool(client.ping())
                    finally:
                        client.close()
                return False

            _wait(up, f"redis-server on port {self.port}")
            if proc.poll() is None:
                return
            if attempt == 4 or "in use" not in _tail(self.log, 40):
                raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{_tail(self.log)}")

    @property
    def url(self) -> str:
        return f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=DEADLINE)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def store_url(spec: str | None) -> Iterator[str | None]:
    """The store URL for a run: None (the file), a server started for the run ("postgres",
    "redis"), or the URL given. A started server is stopped and thrown away at the end."""
    if spec is None or spec == "file":
        yield None
        return
    if spec not in ("postgres", "postgresql", "redis"):
        yield spec
        return
    server: Postgres | Redis = Postgres() if store_scheme(spec) == "postgres" else Redis()
    try:
        server.start()
        yield server.url
    finally:
        server.stop()
