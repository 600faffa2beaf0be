"""The secret guard of tests/conftest.py catches leaks, and lets the legitimate outputs through.

Every test in the suite runs under `secret_guard` (autouse). These tests prove it can fail:
directly, by feeding it leaks and reading its findings, and for real, by running a small test
suite that leaks on purpose through pytest in a subprocess and checking which tests failed.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers.cli import CLI, CLIENT_SECRET
from helpers.secret_guard import GuardLogHandler, SecretGuard
from procore_setup.errors import ProcoreSetupError, TemporaryFailure
from procore_setup.testing import FakeProcore

HERE = Path(__file__).resolve().parent


def _forget(guard: SecretGuard, start: int) -> None:
    """Drop the outputs a test fed the guard on purpose, so that the test itself stays green."""
    del guard.outputs[start:]


def test_a_token_the_fake_issued_is_recorded_and_found_whole_or_in_part(secret_guard: SecretGuard,
                                                                         fake: FakeProcore) -> None:
    body = fake.issue_tokens()
    access, refresh = body["access_token"], body["refresh_token"]
    assert access in secret_guard.secrets and refresh in secret_guard.secrets
    assert secret_guard.find(f"Bearer {access}") == [f"an access token (ending ...{access[-4:]})"]
    assert secret_guard.find("x" + refresh[5:21] + "y")  # any 16 characters of it
    assert secret_guard.find(refresh[:15]) == []  # 15 are not enough to call it a leak
    assert secret_guard.find(f"the secret is {CLIENT_SECRET}")
    assert secret_guard.find("****" + refresh[-4:]) == []  # status shows the last 4 characters


def test_what_the_guard_reports_never_shows_the_secret(secret_guard: SecretGuard, fake: FakeProcore) -> None:
    token = fake.issue_tokens()["access_token"]
    start = len(secret_guard.outputs)
    secret_guard.record_output("a test's print", f"oops {token}")
    leaks = secret_guard.problems()
    _forget(secret_guard, start)
    assert leaks == [f"an access token (ending ...{token[-4:]}) leaked into a test's print"]
    assert token[:-4] not in leaks[0]


def test_subprocess_output_is_checked_except_the_token_that_token_prints(secret_guard: SecretGuard,
                                                                         cli: CLI) -> None:
    cli.login()
    start = len(secret_guard.outputs)
    r = cli.run("token")
    assert r.returncode == 0
    assert secret_guard.problems() == []  # `token` printing its token is the point of `token`
    token = r.stdout.strip()
    # the same token on stderr, or printed by any other command, is a leak
    leaked = subprocess.run([sys.executable, "-c", "import sys; print(sys.stdin.read(), file=sys.stderr)"],
                            input=token, capture_output=True, text=True)
    assert leaked.stderr.strip() == token
    leaks = secret_guard.problems()
    _forget(secret_guard, start)
    assert len(leaks) == 1 and "leaked into the stderr of `python" in leaks[0]


def test_a_token_command_killed_after_printing_is_no_leak_but_a_failing_one_is(secret_guard: SecretGuard,
                                                                               fake: FakeProcore) -> None:
    token = fake.issue_tokens()["access_token"]
    start = len(secret_guard.outputs)
    # SIGKILLed (as the chaos run does) after printing all or the start of its token
    secret_guard.record_process(["/x/bin/procore-setup", "token"], token + "\n", "", -9)
    secret_guard.record_process(["/x/bin/procore-setup", "--profile", "p", "token"], token[:20], "", -9)
    assert secret_guard.problems() == []
    # a `token` that failed and printed a token anyway, or a killed one printing a token
    # it was not asked for (another secret after it), is a leak
    secret_guard.record_process(["/x/bin/procore-setup", "token"], token + "\n", "", 4)
    secret_guard.record_process(["/x/bin/procore-setup", "token"], f"{token} {CLIENT_SECRET}", "", -9)
    leaks = secret_guard.problems()
    _forget(secret_guard, start)
    assert len(leaks) == 2, leaks
    assert "an access token" in leaks[0] and "the client secret" in leaks[1]


def test_client_secret_and_passphrase_given_to_a_subprocess_are_recorded(secret_guard: SecretGuard) -> None:
    start = len(secret_guard.outputs)
    env = {"PATH": "/usr/bin:/bin", "PROCORE_SETUP_PASSPHRASE": "correct horse battery staple",
           "PROCORE_CLIENT_SECRET": "s3cr3t-from-the-portal-0123"}
    r = subprocess.run(["sh", "-c", 'echo "$PROCORE_SETUP_PASSPHRASE"; echo "$PROCORE_CLIENT_SECRET" >&2'],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0
    leaks = secret_guard.problems()
    _forget(secret_guard, start)
    assert sorted(x.split(" (")[0] for x in leaks) == ["$PROCORE_CLIENT_SECRET of a subprocess",
                                                      "$PROCORE_SETUP_PASSPHRASE of a subprocess"]


def test_exceptions_the_package_creates_are_checked_even_when_caught(secret_guard: SecretGuard,
                                                                   fake: FakeProcore) -> None:
    token = fake.issue_tokens()["refresh_token"]
    with pytest.raises(TemporaryFailure):
        raise TemporaryFailure("a careless message", hint=f"retry with {token}")
    leaks = secret_guard.problems()
    assert leaks == [f"a refresh token (ending ...{token[-4:]}) leaked into the message of TemporaryFailure"]
    secret_guard.errors.clear()


def test_log_records_are_checked_at_every_level(secret_guard: SecretGuard, fake: FakeProcore) -> None:
    token = fake.issue_tokens()["access_token"]
    assert logging.getLogger("procore_setup").isEnabledFor(logging.DEBUG)
    # Straight to the guard's handler: through logging, pytest's own log capture would show it
    # in this test's report (the leaky suite below goes through logging for real).
    guard_handler = next(h for h in logging.getLogger().handlers if isinstance(h, GuardLogHandler))
    guard_handler.handle(logging.LogRecord("procore_setup.oauth", logging.DEBUG, __file__, 1, "sending %s",
                                           (token,), None))
    leaks = secret_guard.problems()
    assert leaks == [f"an access token (ending ...{token[-4:]}) leaked into a log record"]
    secret_guard.log_lines.clear()


LEAKY_SUITE = '''
import logging, subprocess, sys
import pytest
from procore_setup.errors import ProcoreSetupError


def test_prints_a_token(fake):
    print("token:", fake.issue_tokens()["access_token"])


def test_subprocess_prints_part_of_a_refresh_token(fake):
    piece = fake.issue_tokens()["refresh_token"][:20]
    subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write(sys.stdin.read())"], input=piece,
                   capture_output=True, text=True)


def test_logs_a_token(fake):
    logging.getLogger("procore_setup.refresh").debug("new token %s", fake.issue_tokens()["access_token"])


def test_caught_exception_holds_a_token(fake):
    with pytest.raises(ProcoreSetupError):
        raise ProcoreSetupError("refresh failed for " + fake.issue_tokens()["refresh_token"])


def test_echoes_its_passphrase():
    env = {"PATH": "/usr/bin:/bin", "PROCORE_SETUP_PASSPHRASE": "tr0ub4dor-and-3-more"}
    subprocess.run(["sh", "-c", 'echo "$PROCORE_SETUP_PASSPHRASE"'], env=env, capture_output=True)


def test_writes_to_fd_2_directly(fake):
    import os
    os.write(2, fake.issue_tokens()["access_token"].encode())


def test_clean_login_and_token(cli):
    cli.login()
    r = cli.run("token")
    assert r.returncode == 0 and r.stdout.strip()
    assert cli.run("status").returncode == 0
'''


def test_a_secret_the_test_put_on_the_command_line_may_be_echoed(secret_guard: SecretGuard) -> None:
    # e.g. `--passphrase-command "echo PASSPHRASE"`: the command line is the test's own doing
    secret_guard.add("a-passphrase-in-a-command", "a passphrase")
    r = subprocess.run(["echo", "a-passphrase-in-a-command"], capture_output=True, text=True)
    assert r.stdout.strip() == "a-passphrase-in-a-command"
    assert secret_guard.problems() == []


@pytest.mark.leaks_secrets_on_purpose
def test_a_suite_that_leaks_fails_where_it_leaks_and_only_there(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text((HERE / "conftest.py").read_text())
    shutil.copytree(HERE / "helpers", tmp_path / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent(LEAKY_SUITE))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                        "-rf", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    failed = sorted(line.split("::")[1].split(" ")[0] for line in r.stdout.splitlines() if line.startswith("FAILED"))
    assert failed == [
        "test_caught_exception_holds_a_token", "test_echoes_its_passphrase", "test_logs_a_token",
        "test_prints_a_token", "test_subprocess_prints_part_of_a_refresh_token", "test_writes_to_fd_2_directly",
    ], r.stdout[-3000:]
    assert "6 failed, 1 passed" in r.stdout
    assert r.stdout.count("secret leaked (tests/conftest.py secret_guard)") >= 6


def test_the_guard_is_on_for_every_test(request: pytest.FixtureRequest) -> None:
    assert "secret_guard" in request.fixturenames  # autouse: no test can forget it
    assert ProcoreSetupError.__init__.__name__ == "recording_error_init"
