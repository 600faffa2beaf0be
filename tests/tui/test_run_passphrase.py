"""The wizard opens an encrypted file with this run's passphrase command (--passphrase-command, or
PROCORE_SETUP_PASSPHRASE_COMMAND), as the headless commands do: the real executable in tmux."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from procore_setup.testing import FakeProcore

from helpers.cli import EXE, base_env
from helpers.terminal import Terminal
from helpers.wizard import save_profile

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None,
    reason="tmux is not installed (scripts/test and .ci/run install it); this test needs a real terminal",
)

PASSPHRASE = "correct horse battery"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_runs_passphrase_command_opens_a_profile_without_the_unlock_dialog(
        tmp_path: Path, fake: FakeProcore, how: str) -> None:
    config = tmp_path / "conf" / "credentials.toml"
    save_profile(config, fake)
    # encrypted with a passphrase from the environment: no stored command, so only the run's can open it
    r = subprocess.run([EXE, "--config", str(config), "encrypt"], capture_output=True, text=True, timeout=60,
                       env=base_env(PROCORE_SETUP_PASSPHRASE=PASSPHRASE), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    log = tmp_path / "ran.log"
    script = tmp_path / "run_pass.py"
    script.write_text(f"with open({str(log)!r}, 'a') as f:\n    f.write('run ')\nprint({PASSPHRASE!r})\n")
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    env = base_env(TERM="xterm-256color", HOME=str(tmp_path), PROCORE_SETUP_LOCK_TIMEOUT="30",
                   PROCORE_SETUP_KEY_CACHE="0")  # a key cached by `encrypt` would open the file unasked
    flag = ""
    if how == "flag":
        flag = f" --passphrase-command {shlex.quote(command)}"
    else:
        env["PROCORE_SETUP_PASSPHRASE_COMMAND"] = command
    before = config.read_bytes()
    term = Terminal(tmp_path, f"{EXE} --config {shlex.quote(str(config))}{flag}; echo WIZARD-EXIT=$?; sleep 60", env)
    try:
        term.wait_for("Credentials file:")
        term.wait_for("mode 0600")  # the list is read
        term.keys("l")  # re-authorize: the stored secret must be decrypted first
        screen = term.wait_for("Step 3 of 6")  # no Unlock dialog on the way
        assert "Type the passphrase" not in screen
        assert log.read_text().split() == ["run"]
        term.keys("Escape")  # back to the list, and out: nothing saved
        term.wait_for("Credentials file:")
        term.keys("C-q")
        term.wait_for("WIZARD-EXIT=0")
    finally:
        term.close()
    assert config.read_bytes() == before
