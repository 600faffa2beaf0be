"""Issue 17: the Redis store attacked, through the real executable, a real server and hostile ones.

Junk another client wrote (versions and schemas the program never writes, a value of many MB),
a stray lock key with no expiry, bad URL options, and hostile servers (tests/helpers/hostile_stores.py)
that trickle their answer or nest it thousands deep. Each test fails without its fix.
"""

from __future__ import annotations

import resource
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import EXE, base_env
from helpers.engine import wait_for
from helpers.stores import hold_answers, Shared
from helpers.hostile_stores import HostileRedis
from procore_setup.testing import FakeProcore

PREFIX = "procore-setup:"


def _hset(server: Any, url: str, field: str, value: str) -> None:
    server.cli("HSET", PREFIX + "document", field, value, db=url)


# -- 3 and 10: a version or schema the program never writes ------------------------------------------

@pytest.mark.parametrize("field,value", [("version", "-1"), ("version", "²"), ("version", "9" * 5000),
                                         ("version", "0"), ("schema", "¹"), ("version", "1.5")])
def test_a_foreign_version_or_schema_is_exit_6_before_anything_is_sent(rs: Shared, redis_server: Any,
                                                                       field: str, value: str) -> None:
    one, two = rs.hosts
    one.login()
    rs.expire()
    _hset(redis_server, rs.url, field, value)
    sent = dict(rs.fake.counts)
    for args in (("token",), ("refresh", "--force"), ("status",)):
        r = two.run(*args)
        assert r.returncode == 6, (args, r.stderr)
        assert "Nothing was sent to Procore" in r.stderr, r.stderr
    assert dict(rs.fake.counts) == sent


def test_a_version_spoilt_while_procore_answers_does_not_lose_the_pair(rs: Shared, redis_server: Any) -> None:
    one, two = rs.hosts
    one.login()
    rs.expire()
    held = rs.profile()["refresh_token"]
    release = hold_answers(rs.fake)
    proc = two.popen("token")
    try:
        wait_for(lambda: rs.fake.refresh_token_state(held) == "used", what="Procore to use the refresh token",
                 timeout=30)
        _hset(redis_server, rs.url, "version", "-1")
    finally:
        release.set()
    r = two.collect(proc)
    assert r.returncode == 0, r.stderr
    version = redis_server.cli("HGET", PREFIX + "document", "version", db=rs.url)
    assert int(version) >= 1
    assert rs.fake.refresh_token_state(rs.profile()["refresh_token"]) == "active"
    assert one.run("token").returncode == 0


# -- 7: a value of many MB is measured, not downloaded -------------------------------------------------

def test_a_huge_schema_value_is_refused_without_downloading_it(rs: Shared, redis_server: Any) -> None:
    """A 300 MB `schema` cost 955 MB of memory before it was refused; here 60 MB, and the run's
    peak memory stays that of a run that read nothing big."""
    one, two = rs.hosts
    one.login()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # made by the server itself: a test process holding 60 MB would show in its children's peak
    # (a forked child counts its parent's pages until it execs)
    redis_server.cli("EVAL", "return redis.call('HSET', KEYS[1], 'schema', string.rep('1', tonumber(ARGV[1])))",
                     1, PREFIX + "document", 60 << 20, db=rs.url)
    r = two.run("token")
    assert r.returncode == 6, r.stderr
    assert "far longer" in r.stderr
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak < 45 * 1024 or peak == before, f"the run peaked at {peak} KB"


# -- 14: a stray lock key without expiry ------------------------------------------------------------------

@pytest.mark.parametrize("value", ["stray", "0123456789abcdef0123456789abcdef"])
def test_a_lock_key_without_expiry_is_named_with_how_to_remove_it(rs: Shared, redis_server: Any, value: str) -> None:
    """It blocked every refresh forever and blamed "another procore-setup process"."""
    one, two = rs.hosts
    one.login()
    redis_server.cli("SET", PREFIX + "lock", value, db=rs.url)
    r = two.run("refresh", "--force", env={"PROCORE_SETUP_LOCK_TIMEOUT": "20"})
    assert r.returncode == 6, r.stderr
    assert "has no expiry" in r.stderr and f"DEL {PREFIX}lock" in r.stderr, r.stderr
    assert "Another procore-setup process" not in r.stderr
    assert rs.fake.counts.get("token:refresh_token", 0) == 0
    redis_server.cli("DEL", PREFIX + "lock", db=rs.url)
    assert two.run("refresh", "--force").returncode == 0


# -- 10: bad URL options ------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme,option", [("redis", "ssl_cert_reqs=bogus"), ("rediss", "ssl_cert_reqs=bogus"),
                                           ("redis", "timeout=-1"), ("redis", "socket_timeout=-1"),
                                           ("redis", "protocol=9"), ("redis", "max_connections=0"),
                                           ("redis", "socket_keepalive=maybe")])
def test_a_bad_url_option_is_exit_2_naming_it(tmp_path: Path, scheme: str, option: str) -> None:
    with socket_nothing() as port:
        env = base_env(HOME=str(tmp_path), PROCORE_SETUP_STORE=f"{scheme}://127.0.0.1:{port}/0?{option}")
        r = subprocess.run([EXE, "token"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2, r.stderr
    assert option.split("=")[0] in r.stderr, r.stderr


class socket_nothing:
    """A port of 127.0.0.1 that nothing listens on, for as long as the block runs."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()


# -- 6 and 10: hostile servers -------------------------------------------------------------------------------

def _token(tmp_path: Path, url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "token"], capture_output=True, text=True, timeout=60,
                          env=base_env(HOME=str(tmp_path), PROCORE_SETUP_STORE=url, **env))


def test_a_server_that_trickles_its_answer_is_given_one_deadline(tmp_path: Path) -> None:
    """A byte every quarter second never trips a per-read timeout: `token` was held for as long as
    the server liked. Now PROCORE_SETUP_STORE_TIMEOUT bounds the whole read (the subprocess's own
    timeout would fail the test otherwise)."""
    with HostileRedis("trickle") as server:
        r = _token(tmp_path, f"redis://127.0.0.1:{server.port}/0", PROCORE_SETUP_STORE_TIMEOUT="2")
    assert r.returncode == 5, r.stderr
    assert "deadline" in r.stderr and "PROCORE_SETUP_STORE_TIMEOUT" in r.stderr, r.stderr


@pytest.mark.parametrize("depth", [5000, 1000])
@pytest.mark.parametrize("options", ["", "?socket_timeout=5"])
def test_a_reply_nested_5000_deep_is_exit_6(tmp_path: Path, options: str, depth: int) -> None:
    """The fast path's reader and redis-py's parser (a URL with options goes to redis-py) both.
    1000 deep is within what hiredis reads (1024): the reply was then turned into text by str(),
    which recursed (exit 1); only one flat list is the read's."""
    with HostileRedis("nested", depth=depth) as server:
        r = _token(tmp_path, f"redis://127.0.0.1:{server.port}/0{options}")
    assert r.returncode == 6, r.stderr
    assert "internal error" not in r.stderr
    assert "Redis reply" in r.stderr or "nested far too deep" in r.stderr, r.stderr


# Declared lengths: hiredis allocates a list of the length an aggregate's header declares before
# any element arrives. 200 million slots are 1.6 GB, more than the child's address space
# below (`ulimit -v`), so a reader that allocates them fails at once (exit 1, MemoryError), where
# a guarded one refuses the header (exit 6) without allocating anything.
_ADDRESS_SPACE_KB = 1_000_000
HUGE = 200_000_000


def _token_capped(tmp_path: Path, url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return _capped(base_env(HOME=str(tmp_path), PROCORE_SETUP_STORE=url, **env))


def _capped(env: dict[str, str], out: str = "") -> subprocess.CompletedProcess[str]:
    """`token` with its address space capped (by the shell: a preexec_fn in this threaded test
    process could deadlock)."""
    return subprocess.run(["sh", "-c", f'ulimit -v {_ADDRESS_SPACE_KB} && exec "$0" token {out}', EXE],
                          capture_output=True, text=True, timeout=60, env=env)


def test_the_capped_child_runs_a_normal_token(rs: Shared) -> None:
    """The cap leaves room for a run: what fails under it below is the allocation, not the cap."""
    one, _ = rs.hosts
    one.login()
    r = _capped(one.env, out=">/dev/null")  # (the token is printed: kept out of this process)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("reply", [b"*%d\r\n" % HUGE, b"%%%d\r\n" % HUGE, b"~%d\r\n" % HUGE, b">%d\r\n" % HUGE,
                                   b"*2\r\n$2\r\nok\r\n*%d\r\n" % HUGE, b"*4294967295\r\n"])
def test_a_reply_that_declares_millions_of_values_is_exit_6_at_once(tmp_path: Path, reply: bytes) -> None:
    """The fast read refuses it as junk on its one connection, without waiting out the deadline and
    without handing the connection to redis-py."""
    with HostileRedis("raw", reply=reply) as server:
        r = _token_capped(tmp_path, f"redis://127.0.0.1:{server.port}/0", PROCORE_SETUP_STORE_TIMEOUT="20")
        assert server.connections == 1
    assert r.returncode == 6, r.stderr
    assert "not a Redis reply procore-setup can use" in r.stderr and "internal error" not in r.stderr, r.stderr


@pytest.mark.parametrize("reply", [b"*%d\r\n" % HUGE, b"*4294967295\r\n"])
def test_redis_py_reads_a_declared_length_without_allocating_it(tmp_path: Path, reply: bytes) -> None:
    """A URL with options goes to redis-py, which used hiredis' parser too when hiredis was
    installed (exit 1, MemoryError); its own parser reads one element at a time, so the server's
    silence after the header is a timeout (exit 5)."""
    with HostileRedis("raw", reply=reply) as server:
        r = _token_capped(tmp_path, f"redis://127.0.0.1:{server.port}/0?socket_timeout=1")
    assert r.returncode == 5, r.stderr
    assert "could not be reached" in r.stderr and "internal error" not in r.stderr, r.stderr


# -- 5: TLS to a host that is not this machine ----------------------------------------------------------------

def test_ssl_cert_reqs_none_to_another_host_warns_once(tmp_path: Path, secret_guard: Any) -> None:
    password = secrets.token_hex(12)
    secret_guard.add(password, "a Redis password")
    env = base_env(HOME=str(tmp_path), PROCORE_SETUP_STORE=f"rediss://:{password}@redis.example.com:6380/0?ssl_cert_reqs=none")
    r = subprocess.run([EXE, "store", "init", "--print"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("warning") == 1 and "ssl_cert_reqs=none" in r.stderr, r.stderr
    env["PROCORE_SETUP_STORE"] = f"rediss://:{password}@127.0.0.1:6380/0?ssl_cert_reqs=none"
    r = subprocess.run([EXE, "store", "init", "--print"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr


# -- 11: one store spelt another way ---------------------------------------------------------------------------

def test_a_move_onto_the_same_redis_database_spelt_00_is_refused_at_once(rs: Shared, redis_server: Any) -> None:
    one, _ = rs.hosts
    one.login()
    before = rs.profile()
    base, db = rs.url.rsplit("/", 1)
    r = one.run("store", "move", "--all", "--to", f"{base}/0{db}", env={"PROCORE_SETUP_LOCK_TIMEOUT": "20"})
    assert r.returncode == 2, r.stderr
    assert "is the store the profiles are in already" in r.stderr, r.stderr
    assert rs.profile() == before


def test_rediss_checks_the_host_name_of_the_certificate(tmp_path: Path, fake: FakeProcore, other_redis: Any) -> None:
    """A certificate the CA signed for another name is refused: redis-py 5 (inside the dependency
    range) did not check host names by default, so procore-setup asks for it. (With the pinned
    redis-py 8 this passes either way; it guards the floor of the range.)"""
    from helpers.servers import tls_files

    certs = tls_files(tmp_path)
    if certs is None:
        pytest.skip("openssl is not installed")
    server = other_redis("--appendonly", "yes", tls=certs)
    ca = f"ssl_ca_certs={certs / 'ca.crt'}"
    good = _token(tmp_path, f"rediss://:{server.password}@127.0.0.1:{server.port}/0?{ca}")
    assert good.returncode == 3, good.stderr  # reached, and empty
    r = _token(tmp_path, f"rediss://:{server.password}@localhost:{server.port}/0?{ca}")  # the cert names 127.0.0.1
    assert r.returncode == 6, r.stderr
    assert "TLS connection failed" in r.stderr and ("hostname" in r.stderr or "match" in r.stderr), r.stderr
