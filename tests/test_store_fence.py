"""A lock holder that lost its lock (its connection was terminated mid-refresh) while another
host took over: the version fence and the re-read after a refusal keep exactly one live chain.

Only a shared store can lose a lock its holder still believes in; PostgreSQL here (its lock
connection is terminated with pg_terminate_backend), Redis in its own suite (a lease that ran out).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from procore_setup.testing import Fault
from helpers.engine import wait_for
from helpers.stores import NO_WAIT, TOKEN_PATH, Shared

pytestmark = pytest.mark.parametrize("shared", ["postgres"], indirect=True)


def _lock_connection(shared: Shared) -> int:
    """The pid of the backend that holds the store's advisory lock, once it holds it."""
    import psycopg

    with psycopg.connect(shared.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def _terminate(shared: Shared, pid: int) -> None:
    import psycopg

    with psycopg.connect(shared.url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
        assert row is not None and row[0]


def _held(fake: Any, **where: Any) -> threading.Event:
    release = threading.Event()
    wait: Any = lambda: release.wait(120)  # noqa: E731 - the hook and/or the gate
    fake.inject(Fault(paths=TOKEN_PATH, **dict.fromkeys(where, wait)))
    return release


def test_a_holder_refused_after_losing_its_lock_reads_the_newer_pair_and_exits_0(shared: Shared) -> None:
    """Host 1's refresh waits before Procore looks at it; its lock connection dies; host 2 refreshes
    first. Procore then refuses host 1's (spent) refresh token: host 1 finds host 2's pair in the store
    and uses it, instead of calling for a new login or marking the live chain as needing one."""
    one, two = shared.hosts
    one.login()
    spent = shared.profile()["refresh_token"]
    release = _held(shared.fake, gate=True)
    first = one.popen("refresh", "--force")
    try:
        wait_for(lambda: shared.fake.counts["faults"] >= 1, what="host 1's refresh to reach Procore", timeout=30)
        wait_for(lambda: _lock_connection(shared) > 0, what="host 1 to hold the lock", timeout=30)
        _terminate(shared, _lock_connection(shared))
        second = two.run("refresh", "--force")
        assert second.returncode == 0, second.stderr
    finally:
        release.set()
    r = one.collect(first)
    stored = shared.profile()
    assert shared.fake.refresh_token_state(spent) == "used"
    assert shared.fake.refresh_token_state(stored["refresh_token"]) == "active"  # host 2's pair is the live one
    assert shared.fake.counts["invalid_grant"] == 1  # host 1's late, spent refresh token
    assert r.returncode == 0, r.stderr
    assert not stored.get("reauth_required") and stored.get("refresh_started_at") is None
    assert two.token() == stored["access_token"]


def test_a_holder_whose_answer_comes_after_the_next_holder_was_refused_saves_the_only_live_pair(shared: Shared) -> None:
    """Host 1's refresh is processed (Procore rotates the pair) and its answer is held; its lock
    connection dies; host 2 retries the stored, now spent, refresh token and is refused. Host 1's
    pair is then the only live one: it is saved over host 2's "needs a login" mark, not lost."""
    one, two = shared.hosts
    one.login()
    spent = shared.profile()["refresh_token"]
    release = _held(shared.fake, hook=True)
    first = one.popen("refresh", "--force")
    try:
        wait_for(lambda: shared.fake.refresh_token_state(spent) == "used", what="Procore to rotate the pair", timeout=30)
        wait_for(lambda: _lock_connection(shared) > 0, what="host 1 to hold the lock", timeout=30)
        _terminate(shared, _lock_connection(shared))
        # Host 1's answer is held until host 2 ends; host 2 would wait for it on host 1's limits (its
        # mark's), so the mark is dated past them: host 2 gives up at once, and host 1 answers later.
        shared.outlive_mark()
        second = two.run("refresh", "--force", env=NO_WAIT)
        assert second.returncode == 4, second.stderr  # the stored token was spent by host 1's request
        assert shared.profile().get("reauth_required") is True
    finally:
        release.set()
    r = one.collect(first)
    assert r.returncode == 0, r.stderr
    stored = shared.profile()
    assert stored["refresh_token"] != spent
    assert shared.fake.refresh_token_state(stored["refresh_token"]) == "active"
    assert not stored.get("reauth_required")
    assert two.token() == stored["access_token"]
    assert shared.fake.counts["token:refresh_token"] == 2


def test_a_host_refused_while_the_first_holders_answer_is_on_its_way_waits_for_it(shared: Shared) -> None:
    """Host 1's refresh is processed and its answer held; its lock connection dies; host 2 takes the
    lock, finds host 1's in-flight mark and is refused (host 1's request used the token). Host 1 is
    alive: host 2 waits while that request could still be running, and uses host 1's pair when it
    lands, instead of telling its caller to log in again."""
    one, two = shared.hosts
    one.login()
    spent = shared.profile()["refresh_token"]
    release = _held(shared.fake, hook=True)
    first = one.popen("refresh", "--force")
    try:
        wait_for(lambda: shared.fake.refresh_token_state(spent) == "used", what="Procore to rotate the pair", timeout=30)
        wait_for(lambda: _lock_connection(shared) > 0, what="host 1 to hold the lock", timeout=30)
        _terminate(shared, _lock_connection(shared))
        second = two.popen("refresh", "--force")
        wait_for(lambda: shared.fake.counts["invalid_grant"] >= 1, what="host 2 to be refused", timeout=30)
        assert second.poll() is None  # waiting for host 1's answer, not giving up
    finally:
        release.set()
    a, b = one.collect(first), two.collect(second)
    assert a.returncode == 0, a.stderr
    assert b.returncode == 0, b.stderr
    assert "another process refreshed" in b.stderr
    stored = shared.profile()
    assert shared.fake.refresh_token_state(stored["refresh_token"]) == "active"
    assert not stored.get("reauth_required")
    assert two.token() == stored["access_token"]


def test_a_run_killed_while_it_waits_for_a_holders_answer_leaves_that_holders_mark(shared: Shared) -> None:
    """Host 1 dies after Procore used the token (the chain is dead); host 2, finding host 1's mark, is
    refused and waits for an answer that will never come, and is killed too. The mark left is host 1's,
    so the next run waits at most what is left of that one window, not a new one per run."""
    import signal

    one, two = shared.hosts
    one.login()
    spent = shared.profile()["refresh_token"]
    release = _held(shared.fake, hook=True)
    first = one.popen("refresh", "--force")
    try:
        wait_for(lambda: shared.fake.refresh_token_state(spent) == "used", what="Procore to rotate the pair", timeout=30)
        first.send_signal(signal.SIGKILL)
        assert one.collect(first).returncode == -signal.SIGKILL
    finally:
        release.set()
    # host 1's mark, dated back until 12 s are left of its own limits (so that a mark host 2 would
    # write, to the second, differs from it, and the window left is short)
    shared.outlive_mark(left=12)
    mark = shared.profile()["refresh_started_at"]
    second = two.popen("token")  # it would wait what is left of host 1's window
    wait_for(lambda: shared.fake.counts["invalid_grant"] >= 1, what="host 2 to be refused", timeout=30)
    second.send_signal(signal.SIGKILL)
    assert two.collect(second).returncode == -signal.SIGKILL
    assert shared.profile()["refresh_started_at"] == mark  # host 1's, not a new one of host 2's
    r = two.run("token", env=NO_WAIT)
    assert r.returncode == 4, r.stderr
    assert "interrupted" in r.stderr
