"""Real PostgreSQL and Redis servers for the shared-store tests: a pytest plugin (tests/conftest.py).

Fixtures:
- `pg_server` (session): a PostgreSQL cluster of its own in a temporary directory, on a free
  loopback port, password-only (scram-sha-256), with a login role `app`. As root (sessions and CI)
  it runs as Debian's unprivileged `postgres` user, since PostgreSQL refuses root.
- `pg_store_url` (function): a fresh, empty database owned by `app`, as
  `postgresql://app:PASSWORD@127.0.0.1:PORT/DBNAME`; dropped after the test.
- `redis_server` (session): a redis-server of its own with a password and AOF persistence
  (`appendfsync always`, so a restart or a SIGKILL keeps every acknowledged write).
- `redis_store_url` (function): a flushed logical database, `redis://:PASSWORD@127.0.0.1:PORT/N`.
- `other_redis` (function): makes redis-servers of the test's own, started with the redis-server
  arguments the test gives (no persistence, an eviction policy) and `tls=` certificates
  (`helpers.servers.tls_files`); stopped after the test.

Where a server cannot be had (not installed, no `postgres` user to run it as, no driver), the
tests that use it skip with a reason naming what is missing, unless PROCORE_SETUP_REQUIRE_SERVERS=1
(scripts/test sets it in CI): then they fail with that reason, so CI cannot go green by skipping.

The passwords of both servers are handed to the secret guard of tests/conftest.py for each test
that uses a store URL, so a store that prints its password fails the test.

The servers themselves (one recipe, shared with bench/_servers.py) are tests/helpers/servers.py's
`running_postgres()` / `running_redis()`; each pytest session, so each xdist worker, starts its
own on free ports.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.servers import (
    REQUIRE_ENV,
    PostgresServer,
    RedisServer,
    ServerUnavailable,
    running_postgres,
    running_redis,
)

__all__ = ["PostgresServer", "RedisServer", "other_redis", "pg_server", "pg_store_url", "redis_server",
           "redis_store_url"]


def _unavailable(reason: str) -> None:
    """Skip the test for `reason`, or fail it when the servers are required (CI)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def _or_skip() -> Iterator[None]:
    """A server that cannot be had skips the test (or fails it, when required)."""
    try:
        yield
    except ServerUnavailable as exc:
        _unavailable(str(exc))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this session's own (see the module's docstring)."""
    with _or_skip(), running_postgres() as server:
        yield server


@pytest.fixture
def pg_store_url(pg_server: PostgresServer, secret_guard: Any) -> Iterator[str]:
    """A fresh empty database owned by `app`, as a postgresql:// URL; dropped after the test."""
    secret_guard.add(pg_server.app_password, "the PostgreSQL password of app")
    secret_guard.add(pg_server.password, "the PostgreSQL superuser's password")
    pg_server.guard = secret_guard
    if not pg_server.running():
        pg_server.start()
    db = pg_server.create_database()
    try:
        yield pg_server.url(db)
    finally:
        pg_server.guard = None
        pg_server.drop_database(db)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this session's own (see the module's docstring)."""
    with _or_skip(), running_redis() as server:
        yield server


@pytest.fixture
def redis_store_url(redis_server: RedisServer, secret_guard: Any) -> Iterator[str]:
    """A flushed logical database of the session's redis-server, as a redis:// URL."""
    secret_guard.add(redis_server.password, "the Redis password")
    n = redis_server.fresh_db()
    try:
        yield redis_server.url(n)
    finally:
        redis_server.start()
        redis_server.cli("FLUSHDB", db=n)


@pytest.fixture
def other_redis(secret_guard: Any) -> Iterator[Callable[..., RedisServer]]:
    """Servers of a test's own, started with the given redis-server arguments (no persistence, say)."""
    with contextlib.ExitStack() as servers:
        def make(*extra: str, tls: Path | None = None) -> RedisServer:
            with _or_skip():
                server = servers.enter_context(running_redis(*extra, tls=tls))
            secret_guard.add(server.password, "the Redis password")
            return server

        yield make
