"""Throwaway PostgreSQL and Redis servers for the bench scripts: the tests' own recipe.

`--store postgres` / `--store redis` on a bench script means "start one for this run": a
PostgreSQL cluster in a temporary directory (initdb/pg_ctl; as root through `runuser -u
postgres`, since PostgreSQL refuses root), or a redis-server with a password and AOF, on a
free loopback port, thrown away at the end. Any other value is a store URL, used as it is.

The servers are started by tests/helpers/servers.py (`running_postgres`, `running_redis`), the
same code the tests' fixtures use, so a server the bench measures is the one the tests check.
The import goes this way (bench/ -> tests/helpers/, never tests/ -> bench/) because tests/ is
what CI runs and type-checks on every change: it must not depend on scripts that are run by
hand, and putting bench/ on the tests' sys.path would let any test import a bench script by
accident. tests/helpers/servers.py is standard library only at module level (no pytest), so the
bench runs it from a plain venv on a fresh machine.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.servers import (  # noqa: E402
    ServerUnavailable,
    free_port,
    running_postgres,
    running_redis,
)

__all__ = ["ServerUnavailable", "free_port", "store_scheme", "store_url"]


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
    "redis"), or the URL given. A started server is stopped and thrown away at the end;
    ServerUnavailable says why one cannot be started here."""
    if spec is None or spec == "file":
        yield None
    elif spec not in ("postgres", "postgresql", "redis"):
        yield spec
    elif store_scheme(spec) == "postgres":
        with running_postgres() as pg:
            yield pg.url(pg.create_database())
    else:
        with running_redis() as redis:
            yield redis.url(0)
