"""A shared store used by several threads of one process, and closed while they work (issue 19's review).

- A Redis document row holding a version this program never writes: the last-resort save of a
  pair Procore has just issued goes over it, even when another thread of the process reads the
  store between that save's read and its write (the foreign version used to be the store's state,
  which that read reset: the write then expected "-1" and the pair was lost).
- `close()` from one thread while others use the store: it ends the data connection and tells held
  locks; it never cuts a lock's connection under the thread that holds or waits for it (PostgreSQL's
  wait then failed with "connection pointer is NULL"; redis-py raised a bare ValueError or
  AttributeError, which the CLI prints as an internal error), and a Redis lease held then is no
  longer renewed (it used to reconnect and keep the lock for as long as the block ran).

Real servers (tests/servers.py), the fake Procore over real HTTP; connections counted in the servers.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from helpers.engine import wait_for
from helpers.stores import Shared, pg_activity, pg_advisory_waiters, redis_client_ids, shared_on
from procore_setup.errors import ProcoreSetupError
from procore_setup.stores import open_store
from procore_setup.testing import FakeProcore

PREFIX = "procore-setup:"
THREADS = 16
REQUESTS = 3  # each thread's


def _none_left(connections: Callable[[], set[Any]], before: set[Any]) -> None:
    """Wait until no connection made since `before` is left (by ids: a connection closed just before
    it was taken may still be ending in the server then, and leave the count on its own time)."""
    wait_for(lambda: not connections() - before, timeout=15, what="no connection left once the store is closed")


# -- A: the foreign version travels with what was read, not in the store ---------------------------

def test_a_last_resort_save_over_a_foreign_version_survives_another_threads_read(
        rs: Shared, redis_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rs.hosts[0].login()
    store = rs.store()
    doc = store.load()
    doc.profiles["default"].set(refresh_token="the-pair-procore-just-issued", access_token="its-access-token")
    # another client (or a bad restore) wrote a version this program never writes
    redis_server.cli("HSET", PREFIX + "document", "version", "abc", db=rs.url)
    others: list[BaseException] = []

    def read_in_another_thread() -> None:
        try:
            store.load()
        except BaseException as exc:  # noqa: BLE001 - checked below
            others.append(exc)

    commit = store._commit
    calls: list[int] = []

    def commit_after_another_threads_read(*args: Any, **kwargs: Any) -> Any:
        # between the last-resort save's lenient read and its write: another thread's read
        if not calls:
            calls.append(1)
            reader = threading.Thread(target=read_in_another_thread)
            reader.start()
            reader.join(30)
        return commit(*args, **kwargs)

    monkeypatch.setattr(store, "_commit", commit_after_another_threads_read)
    said = store.save_last_resort(doc)
    assert "over what another process wrote" in said, said
    # the other thread's read ran in the gap, and was refused as every ordinary read of that version is
    assert len(others) == 1 and isinstance(others[0], ProcoreSetupError) and others[0].exit_code == 6, others
    assert rs.profile()["refresh_token"] == "the-pair-procore-just-issued"
    assert int(redis_server.cli("HGET", PREFIX + "document", "version", db=rs.url)) >= 1


# -- B: close() while other threads work --------------------------------------------------------------

@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_one_auth_closed_over_and_over_while_sixteen_threads_use_it(kind: str, request: pytest.FixtureRequest,
                                                                     tmp_path: Path, fake: FakeProcore) -> None:
    """Sixteen threads through one ProcoreAuth after expiry, while another thread closes it every
    10 ms: no builtin exception escapes (every failure would be a ProcoreSetupError, and there is
    none), one refresh reaches Procore, the chain stays alive (a later refresh works), and once the
    auth is closed for the last time the server holds none of its connections."""
    from procore_setup import ProcoreAuth

    shared, url, connections = shared_on(kind, request, fake, tmp_path)
    try:
        shared.hosts[0].login()
        old = shared.profile()["access_token"]
        shared.expire()
        before = connections()
        auth = ProcoreAuth(store=url)
        start = threading.Barrier(THREADS)
        statuses: list[int] = []
        failures: list[BaseException] = []

        def work() -> None:
            try:
                with httpx.Client(base_url=fake.url, auth=auth, timeout=60) as http:
                    start.wait(60)  # all sixteen at once, on a token that has expired
                    for _ in range(REQUESTS):
                        statuses.append(http.get("/rest/v1.0/me").status_code)
            except BaseException as exc:  # noqa: BLE001 - reported below, with the others
                failures.append(exc)

        stop_closing = threading.Event()

        def closer() -> None:
            while not stop_closing.is_set():
                try:
                    auth.close()
                except BaseException as exc:  # noqa: BLE001 - reported below
                    failures.append(exc)
                stop_closing.wait(0.01)

        threads = [threading.Thread(target=work, name=f"auth-{i}") for i in range(THREADS)]
        closing = threading.Thread(target=closer, name="closer")
        closing.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        stop_closing.set()
        closing.join(30)
        assert not any(t.is_alive() for t in threads + [closing]), "a thread is still running"
        builtin = [f"{type(e).__name__}: {e}" for e in failures if not isinstance(e, ProcoreSetupError)]
        assert not builtin, builtin
        assert not failures, [f"{type(e).__name__}: {e}" for e in failures]
        assert statuses == [200] * (THREADS * REQUESTS)
        assert fake.counts["token:refresh_token"] == 1  # exactly one refresh reached Procore
        assert fake.counts["invalid_grant"] == 0 and fake.counts["status_401"] == 0
        stored = shared.profile()["access_token"]
        assert stored != old and fake.access_token_valid(stored)
        # the chain is alive: the same auth, closed a hundred times, refreshes once more
        shared.expire()
        with httpx.Client(base_url=fake.url, auth=auth, timeout=60) as http:
            assert http.get("/rest/v1.0/me").status_code == 200
        assert fake.counts["token:refresh_token"] == 2 and fake.counts["invalid_grant"] == 0
        auth.close()
        _none_left(connections, before)
    finally:
        shared.finish()


def test_a_postgresql_wait_for_the_lock_is_not_cut_by_close(pg: Shared, pg_server: Any) -> None:
    """close() from another thread while this one waits for the lock: the wait goes on, and the lock
    is had once its holder lets go (it failed at once with "connection pointer is NULL")."""
    pg.hosts[0].login()
    holder, waiter = pg.store(), pg.store()
    held, release = threading.Event(), threading.Event()
    outcome: list[object] = []

    def hold() -> None:
        with holder.lock():
            held.set()
            release.wait(60)

    def wait() -> None:
        try:
            with waiter.lock(timeout=60):
                outcome.append(waiter.load().profiles["default"].name)
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome.append(exc)

    holding = threading.Thread(target=hold)
    holding.start()
    try:
        assert held.wait(30)
        waiting = threading.Thread(target=wait)
        waiting.start()
        wait_for(lambda: len(pg_advisory_waiters(pg_server, pg.url)) == 1, timeout=30,
                 what="the waiter to wait for the advisory lock in the server")
        waiter.close()
        waiter.close()
        assert waiting.is_alive() and not outcome, outcome  # still waiting
    finally:
        release.set()
        holding.join(30)
    waiting.join(60)
    assert outcome == ["default"], outcome
    waiter.close()
    holder.close()
    _none_left(lambda: set(pg_activity(pg_server, pg.url, "true")), set())


def test_a_redis_lease_is_not_renewed_once_its_store_is_closed(rs: Shared, redis_server: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """close() while a thread holds the lock: the lease is no longer renewed (it used to reconnect and
    keep it for as long as the block ran), so another host gets the lock when it runs out, and what the
    old holder then saves is refused by the fence; its block still ends cleanly, leaving no connection."""
    rs.hosts[0].login()
    before = redis_client_ids(redis_server, rs.url)
    monkeypatch.setenv("PROCORE_SETUP_REDIS_LEASE", "1")  # read by the store when it is opened
    holder = open_store(store=rs.url)
    other = rs.store()
    held, release = threading.Event(), threading.Event()
    outcome: list[BaseException | str] = []

    def hold() -> None:
        try:
            with holder.lock():
                doc = holder.load()
                held.set()
                release.wait(60)
                doc.profiles["default"].set(access_token="what-the-old-holder-still-holds")
                holder.save(doc)
                outcome.append("saved")
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome.append(exc)

    holding = threading.Thread(target=hold)
    holding.start()
    try:
        assert held.wait(30)
        holder.close()
        # no renewal: the 1 s lease runs out while the block is still in it
        wait_for(lambda: redis_server.cli("EXISTS", PREFIX + "lock", db=rs.url) in (0, "0", b"0"), timeout=20,
                 what="the lease of a closed store to run out")
        with other.lock(timeout=10):
            doc = other.load()
            doc.profiles["default"].set(client_id="changed-by-the-next-holder")
            other.save(doc)
    finally:
        release.set()
        holding.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], ProcoreSetupError), outcome
    assert outcome[0].exit_code == 5, outcome  # StoreChanged: the fence refused it
    assert rs.profile()["client_id"] == "changed-by-the-next-holder"
    holder.close()
    other.close()
    _none_left(lambda: redis_client_ids(redis_server, rs.url), before)
