"""Throwaway PostgreSQL and Redis servers for the bench scripts: the tests' own (tests/helpers/servers.py).

`--store postgres` / `--store redis` on a bench script means "start one for this run": a
PostgreSQL cluster in a temporary directory (initdb/pg_ctl; as root through `runuser -u
postgres`, since PostgreSQL refuses root), or a redis-server with a password and AOF, on a
free loopback port, thrown away at the end. Any other value is a store URL, used as it is.

tests/servers.py is a pytest plugin (it skips or fails tests); the servers themselves are one
recipe in tests/helpers/servers.py, standard library only at module level, so the bench runs
them from a plain venv on a fresh machine without pytest.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.servers import (  # noqa: E402
    free_port,
    new_postgres_server,
    new_redis_server,
    postgres_unavailable,
    redis_unavailable,
)

__all__ = ["ServerUnavailable", "free_port", "store_scheme", "store_url"]


class ServerUnavailable(RuntimeError):
    """The server cannot be had here (not installed, no user to run it as, no driver)."""


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
    if store_scheme(spec) == "postgres":
        reason = postgres_unavailable()
        if reason is not None:
            raise ServerUnavailable(reason)
        pg = new_postgres_server()
        try:
            pg.init()
            yield pg.url(pg.create_database())
        finally:
            pg.close()
    else:
        reason = redis_unavailable()
        if reason is not None:
            raise ServerUnavailable(reason)
        redis = new_redis_server()
        try:
            redis.init()
            yield redis.url(0)
        finally:
            redis.close()
