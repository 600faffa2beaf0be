"""Shared fixtures: the fake Procore server over real HTTP, the real CLI, the secret guard, and
the store tests' two hosts on one store (the helpers they are built on are in tests/helpers)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import CLI, EXE
from helpers.engine import Engine
from helpers.stores import BLOCK_SQL, KINDS, Shared, redis_dump
from helpers.secret_guard import SECRET_ENV_VARS, GuardLogHandler, SecretGuard
from procore_setup.testing import FakeProcore

# The program's directory on PATH, as for a person who installed it (an activated venv, pipx's
# ~/.local/bin): its messages then name it `procore-setup`, as the tests' texts do, in a child
# (which inherits this) and in this process alike. tests/test_hint_commands.py runs it off PATH.
if os.path.dirname(EXE) not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.path.dirname(EXE) + os.pathsep + os.environ.get("PATH", "")

# real PostgreSQL and Redis for the store tests; a copy of this file alone (test_reliability_secrets) runs without
pytest_plugins = ["servers"] if Path(__file__).with_name("servers.py").exists() else []


@pytest.fixture
def fake() -> Any:
    with FakeProcore() as server:
        yield server


@pytest.fixture
def cli(tmp_path: Path, fake: FakeProcore) -> CLI:
    return CLI(tmp_path / "conf" / "credentials.toml", fake)


@pytest.fixture
def eng(cli: CLI, fake: FakeProcore) -> Iterator[Engine]:
    """The engine tests' runner: every output checked for secrets now and again at the end."""
    engine = Engine(cli, fake)
    yield engine
    engine.finish()


# -- two hosts on one store (tests/helpers/stores.py; the servers are tests/servers.py's) ---------

@pytest.fixture(params=KINDS)
def shared(request: pytest.FixtureRequest, tmp_path: Path, fake: FakeProcore) -> Iterator[Shared]:
    kind = request.param
    if kind == "file":
        path = tmp_path / "shared" / "credentials.toml"
        s = Shared(kind, str(path), fake, tmp_path, lambda: path.read_text() if path.exists() else "", [])
    elif kind == "postgres":
        url = request.getfixturevalue("pg_store_url")
        server = request.getfixturevalue("pg_server")
        s = Shared(kind, url, fake, tmp_path, lambda: server.dump(url), [server.app_password])
    else:
        url = request.getfixturevalue("redis_store_url")
        server = request.getfixturevalue("redis_server")
        s = Shared(kind, url, fake, tmp_path, lambda: redis_dump(url), [server.password])
    yield s
    s.finish()


@pytest.fixture
def pg(tmp_path: Path, fake: FakeProcore, pg_server: Any, pg_store_url: str) -> Iterator[Shared]:
    """Two hosts sharing one fresh PostgreSQL database (the contract suite's Shared and Host)."""
    s = Shared("postgres", pg_store_url, fake, tmp_path, lambda: pg_server.dump(pg_store_url),
               [pg_server.app_password])
    yield s
    s.finish()


@pytest.fixture
def rs(tmp_path: Path, fake: FakeProcore, redis_server: Any, redis_store_url: str) -> Iterator[Shared]:
    """Two hosts sharing one fresh Redis database (the contract suite's Shared and Host)."""
    s = Shared("redis", redis_store_url, fake, tmp_path, lambda: redis_dump(redis_store_url), [redis_server.password])
    yield s
    s.finish()


@pytest.fixture
def blocker(pg_server: Any, pg_store_url: str) -> Iterator[Callable[[str, str], Any]]:
    """A trigger on the store's table that makes one step of a move wait (on an advisory lock the
    test holds) inside the real server, so the test can SIGKILL the move right there."""
    conns: list[Any] = []

    def block(event: str, when: str) -> Any:
        import psycopg

        pg_server.superuser_sql(pg_store_url, BLOCK_SQL.replace("pg_temp_block", "procore_test_block"))
        pg_server.superuser_sql(pg_store_url, f"CREATE TRIGGER procore_test_block BEFORE {event} ON procore_setup "
                                f"FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION procore_test_block()")
        conn = psycopg.connect(host="127.0.0.1", port=pg_server.port, user="postgres", password=pg_server.password,
                               dbname=pg_store_url.rsplit("/", 1)[1], autocommit=True)
        conn.execute("SELECT pg_advisory_lock(4242)")
        conns.append(conn)
        return conn

    yield block
    for conn in conns:
        conn.close()


# -- secrets: nothing a test creates may show up in anything it prints ---------------------------
#
# An autouse fixture records every secret the tests create -- the client secret, every access and
# refresh token any FakeProcore issues, client secrets and passphrases handed to subprocesses
# through the environment, and whatever a test adds with `secret_guard.add()` -- and the
# `pytest_runtest_makereport` hook below fails the test when one of them (or any 16-character
# piece of one) appears in its captured stdout or stderr (capsys/capfd), its log records, the
# text of a procore_setup exception it created (raised or caught), or the stdout/stderr of any
# subprocess it ran through `communicate()` (so `subprocess.run`, `CLI.run`, `Popen` results).
# Allowed: `procore-setup token` printing its access token on stdout, and `python -m
# procore_setup.testing` printing the fake's (public, made-up) client secret.

_GUARD_KEY = pytest.StashKey[SecretGuard]()


@pytest.fixture(autouse=True)
def secret_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Fail the test if any secret it created leaks (see the comment above). Autouse."""
    import logging

    from procore_setup.errors import ProcoreSetupError

    guard = SecretGuard()
    request.node.stash[_GUARD_KEY] = guard
    if request.node.get_closest_marker("leaks_secrets_on_purpose"):
        guard.armed = False

    new_pair = FakeProcore._new_pair

    def recording_new_pair(self: FakeProcore, grant_id: int) -> Any:
        pair = new_pair(self, grant_id)
        guard.add(pair.access_token, "an access token")
        guard.add(pair.refresh_token, "a refresh token")
        guard.add(self.client_secret, "the client secret")
        return pair

    monkeypatch.setattr(FakeProcore, "_new_pair", recording_new_pair)

    popen_init = subprocess.Popen.__init__
    # The test's own processes, kept until its end: the pipes of those that have ended are closed
    # then (a test that read a pipe without communicate() leaves it open, and pyproject's
    # filterwarnings fails a ResourceWarning: that one is the test's, not the product's).
    started: list[subprocess.Popen[Any]] = []

    def recording_init(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        env = kwargs.get("env")
        if env:
            for name in SECRET_ENV_VARS:
                guard.add(env.get(name), f"${name} of a subprocess")
        popen_init(self, *args, **kwargs)
        started.append(self)

    communicate = subprocess.Popen.communicate

    def recording_communicate(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> Any:
        out, err = communicate(self, *args, **kwargs)
        guard.record_process(self.args, out, err, self.returncode)
        return out, err

    monkeypatch.setattr(subprocess.Popen, "__init__", recording_init)
    monkeypatch.setattr(subprocess.Popen, "communicate", recording_communicate)

    error_init = ProcoreSetupError.__init__

    def recording_error_init(self: ProcoreSetupError, *args: Any, **kwargs: Any) -> None:
        error_init(self, *args, **kwargs)
        guard.errors.append(self)

    monkeypatch.setattr(ProcoreSetupError, "__init__", recording_error_init)

    handler = GuardLogHandler(guard)
    pkg_logger = logging.getLogger("procore_setup")
    old_level = pkg_logger.level
    pkg_logger.setLevel(logging.DEBUG)  # a debug line is a leak too, once someone turns debug on
    logging.getLogger().addHandler(handler)
    try:
        yield guard
    finally:
        logging.getLogger().removeHandler(handler)
        pkg_logger.setLevel(old_level)
        for proc in started:
            if proc.poll() is not None:  # ended (a server a fixture started lives on, pipes and all)
                for pipe in (proc.stdin, proc.stdout, proc.stderr):
                    if pipe is not None:
                        try:
                            pipe.close()
                        except OSError:
                            pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    outcome = yield
    report = outcome.get_result()
    guard: SecretGuard | None = item.stash.get(_GUARD_KEY, None)
    if guard is None or not guard.armed or report.when not in ("call", "teardown"):
        return
    extra = [(f"captured {name}", text) for name, text in report.sections]
    if call.excinfo is not None:
        extra.append(("the exception the test ended with", str(call.excinfo.value)))
    leaks = [x for x in guard.problems(extra) if x not in guard.reported]
    if not leaks:
        return
    guard.reported.update(leaks)
    text = "secret leaked (tests/conftest.py secret_guard):\n  " + "\n  ".join(leaks)
    if report.failed and report.longrepr is not None:
        text = f"{report.longrepr}\n\n{text}"
    report.outcome = "failed"
    report.longrepr = text


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "leaks_secrets_on_purpose: the secret guard does not fail this test (for its own tests)")
