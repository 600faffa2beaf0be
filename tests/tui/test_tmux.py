"""The real `procore-setup` wizard in a real terminal: tmux runs it, we type, we read the screen.

A private tmux server (its own socket in the test's temp dir) runs the installed
executable at 80x24 against the fake Procore; keys go in with `send-keys` a few
tenths of a second apart, as a person types, and `capture-pane` reads the screen.
"""

from __future__ import annotations

import re
import shutil
import time
import tomllib
from pathlib import Path
from typing import Any, Iterator

import pytest

from procore_setup.testing import FakeProcore

from helpers.cli import CLIENT_ID, CLIENT_SECRET, EXE, base_env
from helpers.terminal import Terminal, joined
from helpers.wizard import run_token

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None,
    reason="tmux is not installed (scripts/test and .ci/run install it); this test needs a real terminal",
)

@pytest.fixture
def terminal_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    yield base_env(TERM="xterm-256color", HOME=str(tmp_path), PROCORE_SETUP_LOCK_TIMEOUT="30")


def test_wizard_in_tmux_saves_a_profile_token_reads(tmp_path: Path, fake: FakeProcore,
                                                    terminal_env: dict[str, str]) -> None:
    config = tmp_path / "conf" / "credentials.toml"
    term = Terminal(tmp_path, f"{EXE} --config {config}; echo WIZARD-EXIT=$?; sleep 60", terminal_env)
    try:
        screen = term.wait_for("How will your scripts sign in")  # the first question
        assert "A person's login" in screen and "A service account" in screen
        term.keys("Enter")  # a person's login, highlighted at first
        term.wait_for("Step 1 of 6")
        screen = term.wait_for("Continue")  # the footer, with its keys
        assert "Which Procore environment" in screen and "esc Back" in screen
        term.keys("Down", "Down", "Down", "Down")  # Custom hosts
        term.wait_for("Login URL")
        term.keys("Enter")  # to the empty login URL field
        term.type(fake.url)
        term.keys("Enter")  # on to the API URL
        term.type(fake.url)
        term.wait_for(f"API {fake.url}")  # the hosts line follows what is typed
        term.keys("Enter")

        term.wait_for("Step 2 of 6")
        term.type(CLIENT_ID)
        term.keys("Enter")
        term.type(CLIENT_SECRET)
        screen = term.wait_for("••••")
        assert CLIENT_SECRET not in screen  # masked on the real screen
        term.keys("Enter")

        screen = term.wait_for("Step 3 of 6")
        assert f"{fake.url}/oauth/authorize?response_type=code&client_id={CLIENT_ID}" in joined(screen)
        assert "Code clock: 10:00 left" in screen or "Code clock: 9:5" in screen
        term.keys("n")

        term.wait_for("Step 4 of 6")
        term.type(fake.issue_code())
        term.keys("Enter")

        term.wait_for("Logged in as Pat Builder")
        term.wait_for("Choose and save")
        term.keys("Enter")  # Builder Demo Co., the first active company, is highlighted: one Enter saves

        screen = term.wait_for("Step 6 of 6")
        assert "Saved profile 'default'" in screen and "mode 0600" in screen
        assert "refresh--profiledefault--quiet" in joined(screen).replace(" ", "")
        term.keys("q")
        screen = term.wait_for("WIZARD-EXIT=0")
        assert "Keep it fresh from cron with:" in screen  # left in the scrollback after the wizard closes
    finally:
        term.close()

    prof = tomllib.loads(config.read_text())["profiles"]["default"]
    assert prof["login_url"] == fake.url and prof["company_id"] == 8675309
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    r = run_token(config)
    assert r.returncode == 0, r.stderr
    assert fake.access_token_valid(r.stdout.strip())


def test_demo_in_tmux_walks_without_a_browser(tmp_path: Path, terminal_env: dict[str, str]) -> None:
    term = Terminal(tmp_path, f"{EXE} --demo; echo WIZARD-EXIT=$?; sleep 60", terminal_env)
    try:
        term.wait_for("How will your scripts sign in")
        term.keys("Enter")  # a person's login
        screen = term.wait_for("Step 1 of 6")
        assert "DEMO" in screen and "http://127.0.0.1:" in screen  # the fake server, prefilled
        term.keys("Enter")
        term.wait_for("Step 2 of 6")
        term.keys("Enter")  # demo client id and secret are prefilled
        screen = term.wait_for("Step 3 of 6")
        assert "no browser needed" in screen
        term.keys("f")  # fetch the fake login page's code
        term.wait_for("Step 4 of 6")
        term.keys("Enter")
        term.wait_for("Logged in as Pat Builder")
        term.keys("C-s")
        screen = term.wait_for("Step 6 of 6")
        found = re.search(r"to ?(/\S+?credentials\.toml),", joined(screen))
        assert found, screen
        path = found.group(1)
        assert Path(path).is_file()
        term.keys("q")
        screen = term.wait_for("WIZARD-EXIT=0")
        assert "Demo mode: that file and the fake server are gone now." in screen
        assert not Path(path).exists()
    finally:
        term.close()


def test_a_passphrase_commands_stderr_never_draws_over_the_wizard(tmp_path: Path, fake: FakeProcore,
                                                                 terminal_env: dict[str, str]) -> None:
    """Its diagnostics belong in the message the wizard shows, not on top of the screen."""
    from helpers.wizard import GatedCommand, save_profile

    garbage = "GARBAGE-ON-SCREEN"
    config = tmp_path / "conf" / "credentials.toml"
    save_profile(config, fake)
    command = GatedCommand(tmp_path, "correct horse battery", stderr=garbage)
    command.encrypt(config)
    term = Terminal(tmp_path, f"{EXE} --config {config}; echo WIZARD-EXIT=$?; sleep 60", terminal_env)
    seen: list[str] = []

    def look() -> str:
        screen = term.screen()
        seen.append(screen)
        return screen

    try:
        term.wait_for("Credentials file:")
        term.wait_for("mode 0600")  # the list is read
        term.keys("l")  # re-authorize: the stored command is run, and writes to its stderr
        deadline = time.monotonic() + 30
        while not command.started.exists():  # it has written its stderr by then
            assert time.monotonic() < deadline, "the passphrase command did not start"
            time.sleep(0.05)
        # What the command wrote reaches the terminal at once if it is not captured; the wizard
        # draws nothing meanwhile (it waits for the command), so it would stay on screen.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and garbage not in joined(look()):
            time.sleep(0.1)
        command.release()
        term.wait_for("Step 3 of 6")
        look()
        term.keys("Escape")  # Esc on the step: back to the list
        term.wait_for("Credentials file:")
        look()
    finally:
        command.release()
        term.close()
    leaked = [screen for screen in seen if garbage in screen or garbage in joined(screen)]
    assert not leaked, "the passphrase command's stderr drew over the wizard:\n" + leaked[0]


def test_service_account_in_tmux_from_the_first_question(tmp_path: Path, fake: FakeProcore,
                                                        terminal_env: dict[str, str], secret_guard: Any) -> None:
    """The first question answered with the arrow keys: four steps, no browser, no code."""
    from procore_setup.testing import SERVICE_ACCOUNT_CLIENT_ID, SERVICE_ACCOUNT_CLIENT_SECRET

    secret_guard.add(SERVICE_ACCOUNT_CLIENT_SECRET, "the service account's client secret")
    config = tmp_path / "conf" / "credentials.toml"
    term = Terminal(tmp_path, f"{EXE} --config {config}; echo WIZARD-EXIT=$?; sleep 60", terminal_env)
    try:
        screen = term.wait_for("How will your scripts sign in")
        assert "sees what that person sees" in joined(screen) and "installs" in joined(screen)
        term.keys("Down", "Enter")  # a service account
        term.wait_for("Step 1 of 4")
        term.keys("Down", "Down", "Down", "Down")  # Custom hosts
        term.wait_for("Login URL")
        term.keys("Enter")
        term.type(fake.url)
        term.keys("Enter")
        term.type(fake.url)
        term.wait_for(f"API {fake.url}")
        term.keys("Enter")

        screen = term.wait_for("Step 2 of 4")
        assert "Redirect URI" not in screen and "Manage App page" in joined(screen)
        term.type(SERVICE_ACCOUNT_CLIENT_ID)
        term.keys("Enter")
        term.type(SERVICE_ACCOUNT_CLIENT_SECRET)
        screen = term.wait_for("••••")
        assert SERVICE_ACCOUNT_CLIENT_SECRET not in screen
        term.keys("Enter")  # requests the token

        term.wait_for("Step 3 of 4")
        term.wait_for("Which company is the app installed in?")  # no company yet: asked, as Multiple Procore Zones need
        term.type("8675309")
        term.keys("Enter")  # checks the token again, with Procore-Company-Id
        term.wait_for("Demo Service Account")
        term.keys("C-s")

        screen = term.wait_for("Step 4 of 4")
        assert "Saved profile 'default'" in screen and "No cron job needed" in joined(screen)
        term.keys("q")
        screen = term.wait_for("WIZARD-EXIT=0")
        assert "needs no cron job" in joined(screen)
    finally:
        term.close()

    prof = tomllib.loads(config.read_text())["profiles"]["default"]
    assert prof["kind"] == "service_account" and prof["company_id"] == 8675309 and "refresh_token" not in prof
    r = run_token(config)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == prof["access_token"] and fake.access_token_valid(r.stdout.strip())
    assert fake.counts["token:client_credentials"] == 1 and fake.counts["token:authorization_code"] == 0


def test_login_service_account_in_tmux_skips_the_first_question(tmp_path: Path, fake: FakeProcore,
                                                                terminal_env: dict[str, str]) -> None:
    """`procore-setup login --service-account` (no --plain): the wizard, on the service-account path."""
    config = tmp_path / "conf" / "credentials.toml"
    term = Terminal(tmp_path, f"{EXE} --config {config} login --service-account; echo WIZARD-EXIT=$?; sleep 60",
                    terminal_env)
    try:
        screen = term.wait_for("Step 1 of 4")
        assert "How will your scripts sign in" not in screen
        term.keys("Escape")  # the first screen: nothing to go back to, so Esc asks
        term.wait_for("Nothing to go back to")
        term.keys("y")
        term.wait_for("WIZARD-EXIT=0")
    finally:
        term.close()
    assert not config.exists()
