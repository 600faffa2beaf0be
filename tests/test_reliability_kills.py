"""Deaths and lost answers at the worst moments, one at a time, each with what the next run must say.

The chaos run (bench/soak.py --chaos) does these by the hundred at random; here each moment is
pinned down, so that a regression names itself.
"""

from __future__ import annotations

import signal
import subprocess
import time
import tomllib
from pathlib import Path

from helpers.cli import CLI, EXE
from helpers.engine import set_expiry
from procore_setup.testing import FakeProcore, Fault

TOKEN_PATH = "/oauth/token"


def stored(cli: CLI) -> dict:
    return tomllib.loads(cli.config.read_text())["profiles"]["default"]


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def kill_after_procore_used_the_token(cli: CLI, fake: FakeProcore) -> None:
    """A refresh whose request Procore processes; the process dies before the answer arrives."""
    fake.inject(Fault(hang=30, consume=True, paths=TOKEN_PATH))  # processed, then the answer waits
    proc = cli.popen("refresh", "--force")
    wait_for(lambda: fake.counts["refresh_ok"] == 1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert "refresh_started_at" in stored(cli)  # the in-flight mark stayed


def test_killed_while_still_loading_its_http_library_leaves_no_in_flight_mark(cli: CLI, tmp_path: Path) -> None:
    # A process killed before it sent anything must not claim a refresh was interrupted.
    cli.login()
    slow = tmp_path / "slow_import"
    slow.mkdir()
    flag = tmp_path / "importing-httpx"
    (slow / "sitecustomize.py").write_text(
        "import sys, time, pathlib\n"
        "class SlowHttpx:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'httpx':\n"
        f"            pathlib.Path({str(flag)!r}).touch()\n"
        "            time.sleep(30)\n"
        "        return None\n"
        "sys.meta_path.insert(0, SlowHttpx())\n"
    )
    before = cli.config.read_bytes()
    proc = cli.popen("refresh", "--force", env={"PYTHONPATH": str(slow)})
    wait_for(flag.exists)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert cli.config.read_bytes() == before  # no mark: nothing had been sent
    r = cli.run("token")
    assert r.returncode == 0 and r.stderr == ""  # no false "an earlier refresh had not finished"
    assert cli.fake.counts["token:refresh_token"] == 0


def test_a_server_error_after_procore_used_the_token_is_named_as_the_cause(cli: CLI, fake: FakeProcore) -> None:
    cli.login()
    fake.inject(Fault(status=500, consume=True, paths=TOKEN_PATH))  # Procore rotated the pair, then failed
    r = cli.run("refresh", "--force")
    assert r.returncode == 4
    first = r.stderr.splitlines()[0]
    assert "answer was lost on the way back (or was a server error)" in first
    assert "another copy of this file" not in r.stderr  # not sent hunting for a second machine
    later = cli.run("token")
    assert later.returncode == 4 and "answer to a refresh was lost (or was a server error)" in later.stderr


def test_after_an_interrupted_refresh_every_later_run_repeats_the_cause(cli: CLI, fake: FakeProcore) -> None:
    cli.login()
    kill_after_procore_used_the_token(cli, fake)
    fake.clear_faults()
    first = cli.run("refresh")
    assert first.returncode == 4
    assert "was interrupted before its result was saved" in first.stderr.splitlines()[0]
    for args in (["token"], ["refresh", "--quiet"], ["refresh", "--json"]):
        r = cli.run(*args)
        assert r.returncode == 4
        out = r.stdout if "--json" in args else r.stderr
        assert "needs a new login" in out and "was interrupted before its result was saved" in out, out
        assert "login --profile default" in out
    assert "interrupted" in cli.run("status").stdout + cli.run("status").stderr


def test_killed_mid_refresh_then_the_next_answer_lost_too_names_both(cli: CLI, fake: FakeProcore) -> None:
    cli.login()
    kill_after_procore_used_the_token(cli, fake)
    fake.clear_faults()
    fake.inject(Fault(drop=True, paths=TOKEN_PATH))  # the next run's first attempt: connection dropped
    r = cli.run("token")
    assert r.returncode == 4
    first = r.stderr.splitlines()[0]
    assert "was interrupted before its result was saved" in first and "answer was lost" in first
    assert r.stdout == ""


def test_killed_before_procore_used_the_token_the_chain_survives_and_the_next_run_says_so(
        cli: CLI, fake: FakeProcore) -> None:
    cli.login()
    set_expiry(cli.config, 60)  # due: `token` refreshes
    fake.inject(Fault(hang=30, paths=TOKEN_PATH))  # held before processing
    proc = cli.popen("token")
    wait_for(lambda: fake.counts["faults"] == 1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    fake.clear_faults()
    r = cli.run("token")
    assert r.returncode == 0
    assert "an earlier refresh had not finished" in r.stderr and "the chain is intact" in r.stderr
    assert fake.access_token_valid(r.stdout.strip())
    assert fake.refresh_token_state(stored(cli)["refresh_token"]) == "active"
    assert "refresh_started_at" not in stored(cli)


def test_a_hung_refresh_gives_up_in_bounded_time_and_the_next_run_goes_on(cli: CLI, fake: FakeProcore) -> None:
    # While one refresh is stuck, the others wait on the lock; the stuck one gives up after its
    # bounded retries, so they get their turn instead of timing out on the lock.
    cli.login()
    fake.inject(Fault(hang=600, paths=TOKEN_PATH, times=3))  # every attempt held far longer than the bound below
    stuck = cli.popen("refresh", "--force", env={"PROCORE_SETUP_HTTP_TIMEOUT": "0.5"})
    wait_for(lambda: fake.counts["faults"] >= 1)
    waiting = cli.popen("token", "--min-valid", "86400")  # wants a refresh too: queues on the lock
    out, err = stuck.communicate(timeout=30)  # raises if it is still stuck
    assert stuck.returncode == 5 and "No answer from 127.0.0.1" in err
    assert fake.counts["token:refresh_token"] == 0  # gave up before any held request was processed
    assert fake.pending_faults() == [], "the stuck refresh made fewer than its 3 attempts"  # none left for the next
    out, err = waiting.communicate(timeout=60)  # it got its turn instead of timing out on the lock
    assert waiting.returncode == 0, err
    assert fake.access_token_valid(out.strip())
    r = subprocess.run([EXE, "token"], capture_output=True, text=True, env=cli.env, timeout=60)
    assert r.returncode == 0, r.stderr
