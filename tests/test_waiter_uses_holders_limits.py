"""A run that finds another host's in-flight mark waits on that holder's limits, written into its
mark, not on its own: a waiter with a shorter HTTP timeout than the holder's must not say "log in
again" (exit 4) while the holder's late answer keeps the chain alive.

Two hosts on one Redis store, through the real executable, against the fake Procore over HTTP: the
holder's only token request is processed (the refresh token is used) and its answer held, inside
the holder's 15 s read timeout, while the holder loses its lease and the waiter (a 3 s HTTP timeout)
is refused with invalid_grant; the answer then goes out 12 s after that refusal, later than the
waiter's own settings would have waited (2 x 3 + 5 s), and within the holder's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from helpers.engine import wait_for
from helpers.stores import TOKEN_PATH, Shared
from procore_setup.testing import Fault

HOLDER_ENV = {"PROCORE_SETUP_HTTP_TIMEOUT": "15", "PROCORE_SETUP_LOCK_TIMEOUT": "90"}
WAITER_ENV = {"PROCORE_SETUP_HTTP_TIMEOUT": "3", "PROCORE_SETUP_LOCK_TIMEOUT": "90"}
HELD_AFTER_REFUSAL = 12.0  # seconds: < the holder's read timeout (15 s), > 2 x 3 + 5 s


def test_a_waiter_with_a_shorter_http_timeout_waits_for_the_holders_late_answer(rs: Shared, redis_server: Any) -> None:
    one, two = rs.hosts
    one.login()
    spent = rs.profile()["refresh_token"]
    fake = rs.fake
    lock_key = rs.store().key("lock")
    seen: dict[str, float] = {}

    def answer_late() -> None:
        """The holder's only attempt, processed: its answer waits while the holder's lease is taken
        away and the waiter is refused, then a fixed while longer (the answer's lateness is the
        point of the test; the waiter is not timed)."""
        try:
            redis_server.cli("DEL", lock_key, db=rs.url)
            wait_for(lambda: fake.counts["invalid_grant"] >= 1, timeout=10, what="the waiter to be refused")
            seen["refused"] = time.monotonic()
            time.sleep(HELD_AFTER_REFUSAL)
        except Exception:  # noqa: BLE001 - never break the fake's handler; the asserts below say what happened
            pass

    fake.inject(Fault(hook=answer_late, paths=TOKEN_PATH))
    holder = one.popen("refresh", "--force", env=HOLDER_ENV)
    waiter = None
    try:
        wait_for(lambda: fake.counts["faults"] >= 1, timeout=60, what="the holder's token request")
        mark = rs.profile()
        assert mark.get("refresh_started_at") is not None, mark  # its in-flight mark is saved
        waiter = two.popen("token", env=WAITER_ENV)
        b = two.collect(waiter, timeout=120)
        a = one.collect(holder, timeout=120)
    finally:
        for proc in (holder, waiter):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "refused" in seen  # the race the test is about happened
    assert a.returncode == 0, a.stderr
    assert b.returncode == 0, b.stderr  # not 4: the holder's answer, later than the waiter's own limits, was waited for
    assert "another process refreshed" in b.stderr
    stored = rs.profile()
    assert b.stdout.strip() == stored["access_token"]
    assert stored["refresh_token"] != spent and fake.refresh_token_state(stored["refresh_token"]) == "active"
    assert not stored.get("reauth_required") and stored.get("refresh_started_at") is None
    assert stored.get("refresh_budget") is None and stored.get("refresh_step") is None  # the mark went whole
    again = two.run("refresh", "--force")
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize(("budget", "most"), [
    (20, 20 + 6),  # the holder's own budget (+ the mark's rounding and the clocks' skew), not this run's
    (10**9, 165 + 6),  # no holder writes that: a bad row counts as a mark without limits (the defaults)
])
def test_a_move_waits_on_the_limits_the_holder_wrote_into_its_mark(rs: Shared, tmp_path: Path, budget: int,
                                                                    most: int) -> None:
    """`store move` refuses a profile with a refresh in flight for as long as the holder's own budget
    says (the same function refresh waits through), and never longer than any holder could run."""
    import re

    from procore_setup.profile import utcnow

    one, two = rs.hosts
    one.login()
    rs.edit(lambda doc: doc.profiles["default"].set(refresh_started_at=utcnow(), refresh_budget=budget,
                                                    refresh_step=budget))
    before = rs.profile()
    path = tmp_path / "local" / "credentials.toml"
    r = two.run("store", "move", "--all", "--to", str(path), env={"PROCORE_SETUP_HTTP_TIMEOUT": "600"})
    assert r.returncode == 5, r.stderr
    found = re.search(r"try again in (\d+) s", r.stderr)
    assert found is not None, r.stderr
    assert 0 < int(found.group(1)) <= most, r.stderr  # this run's own (longest) HTTP timeout plays no part
    assert "Nothing was moved" in r.stderr and not path.exists() and rs.profile() == before
