"""One contract, every store: the same behaviours against the file, PostgreSQL and Redis.

Each test runs the real executable in subprocesses on two "hosts" (two HOMEs, nothing shared
but the store named by PROCORE_SETUP_STORE, and, for the file, the file itself) against the
fake Procore server over HTTP, and reads the store back in-process through `open_store`.
The servers are real (tests/servers.py); where one cannot be had the test skips with the
reason, and CI requires them.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

from procore_setup.testing import Fault
from helpers.cli import CLIENT_SECRET
from helpers.engine import issued_secrets, wait_for
from helpers.stores import NO_WAIT, SHORT_LEASE, TOKEN_PATH, Shared, hold_answers, pg_lock_waiters

# -- the contract ------------------------------------------------------------------------------------

def test_a_login_on_one_host_serves_the_other_and_writes_no_file_there(shared: Shared) -> None:
    one, two = shared.hosts
    r = one.login()
    assert "Saved profile 'default'" in r.stdout
    token = two.token()
    assert shared.fake.access_token_valid(token)
    assert token == shared.profile()["access_token"]
    assert shared.fake.counts["token:refresh_token"] == 0  # the stored token was used, nothing sent
    status = two.run("status")
    assert status.returncode == 0, status.stderr
    assert shared.store().address.describe() in status.stdout
    for secret in shared._secrets:  # noqa: SLF001 - the store's password is never shown
        assert secret not in shared.store().address.describe()
    if shared.kind != "file":
        assert one.nothing_written_here() and two.nothing_written_here()


def test_twenty_token_calls_from_two_hosts_after_expiry_refresh_once(shared: Shared) -> None:
    one, two = shared.hosts
    one.login()
    old = shared.profile()["access_token"]
    shared.expire()
    procs = [(h, h.popen("token")) for _ in range(10) for h in (one, two)]
    results = [h.collect(p) for h, p in procs]
    assert [r.returncode for r in results] == [0] * 20, [r.stderr for r in results if r.returncode]
    tokens = {r.stdout.strip() for r in results}
    assert len(tokens) == 1, "all 20 print the same token"
    token = tokens.pop()
    assert token != old and shared.fake.access_token_valid(token)
    assert shared.fake.counts["token:refresh_token"] == 1  # exactly one refresh reached Procore
    assert shared.fake.counts["invalid_grant"] == 0
    assert shared.profile()["access_token"] == token


def test_a_host_waiting_for_the_lock_reads_again_and_sends_nothing(shared: Shared) -> None:
    one, two = shared.hosts
    one.login()
    shared.expire()
    release = hold_answers(shared.fake)
    first = one.popen("token")
    wait_for(lambda: shared.fake.counts["faults"] >= 1, what="the first refresh to reach Procore", timeout=30)
    marked = shared.profile()
    assert marked.get("refresh_started_at") is not None  # the in-flight mark is in the store before the answer
    second = two.popen("token")
    try:
        wait_for(lambda: second.poll() is None and _waiting_for_lock(shared, second), timeout=30,
                 what="the second host to wait for the lock")
    finally:
        release.set()
    a, b = one.collect(first), two.collect(second)
    assert (a.returncode, b.returncode) == (0, 0), (a.stderr, b.stderr)
    assert a.stdout == b.stdout
    assert shared.fake.counts["token:refresh_token"] == 1
    assert b.stderr == ""


def _waiting_for_lock(shared: Shared, proc: subprocess.Popen[str]) -> bool:
    """Whether `proc` has got as far as waiting for the store's lock (it has read the expired token)."""
    if shared.kind == "postgres":
        return pg_lock_waiters(shared) >= 1
    # The file and Redis locks are polled, so no server records a waiter: the process is alive and
    # has not finished, which with the first holding the lock means it is waiting (or about to).
    return proc.poll() is None


def test_a_host_killed_after_procore_answered_is_explained_on_the_other(shared: Shared) -> None:
    one, two = shared.hosts
    one.login()
    held = shared.profile()["refresh_token"]
    release = hold_answers(shared.fake, consume=True, drop=True)
    proc = one.popen("refresh", "--force", env=SHORT_LEASE)  # killed below
    try:
        wait_for(lambda: shared.fake.refresh_token_state(held) == "used", what="Procore to use the refresh token",
                 timeout=30)
        proc.send_signal(signal.SIGKILL)
        r = one.collect(proc)
        assert r.returncode == -signal.SIGKILL
    finally:
        release.set()
    kept = shared.profile()
    assert kept["refresh_token"] == held and kept.get("refresh_started_at") is not None
    shared.outlive_mark()  # host 1 is dead: its mark is past its own limits, so nothing is waited for
    r = two.run("token", env=NO_WAIT)
    assert r.returncode == 4, r.stderr
    assert "interrupted" in r.stderr and r.stdout == ""
    assert "login --profile default" in r.stderr
    after = shared.profile()
    assert after["client_secret"] == CLIENT_SECRET and after["refresh_token"] == held  # nothing thrown away


def test_a_host_killed_before_procore_acted_leaves_a_chain_the_other_recovers(shared: Shared) -> None:
    one, two = shared.hosts
    one.login()
    old = shared.profile()
    shared.fake.inject(Fault(hang=60, paths=TOKEN_PATH))  # held before Procore looks at it
    proc = one.popen("refresh", "--force", env=SHORT_LEASE)  # killed below
    wait_for(lambda: shared.fake.counts["faults"] >= 1, what="the refresh to reach Procore", timeout=30)
    proc.send_signal(signal.SIGKILL)
    assert one.collect(proc).returncode == -signal.SIGKILL
    assert shared.fake.refresh_token_state(old["refresh_token"]) == "active"
    shared.fake.clear_faults()
    r = two.run("token")
    assert r.returncode == 0, r.stderr
    assert "chain is intact" in r.stderr
    assert shared.fake.access_token_valid(r.stdout.strip())


def test_invalid_grant_keeps_everything_and_names_the_store(shared: Shared) -> None:
    one, two = shared.hosts
    one.login()
    before = shared.profile()
    shared.fake.revoke_all()
    r = two.run("refresh", "--force")
    assert r.returncode == 4, r.stderr
    assert "invalid_grant" in r.stderr
    assert "login --profile default" in r.stderr
    after = shared.profile()
    for field in ("client_id", "client_secret", "refresh_token", "access_token", "company_id", "user_id"):
        assert after[field] == before[field], field
    assert after["reauth_required"] is True
    assert two.run("status").returncode == 4


def test_fields_the_program_does_not_know_survive_a_refresh(shared: Shared) -> None:
    one, two = shared.hosts
    one.login()

    def add(doc: Any) -> None:
        doc.profiles["default"].data["team_note"] = "owned by the data team"
        doc.raw["x_custom"] = {"kept": [1, 2, 3]}

    shared.edit(add)
    r = two.run("refresh", "--force")
    assert r.returncode == 0, r.stderr
    doc = shared.store().load()
    assert doc.profiles["default"].data["team_note"] == "owned by the data team"
    assert doc.raw["x_custom"] == {"kept": [1, 2, 3]}
    assert doc.profiles["default"].access_token != ""


def test_encryption_leaves_no_plain_secret_in_the_store(shared: Shared) -> None:
    one, two = shared.hosts
    one.login()
    plain = shared.profile()
    env = {"PROCORE_SETUP_PASSPHRASE": "correct horse battery staple 42"}
    r = one.run("encrypt", env=env)
    assert r.returncode == 0, r.stderr
    raw = shared.raw()
    assert raw  # the dump does show the store
    for field in ("client_secret", "access_token", "refresh_token"):
        assert plain[field] not in raw, field
    assert "enc:" in raw
    token = two.run("token", env=env)
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip() == plain["access_token"]
    # without a passphrase, and with the key cache off (else this user's cached key opens it: test_key_cache.py)
    refused = two.run("token", env={"PROCORE_SETUP_KEY_CACHE": "0"})
    assert refused.returncode == 6 and "passphrase" in refused.stderr.lower()
    forced = two.run("refresh", "--force", env=env)  # a refresh writes ciphertext only
    assert forced.returncode == 0, forced.stderr
    raw = shared.raw()
    for secret in issued_secrets(shared.fake):
        assert secret not in raw


def test_revoke_on_one_host_is_seen_by_the_other(shared: Shared) -> None:
    one, two = shared.hosts
    one.login()
    token = shared.profile()["access_token"]
    r = one.run("revoke")
    assert r.returncode == 0, r.stderr
    assert not shared.fake.access_token_valid(token)
    t = two.run("token")
    assert t.returncode == 4 and t.stdout == ""
    assert two.run("status").returncode == 4
    assert shared.profile()["client_secret"] == CLIENT_SECRET  # client settings kept


def test_status_json_names_the_store_without_its_password(shared: Shared) -> None:
    import json

    one, _ = shared.hosts
    one.login()
    r = one.run("status", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["store"] == shared.store().address.describe()
    assert data["store_kind"] == {"file": "file", "postgres": "PostgreSQL", "redis": "Redis"}[shared.kind]
    for secret in shared._secrets:  # noqa: SLF001
        assert secret not in r.stdout


def test_store_move_leaves_one_live_copy(shared: Shared, tmp_path: Path) -> None:
    """From this store to a file and back: the old copy is a tombstone that names the new store."""
    one, two = shared.hosts
    one.login()
    token = shared.profile()["access_token"]
    elsewhere = tmp_path / "elsewhere" / "credentials.toml"
    r = one.run("store", "move", "--to", str(elsewhere))
    assert r.returncode == 0, r.stderr
    gone = two.run("token")
    assert gone.returncode == 3 and gone.stdout == ""
    assert "moved" in gone.stderr and str(elsewhere) in gone.stderr
    assert "--config" in gone.stderr
    sent = shared.fake.counts["token:refresh_token"]
    assert two.run("refresh", "--all").returncode == 3
    assert shared.fake.counts["token:refresh_token"] == sent  # the tombstone never refreshes
    there = two.run("token", env={"PROCORE_SETUP_STORE": str(elsewhere)})
    assert there.returncode == 0 and there.stdout.strip() == token
    back = two.run("--store", str(elsewhere), "store", "move", "--to", shared.url, env={"PROCORE_SETUP_STORE": ""})
    assert back.returncode == 0, back.stderr
    assert two.token() == token
    assert two.run("token", env={"PROCORE_SETUP_STORE": str(elsewhere)}).returncode == 3


def test_a_new_passphrase_and_decrypt_work_on_the_store(shared: Shared) -> None:
    one, two = shared.hosts
    one.login()
    plain = shared.profile()
    old = {"PROCORE_SETUP_PASSPHRASE": "correct horse battery staple 42"}
    new = {"PROCORE_SETUP_PASSPHRASE": "another horse, another staple 43"}
    assert one.run("encrypt", env=old).returncode == 0
    r = one.run("passphrase", env=dict(old, PROCORE_SETUP_NEW_PASSPHRASE=new["PROCORE_SETUP_PASSPHRASE"]))
    assert r.returncode == 0, r.stderr
    assert two.run("token", env=old).returncode == 6  # the old one opens nothing any more
    t = two.run("token", env=new)
    assert t.returncode == 0 and t.stdout.strip() == plain["access_token"]
    d = two.run("decrypt", env=new)
    assert d.returncode == 0, d.stderr
    raw = shared.raw()
    assert plain["refresh_token"] in raw and "enc:" not in raw  # plain again, and nothing lost
    assert two.token() == plain["access_token"]
