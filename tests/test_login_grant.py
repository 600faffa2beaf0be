"""A login never loses the grant Procore issued: it is saved the moment the code is exchanged.

Through the real `login --plain` executable against the fake over HTTP: killed during
verification, verification failing, stdin ending before the company, a company that is not the
user's, a re-authorization killed half-way; and the smaller points of the same issue
(--demo ignores a real secret, --passphrase-command for one run, status after revoke, a file
without profiles).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Callable

import pytest

from procore_setup.testing import FakeProcore, Fault

from helpers.cli import CLI, CLIENT_ID, CLIENT_SECRET, EXE, base_env

TWO_COMPANIES = [{"id": 8675309, "name": "Builder Demo Co."}, {"id": 42, "name": "Second Co."}]


def wait_until(pred: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def login_args(fake: FakeProcore, code: str, *extra: str) -> list[str]:
    return ["login", "--plain", "--environment", "custom", "--login-url", fake.url, "--api-url", fake.url,
            "--client-id", CLIENT_ID, f"--code={code}", *extra]


def stored(cli: CLI, profile: str = "default") -> dict:
    return tomllib.loads(cli.config.read_text())["profiles"][profile]


def assert_token_works(cli: CLI) -> str:
    r = cli.run("token")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert cli.fake.access_token_valid(token)
    return token


def test_a_login_killed_during_verification_keeps_the_grant(cli: CLI, fake: FakeProcore) -> None:
    fake.inject(Fault(hang=60, paths="/rest/v1.0/me"))
    proc = cli.popen(*login_args(fake, fake.issue_code()), env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    try:
        wait_until(lambda: fake.counts["me"] >= 1 or proc.poll() is not None, "the login to ask who is logged in")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)  # the SSH session dropped, the job was killed
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    fake.clear_faults()
    prof = stored(cli)
    assert fake.refresh_token_state(prof["refresh_token"]) == "active"
    assert oct(cli.config.stat().st_mode & 0o777) == "0o600"
    assert_token_works(cli)
    assert fake.counts["token:authorization_code"] == 1


def test_verification_that_fails_leaves_a_working_profile_and_says_what_is_missing(
        cli: CLI, fake: FakeProcore) -> None:
    fake.inject(Fault(status=502, times=3, retry_after=0, paths="/rest/v1.0/me"))
    r = cli.run(*login_args(fake, fake.issue_code()), env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    assert r.returncode == 0, r.stderr  # the profile works: network trouble while verifying is a warning
    assert "warning: could not verify the login" in r.stderr and "502" in r.stderr
    assert "saved with its new tokens" in r.stderr and "no verified user" in r.stderr
    assert "nothing was saved" not in r.stderr.lower()
    assert "Saved profile 'default'" in r.stdout
    prof = stored(cli)
    assert "user_id" not in prof and "company_id" not in prof
    assert_token_works(cli)


@pytest.mark.parametrize("stdin", ["empty", "closed"])
def test_stdin_ending_before_the_company_takes_the_default_and_finishes(
        tmp_path: Path, stdin: str) -> None:
    with FakeProcore(companies=TWO_COMPANIES) as fake:
        cli = CLI(tmp_path / "conf" / "credentials.toml", fake)
        env = dict(cli.env, PROCORE_CLIENT_SECRET=CLIENT_SECRET)
        r = subprocess.run([EXE, *login_args(fake, fake.issue_code())], capture_output=True, text=True,
                           timeout=60, env=env,
                           **({"input": ""} if stdin == "empty" else {"stdin": subprocess.DEVNULL}))
        assert r.returncode == 0, r.stderr
        assert "Input ended before the company number" in r.stderr and "no default company" in r.stderr
        prof = stored(cli)
        assert "company_id" not in prof and prof["user_name"] == "Pat Builder"
        assert_token_works(cli)


def test_a_reauthorization_keeps_the_stored_company_when_input_ends(tmp_path: Path) -> None:
    with FakeProcore(companies=TWO_COMPANIES) as fake:
        cli = CLI(tmp_path / "conf" / "credentials.toml", fake)
        cli.login("default", "--company-id", "42")
        r = cli.run(*login_args(fake, fake.issue_code()), env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
        assert r.returncode == 0, r.stderr
        assert "saving with company 42" in r.stderr
        assert stored(cli)["company_id"] == 42 and stored(cli)["company_name"] == "Second Co."


def test_a_company_id_that_is_not_the_users_is_refused_but_the_grant_stays(tmp_path: Path) -> None:
    with FakeProcore(companies=TWO_COMPANIES) as fake:
        cli = CLI(tmp_path / "conf" / "credentials.toml", fake)
        r = cli.run(*login_args(fake, fake.issue_code(), "--company-id", "999"),
                    env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
        assert r.returncode == 2, r.stderr
        assert "Company 999 is not one of this user's companies" in r.stderr
        assert "saved with its new tokens" in r.stderr
        prof = stored(cli)
        assert "company_id" not in prof
        assert_token_works(cli)


def test_a_missing_required_answer_fails_before_anything_is_sent(cli: CLI, fake: FakeProcore) -> None:
    args = ["login", "--plain", "--environment", "custom", "--login-url", fake.url, "--api-url", fake.url,
            "--client-id", CLIENT_ID]
    r = cli.run(*args, input="", env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    assert r.returncode == 2
    assert "stdin ended before the authorization code was given" in r.stderr
    assert fake.counts["requests"] == 0
    assert not cli.config.exists()


def test_a_reauthorization_killed_after_the_exchange_has_already_replaced_the_old_pair(
        cli: CLI, fake: FakeProcore) -> None:
    cli.login()
    old = stored(cli)
    fake.inject(Fault(hang=60, paths="/oauth/token/info"))
    proc = cli.popen(*login_args(fake, fake.issue_code()), env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    try:
        wait_until(lambda: fake.counts["token_info"] >= 2 or proc.poll() is not None, "the second verification")
        assert proc.poll() is None, proc.communicate()
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    fake.clear_faults()
    new = stored(cli)
    assert new["refresh_token"] != old["refresh_token"]
    assert fake.refresh_token_state(new["refresh_token"]) == "active"
    assert new["company_id"] == old["company_id"]  # a setting of the profile, kept
    assert_token_works(cli)


def test_demo_mode_never_uses_a_client_secret_from_the_environment(tmp_path: Path) -> None:
    real = "real-production-secret-0123456789"
    proc = subprocess.Popen([EXE, "login", "--plain", "--demo"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=base_env(PROCORE_CLIENT_SECRET=real, HOME=str(tmp_path)))
    assert proc.stdout is not None and proc.stderr is not None  # PIPEs
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else url
        with urllib.request.urlopen(url, timeout=10) as page:
            found = re.search(r"/oauth/authorize/([^/?#]+)$", page.geturl())
            assert found, page.geturl()
            code = found.group(1)
        out, err = proc.communicate(f"{code}\n1\n", timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err  # with the real secret the fake would answer invalid_client (exit 4)
    assert "Saved profile 'default'" in out


# -- the smaller points ----------------------------------------------------------------------------

PASSPHRASE = "staple-horse-battery-9931"


@pytest.fixture
def encrypted(cli: CLI, tmp_path: Path) -> CLI:
    cli.login()
    r = cli.run("encrypt", env={"PROCORE_SETUP_PASSPHRASE": PASSPHRASE})
    assert r.returncode == 0, r.stderr
    return cli


def _printer(tmp_path: Path, text: str) -> str:
    script = tmp_path / "print-passphrase"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{text}'\n")
    script.chmod(0o700)
    return str(script)


@pytest.mark.parametrize("where", ["after", "before", "env"])
def test_a_passphrase_command_for_one_run_opens_the_file_and_is_not_stored(
        encrypted: CLI, tmp_path: Path, where: str) -> None:
    cmd = _printer(tmp_path, PASSPHRASE)
    before = encrypted.config.read_bytes()
    if where == "env":
        args, env = ["status", "--online"], {"PROCORE_SETUP_PASSPHRASE_COMMAND": cmd}
    elif where == "before":
        args, env = ["--passphrase-command", cmd, "status", "--online"], {}
    else:
        args, env = ["status", "--online", "--passphrase-command", cmd], {}
    r = encrypted.run(*args, env=env)
    assert r.returncode == 0, r.stderr
    assert "online check:  ok" in r.stdout
    assert encrypted.config.read_bytes() == before  # nothing stored, nothing rewritten
    t = encrypted.run("token", "--passphrase-command", cmd)
    assert t.returncode == 0, t.stderr
    assert encrypted.fake.access_token_valid(t.stdout.strip())


def test_the_passphrase_variable_comes_before_a_passphrase_command(encrypted: CLI, tmp_path: Path) -> None:
    wrong = _printer(tmp_path, "not the passphrase")
    r = encrypted.run("token", "--passphrase-command", wrong, env={"PROCORE_SETUP_PASSPHRASE": PASSPHRASE})
    assert r.returncode == 0, r.stderr
    # the key cache off: else the key the run above cached opens the file without asking (test_key_cache.py)
    r = encrypted.run("token", "--passphrase-command", wrong, env={"PROCORE_SETUP_KEY_CACHE": "0"})
    assert r.returncode == 6 and "Wrong passphrase" in r.stderr and r.stdout == ""


def test_status_after_revoke_exits_4_as_documented(cli: CLI) -> None:
    cli.login()
    assert cli.run("status").returncode == 0
    r = cli.run("revoke")
    assert r.returncode == 0, r.stderr
    s = cli.run("status")
    assert s.returncode == 4, s.stdout + s.stderr
    assert "no tokens stored" in s.stdout and "login --profile default" in s.stdout
    assert cli.run("status", "--json").returncode == 4


def test_a_file_without_profiles_says_so_and_how_to_add_one(cli: CLI) -> None:
    cli.config.parent.mkdir(mode=0o700)
    fd = os.open(cli.config, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"schema_version = 1\n")
    os.close(fd)
    for args in (["token"], ["refresh"]):
        r = cli.run(*args)
        assert r.returncode == 3, r.stderr
        assert "holds no profiles yet" in r.stderr and "several profiles" not in r.stderr
        assert f"procore-setup --config {cli.config}" in r.stderr
    s = cli.run("status")
    assert s.returncode == 3
    assert "no profiles yet: add one with procore-setup --config" in s.stdout


def test_the_cron_line_quotes_an_executable_path_the_shell_would_split(cli: CLI, fake: FakeProcore,
                                                                       tmp_path: Path) -> None:
    import shlex

    odd = tmp_path / "my tools; touch pwned #"
    odd.mkdir()
    (odd / "procore-setup").symlink_to(EXE)
    r = subprocess.run([str(odd / "procore-setup"), *login_args(fake, fake.issue_code())], input="1\n",
                       capture_output=True, text=True, timeout=60,
                       env=dict(cli.env, PROCORE_CLIENT_SECRET=CLIENT_SECRET))
    assert r.returncode == 0, r.stderr
    line = r.stdout.split("Keep it fresh from cron with:\n", 1)[1].splitlines()[0]
    words = shlex.split(line.strip())
    assert words[5] == str(odd / "procore-setup")  # after the five schedule fields, one word
    assert words[6:9] == ["--config", str(cli.config), "refresh"]
