"""Issue 19: the shared stores' fast reads, stores/resp.py (through hiredis' Reader) and
stores/libpq.py (the libpq psycopg uses, and what its version allows).

`token` runs as users run it, against hostile RESP servers (tests/helpers/hostile_stores.py), a
real redis-server and a port nothing listens on; a bound on time is asserted as a count of
connection attempts (Python's socket.connect audit event, logged by the child itself), never as
a timing. libpq's version and the options it is given are checked through the real libpq of
this machine.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
from pathlib import Path
from typing import Any

from helpers.cli import EXE, base_env
from helpers.hostile_stores import ConnectLog, HostileRedis
from procore_setup.testing import FakeProcore


def _token(tmp_path: Path, url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "token"], capture_output=True, text=True, timeout=60,
                          env=base_env(HOME=str(tmp_path), PROCORE_SETUP_STORE=url, **env))


# -- Redis: hostile servers, each asked once --------------------------------------------------------------

def test_a_reply_without_its_crlf_is_exit_5_after_one_connection(tmp_path: Path) -> None:
    """The whole reply but its last CRLF, and then silence: the read waits for it only until the
    deadline, and redis-py is not sent to wait for it again."""
    with HostileRedis("no-crlf") as server:
        r = _token(tmp_path, f"redis://127.0.0.1:{server.port}/0", PROCORE_SETUP_STORE_TIMEOUT="2")
        assert r.returncode == 5, r.stderr
        assert server.connections == 1
    assert "could not be reached" in r.stderr and "PROCORE_SETUP_STORE_TIMEOUT" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_server_that_trickles_is_given_one_deadline_on_one_connection(tmp_path: Path) -> None:
    """A byte every quarter second: the whole read's deadline ends it, and nothing asks again."""
    with HostileRedis("trickle") as server:
        r = _token(tmp_path, f"redis://127.0.0.1:{server.port}/0", PROCORE_SETUP_STORE_TIMEOUT="2")
        assert r.returncode == 5, r.stderr
        assert server.connections == 1
    assert "deadline" in r.stderr and "PROCORE_SETUP_STORE_TIMEOUT" in r.stderr, r.stderr


def test_a_bulk_string_followed_by_something_else_than_its_crlf_is_refused(tmp_path: Path) -> None:
    """Two bytes of data where a bulk string's CRLF belongs: a reader that skips them unread would
    take what is left for a good, empty store (exit 3); what is left over says the lengths lied."""
    with HostileRedis("lying-length") as server:
        r = _token(tmp_path, f"redis://127.0.0.1:{server.port}/0")
        assert server.connections == 1
    assert r.returncode == 6, r.stderr
    assert "not a Redis reply" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_server_that_never_answers_is_asked_once(tmp_path: Path) -> None:
    """A server that takes the connection and says nothing: exit 5 after one wait (READ_TIMEOUT),
    and redis-py does not connect again (twice, with its retry) to wait for the same silence."""
    with HostileRedis("silent") as server:  # the default deadline: a silence of 10 s is the end
        r = _token(tmp_path, f"redis://127.0.0.1:{server.port}/0")
        assert r.returncode == 5, r.stderr
        assert server.connections == 1
    assert f"redis://127.0.0.1:{server.port}/0 could not be reached" in r.stderr, r.stderr


def test_a_port_nothing_listens_on_costs_one_connection_attempt(tmp_path: Path) -> None:
    log = ConnectLog(tmp_path)
    with socket.socket() as s:  # bound, never listening: every connect is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        r = _token(tmp_path, f"redis://:not-the-password@127.0.0.1:{port}/0", **log.env)
    assert r.returncode == 5, r.stderr
    assert f"redis://127.0.0.1:{port}/0 could not be reached" in r.stderr and "Connection refused" in r.stderr
    assert "not-the-password" not in r.stderr
    assert log.attempts(port) == 1


def test_a_refused_password_is_said_after_one_connection(tmp_path: Path, fake: FakeProcore, redis_server: Any,
                                                         redis_store_url: str) -> None:
    """The server refused the password: asking again through redis-py (a new connection, then its
    retry) would only be refused again. The words are redis-py's, as before."""
    log = ConnectLog(tmp_path)
    url = redis_server.url(redis_store_url, password="not-the-password-at-all")
    r = _token(tmp_path, url, **log.env)
    assert r.returncode == 6, r.stderr
    assert "refused the login: invalid username-password pair or user is disabled." in r.stderr, r.stderr
    assert "not-the-password-at-all" not in r.stderr
    assert log.attempts(redis_server.port) == 1

    shown = f"redis://127.0.0.1:{redis_server.port}/{redis_store_url.rsplit('/', 1)[1]}"
    r = _token(tmp_path, shown, **log.env)  # no password at all: NOAUTH, said the same way
    assert r.returncode == 6 and "asks for a password, and none was given" in r.stderr, r.stderr
    assert log.attempts(redis_server.port) == 2


# -- libpq: which one, which version, which options ----------------------------------------------------------

def test_a_database_that_does_not_exist_is_said_the_same_through_libpq_and_psycopg(tmp_path: Path,
                                                                                  pg_server: Any,
                                                                                  pg_store_url: str) -> None:
    """One table maps both: `token` reads through libpq (stores/libpq.py), `store init` connects
    with psycopg; the server's refusal reaches both as text only (a connection that failed has no
    result to hold a SQLSTATE), and both say the same sentence, exit 6."""
    url = pg_server.url(f"nosuch_{secrets.token_hex(4)}")
    env = base_env(HOME=str(tmp_path), PROCORE_SETUP_STORE=url)
    for args in (["token"], ["store", "init"]):
        r = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 6, (args, r.stderr)
        assert f"{url.split('@')[1]} names a database that does not exist" in r.stderr, r.stderr
        assert "createdb" in r.stderr and pg_server.app_password not in r.stderr


def test_libpq_version_is_read_from_the_library_psycopg_uses() -> None:
    import psycopg

    from procore_setup.stores import libpq

    assert libpq.available()
    version = libpq.version()
    assert version == psycopg.pq.version(), (version, psycopg.pq.version())  # the binary wheel's own libpq
    assert version >= 100000  # what psycopg 3 needs, and so what this machine has
    assert ("tcp_user_timeout" in libpq.keepalives(version)) == (version >= 120000)


def test_the_system_libpq_is_found_as_psycopg_finds_it() -> None:
    from psycopg.pq.misc import find_libpq_full_path

    from procore_setup.stores import libpq

    assert libpq._system() == find_libpq_full_path()


def test_a_libpq_older_than_12_is_not_given_tcp_user_timeout() -> None:
    """libpq 11 refuses tcp_user_timeout as an invalid option, and the message then blamed the
    user's URL: it is left out below 12, and every other keepalive stays."""
    from procore_setup.stores.libpq import KEEPALIVES, keepalives

    for old in (90624, 110022, 119999):
        assert keepalives(old) == {k: v for k, v in KEEPALIVES.items() if k != "tcp_user_timeout"}
    for new in (120000, 170002):
        assert keepalives(new) == KEEPALIVES and KEEPALIVES["tcp_user_timeout"] == 30000


def test_the_fast_reads_sha_is_the_sha_of_its_script() -> None:
    """EVALSHA names the script by a SHA-1 written down in redis.py (hashlib stays off `token`'s
    path); an edit of the script without its SHA would send every read to the slow fallback."""
    import hashlib

    from procore_setup.stores import redis

    assert redis._READ_SHA == hashlib.sha1(redis._READ.encode()).hexdigest()
