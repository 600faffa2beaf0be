"""PostgreSQL's own faults and bad input, through the real executable on two "hosts".

The contract suite (tests/test_store_contract.py) runs the behaviours every store shares; this
file is what only a database server can do to the refresh: stop, restart, terminate a
connection that holds the lock (or waits for it), a lock holder frozen by SIGSTOP, a holder
whose lock was lost writing late, and the URLs, passwords, roles and schemas a team gets wrong.
Each test runs `procore-setup` in subprocesses against the fake Procore over HTTP and a real
server (tests/servers.py), waits on state (a server's pg_stat_activity, the fake's counters,
the store's rows) with a bounded deadline, and checks that nothing was lost: the chain in the
store is the one the fake says is active.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import CLIENT_ID, CLIENT_SECRET
from helpers.engine import wait_for
from helpers.stores import (
    NO_WAIT,
    TOKEN_PATH,
    Host,
    Shared,
    chain_intact,
    hold_answers,
    kill_backend,
    pg_advisory_waiters,
    pg_lock_holders,
    store_rows,
)
from helpers.net import stop_serving
from procore_setup.testing import FakeProcore, Fault

HEAVY = ("httpx", "textual")


# -- helpers -----------------------------------------------------------------------------------------

def _hold_before_procore(fake: FakeProcore) -> tuple[threading.Event, threading.Event]:
    """The next token request waits BEFORE the fake looks at it (so its refresh token is not
    used yet) until `release` is set; `reached` is set when it arrives. (Fault(hook=) holds a
    request after processing.)"""
    reached, release = threading.Event(), threading.Event()
    handle = fake._handle  # noqa: SLF001 - the test's own fake, held at its door
    once = threading.Lock()

    def held(req: Any) -> Any:
        if req.path.startswith(TOKEN_PATH[0]) and once.acquire(blocking=False):
            reached.set()
            release.wait(120)
        return handle(req)

    fake._handle = held  # type: ignore[method-assign]  # noqa: SLF001
    return reached, release


def _token_requests(fake: FakeProcore) -> int:
    return sum(v for k, v in fake.counts.items() if k.startswith("token:"))


class _Refuser:
    """Something on the stopped server's port that accepts each connection and closes it at
    once, counting them: the client's reconnect attempts, seen from outside."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.attempts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.attempts += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        stop_serving(self.sock, self._thread)


# -- the server stopped ------------------------------------------------------------------------------

@pytest.mark.parametrize("expired", [False, True], ids=["valid", "expired"])
def test_a_stopped_server_is_exit_5_naming_the_store_and_the_next_run_works(pg: Shared, pg_server: Any,
                                                                           expired: bool) -> None:
    one, two = pg.hosts
    one.login()
    if expired:
        pg.expire()
    before = pg.profile()
    pg_server.stop()
    r = two.run("token")
    assert r.returncode == 5, r.stderr
    assert r.stdout == ""
    assert pg.store().address.describe() in r.stderr and "could not be reached" in r.stderr
    assert pg_server.app_password not in r.stderr
    assert pg.fake.counts["token:refresh_token"] == 0  # nothing was sent
    pg_server.start()
    assert pg.profile() == before  # nothing lost, nothing half-written
    token = two.token()
    assert pg.fake.access_token_valid(token)
    assert pg.fake.counts["token:refresh_token"] == (1 if expired else 0)
    assert chain_intact(pg)["access_token"] == token


@pytest.mark.parametrize("back", ["at once", "after failed attempts"])
def test_an_answer_that_arrives_while_the_server_is_down_is_saved_when_it_is_back(pg: Shared, pg_server: Any,
                                                                                  back: str) -> None:
    """Procore answers a refresh while PostgreSQL is down: the pair, in memory, is saved when the
    server comes back (bounded retries), and the other host then uses it without a refresh."""
    one, two = pg.hosts
    one.login()
    held = pg.profile()["refresh_token"]
    pg.expire()
    refuser: list[_Refuser] = []
    restarted = threading.Event()

    def bring_back() -> None:
        try:
            if back == "after failed attempts":
                wait_for(lambda: refuser[0].attempts >= 2, timeout=60, what="the client to try to reconnect")
                refuser[0].close()
            pg_server.start()
        finally:
            restarted.set()

    def down() -> None:
        pg_server.stop()
        if back == "after failed attempts":
            refuser.append(_Refuser(pg_server.port))
        threading.Thread(target=bring_back, daemon=True).start()

    pg.fake.inject(Fault(hook=down, paths=TOKEN_PATH))
    r = one.run("token", timeout=150)
    assert restarted.wait(60)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert pg.fake.access_token_valid(token)
    assert pg.fake.refresh_token_state(held) == "used"
    if back == "after failed attempts":
        assert refuser[0].attempts >= 2
    assert chain_intact(pg)["access_token"] == token  # the pair Procore issued is the stored one
    assert two.token() == token
    assert pg.fake.counts["token:refresh_token"] == 1



def test_an_answer_the_server_never_comes_back_for_is_said_to_be_lost(pg: Shared, pg_server: Any) -> None:
    """PostgreSQL stops as Procore answers and stays down past every retry: the run says exactly
    that the new pair could not be saved, where, and what to do."""
    one, _ = pg.hosts
    one.login()
    pg.fake.inject(Fault(hook=pg_server.stop, paths=TOKEN_PATH))
    r = one.run("refresh", "--force", timeout=200)
    assert r.returncode != 0
    assert "could not be saved to " + pg.store().address.describe() in r.stderr and "new login" in r.stderr
    assert "login --profile default" in r.stderr
    assert "could not be reached" in r.stderr, r.stderr  # why, in words
    assert "StoreUnavailable" not in r.stderr, r.stderr  # not a class name
    assert "old file" not in r.stderr and "free some space" not in r.stderr, r.stderr  # it is not a file


# -- a connection terminated -------------------------------------------------------------------------

@pytest.mark.parametrize("when", ["while the request is held", "from the answer's hook"])
def test_the_lock_holders_connections_terminated_lose_nothing(pg: Shared, pg_server: Any, when: str) -> None:
    one, two = pg.hosts
    one.login()
    pg.expire()
    if when == "while the request is held":
        release = hold_answers(pg.fake)
    else:
        release = threading.Event()
        pg.fake.inject(Fault(hook=lambda: pg_server.terminate(pg.url), paths=TOKEN_PATH))
    proc = one.popen("token")
    try:
        if when == "while the request is held":
            wait_for(lambda: pg.fake.counts["faults"] >= 1, timeout=30, what="the refresh to reach Procore")
            assert len(pg_lock_holders(pg_server, pg.url)) == 1
            assert pg_server.terminate(pg.url) >= 2  # the lock's connection and the data connection
    finally:
        release.set()
    r = one.collect(proc)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert pg.fake.access_token_valid(token)
    assert chain_intact(pg)["access_token"] == token
    assert two.token() == token  # the other host uses the saved pair, sending nothing
    assert pg.fake.counts["token:refresh_token"] == 1


def test_a_sigstopped_lock_holder_makes_the_other_host_give_up_in_time_and_loses_nothing(pg: Shared,
                                                                                         pg_server: Any) -> None:
    one, two = pg.hosts
    one.login()
    pg.expire()
    release = hold_answers(pg.fake)
    proc = one.popen("token")
    stopped = False
    try:
        wait_for(lambda: pg.fake.counts["faults"] >= 1, timeout=30, what="the refresh to reach Procore")
        proc.send_signal(signal.SIGSTOP)
        stopped = True
        release.set()  # the answer waits in the stopped process's socket
        before = pg.profile()
        assert before.get("refresh_started_at") is not None
        r = two.run("token", env={"PROCORE_SETUP_LOCK_TIMEOUT": "2"})
        assert r.returncode == 5, r.stderr
        assert "held the lock" in r.stderr and pg.store().address.describe() in r.stderr
        assert r.stdout == ""
        assert pg.profile() == before  # the waiter changed nothing
        assert pg.fake.counts["token:refresh_token"] == 1
    finally:
        release.set()
        if stopped:
            proc.send_signal(signal.SIGCONT)
    a = one.collect(proc)
    assert a.returncode == 0, a.stderr
    token = a.stdout.strip()
    assert chain_intact(pg)["access_token"] == token
    assert two.token() == token
    assert pg.fake.counts["token:refresh_token"] == 1 and pg.fake.counts["invalid_grant"] == 0


def test_a_waiters_connection_terminated_is_exit_5_and_loses_nothing(pg: Shared, pg_server: Any) -> None:
    one, two = pg.hosts
    one.login()
    pg.expire()
    release = hold_answers(pg.fake)
    first = one.popen("token")
    try:
        wait_for(lambda: pg.fake.counts["faults"] >= 1, timeout=30, what="the refresh to reach Procore")
        second = two.popen("token")
        wait_for(lambda: len(pg_advisory_waiters(pg_server, pg.url)) == 1, timeout=30,
                 what="the second host to wait for the lock")
        marked = pg.profile()
        kill_backend(pg_server, pg_advisory_waiters(pg_server, pg.url)[0])
        b = two.collect(second)
        assert b.returncode == 5, b.stderr
        assert b.stdout == "" and pg.store().address.describe() in b.stderr
        assert pg.profile() == marked
    finally:
        release.set()
    a = one.collect(first)
    assert a.returncode == 0, a.stderr
    token = a.stdout.strip()
    assert chain_intact(pg)["access_token"] == token
    assert two.token() == token
    assert pg.fake.counts["token:refresh_token"] == 1


# -- a stale writer: a holder whose lock was lost ---------------------------------------------------


def test_a_holder_that_lost_its_lock_before_procore_acted_does_not_overwrite_the_newer_pair(
        pg: Shared, pg_server: Any) -> None:
    """Host 1's lock connection dies while its refresh waits at Procore's door; host 2 takes the
    lock and refreshes; then Procore refuses host 1's (now used) refresh token. Host 1 must write
    nothing over host 2's pair, nor tell anyone to log in again: the store's chain is live."""
    one, two = pg.hosts
    one.login()
    reached, release = _hold_before_procore(pg.fake)
    first = one.popen("refresh", "--force")
    try:
        assert reached.wait(30)
        holders = pg_lock_holders(pg_server, pg.url)
        assert len(holders) == 1
        kill_backend(pg_server, holders[0])
        b = two.run("refresh", "--force")
        assert b.returncode == 0, b.stderr
        newer = chain_intact(pg)
    finally:
        release.set()
    a = one.collect(first)
    assert pg.profile() == newer  # not overwritten: no reauth mark, no other pair
    assert pg.fake.refresh_token_state(newer["refresh_token"]) == "active"
    assert a.returncode != 4, a.stderr  # the chain is fine: no new login is needed
    assert "new login" not in a.stderr and "Re-authorize" not in a.stderr, a.stderr
    assert "another" in a.stderr.lower()
    assert two.token() == newer["access_token"]


def test_a_holder_that_lost_its_lock_after_procore_answered_keeps_its_pair(pg: Shared, pg_server: Any) -> None:
    """Host 1's lock connection dies after Procore issued its pair; host 2 then takes the lock and
    is refused (host 1 used the token). Host 1's pair is the only live one: it is saved over host
    2's record of the refusal, and the chain goes on."""
    one, two = pg.hosts
    one.login()
    held = pg.profile()["refresh_token"]
    release = hold_answers(pg.fake)
    first = one.popen("refresh", "--force")
    try:
        wait_for(lambda: pg.fake.refresh_token_state(held) == "used", timeout=30, what="Procore to use the token")
        holders = pg_lock_holders(pg_server, pg.url)
        assert len(holders) == 1
        kill_backend(pg_server, holders[0])
        pg.outlive_mark()  # host 1's answer is held until host 2 ends: host 2 must not wait for it
        b = two.run("refresh", "--force", env=NO_WAIT)
        assert b.returncode == 4, b.stderr
        assert "interrupted" in b.stderr
    finally:
        release.set()
    a = one.collect(first)
    assert a.returncode == 0, a.stderr
    assert "lost its lock" in a.stderr and "no newer tokens" in a.stderr, a.stderr
    assert "connection came back" not in a.stderr, a.stderr  # it was the lock that was lost, not the data
    prof = chain_intact(pg)
    assert prof["refresh_token"] != held
    assert two.token() == prof["access_token"]
    assert pg.fake.counts["token:refresh_token"] == 2



def test_a_late_pair_from_a_holder_that_lost_its_lock_never_replaces_a_newer_login(pg: Shared,
                                                                                   pg_server: Any) -> None:
    """The fence of the last-resort save: host 1's refresh is answered after its lock was lost and
    a person logged in again on host 2 (a new grant). Host 1's late pair is not written over the
    new one, and it says so (no claim that a new login is needed: one was just done)."""
    one, two = pg.hosts
    one.login()
    release = hold_answers(pg.fake)
    first = one.popen("refresh", "--force")
    try:
        wait_for(lambda: pg.fake.counts["faults"] >= 1, timeout=30, what="the refresh to reach Procore")
        holders = pg_lock_holders(pg_server, pg.url)
        assert len(holders) == 1
        kill_backend(pg_server, holders[0])
        two.login()
        newer = chain_intact(pg)
    finally:
        release.set()
    a = one.collect(first)
    assert pg.profile()["refresh_token"] == newer["refresh_token"]
    assert pg.profile()["access_token"] == newer["access_token"]
    assert a.returncode != 0
    assert "newer" in a.stderr, a.stderr
    assert "new login" not in a.stderr and "are lost" not in a.stderr, a.stderr
    assert two.token() == newer["access_token"]


# -- bad input ---------------------------------------------------------------------------------------

def _bad(host: Host, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return host.run(*(args or ("token",)), env={"PROCORE_SETUP_STORE": url}, timeout=60)


def test_a_wrong_password_is_exit_6_naming_the_store_never_the_password(pg: Shared, pg_server: Any,
                                                                        secret_guard: Any) -> None:
    one, two = pg.hosts
    one.login()
    before = pg.profile()
    wrong = "not-the-password-" + "x" * 12
    secret_guard.add(wrong, "a wrong PostgreSQL password")
    url = pg.url.replace(pg_server.app_password, wrong)
    r = _bad(two, url)
    assert r.returncode == 6, r.stderr
    assert r.stdout == ""
    assert pg.store().address.describe() in r.stderr and "refused the login" in r.stderr
    assert wrong not in r.stderr and pg_server.app_password not in r.stderr
    assert pg.profile() == before


@pytest.mark.parametrize("listener", ["nothing", "silent"])
def test_an_unreachable_server_is_exit_5_within_the_connect_timeout(pg: Shared, listener: str) -> None:
    """Nothing on the port (refused at once), or something that accepts and never answers: then
    connect_timeout bounds the wait (the subprocess timeout bounds the test)."""
    one, two = pg.hosts
    one.login()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        if listener == "silent":
            sock.listen(8)  # the kernel completes the handshake; nobody ever says a word
        else:
            sock.close()
        url = f"postgresql://app@127.0.0.1:{port}/nowhere?connect_timeout=2"
        r = _bad(two, url)
    assert r.returncode == 5, r.stderr
    assert f"127.0.0.1:{port}" in r.stderr and "could not be reached" in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("url", ["mysql://app@127.0.0.1/db", "sqlite:///tmp/x.db"])
def test_a_url_that_is_not_postgresql_is_a_usage_error(pg: Shared, url: str) -> None:
    one, two = pg.hosts
    r = _bad(two, url)
    assert r.returncode == 2, r.stderr
    assert "postgresql://" in r.stderr and "scheme" in r.stderr


def test_a_database_without_the_schema_says_what_to_run(pg: Shared, pg_server: Any) -> None:
    _, two = pg.hosts
    r = two.run("token")
    assert r.returncode == 3, r.stderr
    assert pg.store().address.describe() in r.stderr and "login" in r.stderr
    printed = two.run("store", "init", "--print")
    assert printed.returncode == 0, printed.stderr
    assert "CREATE TABLE IF NOT EXISTS procore_setup" in printed.stdout and "GRANT" in printed.stdout
    assert pg_server.superuser_sql(pg.url, "SELECT to_regclass('procore_setup') IS NULL") == [(True,)]  # printed only
    made = two.run("store", "init")
    assert made.returncode == 0, made.stderr
    assert "Created the table" in made.stdout
    assert pg_server.superuser_sql(pg.url, "SELECT to_regclass('procore_setup') IS NULL") == [(False,)]
    again = two.run("store", "init")
    assert again.returncode == 0 and "already" in again.stdout


def test_a_role_without_rights_is_exit_6_naming_grant_and_a_login_spends_no_code(pg: Shared, pg_server: Any) -> None:
    one, two = pg.hosts
    one.login()
    before = pg.profile()
    url = pg_server.role_without_rights(pg.url)
    r = _bad(two, url)
    assert r.returncode == 6, r.stderr
    assert "GRANT" in r.stderr and pg.store().address.describe().rsplit("@", 1)[1] in r.stderr
    sent = _token_requests(pg.fake)
    fake = pg.fake
    code = fake.issue_code()
    login = two.run("login", "--plain", "--profile", "other", "--environment", "custom", "--login-url", fake.url,
                    "--api-url", fake.url, "--client-id", CLIENT_ID, "--code=" + code, input="1\n",
                    env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET, "PROCORE_SETUP_STORE": url})
    assert login.returncode == 6, login.stderr
    assert "GRANT" in login.stderr
    assert _token_requests(fake) == sent  # refused before the single-use code was sent
    assert pg.profile() == before and set(pg.store().load().profiles) == {"default"}


def test_a_store_written_by_a_newer_program_is_refused(pg: Shared, pg_server: Any) -> None:
    one, two = pg.hosts
    one.login()
    pg_server.superuser_sql(pg.url, "UPDATE procore_setup SET schema_version = 2 WHERE kind = 'document'")
    sent = _token_requests(pg.fake)
    pg.expire  # noqa: B018 - the stored token is valid: nothing would be sent anyway
    for args in (("token",), ("refresh", "--force"), ("status",)):
        r = two.run(*args)
        assert r.returncode == 6, (args, r.stderr)
        assert "newer procore-setup" in r.stderr and pg.store().address.describe() in r.stderr
    assert _token_requests(pg.fake) == sent


# -- the driver, and what `token` imports ---------------------------------------------------------------

def test_without_psycopg_a_postgresql_store_names_the_extra(pg: Shared, tmp_path: Path) -> None:
    """A psycopg that cannot be imported: reading a valid token needs only libpq (stores/libpq.py),
    and the first thing that needs the driver (the lock of a refresh) says which extra to install,
    before anything is sent."""
    pg.hosts[0].login()
    shadow = tmp_path / "shadow" / "psycopg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named psycopg (shadowed by the test)')\n")
    _, two = pg.hosts
    env = {"PYTHONPATH": str(shadow.parent)}
    assert two.run("token", env=env).returncode == 0
    sent = _token_requests(pg.fake)
    r = two.run("refresh", "--force", env=env)
    assert r.returncode == 2, r.stderr
    assert "pip install 'procore-setup[postgres]'" in r.stderr
    assert "Traceback" not in r.stderr
    assert _token_requests(pg.fake) == sent


def _imports(r: subprocess.CompletedProcess[str]) -> set[str]:
    names = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in r.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    assert "procore_setup" in names, "no import-time report"
    return names


def test_token_from_postgresql_imports_neither_httpx_nor_textual_nor_psycopg(pg: Shared) -> None:
    """A valid token is read through libpq itself (stores/libpq.py): not even psycopg is imported."""
    one, two = pg.hosts
    one.login()
    r = two.run("token", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    mods = _imports(r)
    for heavy in (*HEAVY, "psycopg", "psycopg_binary"):
        assert heavy not in mods, heavy
    assert r.stdout.strip() == pg.profile()["access_token"]
    pg.expire()
    r = two.run("token", env={"PYTHONPROFILEIMPORTTIME": "1"})
    mods = _imports(r)
    assert r.returncode == 0 and "httpx" in mods and "psycopg" in mods  # a refresh loads both: the probe can fail


def test_token_from_a_file_never_imports_psycopg(cli: Any) -> None:
    cli.login()
    r = cli.run("token", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "psycopg" not in _imports(r)


# -- store move ------------------------------------------------------------------------------------------

def test_store_move_all_from_a_file_into_postgresql_and_back(pg: Shared, tmp_path: Path) -> None:
    one, two = pg.hosts
    path = tmp_path / "local" / "credentials.toml"
    local = {"PROCORE_SETUP_STORE": str(path)}
    fake = pg.fake
    for name in ("site-a", "site-b"):
        r = one.run("login", "--plain", "--profile", name, "--environment", "custom", "--login-url", fake.url,
                    "--api-url", fake.url, "--client-id", CLIENT_ID, "--code=" + fake.issue_code(), input="1\n",
                    env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET, **local})
        assert r.returncode == 0, r.stderr
    tokens = {n: one.run("token", "--profile", n, env=local).stdout.strip() for n in ("site-a", "site-b")}
    r = one.run("store", "move", "--all", "--to", pg.url, env=local)
    assert r.returncode == 0, r.stderr
    assert "'site-a', 'site-b'" in r.stdout
    for n, token in tokens.items():
        assert two.run("token", "--profile", n).stdout.strip() == token  # the other host reads them
        gone = one.run("token", "--profile", n, env=local)
        assert gone.returncode == 3 and "moved" in gone.stderr and pg.store().address.describe() in gone.stderr
    assert "moving_from" not in pg.raw()
    back = two.run("store", "move", "--all", "--to", str(path))
    assert back.returncode == 0, back.stderr
    for n, token in tokens.items():
        assert one.run("token", "--profile", n, env=local).stdout.strip() == token
        assert two.run("token", "--profile", n).returncode == 3
    assert _token_requests(fake) == 2  # two logins, no refresh anywhere


def _unblock(pg_server: Any, url: str, conn: Any) -> None:
    conn.execute("SELECT pg_advisory_unlock(4242)")
    pg_server.superuser_sql(url, "DROP TRIGGER procore_test_block ON procore_setup")


def _move_waits(pg_server: Any, url: str) -> bool:
    return bool(pg_advisory_waiters(pg_server, url))


def test_a_move_into_postgresql_killed_before_its_last_step_is_finished_by_the_next(
        pg: Shared, pg_server: Any, tmp_path: Path, blocker: Any) -> None:
    """Killed after the file's tombstone (step 2) and before the copy became live (step 3)."""
    one, two = pg.hosts
    path = tmp_path / "local" / "credentials.toml"
    local = {"PROCORE_SETUP_STORE": str(path)}
    one.run("store", "init")  # the table, so the trigger can be made before the move
    fake = pg.fake
    r = one.run("login", "--plain", "--profile", "default", "--environment", "custom", "--login-url", fake.url,
                "--api-url", fake.url, "--client-id", CLIENT_ID, "--code=" + fake.issue_code(), input="1\n",
                env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET, **local})
    assert r.returncode == 0, r.stderr
    token = one.run("token", env=local).stdout.strip()
    conn = blocker("UPDATE", "OLD.kind = 'profile' AND OLD.fields ? 'moving_from' AND NOT NEW.fields ? 'moving_from'")
    proc = one.popen("store", "move", "--to", pg.url, env=local)
    try:
        wait_for(lambda: _move_waits(pg_server, pg.url) or proc.poll() is not None, timeout=30,
                 what="the move to reach its last step")
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        assert one.collect(proc).returncode == -signal.SIGKILL
    finally:
        _unblock(pg_server, pg.url, conn)
    gone = one.run("token", env=local)
    assert gone.returncode == 3 and "moved" in gone.stderr  # the file is a tombstone
    copy = two.run("token")
    assert copy.returncode == 3 and "unfinished move" in copy.stderr and "store move" in copy.stderr
    assert fake.counts["token:refresh_token"] == 0  # no live copy refreshed anything
    again = one.run("store", "move", "--to", pg.url, env=local)
    assert again.returncode == 0, again.stderr
    assert two.token() == token
    assert one.run("token", env=local).returncode == 3


def test_a_move_out_of_postgresql_killed_before_the_tombstone_leaves_the_source_live(
        pg: Shared, pg_server: Any, tmp_path: Path, blocker: Any) -> None:
    """Killed after the file's copy (step 1) and before the tombstone (step 2): PostgreSQL's copy
    stays live, the file's is not used, and the next move finishes."""
    one, two = pg.hosts
    one.login()
    token = pg.profile()["access_token"]
    path = tmp_path / "local" / "credentials.toml"
    local = {"PROCORE_SETUP_STORE": str(path)}
    conn = blocker("DELETE", "OLD.kind = 'profile'")
    proc = two.popen("store", "move", "--to", str(path))
    try:
        wait_for(lambda: _move_waits(pg_server, pg.url) or proc.poll() is not None, timeout=30,
                 what="the move to reach its tombstone step")
        assert proc.poll() is None
        assert "moving_from" in path.read_text()
        proc.send_signal(signal.SIGKILL)
        assert two.collect(proc).returncode == -signal.SIGKILL
    finally:
        _unblock(pg_server, pg.url, conn)
    assert two.token() == token  # the source is still the live copy
    copy = one.run("token", env=local)
    assert copy.returncode == 3 and "unfinished move" in copy.stderr
    again = two.run("store", "move", "--to", str(path))
    assert again.returncode == 0, again.stderr
    assert one.run("token", env=local).stdout.strip() == token
    assert two.run("token").returncode == 3


def test_a_move_onto_a_store_that_has_the_profile_changes_nothing(pg: Shared, pg_server: Any,
                                                                  tmp_path: Path) -> None:
    one, two = pg.hosts
    one.login()
    path = tmp_path / "local" / "credentials.toml"
    local = {"PROCORE_SETUP_STORE": str(path)}
    fake = pg.fake
    r = one.run("login", "--plain", "--profile", "default", "--environment", "custom", "--login-url", fake.url,
                "--api-url", fake.url, "--client-id", CLIENT_ID, "--code=" + fake.issue_code(), input="1\n",
                env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET, **local})
    assert r.returncode == 0, r.stderr
    file_before, pg_before = path.read_bytes(), store_rows(pg_server, pg.url)
    for host, args, env in ((one, ("store", "move", "--to", pg.url), local),
                            (two, ("store", "move", "--to", str(path)), None)):
        moved = host.run(*args, env=env)
        assert moved.returncode == 2, moved.stderr
        assert "already has a profile 'default'" in moved.stderr and "nothing was moved" in moved.stderr
    assert path.read_bytes() == file_before
    assert store_rows(pg_server, pg.url) == pg_before


# -- the store's password -----------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["in the URL", "PGPASSWORD"])
def test_a_passphrase_command_never_sees_the_store_or_its_password(pg: Shared, pg_server: Any, tmp_path: Path,
                                                                  how: str) -> None:
    one, two = pg.hosts
    one.login()
    dump = tmp_path / "child-env.json"
    script = tmp_path / "passphrase.py"
    script.write_text("import json, os, sys\n"
                      f"open({str(dump)!r}, 'w').write(json.dumps(dict(os.environ)))\n"
                      "print('correct horse battery staple 42')\n")
    command = f"{sys.executable} {script}"
    r = one.run("encrypt", "--passphrase-command", command)
    assert r.returncode == 0, r.stderr
    env: dict[str, str] = {}
    if how == "PGPASSWORD":
        env = {"PROCORE_SETUP_STORE": pg.store().address.describe(), "PGPASSWORD": pg_server.app_password}
    dump.unlink(missing_ok=True)
    t = two.run("token", env=env)
    assert t.returncode == 0, t.stderr
    seen = json.loads(dump.read_text())  # the stored command ran on the other host
    assert "PROCORE_SETUP_STORE" not in seen and "PGPASSWORD" not in seen
    assert pg_server.app_password not in dump.read_text()
