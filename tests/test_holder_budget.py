"""One budget for waiting on a live lock holder: a run that finds another's in-flight mark waits for
that holder's answer as long as the holder's own client may still be trying (every attempt to its
deadline, and the waits between them), not a shorter guess of its own.

Two hosts on one Redis store, through the real executable, against the fake Procore over HTTP. The
holder's first token request is never answered (the fake holds it past the client's timeout, then
drops it, unprocessed); the second is turned away by the rate limiter with Retry-After; the third
is processed (the refresh token is used) and its answer held while the holder loses its lease and
the waiter, refused with invalid_grant, starts waiting. The waiter must not say "log in again"
(exit 4): it uses the holder's answer once it lands, and the chain stays alive. The timeouts are
made short through PROCORE_SETUP_HTTP_TIMEOUT; nothing here sleeps.
"""

from __future__ import annotations

from typing import Any, cast


from helpers.engine import wait_for
from helpers.stores import TOKEN_PATH, Shared
from procore_setup.testing import FakeProcore

HTTP_TIMEOUT = 6  # seconds: each attempt's read timeout (its whole deadline: twice that)
RETRY_AFTER = 12  # the rate limiter's wait: the holder is past 2 x HTTP_TIMEOUT + 5 s from its mark by then
ENV = {"PROCORE_SETUP_HTTP_TIMEOUT": str(HTTP_TIMEOUT), "PROCORE_SETUP_LOCK_TIMEOUT": "90"}


def inject(fake: FakeProcore, **fault: Any) -> None:
    """One fault for the fake: as a `Fault` value where the fake takes one, else as keywords.
    (Branch `fake` turns inject's keywords into one `Fault`; the fields used here keep their names.)"""
    import procore_setup.testing as testing

    make = getattr(testing, "Fault", None)
    if make is not None:
        cast(Any, fake).inject(make(**fault))
    else:
        cast(Any, fake).inject(**fault)


def test_a_waiter_refused_after_the_holders_retries_waits_for_its_late_answer(rs: Shared, redis_server: Any) -> None:
    one, two = rs.hosts
    one.login()
    spent = rs.profile()["refresh_token"]
    fake = rs.fake
    lock_key = rs.store().key("lock")  # a RedisStore's key
    held = {"lost_lease": False, "waiter_refused": False}

    def lose_the_lease_then_answer() -> None:
        """The holder's third attempt, processed (the token is used): its answer waits while the
        holder's lease is taken away and the waiter is refused; then it goes out, inside the
        holder's read timeout."""
        try:
            redis_server.cli("DEL", lock_key, db=rs.url)
            held["lost_lease"] = True
            wait_for(lambda: fake.counts["invalid_grant"] >= 1, timeout=HTTP_TIMEOUT - 1.5,
                     what="the waiter to be refused")
            held["waiter_refused"] = True
        except Exception:  # noqa: BLE001 - never break the fake's handler; the asserts below say what happened
            pass

    inject(fake, drop=True, hang=HTTP_TIMEOUT + 2, paths=TOKEN_PATH)  # 1: never answered, never processed
    inject(fake, status=429, retry_after=RETRY_AFTER, paths=TOKEN_PATH)  # 2: wait RETRY_AFTER s, then try again
    inject(fake, hook=lose_the_lease_then_answer, paths=TOKEN_PATH)  # 3: processed, answer held
    holder = one.popen("refresh", "--force", env=ENV)
    waiter = None
    try:
        wait_for(lambda: fake.counts["faults"] >= 1, timeout=60, what="the holder's first token request")
        assert rs.profile().get("refresh_started_at") is not None  # its in-flight mark is saved
        waiter = two.popen("token", env=ENV)  # waits for the lock, finds the mark, and is refused
        a = one.collect(holder, timeout=120)
        b = two.collect(waiter, timeout=120)
    finally:
        for proc in (holder, waiter):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert held == {"lost_lease": True, "waiter_refused": True}, held  # the race the test is about happened
    assert fake.counts["faults"] == 3  # the holder's three attempts went out
    assert fake.counts["token:refresh_token"] == 2  # Procore processed two: the holder's third, the waiter's
    assert fake.counts["invalid_grant"] == 1
    assert a.returncode == 0, a.stderr
    assert b.returncode == 0, b.stderr  # not 4: the holder's late answer was waited for
    assert "another process refreshed" in b.stderr
    stored = rs.profile()
    assert b.stdout.strip() == stored["access_token"] and fake.access_token_valid(stored["access_token"])
    assert stored["refresh_token"] != spent and fake.refresh_token_state(stored["refresh_token"]) == "active"
    assert not stored.get("reauth_required") and stored.get("refresh_started_at") is None
    again = two.run("refresh", "--force")  # the chain is alive: the next refresh works
    assert again.returncode == 0, again.stderr
