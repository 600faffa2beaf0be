"""Never lose the refresh token: many processes at once, and processes killed mid-refresh."""

from __future__ import annotations

import random
import signal
import time
import tomllib
from typing import Any

from procore_setup.stores.file import FileStore
from procore_setup.testing import Fault
from helpers.cli import CLIENT_SECRET
from helpers.engine import Engine, load, mode_of, temp_files, wait_for

TOKEN_PATH = ["/oauth/token"]


def test_twenty_concurrent_token_calls_after_expiry_refresh_once(eng: Engine) -> None:
    eng.fake.set_access_token_life(2)
    eng.login()
    old = eng.profile()
    wait_for(lambda: not eng.fake.access_token_valid(old["access_token"]), what="the access token to expire")
    eng.fake.set_access_token_life(5400)

    procs = [eng.popen("token") for _ in range(20)]
    results = [eng.collect(p) for p in procs]
    assert [r.returncode for r in results] == [0] * 20, [r.stderr for r in results if r.returncode]
    tokens = {r.stdout for r in results}
    assert len(tokens) == 1, "all 20 must print the same token"
    token = tokens.pop().strip()
    assert token != old["access_token"]
    assert eng.fake.access_token_valid(token)
    assert eng.fake.counts["token:refresh_token"] == 1  # exactly one refresh reached Procore
    assert eng.fake.counts["invalid_grant"] == 0
    assert all(r.stderr == "" for r in results)
    assert eng.profile()["access_token"] == token
    assert mode_of(eng.config) == 0o600 and temp_files(eng.config.parent) == []

    # the chain still refreshes afterwards
    r = eng.run("refresh", "--force")
    assert r.returncode == 0, r.stderr
    assert eng.fake.counts["refresh_ok"] == 2
    assert eng.fake.access_token_valid(eng.token())


def test_concurrent_forced_refreshes_take_turns_and_keep_the_chain(eng: Engine) -> None:
    eng.login()
    procs = [eng.popen("refresh", "--force", "--quiet") for _ in range(6)]
    results = [eng.collect(p) for p in procs]
    assert [r.returncode for r in results] == [0] * 6, [r.stderr for r in results]
    c = eng.fake.counts
    assert c["refresh_ok"] == 6 and c["invalid_grant"] == 0  # one after the other, each with the latest token
    prof = eng.profile()
    assert eng.fake.refresh_token_state(prof["refresh_token"]) == "active"
    assert eng.fake.access_token_valid(prof["access_token"])


def _kill_during_refresh(eng: Engine, *, consume: bool = False, **fault: Any) -> None:
    """Start a refresh, let it reach Procore and hang there, then SIGKILL it.

    With `consume`, Procore processes the request first: the kill comes once the stored refresh
    token is used up at Procore, so the answer is certainly lost.
    """
    held = eng.profile()["refresh_token"]
    eng.fake.inject(Fault(hang=30, paths=TOKEN_PATH, consume=consume, **fault))
    proc = eng.popen("refresh", "--force")
    wait_for(lambda: eng.fake.counts["faults"] >= 1, what="the refresh to reach the server")
    if consume:
        wait_for(lambda: eng.fake.refresh_token_state(held) == "used", what="Procore to use the refresh token")
    else:
        assert eng.fake.refresh_token_state(held) == "active"  # held before Procore looked at it
    proc.send_signal(signal.SIGKILL)
    r = eng.collect(proc)
    assert r.returncode == -signal.SIGKILL
    assert r.stdout == ""


def test_killed_after_procore_used_the_refresh_token_the_next_run_explains(eng: Engine) -> None:
    eng.login()
    old = eng.profile()
    # Procore processes the refresh (rotating the token), then the answer never arrives
    _kill_during_refresh(eng, consume=True, drop=True)
    assert eng.fake.refresh_token_state(old["refresh_token"]) == "used"

    doc = tomllib.loads(eng.config.read_text())  # the file always parses
    prof = doc["profiles"]["default"]
    assert prof["refresh_token"] == old["refresh_token"]  # nothing half-written
    assert "refresh_started_at" in prof  # the refresh in flight was recorded first
    assert mode_of(eng.config) == 0o600 and temp_files(eng.config.parent) == []

    r = eng.run("status")
    assert "did not finish" in r.stdout

    r = eng.run("token")
    assert r.returncode == 4, r.stderr
    assert r.stdout == ""
    assert "last refresh" in r.stderr and "interrupted" in r.stderr
    assert f"procore-setup --config {eng.config} login --profile default" in r.stderr
    kept = eng.profile()
    assert kept["refresh_token"] == old["refresh_token"] and kept["client_secret"] == CLIENT_SECRET


def test_killed_before_procore_acted_the_next_run_recovers(eng: Engine) -> None:
    eng.login()
    old = eng.profile()
    _kill_during_refresh(eng)  # the request hangs before Procore looks at it
    assert eng.fake.refresh_token_state(old["refresh_token"]) == "active"
    assert "refresh_started_at" in load(eng.config)["profiles"]["default"]

    # the very next run finds out (the stored access token may be dead), and the chain survived
    r = eng.run("token")
    assert r.returncode == 0, r.stderr
    assert "interrupted" in r.stderr and "chain is intact" in r.stderr
    token = r.stdout.strip()
    assert token != old["access_token"] and eng.fake.access_token_valid(token)
    assert "refresh_started_at" not in eng.profile()
    assert eng.token() == token  # no more notes


def test_an_answer_lost_without_a_kill_is_explained(eng: Engine) -> None:
    eng.login()
    old = eng.profile()
    eng.fake.inject(Fault(consume=True, drop=True, paths=TOKEN_PATH))
    r = eng.run("refresh", "--force")
    # The retry meets a used-up token: a new login is needed (4), never "retry later" (5).
    assert r.returncode == 4, r.stderr
    assert r.stdout == ""
    assert eng.fake.counts["refresh_ok"] == 1 and eng.fake.counts["invalid_grant"] == 1
    assert "answer was lost" in r.stderr  # the real cause, not a bare invalid_grant
    assert "revoked" not in r.stderr and "another copy" not in r.stderr
    assert "login --profile default" in r.stderr
    assert eng.profile()["refresh_token"] == old["refresh_token"]
    load(eng.config)
    r = eng.run("token")
    assert r.returncode == 4 and "login --profile default" in r.stderr


def test_kills_at_random_moments_never_leave_a_broken_file(eng: Engine) -> None:
    eng.login()
    rng = random.Random(1234)
    for _ in range(8):
        proc = eng.popen("refresh", "--force", "--quiet")
        time.sleep(rng.uniform(0.0, 0.35))  # a random moment, on purpose: this waits for nothing
        proc.send_signal(signal.SIGKILL)
        eng.collect(proc)
        tomllib.loads(eng.config.read_text())  # always parses
        assert mode_of(eng.config) == 0o600
        FileStore(eng.config).load()  # and passes the program's own checks
        r = eng.run("refresh", "--force", "--quiet")
        if r.returncode == 4:  # the kill landed between Procore's answer and the save
            assert "interrupted" in r.stderr, r.stderr
            eng.login()
        else:
            assert r.returncode == 0, r.stderr
        assert eng.fake.access_token_valid(eng.token())
    # a kill in the middle of a save may leave its temporary file behind: never readable by others
    for name in temp_files(eng.config.parent):
        assert mode_of(eng.config.parent / name) == 0o600


def test_after_an_interrupted_refresh_token_never_hands_out_a_dead_token(eng: Engine) -> None:
    """Procore used the refresh (killing the old access token), the answer was lost, then the
    network went away: `token` cannot know whether the stored token still works, so it must not
    print it as if it did."""
    eng.login()
    old = eng.profile()
    _kill_during_refresh(eng, consume=True, drop=True)
    assert not eng.fake.access_token_valid(old["access_token"])  # rotated away at Procore
    eng.fake.stop()
    r = eng.run("token")
    # The only token it could print is the stored one, which Procore no longer accepts.
    assert r.returncode == 5, r.stderr
    assert r.stdout == ""
    assert "Cannot reach 127.0.0.1" in r.stderr
