"""This run's passphrase command (--passphrase-command, PROCORE_SETUP_PASSPHRASE_COMMAND, a
library caller's `passphrase_command=`) reaches every command that opens an encrypted store's
secrets, now that it belongs to the run and no store carries it.

Through the real executable (and, for the library, in this process) on a file encrypted with a
stored passphrase command: two scripts that each write their name to a log and print the
passphrase show which source answered. The key cache is off, so every run has to ask.
"""

from __future__ import annotations

import shlex
import sys
import tomllib
from pathlib import Path

import pytest

from procore_setup.testing import FakeProcore

from helpers.cli import CLI, CLIENT_ID, CLIENT_SECRET

PASS = "correct horse battery staple"
NO_CACHE = {"PROCORE_SETUP_KEY_CACHE": "0"}  # else a key cached by an earlier run opens the file unasked


class Sources:
    """The stored command and this run's command, each logging its name to `log` when it runs."""

    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "ran.log"
        self.stored = self._script(tmp_path, "stored")
        self.run = self._script(tmp_path, "run")

    def _script(self, tmp_path: Path, name: str) -> str:
        path = tmp_path / f"{name}_pass.py"
        path.write_text(f"with open({str(self.log)!r}, 'a') as f:\n    f.write({name!r} + ' ')\nprint({PASS!r})\n")
        return f"{shlex.quote(sys.executable)} {shlex.quote(str(path))}"

    def ran(self) -> list[str]:
        """The commands that ran since the last call, in order."""
        words = self.log.read_text().split() if self.log.exists() else []
        self.log.unlink(missing_ok=True)
        return words


@pytest.fixture
def sources(cli: CLI, tmp_path: Path) -> Sources:
    """A logged-in profile, its secrets encrypted, with `sources.stored` kept in the file."""
    cli.login()
    src = Sources(tmp_path)
    r = cli.run("encrypt", "--passphrase-command", src.stored, env=NO_CACHE)
    assert r.returncode == 0, r.stderr
    assert tomllib.loads(cli.config.read_text())["encryption"]["passphrase_command"] == src.stored
    src.ran()  # encrypt ran the stored command to check it: not what the tests look at
    return src


def _given(how: str, command: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
    if how == "flag":
        return ["--passphrase-command", command, *args], dict(NO_CACHE)
    return args, dict(NO_CACHE, PROCORE_SETUP_PASSPHRASE_COMMAND=command)


# every command that opens the secrets, each with the run's command one way or the other
COMMANDS = [
    ("token", ["token"], "flag"),
    ("token", ["token"], "env"),
    ("refresh", ["refresh", "--force"], "env"),
    ("status --online", ["status", "--online"], "flag"),
    ("api", ["api", "/rest/v1.0/me"], "flag"),
    ("api", ["api", "/rest/v1.0/me"], "env"),
    ("revoke", ["revoke", "--local-only"], "env"),
    ("decrypt", ["decrypt"], "flag"),
    ("decrypt", ["decrypt"], "env"),
    ("store move", ["store", "move", "--to", "{other}"], "flag"),
    ("store move", ["store", "move", "--to", "{other}"], "env"),
    ("login --plain", ["login", "--plain", "--environment", "custom", "--login-url", "{url}", "--api-url", "{url}",
                       "--client-id", CLIENT_ID, "--code={code}"], "flag"),
]


@pytest.mark.parametrize(("name", "args", "how"), COMMANDS, ids=[f"{c[0]}-{c[2]}" for c in COMMANDS])
def test_the_runs_passphrase_command_opens_the_store_before_the_stored_one(
        cli: CLI, fake: FakeProcore, sources: Sources, tmp_path: Path, name: str, args: list[str], how: str) -> None:
    other = tmp_path / "other" / "credentials.toml"
    args = [a.format(other=other, url=fake.url, code=fake.issue_code() if "{code}" in a else "") for a in args]
    argv, env = _given(how, sources.run, args)
    if name == "login --plain":
        env["PROCORE_CLIENT_SECRET"] = CLIENT_SECRET
    r = cli.run(*argv, env=env, input="1\n")
    assert r.returncode == 0, r.stderr
    assert sources.ran() == ["run"]  # once, and never the stored command
    assert PASS not in r.stdout + r.stderr


def test_without_a_command_for_the_run_the_stored_one_answers_and_the_variable_comes_first(
        cli: CLI, sources: Sources) -> None:
    r = cli.run("token", env=NO_CACHE)
    assert r.returncode == 0, r.stderr
    assert sources.ran() == ["stored"]
    for argv, env in (_given("flag", sources.run, ["token"]), _given("env", sources.run, ["token"]),
                      (["token"], dict(NO_CACHE))):
        r = cli.run(*argv, env=dict(env, PROCORE_SETUP_PASSPHRASE=PASS))
        assert r.returncode == 0, r.stderr
        assert sources.ran() == []  # $PROCORE_SETUP_PASSPHRASE answered: no command ran
    # the flag, given empty, means none: the stored command answers, the variable is not read
    r = cli.run("--passphrase-command", "", "token",
                env=dict(NO_CACHE, PROCORE_SETUP_PASSPHRASE_COMMAND=sources.run))
    assert r.returncode == 0, r.stderr
    assert sources.ran() == ["stored"]


@pytest.mark.parametrize("args", [["token"], ["status"], ["refresh"], ["store", "init"], ["decrypt"],
                                  ["store", "move", "--to", "{other}"], ["api", "/rest/v1.0/me"],
                                  ["login", "--plain", "--code=x"]], ids=lambda a: " ".join(a[:2]))
def test_an_empty_passphrase_command_variable_is_refused_and_nothing_changes(
        cli: CLI, sources: Sources, tmp_path: Path, args: list[str]) -> None:
    before = cli.config.read_bytes()
    args = [a.format(other=tmp_path / "other.toml") for a in args]
    r = cli.run(*args, env=dict(NO_CACHE, PROCORE_SETUP_PASSPHRASE_COMMAND=" "))
    assert r.returncode == 2, r.stderr
    assert "PROCORE_SETUP_PASSPHRASE_COMMAND is set but empty." in r.stderr
    assert "Unset it, or set it to a command that prints the passphrase." in r.stderr
    assert r.stdout == "" and sources.ran() == []
    assert cli.config.read_bytes() == before and not (tmp_path / "other.toml").exists()


# -- the library: the caller's argument, else the variable ------------------------------------------

@pytest.fixture
def library_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PROCORE_SETUP_CONFIG", "PROCORE_SETUP_STORE", "PROCORE_SETUP_PROFILE", "PROCORE_SETUP_PASSPHRASE",
                 "PROCORE_SETUP_PASSPHRASE_COMMAND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROCORE_SETUP_KEY_CACHE", "0")
    monkeypatch.setenv("PROCORE_SETUP_LOCK_TIMEOUT", "30")


def test_get_token_takes_the_callers_command_before_the_variable_and_the_stored_one(
        cli: CLI, fake: FakeProcore, sources: Sources, library_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import procore_setup

    monkeypatch.setenv("PROCORE_SETUP_PASSPHRASE_COMMAND", sources.stored)  # not the one given: not run
    token = procore_setup.get_token(config=cli.config, passphrase_command=sources.run)
    assert fake.access_token_valid(token)
    assert sources.ran() == ["run"]


def test_get_token_reads_the_variable_when_no_command_is_given(
        cli: CLI, fake: FakeProcore, sources: Sources, library_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import procore_setup
    from procore_setup.errors import UsageError

    monkeypatch.setenv("PROCORE_SETUP_PASSPHRASE_COMMAND", "")
    with pytest.raises(UsageError, match="PROCORE_SETUP_PASSPHRASE_COMMAND is set but empty"):
        procore_setup.get_token(config=cli.config)
    assert sources.ran() == []
    monkeypatch.setenv("PROCORE_SETUP_PASSPHRASE_COMMAND", sources.run)
    assert fake.access_token_valid(procore_setup.get_token(config=cli.config))
    assert sources.ran() == ["run"]


def test_procore_auth_on_a_store_it_is_handed_uses_the_callers_command(
        cli: CLI, fake: FakeProcore, sources: Sources, library_env: None) -> None:
    """A store opened by the caller carries no passphrase command: the one given to ProcoreAuth
    (and ProcoreClient) opens it, and the refresh it makes saves the new pair encrypted."""
    import procore_setup
    from procore_setup.stores import open_store

    from helpers.engine import set_expiry

    set_expiry(cli.config, -60)
    with open_store(cli.config) as store:
        with procore_setup.ProcoreClient(store=store, passphrase_command=sources.run) as client:
            r = client.get("/rest/v1.0/me")
            assert r.status_code == 200, r.text
    assert sources.ran() == ["run"]
    assert fake.counts["refresh_ok"] == 1
    assert tomllib.loads(cli.config.read_text())["profiles"]["default"]["refresh_token"].startswith("enc:")


def test_the_runs_unlock_never_shows_its_command() -> None:
    """A passphrase command's arguments may hold the passphrase itself (`echo hunter2`)."""
    from procore_setup import settings

    unlock = settings.unlock_from("echo hunter2", interactive=True)
    assert unlock.command == "echo hunter2" and unlock.interactive
    assert "hunter2" not in repr(unlock) and "hunter2" not in str(unlock)
    assert unlock.unattended() == settings.Unlock("echo hunter2") != unlock
    with pytest.raises(AttributeError):
        unlock.command = "something else"
