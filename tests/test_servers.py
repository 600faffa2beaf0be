"""The real-server fixtures of tests/servers.py do what the store tests rely on."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from helpers.cli import base_env
from helpers.servers import REQUIRE_ENV, PostgresServer, RedisServer

# The pairs below (an earlier test leaves something behind for the later one) stay on one xdist worker.
pytestmark = pytest.mark.xdist_group("test_servers")


def _driver(name: str) -> ModuleType:
    """The driver, or a skip of this module (an error instead when the servers are required)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            raise ImportError(f"{exc} ({REQUIRE_ENV}=1, so this fails instead of skipping)") from exc
        pytest.skip(f"could not import {name!r}: {exc}", allow_module_level=True)


psycopg = _driver("psycopg")
redis = _driver("redis")

_seen: dict[str, str] = {}  # what an earlier test of a pair left behind, for the later one


# -- PostgreSQL ------------------------------------------------------------------------------------


def test_pg_app_gets_a_fresh_empty_database_it_owns(pg_server: PostgresServer, pg_store_url: str) -> None:
    with psycopg.connect(pg_store_url) as conn:
        user, db = conn.execute("SELECT current_user, current_database()").fetchone()
        assert user == "app"
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                             (db,)).fetchone()
        assert owner == ("app",)
        tables = conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                              " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
                              " AND c.relkind IN ('r', 'v', 'S', 'p')").fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE profiles (name text PRIMARY KEY)")  # the owner may make its schema


@pytest.mark.parametrize("turn", ["first", "second"])
def test_pg_database_is_dropped_after_its_test(pg_server: PostgresServer, pg_store_url: str, turn: str) -> None:
    db = pg_store_url.rsplit("/", 1)[1]
    if turn == "second" and "pg" in _seen:
        assert _seen["pg"] != db
        assert pg_server.superuser_sql(None, "SELECT 1 FROM pg_database WHERE datname = %s", (_seen["pg"],)) == []
    with psycopg.connect(pg_store_url) as conn:
        conn.execute("CREATE TABLE leftover (x int)")
    _seen["pg"] = db


def test_pg_terminate_kills_a_connection_holding_a_lock(pg_server: PostgresServer, pg_store_url: str) -> None:
    with psycopg.connect(pg_store_url, autocommit=True) as setup:
        setup.execute("CREATE TABLE profiles (name text PRIMARY KEY, version int)")
        setup.execute("INSERT INTO profiles VALUES ('default', 1)")
    holder = psycopg.connect(pg_store_url)
    try:
        holder.execute("SELECT * FROM profiles WHERE name = 'default' FOR UPDATE")
        assert pg_server.terminate(pg_store_url) == 1
        with pytest.raises(psycopg.OperationalError):
            holder.execute("SELECT 1")
        assert pg_server.terminate(pg_store_url) == 0
    finally:
        holder.close()
    with psycopg.connect(pg_store_url) as conn:  # the lock went with the session
        conn.execute("SET lock_timeout = '5s'")
        assert conn.execute("SELECT version FROM profiles WHERE name = 'default' FOR UPDATE").fetchone() == (1,)


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_pg_restart_keeps_committed_data_on_the_same_port(pg_server: PostgresServer, pg_store_url: str,
                                                          mode: str) -> None:
    with psycopg.connect(pg_store_url) as conn:
        conn.execute("CREATE TABLE profiles (name text PRIMARY KEY)")
        conn.execute("INSERT INTO profiles VALUES ('default')")
    old = psycopg.connect(pg_store_url)
    try:
        pg_server.stop(mode)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg_store_url, connect_timeout=5)
        pg_server.start()
        with pytest.raises(psycopg.OperationalError):
            old.execute("SELECT 1")  # the server it talked to is gone
    finally:
        old.close()
    pg_server.restart(mode)
    with psycopg.connect(pg_store_url) as conn:
        assert conn.execute("SELECT name FROM profiles").fetchall() == [("default",)]


def test_pg_dump_holds_the_data(pg_server: PostgresServer, pg_store_url: str) -> None:
    with psycopg.connect(pg_store_url) as conn:
        conn.execute("CREATE TABLE profiles (name text, refresh_token text)")
        conn.execute("INSERT INTO profiles VALUES ('default', 'marker-1b4e28ba2fa1')")
    dump = pg_server.dump(pg_store_url)
    assert "CREATE TABLE public.profiles" in dump
    assert "marker-1b4e28ba2fa1" in dump


def test_pg_role_without_rights_connects_but_may_do_nothing(pg_server: PostgresServer, pg_store_url: str) -> None:
    with psycopg.connect(pg_store_url) as conn:
        conn.execute("CREATE TABLE profiles (name text)")
    url = pg_server.role_without_rights(pg_store_url)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0].startswith("norights_")
        for statement in ("SELECT * FROM profiles", "CREATE TABLE mine (x int)", "CREATE TEMP TABLE mine (x int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_pg_wrong_password_is_refused(pg_server: PostgresServer, pg_store_url: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_server.url(pg_store_url, password="not-the-password"), connect_timeout=5)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_server.url(pg_store_url, password=pg_server.app_password, user="postgres"),
                        connect_timeout=5)


# -- Redis -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("turn", ["first", "second"])
def test_redis_gets_a_flushed_database_behind_a_password(redis_server: RedisServer, redis_store_url: str,
                                                         turn: str) -> None:
    client = redis.Redis.from_url(redis_store_url)
    try:
        assert client.dbsize() == 0
        client.set("procore-setup:profile:default", "left by the " + turn)
    finally:
        client.close()
    anonymous = redis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        with pytest.raises(redis.AuthenticationError):
            anonymous.get("procore-setup:profile:default")
    finally:
        anonymous.close()


@pytest.mark.parametrize("hard", [False, True], ids=["shutdown", "sigkill"])
def test_redis_restart_keeps_every_key(redis_server: RedisServer, redis_store_url: str, hard: bool) -> None:
    client = redis.Redis.from_url(redis_store_url)
    try:
        client.set("procore-setup:profile:default", "v1")
        client.hset("procore-setup:doc", mapping={"default_profile": "default"})
    finally:
        client.close()
    redis_server.restart(hard=hard)
    client = redis.Redis.from_url(redis_store_url)
    try:
        assert client.get("procore-setup:profile:default") == b"v1"
        assert client.hgetall("procore-setup:doc") == {b"default_profile": b"default"}
    finally:
        client.close()


def _raw_client(server: RedisServer) -> socket.socket:
    """A connection that does not reconnect by itself (redis-py would, hiding the kill)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(f"AUTH {server.password}\r\n".encode())
    assert sock.recv(64) == b"+OK\r\n"
    return sock


def test_redis_kill_clients_drops_clients_but_not_the_admin_connection(redis_server: RedisServer,
                                                                       redis_store_url: str) -> None:
    admin_id = redis_server.cli("CLIENT", "ID")
    sock = _raw_client(redis_server)
    try:
        assert redis_server.kill_clients() >= 1
        assert sock.recv(64) == b""  # the server closed it
    finally:
        sock.close()
    assert redis_server.cli("CLIENT", "ID") == admin_id
    assert redis_server.cli("DBSIZE", db=redis_store_url) == 0


# -- without the servers ---------------------------------------------------------------------------


def _run_without_servers(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """This file's Redis test in a child pytest whose PATH holds no redis-server."""
    bindir = tmp_path / "bin"
    bindir.mkdir(parents=True)
    return subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q", str(Path(__file__)),
         "-k", "test_redis_restart_keeps_every_key and shutdown"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent,
        env=base_env(PATH=str(bindir), **env))


def test_a_missing_server_skips_with_its_reason_unless_required(tmp_path: Path) -> None:
    skipped = _run_without_servers(tmp_path / "skip")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "1 skipped" in skipped.stdout
    assert "redis-server is not installed" in skipped.stdout
    required = _run_without_servers(tmp_path / "fail", PROCORE_SETUP_REQUIRE_SERVERS="1")
    assert required.returncode == 1, required.stdout + required.stderr
    assert "1 error" in required.stdout
    assert "redis-server is not installed" in required.stdout
    assert "PROCORE_SETUP_REQUIRE_SERVERS=1" in required.stdout
