"""Stores are closed: a shared store used in `with`, `ProcoreAuth`, the API clients, `get_token` and
the commands leave no connection open on the server once they are done, and nothing for the
garbage collector to find (a ResourceWarning, an error under `-W error::ResourceWarning`).

The connections are counted inside the real servers of the conftest fixtures: PostgreSQL's
pg_stat_activity (the app role's client backends in the store's database) and Redis's CLIENT
LIST (the clients on the store's logical database). The profile is logged in through the real
executable against the fake Procore over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, cast

import httpx
import pytest

from helpers.cli import base_env
from helpers.engine import wait_for
from helpers.stores import Shared, shared_on
from procore_setup.stores import open_store
from procore_setup.testing import FakeProcore

Count = Callable[[], int]


@pytest.fixture(params=["postgres", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path, fake: FakeProcore) -> Iterator[tuple[Shared, Count]]:
    """A shared store with a logged-in profile, and how many connections its server has to it now."""
    shared, _url, connections = shared_on(request.param, request, fake, tmp_path)
    count: Count = lambda: len(connections())  # noqa: E731
    shared.hosts[0].login()
    yield shared, count
    shared.finish()


def back_to(count: Count, before: int, what: str) -> None:
    """The server ends a closed connection's session on its own time: wait for it (a leaked one never ends)."""
    wait_for(lambda: count() == before, timeout=15, what=f"{what}: {before} connection(s) to the store, as before")


def test_a_shared_store_used_in_with_leaves_no_connection_open(store: tuple[Shared, Count]) -> None:
    shared, count = store
    before = count()
    with cast(Any, open_store(store=shared.url, environ={})) as opened:
        with opened.lock():
            doc = opened.load()
            doc.profiles["default"].set(last_error="seen by the lifecycle test")
            opened.save(doc)
            assert count() >= before + 2  # the data connection and the lock's own: the count sees them
    back_to(count, before, "after the with block")
    opened.close()  # again: nothing left to close, and no error
    assert opened.load().profiles["default"].data["last_error"] == "seen by the lifecycle test"  # usable again
    opened.close()
    back_to(count, before, "after a second use and close")


def test_closing_a_store_while_its_lock_is_held_ends_the_lock_connection_too(store: tuple[Shared, Count]) -> None:
    shared, count = store
    before = count()
    opened = cast(Any, open_store(store=shared.url, environ={}))
    with opened.lock():
        opened.load()
        opened.close()
        back_to(count, before, "after close() inside the lock")
    back_to(count, before, "after the lock block ended")
    assert shared.store().exists()  # nothing was lost


def test_procore_auth_closes_its_store(store: tuple[Shared, Count]) -> None:
    from procore_setup import ProcoreAuth

    shared, count = store
    shared.expire()  # a refresh: the lock, the data connection, the driver, all used
    before = count()
    with ProcoreAuth(store=shared.url) as auth, httpx.Client(base_url=shared.fake.url, auth=auth) as http:
        assert http.get("/rest/v1.0/me").status_code == 200
    assert shared.fake.counts["token:refresh_token"] == 1
    back_to(count, before, "after ProcoreAuth's with block")
    auth.close()  # idempotent
    back_to(count, before, "after a second close")


async def test_procore_auth_closes_its_store_in_async_with(store: tuple[Shared, Count]) -> None:
    from procore_setup import ProcoreAuth

    shared, count = store
    shared.expire()
    before = count()
    async with ProcoreAuth(store=shared.url) as auth, httpx.AsyncClient(base_url=shared.fake.url, auth=auth) as http:
        assert (await http.get("/rest/v1.0/me")).status_code == 200
    assert shared.fake.counts["token:refresh_token"] == 1
    back_to(count, before, "after ProcoreAuth's async with block")


async def test_the_api_clients_close_their_auths_store(store: tuple[Shared, Count]) -> None:
    from procore_setup import AsyncProcoreClient, ProcoreClient

    shared, count = store
    shared.expire()
    before = count()
    with ProcoreClient(store=shared.url) as client:
        assert client.get("/rest/v1.0/me").status_code == 200
    back_to(count, before, "after ProcoreClient's with block")
    async with AsyncProcoreClient(store=shared.url) as aclient:
        assert (await aclient.get("/rest/v1.0/me")).status_code == 200
    back_to(count, before, "after AsyncProcoreClient's async with block")
    plain = ProcoreClient(store=shared.url)
    assert plain.get("/rest/v1.0/me").status_code == 200
    plain.close()
    back_to(count, before, "after ProcoreClient.close()")
    assert shared.fake.counts["token:refresh_token"] == 1


GET_TOKEN = """
import hashlib, sys
from procore_setup import get_token
token = get_token(store=sys.argv[1])
print(hashlib.sha256(token.encode()).hexdigest())
"""


def test_get_token_leaves_nothing_for_the_garbage_collector(store: tuple[Shared, Count], tmp_path: Path) -> None:
    """In a process of its own with every ResourceWarning an error, and Python's development mode
    (which shows every unclosed resource): a refresh through get_token exits 0 and warns of nothing."""
    shared, count = store
    shared.expire()
    before = count()
    env = base_env(HOME=str(tmp_path / "script-home"))
    r = subprocess.run([sys.executable, "-W", "error::ResourceWarning", "-X", "dev", "-c", GET_TOKEN, shared.url],
                       capture_output=True, text=True, env=env, timeout=90, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert "ResourceWarning" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr
    stored = shared.profile()["access_token"]
    assert r.stdout.strip() == hashlib.sha256(stored.encode()).hexdigest()
    assert shared.fake.counts["token:refresh_token"] == 1
    back_to(count, before, "after the script ended")


@pytest.mark.parametrize("args", [("refresh", "--force"), ("token",), ("status",)])
def test_the_commands_close_what_they_open(store: tuple[Shared, Count], args: tuple[str, ...]) -> None:
    shared, _ = store
    shared.expire()
    strict = {"PYTHONDEVMODE": "1", "PYTHONWARNINGS": "error::ResourceWarning"}
    r = shared.hosts[1].run(*args, env=strict)
    assert r.returncode == 0, r.stderr
    assert "ResourceWarning" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr
