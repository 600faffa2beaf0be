"""`store move` when things go wrong around it, through the real executable on two "hosts".

A holder that lost its lock with a refresh in flight, a tombstone save whose answer is lost (or
that a Ctrl-C interrupts), a login onto the copy an interrupted move left, one store spelt two
ways, a passphrase prompt, and the tombstone's hint in a job's environment. Each test runs
`procore-setup` in subprocesses against the fake Procore over HTTP and a real server
(tests/servers.py), waits on state with a bounded deadline, and checks that exactly one live
copy of the chain remains and that nothing was lost.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from helpers.cli import CLIENT_ID, CLIENT_SECRET, EXE
from helpers.engine import wait_for
from helpers.stores import chain_intact, hold_answers, Host, kill_backend, pg_lock_holders, Shared, store_rows
from helpers.net import stop_serving
from procore_setup.testing import FakeProcore

PASSPHRASE = "correct horse battery staple 42"


def _local(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "local" / "credentials.toml"
    return path, {"PROCORE_SETUP_STORE": str(path)}


def _login(host: Host, env: dict[str, str], profile: str = "default") -> None:
    fake = host.shared.fake
    r = host.run("login", "--plain", "--profile", profile, "--environment", "custom", "--login-url", fake.url,
                 "--api-url", fake.url, "--client-id", CLIENT_ID, "--code=" + fake.issue_code(), input="1\n",
                 env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET, **env})
    assert r.returncode == 0, r.stderr


# -- 1. a refresh in flight on a store whose locks can be lost -----------------------------------------

def test_a_move_refuses_while_a_holder_that_lost_its_lock_has_a_refresh_in_flight(pg: Shared, pg_server: Any,
                                                                                 tmp_path: Path) -> None:
    """Host 1's lock connection dies while Procore's answer to its refresh is on the way: host 1 is
    alive and will still save that answer into PostgreSQL. A move now would leave two live copies
    (the file's, and the one host 1 writes back): it is refused, and changes nothing."""
    one, two = pg.hosts
    one.login()
    path, local = _local(tmp_path)
    release = hold_answers(pg.fake)
    first = one.popen("refresh", "--force")
    try:
        wait_for(lambda: pg.fake.counts["faults"] >= 1, timeout=30, what="the refresh to reach Procore")
        holders = pg_lock_holders(pg_server, pg.url)
        assert len(holders) == 1
        kill_backend(pg_server, holders[0])
        before = store_rows(pg_server, pg.url)
        r = two.run("store", "move", "--all", "--to", str(path))
        assert r.returncode == 5, r.stderr
        assert "a refresh is in flight; try again in" in r.stderr.lower(), r.stderr
        assert re.search(r"try again in \d+ s", r.stderr), r.stderr
        assert "Nothing was moved" in r.stderr
        assert store_rows(pg_server, pg.url) == before  # nothing changed in the source
        assert not path.exists()  # nor anything written to the destination
    finally:
        release.set()
    a = one.collect(first)
    assert a.returncode == 0, a.stderr
    token = chain_intact(pg)["access_token"]  # the holder's pair is the live chain
    moved = two.run("store", "move", "--all", "--to", str(path))  # now nothing is in flight
    assert moved.returncode == 0, moved.stderr
    assert one.run("token", env=local).stdout.strip() == token
    assert two.run("token").returncode == 3  # PostgreSQL holds a tombstone only
    assert pg.fake.counts["token:refresh_token"] == 1


# -- 2. the tombstone's save: committed, but its answer lost -------------------------------------------

class _Proxy:
    """A TCP proxy in front of the PostgreSQL server, for the move's connections only. Armed, it
    acts on the first answer that reports a COMMIT (the move's tombstone save: the only
    transaction it commits on the source): "cut" drops that answer, closes the connection, and
    refuses every new one (the server gone right after it committed); "hold" keeps the answer
    until `release()` (a Ctrl-C arrives while it is on its way)."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.mode: str | None = None
        self.down = False
        self.commits = 0  # COMMIT answers acted on
        self.connections = 0
        self._held = threading.Event()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve, daemon=True)]
        self._threads[0].start()

    def url(self, url: str) -> str:
        return re.sub(r"@127\.0\.0\.1:\d+/", f"@127.0.0.1:{self.port}/", url)

    def release(self) -> None:
        self._held.set()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            if self.down:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b, watch in ((client, upstream, False), (upstream, client, True)):
                t = threading.Thread(target=self._pipe, args=(a, b, watch), daemon=True)
                t.start()

    def _pipe(self, a: socket.socket, b: socket.socket, watch: bool) -> None:
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if watch and self.mode is not None and b"COMMIT\x00" in data:
                    mode, self.mode = self.mode, None
                    self.commits += 1
                    if mode == "cut":
                        self.down = True
                        break
                    self._held.wait(60)
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._stop.set()
        self._held.set()
        stop_serving(self.sock, self._threads[0])


@pytest.fixture
def proxy(pg_server: Any) -> Iterator[_Proxy]:
    p = _Proxy(pg_server.port)
    yield p
    p.close()


def test_a_tombstone_committed_whose_answer_is_lost_keeps_the_copy_and_the_next_move_finishes(
        pg: Shared, pg_server: Any, tmp_path: Path, proxy: _Proxy) -> None:
    """The source commits the tombstone and then goes away before its answer arrives (and stays
    away past the save's retries): the destination's copy is the only one left that can become
    live, so it is kept (marked), the run says what to run, and that finishes the move."""
    one, two = pg.hosts
    one.login()
    token = pg.profile()["access_token"]
    path, local = _local(tmp_path)
    via = {"PROCORE_SETUP_STORE": proxy.url(pg.url)}
    proxy.mode = "cut"
    r = two.run("store", "move", "--all", "--to", str(path), env=via, timeout=120)
    assert proxy.commits == 1, r.stderr
    assert r.returncode == 5, r.stderr
    assert "marked as not live" in r.stderr and "nothing is lost" in r.stderr, r.stderr
    assert "store move --to " + str(path) + " --all" in r.stderr, r.stderr
    assert two.run("token").returncode == 3  # the tombstone was committed: PostgreSQL hands out nothing
    assert "moving_from" in path.read_text()  # the copy is kept, and it is not live
    assert one.run("token", env=local).returncode == 3
    proxy.down = False  # the server is back
    again = two.run("store", "move", "--all", "--to", str(path), env=via)
    assert again.returncode == 0, again.stderr
    assert "finishing an earlier move" in again.stdout
    assert one.run("token", env=local).stdout.strip() == token
    assert pg.fake.counts["token:refresh_token"] == 0


def test_a_ctrl_c_while_the_tombstones_answer_is_on_its_way_keeps_the_copy(pg: Shared, pg_server: Any,
                                                                          tmp_path: Path, proxy: _Proxy) -> None:
    one, two = pg.hosts
    one.login()
    token = pg.profile()["access_token"]
    path, local = _local(tmp_path)
    via = {"PROCORE_SETUP_STORE": proxy.url(pg.url)}
    proxy.mode = "hold"
    proc = two.popen("store", "move", "--all", "--to", str(path), env=via)
    try:
        wait_for(lambda: proxy.commits == 1 or proc.poll() is not None, timeout=30,
                 what="the tombstone's COMMIT answer to reach the proxy")
        assert proc.poll() is None
        seen = proxy.connections
        proc.send_signal(signal.SIGINT)
        # psycopg answers a Ctrl-C by cancelling the query on a new connection, then waits for its end
        wait_for(lambda: proxy.connections > seen or proc.poll() is not None, timeout=30,
                 what="the interrupted move to ask the server to cancel")
    finally:
        proxy.release()
    r = two.collect(proc)
    assert r.returncode == 130, r.stderr
    assert "marked as not live" in r.stderr and "store move --to" in r.stderr, r.stderr
    assert two.run("token").returncode == 3  # the tombstone is in
    assert "moving_from" in path.read_text()  # and the copy was kept
    again = two.run("store", "move", "--all", "--to", str(path), env=via)
    assert again.returncode == 0, again.stderr
    assert one.run("token", env=local).stdout.strip() == token


# -- 3. a login onto the copy an interrupted move left ---------------------------------------------------

def test_a_login_onto_an_unfinished_moves_copy_is_never_thrown_away_by_the_move(pg: Shared, pg_server: Any,
                                                                                tmp_path: Path,
                                                                                blocker: Any) -> None:
    """A move out of PostgreSQL is killed after the file's copy (step 1); someone logs in on the
    file, getting a fresh grant there. That profile is the file's own now (it works at once), and
    running the move again must not replace it by PostgreSQL's copy."""
    one, two = pg.hosts
    one.login()
    path, local = _local(tmp_path)
    conn = blocker("DELETE", "OLD.kind = 'profile'")
    proc = two.popen("store", "move", "--to", str(path))
    try:
        wait_for(lambda: "moving_from" in (path.read_text() if path.exists() else "") or proc.poll() is not None,
                 timeout=30, what="the move to write its copy")
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        assert two.collect(proc).returncode == -signal.SIGKILL
    finally:
        conn.execute("SELECT pg_advisory_unlock(4242)")
        pg_server.superuser_sql(pg.url, "DROP TRIGGER procore_test_block ON procore_setup")
    _login(one, local)
    fresh = one.run("token", env=local)
    assert fresh.returncode == 0, fresh.stderr  # the login made it a live profile of the file
    granted = fresh.stdout.strip()
    assert pg.fake.access_token_valid(granted)
    file_before, pg_before = path.read_bytes(), store_rows(pg_server, pg.url)
    again = two.run("store", "move", "--to", str(path))
    assert again.returncode == 2, again.stderr
    assert "nothing was moved" in again.stderr
    assert path.read_bytes() == file_before and store_rows(pg_server, pg.url) == pg_before
    assert one.run("token", env=local).stdout.strip() == granted


# -- 4. one store, spelt two ways ------------------------------------------------------------------------

def _respelt(kind: str, url: str, tmp_path: Path) -> str:
    if kind == "postgres":
        return url.replace("postgresql://", "postgres://").replace("@127.0.0.1:", "@localhost:")
    if kind == "redis":
        return url.replace("@127.0.0.1:", "@localhost:")
    link = tmp_path / "elsewhere"
    link.symlink_to(Path(url).parent)
    return str(link / Path(url).name)


@pytest.mark.parametrize("kind", ["postgres", "redis", "file"])
def test_a_move_onto_the_same_store_spelt_another_way_is_refused_at_once(kind: str, tmp_path: Path,
                                                                          fake: FakeProcore,
                                                                          request: pytest.FixtureRequest) -> None:
    if kind == "file":
        url = str(tmp_path / "shared" / "credentials.toml")
        secrets: list[str] = []
    else:
        url = request.getfixturevalue(f"{'pg' if kind == 'postgres' else 'redis'}_store_url")
        server = request.getfixturevalue(f"{'pg' if kind == 'postgres' else 'redis'}_server")
        secrets = [server.app_password if kind == "postgres" else server.password]
    shared = Shared(kind, url, fake, tmp_path, lambda: "", secrets)
    one, _ = shared.hosts
    one.login()
    before = shared.profile()
    r = one.run("store", "move", "--all", "--to", _respelt(kind, url, tmp_path),
                env={"PROCORE_SETUP_LOCK_TIMEOUT": "5"})
    assert r.returncode == 2, r.stderr
    assert "is the store the profiles are in already" in r.stderr and "held the lock" not in r.stderr, r.stderr
    assert shared.profile() == before
    assert one.token() == before["access_token"]
    shared.finish()


# -- 4b. the passphrase is asked for before the locks are taken ---------------------------------------------

def _pty_run(env: dict[str, str], args: list[str], prompt: str, before_answer: Callable[[], None], answer: str,
             timeout: float = 60) -> tuple[int, str]:
    """Run the executable on a terminal; at `prompt`, call `before_answer`, then type `answer`."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its terminal
        try:
            os.execve(EXE, [EXE, *args], env)
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + timeout

    def read_some() -> bool:
        nonlocal out
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"timed out; output so far: {out.decode(errors='replace')!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        out += chunk
        return bool(chunk)

    done = False
    try:
        while prompt.encode() not in out:
            if not read_some():
                raise AssertionError(f"no prompt {prompt!r}; output: {out.decode(errors='replace')!r}")
        before_answer()
        os.write(fd, answer.encode() + b"\r")
        while read_some():
            pass
        done = True
    finally:
        if not done:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_a_move_asks_for_the_passphrase_before_it_takes_the_locks(pg: Shared, tmp_path: Path) -> None:
    """While a person types the passphrase, the stores' jobs go on: the other host refreshes."""
    one, two = pg.hosts
    one.login()
    key = {"PROCORE_SETUP_PASSPHRASE": PASSPHRASE}
    assert one.run("encrypt", env=key).returncode == 0
    path, local = _local(tmp_path)
    seen: dict[str, Any] = {}

    def meanwhile() -> None:
        seen["refresh"] = two.run("refresh", "--force", env={**key, "PROCORE_SETUP_LOCK_TIMEOUT": "3"})
        seen["token"] = two.run("token", env=key).stdout.strip()

    code, out = _pty_run(dict(two.env), ["store", "move", "--all", "--to", str(path)], "Passphrase for",
                         meanwhile, PASSPHRASE)
    refresh = seen["refresh"]
    assert refresh.returncode == 0, refresh.stderr  # the lock was free while the prompt waited
    assert code == 0, out
    token = one.run("token", env={**local, **key})
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip() == seen["token"]  # the move read again under the locks: the refreshed pair
    assert pg.fake.access_token_valid(seen["token"])
    assert two.run("token", env=key).returncode == 3


# -- 5. the tombstone's hint in a job's environment ----------------------------------------------------------

def test_the_tombstones_hint_works_in_a_job_that_sets_procore_setup_config(pg: Shared, tmp_path: Path) -> None:
    one, two = pg.hosts
    path, local = _local(tmp_path)
    _login(one, local)
    assert one.run("store", "move", "--all", "--to", pg.url, env=local).returncode == 0
    env = {k: v for k, v in two.env.items() if k != "PROCORE_SETUP_STORE"}
    job_env = {**env, "PROCORE_SETUP_CONFIG": str(path)}

    def run(*args: str, environ: dict[str, str]) -> Any:
        import subprocess

        r = subprocess.run([EXE, *args], capture_output=True, text=True, env=environ, timeout=60)
        return pg.check(r, token=False)

    r = run("refresh", "--all", "--quiet", environ=job_env)
    assert r.returncode == 3, r.stderr
    described = pg.store().address.describe()
    assert f"procore-setup --store {described} refresh --all" in r.stderr, r.stderr  # the job's own command
    assert "token --profile" not in r.stderr
    assert "instead of PROCORE_SETUP_CONFIG" in r.stderr and "unset PROCORE_SETUP_CONFIG" in r.stderr, r.stderr
    # following the hint either way works in that environment
    flag = run("--store", pg.url, "refresh", "--all", "--quiet", environ=job_env)
    assert flag.returncode == 0, flag.stderr
    switched = {k: v for k, v in job_env.items() if k != "PROCORE_SETUP_CONFIG"}
    switched["PROCORE_SETUP_STORE"] = pg.url
    follow = run("refresh", "--all", "--quiet", environ=switched)
    assert follow.returncode == 0, follow.stderr


def test_a_hostile_tombstone_destination_is_capped_and_escaped(cli: Any) -> None:
    cli.login()
    text = cli.config.read_text()
    hostile = "postgresql://h/" + "x" * 5000 + "\x1b[2J"
    cli.config.write_text(text.replace("[profiles.default]", "[moved.gone]\nto = " + json.dumps(hostile)
                                       + "\nat = 2026-01-01T00:00:00Z\n\n[profiles.default]", 1))
    r = cli.run("token", "--profile", "gone")
    assert r.returncode == 3, r.stderr
    assert "\x1b" not in r.stderr and len(r.stderr) < 1500, len(r.stderr)
    status = cli.run("status", "--json")
    data = json.loads(status.stdout)
    assert len(data["moved"]["gone"]) <= 210 and "\x1b" not in data["moved"]["gone"]
    text_status = cli.run("status")
    assert "\x1b" not in text_status.stdout
    assert all(len(line) < 300 for line in text_status.stdout.splitlines() if line.startswith("moved:"))
