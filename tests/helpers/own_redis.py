"""redis-servers of a test's own (tests/conftest.py's `other_redis`): started with the arguments the
test gives (no persistence, TLS), on a free loopback port, with a password in a config file (not
argv). The session's shared server is tests/servers.py's `redis_server`; this class has the same
methods (.url(), .cli(), .kill_clients(), .restart(), .stop(), .start())."""

from __future__ import annotations

import itertools
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

DEADLINE = 30.0
ADMIN = "test-admin"  # the name of the test's own connections, so they are not counted as procore-setup's


def wait_for(predicate: Any, what: str, timeout: float = DEADLINE) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server on a free loopback port with a password (in a config file, not argv)."""

    def __init__(self, exe: str, *extra: str, tls: Path | None = None) -> None:
        self.exe = exe
        self.extra = extra
        self.tls = tls  # a directory with ca.crt, server.crt and server.key: TLS only
        self.password = secrets.token_urlsafe(24)
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="procore-redis-"))
        self.log = self.dir / "server.log"
        conf = self.dir / "redis.conf"
        conf.write_text(f"requirepass {self.password}\n")
        conf.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None
        self._dbs = itertools.cycle(range(16))

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        ports = ["--port", str(self.port)] if self.tls is None else [
            "--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls / "server.crt"),
            "--tls-key-file", str(self.tls / "server.key"), "--tls-ca-cert-file", str(self.tls / "ca.crt"),
            "--tls-auth-clients", "no"]
        args = [self.exe, str(self.dir / "redis.conf"), *ports, "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--daemonize", "no", *(self.extra or (
                    "--save", "", "--appendonly", "yes", "--appendfsync", "always"))]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}: {self.log.read_text()[-2000:]}")
            return self._ping()

        wait_for(up, f"redis-server on port {self.port} to answer PING")

    def client(self, db: int = 0) -> Any:
        import redis

        tls: dict[str, Any] = {} if self.tls is None else {"ssl": True, "ssl_ca_certs": str(self.tls / "ca.crt")}
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, db=db, client_name=ADMIN,
                           decode_responses=True, socket_connect_timeout=5, socket_timeout=DEADLINE, **tls)

    def _ping(self) -> bool:
        import redis

        try:
            with self.client() as c:
                return bool(c.ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return False

    def cli(self, *args: Any, db: int | str | None = None) -> Any:
        """One command in logical database `db` (a number or a store URL); its decoded reply.
        A connection of its own each time, so the fake's threads may call it too."""
        with self.client(redis_db(db)) as c:
            return c.execute_command(*args)

    def kill_clients(self) -> int:
        """CLIENT KILL TYPE normal (every client connection but this one): how many were killed."""
        return int(self.cli("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))

    def stop(self, hard: bool = False) -> None:
        import redis

        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if hard:
            proc.send_signal(signal.SIGKILL)
        else:
            try:
                self.cli("SHUTDOWN")
            except redis.ConnectionError:
                pass  # it closes the connection as it exits
        proc.wait(timeout=DEADLINE)

    def restart(self, hard: bool = False) -> None:
        self.stop(hard)
        self.start()

    def fresh_db(self) -> int:
        self.start()
        n = next(self._dbs)
        self.cli("FLUSHDB", db=n)
        return n

    def url(self, db: int | str, password: str | None = None) -> str:
        return f"redis://:{self.password if password is None else password}@127.0.0.1:{self.port}/{redis_db(db)}"

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=DEADLINE)
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_db(db: int | str | None) -> int:
    if db is None:
        return 0
    if isinstance(db, str) and "://" in db:
        return int(db.rsplit("/", 1)[1].split("?")[0] or 0)
    return int(db)


def redis_exe() -> str:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    try:
        import redis  # noqa: F401
    except ImportError:
        pytest.skip("the Redis driver is not installed (pip install 'procore-setup[redis]')")
    return exe


def tls_files(directory: Path) -> Path | None:
    """A CA and a server certificate for 127.0.0.1 (openssl), or None without openssl."""
    if shutil.which("openssl") is None:
        return None

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=procore-setup test CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (directory / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "ext")
    return directory
