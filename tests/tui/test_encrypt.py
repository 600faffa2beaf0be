"""The Saved screen's offer to encrypt the secrets at rest, through the real dialog and the real file."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from procore_setup.testing import FakeProcore

from conftest import CLIENT_SECRET, EXE, base_env

from .conftest import SIZE, jump_to_authorize, message, paste_code, screen_name, settle, type_into
from .test_wizard import save_on_verify

PASSPHRASE = "correct horse battery"


async def _to_saved(pilot: Any, fake: FakeProcore) -> None:
    await jump_to_authorize(pilot, fake)
    await paste_code(pilot, fake.issue_code())
    await save_on_verify(pilot, 1)
    assert screen_name(pilot.app) == "SavedScreen", message(pilot.app)


async def test_saved_screen_encrypts_the_file_and_cron_reads_it_with_the_passphrase(
        make_app: Any, fake: FakeProcore, config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _to_saved(pilot, fake)
        await pilot.press("e")
        await pilot.pause()
        assert screen_name(app) == "EncryptDialog"
        # too short, then two that differ: refused in the dialog, nothing written
        await type_into(pilot, "#passphrase", "short")
        await type_into(pilot, "#again", "short")
        await pilot.click("#encrypt")
        await pilot.pause()
        assert "8 characters" in str(app.screen.query_one("#enc-error").render())
        await type_into(pilot, "#passphrase", PASSPHRASE)
        await type_into(pilot, "#again", PASSPHRASE + "x")
        await pilot.click("#encrypt")
        await pilot.pause()
        assert "differ" in str(app.screen.query_one("#enc-error").render())
        assert "[encryption]" not in config.read_text()
        await type_into(pilot, "#again", PASSPHRASE)
        await pilot.click("#encrypt")
        await settle(pilot)
        assert screen_name(app) == "SavedScreen"
        assert "secrets encrypted" in str(app.screen.query_one("#saved-head").render())
        assert app.screen.query_one("#encrypt").disabled
        await pilot.press("q")
    text = config.read_text()
    assert "[encryption]" in text and CLIENT_SECRET not in text
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    env = base_env(PROCORE_SETUP_CONFIG=str(config))
    locked = subprocess.run([EXE, "token"], capture_output=True, text=True, timeout=60, env=env,
                            stdin=subprocess.DEVNULL)
    assert locked.returncode == 6 and locked.stdout == ""  # cron without the passphrase: a clear exit 6
    r = subprocess.run([EXE, "token"], capture_output=True, text=True, timeout=60,
                       env=dict(env, PROCORE_SETUP_PASSPHRASE=PASSPHRASE), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert fake.access_token_valid(r.stdout.strip())


async def test_a_passphrase_command_that_disagrees_is_refused_and_nothing_is_written(
        make_app: Any, fake: FakeProcore, config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _to_saved(pilot, fake)
        before = config.read_bytes()
        await pilot.press("e")
        await pilot.pause()
        await type_into(pilot, "#passphrase", PASSPHRASE)
        await type_into(pilot, "#again", PASSPHRASE)
        await type_into(pilot, "#command", "echo something else")
        await pilot.click("#encrypt")
        await settle(pilot)
        assert screen_name(app) == "EncryptDialog"
        assert "does not print the passphrase" in str(app.screen.query_one("#enc-error").render())
        assert config.read_bytes() == before
        await pilot.press("escape")
        await pilot.pause()
        assert screen_name(app) == "SavedScreen"
        assert not app.screen.query_one("#encrypt").disabled
