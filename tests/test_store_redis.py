"""The Redis store, through the real executable, against a real redis-server and the fake Procore.

Every "host" is a HOME of its own with PROCORE_SETUP_STORE set: the hosts share nothing but
the Redis server. The faults are the ones a Redis store meets: a server restarted (or killed)
while a refresh is at Procore, client connections killed (CLIENT KILL) while a run holds the
lock and right after Procore answered, and a lock holder stopped past its lease, whose late
save must be refused (the fence), never written over the next holder's pair.

Every test waits on state (a counter of the fake, a key in Redis, a process exit), never on a
sleep, and none is timed.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import CLI, CLIENT_ID, CLIENT_SECRET, EXE, base_env
from helpers.engine import issued_secrets
from helpers.servers import RedisServer, redis_db, tls_files
from procore_setup.testing import FakeProcore, Fault

TOKEN_PATH = ["/oauth/token"]
PREFIX = "procore-setup:"
DEADLINE = 30.0
ADMIN = "test-admin"  # the name of the test's own connections, so they are not counted as procore-setup's


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = DEADLINE) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


# -- hosts -----------------------------------------------------------------------------------------

class Host:
    """One machine: a HOME of its own, the store named by PROCORE_SETUP_STORE."""

    def __init__(self, home: Path, url: str, fake: FakeProcore, **env: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.url = url
        self.fake = fake
        self.env = base_env(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), PROCORE_SETUP_STORE=url,
                            PROCORE_SETUP_LOCK_TIMEOUT="30", **env)
        self.env.pop("PROCORE_SETUP_CONFIG", None)

    def run(self, *args: str, env: dict[str, str] | None = None, input: str = "",
            timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EXE, *args], input=input, capture_output=True, text=True,
                              env=dict(self.env, **(env or {})), timeout=timeout)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([EXE, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(self.env, **(env or {})))

    @staticmethod
    def collect(proc: subprocess.Popen[str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def login_args(self, profile: str = "default") -> list[str]:
        return ["login", "--plain", "--profile", profile, "--environment", "custom", "--login-url", self.fake.url,
                "--api-url", self.fake.url, "--client-id", CLIENT_ID, f"--code={self.fake.issue_code()}"]

    def login(self, profile: str = "default", *pre: str) -> subprocess.CompletedProcess[str]:
        r = self.run(*pre, *self.login_args(profile), input="1\n", env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
        assert r.returncode == 0, r.stderr
        return r

    def token(self, *args: str) -> str:
        r = self.run("token", *args)
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""
        return r.stdout.strip()

    def credentials_files(self) -> list[Path]:
        return sorted(p for p in self.home.rglob("*") if p.is_file() and "credentials" in p.name)


@pytest.fixture
def hosts(tmp_path: Path, fake: FakeProcore, redis_store_url: str) -> tuple[Host, Host]:
    return Host(tmp_path / "host1", redis_store_url, fake), Host(tmp_path / "host2", redis_store_url, fake)


# -- looking into the store ------------------------------------------------------------------------

def profile_in_store(server: RedisServer, url: str, name: str = "default") -> dict[str, Any]:
    text = server.cli("GET", f"{PREFIX}profile:{name}", db=url)
    assert text is not None, f"no key for profile {name!r}"
    return dict(json.loads(text))


def set_expiry(server: RedisServer, url: str, seconds_left: float, name: str = "default") -> None:
    """Time travel: the stored profile says its access token expires in `seconds_left` seconds."""
    fields = profile_in_store(server, url, name)
    when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=seconds_left)
    fields["expires_at"] = {"$datetime": when.isoformat()}
    server.cli("SET", f"{PREFIX}profile:{name}", json.dumps(fields), db=url)


def everything_in_store(server: RedisServer, url: str) -> str:
    """Every key and value in the store's database, as one text to search."""
    out = []
    for key in server.cli("KEYS", "*", db=url):
        kind = server.cli("TYPE", key, db=url)
        if kind == "string":
            value: Any = server.cli("GET", key, db=url)
        elif kind == "hash":
            value = server.cli("HGETALL", key, db=url)
        elif kind == "set":
            value = server.cli("SMEMBERS", key, db=url)
        else:
            value = kind
        out.append(f"{key} = {value}")
    return "\n".join(out)


def lock_held(server: RedisServer, url: str) -> bool:
    return bool(server.cli("EXISTS", f"{PREFIX}lock", db=url))


class Gate:
    """A token request that Procore processes and then holds until the test opens the gate."""

    def __init__(self, fake: FakeProcore, then: Callable[[], None] | None = None) -> None:
        self.event = threading.Event()

        def hook() -> None:
            self.event.wait(DEADLINE)
            if then is not None:
                then()

        fake.inject(Fault(hook=hook, paths=TOKEN_PATH))

    def open(self) -> None:
        self.event.set()


@pytest.fixture
def gates() -> Iterator[list[Gate]]:
    made: list[Gate] = []
    yield made
    for gate in made:
        gate.open()  # never leave a fake thread waiting


# -- the basics ------------------------------------------------------------------------------------

def test_login_token_refresh_and_status_through_the_store(hosts: tuple[Host, Host], redis_server: RedisServer,
                                                          fake: FakeProcore) -> None:
    one, two = hosts
    # --store on the command line (the URL's password in argv: this process's own business)
    r = one.login("default", "--store", one.url)
    assert redis_server.password not in r.stdout + r.stderr
    assert f"to redis://127.0.0.1:{redis_server.port}/{redis_db(one.url)} (Redis;" in r.stdout  # shown without it
    assert one.credentials_files() == []  # nothing written on the host

    stored = profile_in_store(redis_server, one.url)
    assert stored["refresh_token"] and stored["client_secret"] == CLIENT_SECRET
    doc = redis_server.cli("HGETALL", f"{PREFIX}document", db=one.url)
    assert doc["schema"] == "1" and int(doc["version"]) >= 1
    # a field this version does not know, added by a newer one: it survives every rewrite
    stored["added_by_a_newer_version"] = {"kept": [1, 2]}
    redis_server.cli("SET", f"{PREFIX}profile:default", json.dumps(stored), db=one.url)

    # the other host, through PROCORE_SETUP_STORE, gets the same token without a refresh
    assert two.token() == stored["access_token"]
    assert fake.counts["token:refresh_token"] == 0

    r = two.run("refresh", "--force")
    assert r.returncode == 0, r.stderr
    assert fake.counts["refresh_ok"] == 1
    after = profile_in_store(redis_server, one.url)
    assert after["refresh_token"] != stored["refresh_token"]
    assert fake.refresh_token_state(after["refresh_token"]) == "active"
    assert after["added_by_a_newer_version"] == {"kept": [1, 2]}
    assert "refresh_started_at" not in after
    assert one.token() == after["access_token"]

    r = one.run("status")
    assert r.returncode == 0, r.stderr
    assert f"store: redis://127.0.0.1:{redis_server.port}/" in r.stdout
    assert "Redis; readable by anyone with this Redis server's password" in r.stdout
    assert "note:" not in r.stdout  # AOF is on: nothing to warn about
    r = one.run("status", "--json")
    head = json.loads(r.stdout)
    assert head["store_kind"] == "Redis" and redis_server.password not in r.stdout
    assert one.credentials_files() == [] and two.credentials_files() == []


def test_twenty_token_calls_on_two_hosts_after_expiry_refresh_once(hosts: tuple[Host, Host],
                                                                  redis_server: RedisServer, fake: FakeProcore) -> None:
    one, two = hosts
    one.login()
    old = profile_in_store(redis_server, one.url)
    set_expiry(redis_server, one.url, -60)

    procs = [(one if i % 2 else two).popen("token") for i in range(20)]
    results = [Host.collect(p) for p in procs]
    assert [r.returncode for r in results] == [0] * 20, [r.stderr for r in results if r.returncode]
    printed = {r.stdout for r in results}
    assert len(printed) == 1, "every call prints the same token"
    token = printed.pop().strip()
    assert token != old["access_token"] and fake.access_token_valid(token)
    assert fake.counts["token:refresh_token"] == 1  # exactly one refresh reached Procore
    assert fake.counts["invalid_grant"] == 0
    assert all(r.stderr == "" for r in results)
    assert profile_in_store(redis_server, one.url)["access_token"] == token
    assert not lock_held(redis_server, one.url)  # every holder released it


# -- the server's own faults -----------------------------------------------------------------------

def test_server_crash_while_a_refresh_is_at_procore_keeps_the_pair(hosts: tuple[Host, Host], redis_server: RedisServer,
                                                                  fake: FakeProcore, gates: list[Gate]) -> None:
    one, two = hosts
    one.login()
    old = profile_in_store(redis_server, one.url)
    gates.append(gate := Gate(fake))
    proc = one.popen("refresh", "--force")
    wait_for(lambda: fake.counts["refresh_ok"] == 1, "Procore to process the refresh")
    # the in-flight mark was saved before the request went out, on every host's view
    assert "refresh_started_at" in profile_in_store(redis_server, one.url)
    assert lock_held(redis_server, one.url)

    redis_server.stop(hard=True)  # SIGKILL: what was acknowledged is in the AOF (fsync always)
    gate.open()  # Procore's answer reaches a holder whose server is gone
    redis_server.start()
    r = Host.collect(proc)
    assert r.returncode == 0, r.stderr
    new = profile_in_store(redis_server, one.url)
    assert new["refresh_token"] != old["refresh_token"]
    assert fake.refresh_token_state(new["refresh_token"]) == "active"  # the saved pair is the live one
    assert "refresh_started_at" not in new
    assert two.token() == new["access_token"]
    assert fake.counts["refresh_ok"] == 1 and fake.counts["invalid_grant"] == 0
    r = two.run("refresh", "--force")  # the chain goes on
    assert r.returncode == 0, r.stderr


def test_clients_killed_while_a_run_holds_the_lock_and_another_waits(hosts: tuple[Host, Host],
                                                                     redis_server: RedisServer, fake: FakeProcore,
                                                                     gates: list[Gate]) -> None:
    one, two = hosts
    one.login()
    set_expiry(redis_server, one.url, -60)
    gates.append(gate := Gate(fake))
    holder = one.popen("token")
    wait_for(lambda: fake.counts["refresh_ok"] == 1, "Procore to process the refresh")
    waiter = two.popen("token")

    def ours() -> int:  # the connections of procore-setup runs to this store's database
        return sum(1 for c in redis_server.cli("CLIENT", "LIST", "TYPE", "normal").splitlines()
                   if f" db={redis_db(one.url)} " in c and f" name={ADMIN} " not in c
                   and " cmd=client|list " not in c)  # the admin connection asking (it is not named)

    # the holder's data and lock connections, and the waiter's (its first read went over the fast
    # path's own socket, closed since: stores/resp.py)
    wait_for(lambda: ours() >= 3, "both runs' connections")
    assert redis_server.kill_clients() >= 3
    gate.open()
    a, b = Host.collect(holder), Host.collect(waiter)
    assert (a.returncode, b.returncode) == (0, 0), (a.stderr, b.stderr)
    assert a.stdout == b.stdout and a.stderr == b.stderr == ""
    assert fake.counts["token:refresh_token"] == 1  # the waiter used what the holder saved
    stored = profile_in_store(redis_server, one.url)
    assert stored["access_token"] == a.stdout.strip()
    assert fake.refresh_token_state(stored["refresh_token"]) == "active"
    r = two.run("refresh", "--force")  # the next run works
    assert r.returncode == 0, r.stderr


def test_clients_killed_right_after_procore_answered_lose_nothing(hosts: tuple[Host, Host], redis_server: RedisServer,
                                                                 fake: FakeProcore) -> None:
    one, two = hosts
    one.login()
    killed: list[int] = []
    # the kill comes from inside the fake, after Procore processed the refresh and before its answer
    # goes out: the holder's next command (the save of the new pair) meets a dead connection
    fake.inject(Fault(hook=lambda: killed.append(redis_server.kill_clients()), paths=TOKEN_PATH))
    r = one.run("refresh", "--force")
    assert r.returncode == 0, r.stderr
    assert killed and killed[0] >= 1
    stored = profile_in_store(redis_server, one.url)
    assert fake.refresh_token_state(stored["refresh_token"]) == "active"
    assert "refresh_started_at" not in stored
    assert two.token() == stored["access_token"]
    assert fake.counts["refresh_ok"] == 1 and fake.counts["invalid_grant"] == 0


def test_a_holder_stopped_past_its_lease_cannot_overwrite_the_next_holders_pair(
        hosts: tuple[Host, Host], redis_server: RedisServer, fake: FakeProcore, gates: list[Gate]) -> None:
    one, two = hosts
    one.login()
    gates.append(gate := Gate(fake))
    stale = one.popen("refresh", "--force", env={"PROCORE_SETUP_REDIS_LEASE": "1.5"})
    wait_for(lambda: fake.counts["refresh_ok"] == 1, "Procore to process the first host's refresh")
    stale.send_signal(signal.SIGSTOP)  # a long pause, with Procore's answer on its way
    try:
        gate.open()
        wait_for(lambda: not lock_held(redis_server, one.url), "the stopped holder's lease to run out")
        # Meanwhile a person logs in again on the other host: a new grant, the store's newest pair.
        two.login()
        newest = profile_in_store(redis_server, one.url)
        # another run holds the lock now: the resumed one must neither extend nor release it
        redis_server.cli("SET", f"{PREFIX}lock", "the-next-holder", "PX", 60000, db=one.url)
    finally:
        stale.send_signal(signal.SIGCONT)
    r = Host.collect(stale)
    assert redis_server.cli("GET", f"{PREFIX}lock", db=one.url) == "the-next-holder"
    assert int(redis_server.cli("PTTL", f"{PREFIX}lock", db=one.url)) <= 60000
    redis_server.cli("DEL", f"{PREFIX}lock", db=one.url)
    # It reports, and does not write: exit 6 while refresh.py calls it a pair that could not be
    # saved, 5 once it says NewerTokensInStore (nothing is lost: run again).
    assert r.returncode in (5, 6), r.stderr
    assert "already holds newer tokens" in r.stderr and "not written over them" in r.stderr
    assert redis_server.password not in r.stderr
    assert profile_in_store(redis_server, one.url) == newest  # the next holder's pair survived
    assert fake.refresh_token_state(newest["refresh_token"]) == "active"
    assert one.token() == newest["access_token"]
    r = one.run("refresh", "--force")
    assert r.returncode == 0, r.stderr


def test_a_slow_answer_keeps_the_lease_and_the_waiters_wait(hosts: tuple[Host, Host], redis_server: RedisServer,
                                                            fake: FakeProcore, gates: list[Gate]) -> None:
    one, two = hosts
    one.login()
    set_expiry(redis_server, one.url, -60)
    short = {"PROCORE_SETUP_REDIS_LEASE": "1.5"}
    gates.append(gate := Gate(fake))
    holder = one.popen("token", env=short)
    wait_for(lambda: fake.counts["refresh_ok"] == 1, "Procore to process the refresh")
    waiter = two.popen("token", env=short)
    # Procore takes its time: the holder's lease is extended again and again (its time to live goes
    # back up), so the waiter never gets the lock and never sends a refresh of its own.
    seen: list[int] = []

    def extended_three_times() -> bool:
        ttl = int(redis_server.cli("PTTL", f"{PREFIX}lock", db=one.url))
        assert ttl > 0, "the holder lost its lease while it was alive"
        if seen and ttl > seen[-1] + 50:
            seen.append(-1)  # a rise: one extension
        seen.append(ttl)
        return seen.count(-1) >= 3

    wait_for(extended_three_times, "the holder to extend its lease three times")
    assert fake.counts["token:refresh_token"] == 1 and waiter.poll() is None
    gate.open()
    a, b = Host.collect(holder), Host.collect(waiter)
    assert (a.returncode, b.returncode) == (0, 0), (a.stderr, b.stderr)
    assert a.stdout == b.stdout and a.stderr == b.stderr == ""
    assert fake.counts["token:refresh_token"] == 1


def test_a_lock_held_elsewhere_bounds_the_wait(hosts: tuple[Host, Host], redis_server: RedisServer,
                                              fake: FakeProcore) -> None:
    one, _ = hosts
    one.login()
    before = profile_in_store(redis_server, one.url)
    redis_server.cli("SET", f"{PREFIX}lock", "another-host", "PX", 600000, db=one.url)
    r = one.run("refresh", "--force", env={"PROCORE_SETUP_LOCK_TIMEOUT": "1"})
    assert r.returncode == 5, r.stderr
    assert "held the lock" in r.stderr and f"redis://127.0.0.1:{redis_server.port}/" in r.stderr
    assert fake.counts["token:refresh_token"] == 0
    assert profile_in_store(redis_server, one.url) == before
    assert redis_server.cli("GET", f"{PREFIX}lock", db=one.url) == "another-host"  # not ours to release
    redis_server.cli("DEL", f"{PREFIX}lock", db=one.url)
    r = one.run("refresh", "--force")
    assert r.returncode == 0, r.stderr


# -- bad input -------------------------------------------------------------------------------------

def test_wrong_password_missing_password_and_unreachable_port(tmp_path: Path, fake: FakeProcore,
                                                             redis_server: RedisServer, redis_store_url: str) -> None:
    good = Host(tmp_path / "good", redis_store_url, fake)
    good.login()
    before = everything_in_store(redis_server, redis_store_url)
    shown = f"redis://127.0.0.1:{redis_server.port}/{redis_db(redis_store_url)}"

    wrong = Host(tmp_path / "wrong", redis_server.url(redis_store_url, password="not-the-password-at-all"), fake)
    for args in (["token"], ["status"], ["refresh", "--force"]):
        r = wrong.run(*args)
        assert r.returncode == 6, r.stderr
        assert "refused the login" in r.stderr and shown in r.stderr
        assert "not-the-password-at-all" not in r.stderr + r.stdout

    r = Host(tmp_path / "none", shown, fake).run("token")
    assert r.returncode == 6, r.stderr
    assert "asks for a password" in r.stderr and "REDISCLI_AUTH" in r.stderr
    # redis-cli's own variable gives the password when the URL has none
    assert Host(tmp_path / "env", shown, fake, REDISCLI_AUTH=redis_server.password).token() == \
        profile_in_store(redis_server, redis_store_url)["access_token"]

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        r = Host(tmp_path / "down", f"redis://:{redis_server.password}@127.0.0.1:{port}/0", fake).run("token")
    assert r.returncode == 5, r.stderr
    assert f"redis://127.0.0.1:{port}/0 could not be reached" in r.stderr
    assert redis_server.password not in r.stderr

    r = Host(tmp_path / "bad", redis_store_url + "?frobnicate=1", fake).run("token")
    assert r.returncode == 2 and "frobnicate" in r.stderr, r.stderr
    assert everything_in_store(redis_server, redis_store_url) == before
    assert fake.counts["token:refresh_token"] == 0


def test_a_store_written_by_a_newer_version_or_far_too_big_is_refused(hosts: tuple[Host, Host],
                                                                      redis_server: RedisServer) -> None:
    one, _ = hosts
    one.login()
    redis_server.cli("HSET", f"{PREFIX}document", "schema", "99", db=one.url)
    r = one.run("token")
    assert r.returncode == 6 and "newer procore-setup" in r.stderr, r.stderr
    redis_server.cli("HSET", f"{PREFIX}document", "schema", "1", db=one.url)
    assert one.token()

    redis_server.cli("SET", f"{PREFIX}profile:huge", "x" * (2 << 20), db=one.url)
    redis_server.cli("SADD", f"{PREFIX}profiles", "huge", db=one.url)
    r = one.run("token")
    assert r.returncode == 6 and "far too big" in r.stderr, r.stderr
    assert len(r.stderr) < 2000


def test_an_acl_user_limited_to_the_keys_works_and_one_that_may_not_write_is_stopped_before_login(
        tmp_path: Path, fake: FakeProcore, redis_server: RedisServer, redis_store_url: str, secret_guard: Any) -> None:
    name, password = f"procore_{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    reader, reader_password = f"reader_{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    secret_guard.add(password, "an ACL user's password")
    secret_guard.add(reader_password, "an ACL user's password")
    # the README's rule: its own keys, reads, writes and scripts, nothing dangerous
    redis_server.cli("ACL", "SETUSER", name, "on", f">{password}", f"~{PREFIX}*", "+@read", "+@write", "+@scripting",
                     "+select", "-@dangerous")
    redis_server.cli("ACL", "SETUSER", reader, "on", f">{reader_password}", f"~{PREFIX}*", "+@read", "+@scripting",
                     "+select", "-@dangerous")
    n = redis_db(redis_store_url)
    try:
        host = Host(tmp_path / "h", f"redis://{name}:{password}@127.0.0.1:{redis_server.port}/{n}", fake)
        host.login()
        set_expiry(redis_server, redis_store_url, -60)
        assert host.token() == profile_in_store(redis_server, redis_store_url)["access_token"]
        assert fake.counts["refresh_ok"] == 1
        r = host.run("status")
        assert r.returncode == 0 and f"redis://{name}@127.0.0.1" in r.stdout, r.stderr

        ro = Host(tmp_path / "ro", f"redis://{reader}:{reader_password}@127.0.0.1:{redis_server.port}/{n}", fake)
        before = everything_in_store(redis_server, redis_store_url)
        code = fake.issue_code()
        args = ro.login_args("second")[:-1] + [f"--code={code}"]
        r = ro.run(*args, input="1\n", env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
        assert r.returncode == 6, r.stderr
        assert "may not run the commands" in r.stderr and "ACL SETUSER" in r.stderr
        assert fake.counts["code_ok"] == 1  # only the first login's: this one's code was not spent
        assert everything_in_store(redis_server, redis_store_url) == before
        assert ro.token() == host.token()  # reading is all it may do
    finally:
        redis_server.cli("ACL", "DELUSER", name, reader)


def test_a_profile_that_vanished_is_not_configured(hosts: tuple[Host, Host], redis_server: RedisServer) -> None:
    one, _ = hosts
    one.login()
    one.login("site-b")
    redis_server.cli("DEL", f"{PREFIX}profile:default", db=one.url)  # evicted, or deleted by hand
    r = one.run("token", "--profile", "default")
    assert r.returncode == 3, r.stderr
    assert "default" in r.stderr and "Traceback" not in r.stderr
    assert one.token("--profile", "site-b")
    redis_server.cli("FLUSHDB", db=one.url)  # everything gone
    r = one.run("token", "--profile", "site-b")
    assert r.returncode == 3, r.stderr
    assert "holds no procore-setup credentials" in r.stderr


def test_a_server_without_persistence_is_said_so_and_a_restart_is_exit_3(tmp_path: Path, fake: FakeProcore,
                                                                         other_redis: Any) -> None:
    server = other_redis("--save", "", "--appendonly", "no")
    host = Host(tmp_path / "h", server.url(0), fake)
    host.login()
    r = host.run("status")
    assert r.returncode == 0, r.stderr
    assert "note: This Redis server saves nothing to disk" in r.stdout
    server.restart()
    r = host.run("token")
    assert r.returncode == 3, r.stderr
    assert "holds no procore-setup credentials" in r.stderr and "saves nothing to disk" in r.stderr

    hidden = other_redis("--save", "", "--appendonly", "no", "--rename-command", "CONFIG", "")
    host = Host(tmp_path / "h2", hidden.url(0), fake)
    host.login()
    r = host.run("status")
    assert r.returncode == 0, r.stderr
    assert "hides whether it takes RDB snapshots" in r.stdout

    evicting = other_redis("--appendonly", "yes", "--maxmemory-policy", "allkeys-lru")
    host = Host(tmp_path / "h3", evicting.url(0), fake)
    host.login()
    r = host.run("status")
    assert "maxmemory-policy is allkeys-lru" in r.stdout, r.stdout


# -- moving, encrypting, the fast path -------------------------------------------------------------

def test_store_move_file_to_redis_and_back_leaves_tombstones(cli: CLI, tmp_path: Path, fake: FakeProcore,
                                                             redis_server: RedisServer, redis_store_url: str) -> None:
    cli.login()
    token = cli.run("token").stdout.strip()
    bare = f"redis://127.0.0.1:{redis_server.port}/{redis_db(redis_store_url)}"  # the password from REDISCLI_AUTH
    r = cli.run("store", "move", "--to", bare, env={"REDISCLI_AUTH": redis_server.password})
    assert r.returncode == 0, r.stderr
    assert redis_server.password not in r.stdout + r.stderr
    host = Host(tmp_path / "host", redis_store_url, fake)
    assert host.token() == token  # the live copy, in Redis now
    r = cli.run("token")
    assert r.returncode == 3, r.stderr
    assert bare in r.stderr and r.stdout == ""  # the old file names the new store, and hands out nothing
    assert fake.counts["token:refresh_token"] == 0

    r = host.run("store", "move", "--to", str(cli.config))
    assert r.returncode == 0, r.stderr
    r = host.run("token")
    assert r.returncode == 3, r.stderr
    assert str(cli.config) in r.stderr and r.stdout == ""
    r = cli.run("refresh", "--force")
    assert r.returncode == 0, r.stderr
    assert fake.counts["refresh_ok"] == 1 and fake.counts["invalid_grant"] == 0
    assert host.credentials_files() == []


def test_encrypt_leaves_no_plain_secret_in_redis(hosts: tuple[Host, Host], redis_server: RedisServer,
                                                 fake: FakeProcore) -> None:
    one, two = hosts
    one.login()
    one.run("refresh", "--force")
    secrets_now = issued_secrets(fake)
    stored = profile_in_store(redis_server, one.url)
    plain = everything_in_store(redis_server, one.url)
    assert CLIENT_SECRET in plain and stored["refresh_token"] in plain  # the search can find them

    passphrase = {"PROCORE_SETUP_PASSPHRASE": "correct horse battery staple"}
    r = one.run("encrypt", env=passphrase)
    assert r.returncode == 0, r.stderr
    dump = everything_in_store(redis_server, one.url)
    for secret in secrets_now:
        assert secret not in dump, "a secret is still in plain text in Redis"
    r = two.run("token", env=passphrase)
    assert r.returncode == 0 and r.stdout.strip() == stored["access_token"], r.stderr
    r = two.run("refresh", "--force", env=passphrase)
    assert r.returncode == 0, r.stderr
    dump = everything_in_store(redis_server, one.url)
    for secret in issued_secrets(fake):
        assert secret not in dump
    r = two.run("token", env={"PROCORE_SETUP_KEY_CACHE": "0"})  # the cache off: else the cached key opens it
    assert r.returncode == 6, r.stderr  # no passphrase, no token


def _imported(host: Host, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    r = host.run(*args, env={"PYTHONPROFILEIMPORTTIME": "1"})
    names = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in r.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    return r, names


def test_token_from_redis_imports_neither_httpx_nor_textual(hosts: tuple[Host, Host], redis_server: RedisServer) -> None:
    one, _ = hosts
    one.login()
    r, mods = _imported(one, "token")
    assert r.returncode == 0
    # a valid token is read over a plain socket (stores/resp.py, its replies parsed by hiredis): not
    # even redis-py is imported
    assert not mods & {"httpx", "textual", "tomlkit", "redis"}, mods & {"httpx", "textual", "tomlkit", "redis"}
    assert "hiredis" in mods
    set_expiry(redis_server, one.url, -60)
    r, mods = _imported(one, "token")
    assert r.returncode == 0 and "httpx" in mods and "redis" in mods  # a refresh that is needed loads both



def test_a_save_sent_twice_after_a_lost_answer_is_known_to_have_landed(redis_store_url: str) -> None:
    # redis-py sends a command again on a new connection when the first one dropped; if the first
    # had run, the compare-and-set would now see its own version. The save's writer id tells.
    from procore_setup.stores.redis import _WRITE, RedisStore

    store = RedisStore(redis_store_url)
    client = store._data()
    write = client.register_script(_WRITE)
    keys = [store.key("document"), store.key("profiles")]

    def args(writer: str) -> list[Any]:
        return [store.prefix, 0, 1, 1, json.dumps({"schema_version": 1}), writer, "now", 1, "p", json.dumps({"a": 1})]

    assert write(keys=keys, args=args("first"), client=client) == 1
    assert write(keys=keys, args=args("first"), client=client) == 2  # the same save again: it had landed
    assert write(keys=keys, args=args("another"), client=client) == 0  # another one: stale, refused
    rev = store._read()
    assert rev.version == 1 and rev.profiles == {"p": {"a": 1}}
    store.close()


def test_without_the_driver_the_message_names_the_extra(tmp_path: Path, fake: FakeProcore) -> None:
    shadow = tmp_path / "shadow" / "redis"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('redis-py is not installed here')\n")
    host = Host(tmp_path / "h", "redis://127.0.0.1:6379/0", fake, PYTHONPATH=str(shadow.parent))
    r = host.run("token")
    assert r.returncode == 2, r.stderr
    assert "pip install 'procore-setup[redis]'" in r.stderr and "Traceback" not in r.stderr


def test_a_prefix_keeps_two_stores_apart_in_one_database(tmp_path: Path, fake: FakeProcore, redis_server: RedisServer,
                                                         redis_store_url: str) -> None:
    team = Host(tmp_path / "team", redis_store_url + "?prefix=team-a:", fake)
    plain = Host(tmp_path / "plain", redis_store_url, fake)
    team.login()
    r = plain.run("token")
    assert r.returncode == 3, r.stderr  # the default prefix holds nothing
    plain.login()
    keys = set(redis_server.cli("KEYS", "*", db=redis_store_url))
    assert {"team-a:document", "team-a:profiles", "team-a:profile:default", f"{PREFIX}profile:default"} <= keys
    assert team.token() != plain.token()
    r = team.run("status")
    # shown as written, without the password
    assert f"store: redis://127.0.0.1:{redis_server.port}/{redis_db(redis_store_url)}?prefix=team-a: (Redis;" in r.stdout
    assert "team-a:*" in r.stdout


def test_rediss_with_the_servers_ca_works_and_an_unknown_certificate_is_refused(tmp_path: Path, fake: FakeProcore,
                                                                               other_redis: Any) -> None:
    certs = tls_files(tmp_path)
    if certs is None:
        pytest.skip("openssl is not installed")
    server = other_redis("--appendonly", "yes", tls=certs)
    url = f"rediss://:{server.password}@127.0.0.1:{server.port}/0"
    host = Host(tmp_path / "h", f"{url}?ssl_ca_certs={certs / 'ca.crt'}", fake)
    host.login()
    assert host.token()
    r = Host(tmp_path / "no-ca", url, fake).run("token")
    assert r.returncode == 6, r.stderr
    assert "TLS connection failed" in r.stderr and "certificate verify failed" in r.stderr
    r = Host(tmp_path / "plain", url.replace("rediss://", "redis://"), fake).run("token")
    assert r.returncode == 5, r.stderr  # plain text to a TLS port: the server drops it
