"""The Saved screen's offer to encrypt the secrets at rest, through the real dialog and the real file."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from procore_setup import encryption
from procore_setup.testing import FakeProcore

from helpers.cli import CLIENT_SECRET, EXE, base_env

from helpers.wizard import (
    SIZE,
    jump_to_authorize,
    message,
    paste_code,
    save_on_verify,
    screen_name,
    settle,
    type_into,
)

PASSPHRASE = "correct horse battery"


async def _to_saved(pilot: Any, fake: FakeProcore) -> None:
    await jump_to_authorize(pilot, fake)
    await paste_code(pilot, fake.issue_code())
    await save_on_verify(pilot, 1)
    assert screen_name(pilot.app) == "SavedScreen", message(pilot.app)


async def _open_dialog(pilot: Any) -> None:
    await pilot.press("e")
    await pilot.pause()
    assert screen_name(pilot.app) == "EncryptDialog"


async def type_here(pilot: Any, text: str) -> None:
    """Type into the box that has the focus, key by key, as a person would (after clearing it)."""
    box = pilot.app.focused
    box.value = ""
    await pilot.press(*text)


def focused(app: Any) -> str:
    return app.focused.id if app.focused is not None else ""


def dialog_error(app: Any) -> str:
    return str(app.screen.query_one("#dialog-error").render())


def assert_encrypted_and_cron_needs_the_passphrase(config: Path, fake: FakeProcore) -> None:
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


async def test_saved_screen_encrypts_the_file_and_cron_reads_it_with_the_passphrase(
        make_app: Any, fake: FakeProcore, config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _to_saved(pilot, fake)
        await _open_dialog(pilot)
        assert focused(app) == "passphrase"
        # too short: typed, Enter to the next box, Enter again past the optional command
        await pilot.press(*"short", "enter", *"short", "enter")
        assert focused(app) == "command"
        await pilot.press("enter")
        await pilot.pause()
        assert "8 characters" in dialog_error(app)
        assert focused(app) == "passphrase"  # back where the mistake is
        # two that differ
        await type_here(pilot, PASSPHRASE)
        await pilot.press("tab")
        assert focused(app) == "again"
        await type_here(pilot, PASSPHRASE + "x")
        await pilot.press("enter", "enter")
        await pilot.pause()
        assert "differ" in dialog_error(app)
        assert focused(app) == "again"
        assert "[encryption]" not in config.read_text()
        # the same one twice: Enter, Enter (no command) encrypts
        await type_here(pilot, PASSPHRASE)
        await pilot.press("enter", "enter")
        await settle(pilot)
        assert screen_name(app) == "SavedScreen", dialog_error(app) if screen_name(app) == "EncryptDialog" else ""
        assert "secrets encrypted" in str(app.screen.query_one("#saved-head").render())
        assert app.screen.query_one("#encrypt").disabled
        await pilot.press("q")
    assert_encrypted_and_cron_needs_the_passphrase(config, fake)


async def test_a_second_press_of_encrypt_right_after_a_refused_one_counts(
        make_app: Any, fake: FakeProcore, config: Path) -> None:
    """Textual ignores a press of a button that still shows its pressed state; a quick person
    (or a busy machine) presses again inside that moment. The refusal must not eat the retry."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _to_saved(pilot, fake)
        await _open_dialog(pilot)
        button = app.screen.query_one("#encrypt")
        # The pressed state outlasts the correction whatever the machine's speed (it is 0.2 s).
        button.active_effect_duration = 600
        await type_into(pilot, "#passphrase", "short")
        await type_into(pilot, "#again", "short")
        await pilot.click("#encrypt")
        assert "8 characters" in dialog_error(app)
        await type_into(pilot, "#passphrase", PASSPHRASE)
        await pilot.click("#encrypt")  # a click, straight away
        assert "differ" in dialog_error(app), "the second press was lost"
        await type_into(pilot, "#again", PASSPHRASE)
        button.focus()
        await pilot.press("enter")  # and the keyboard's press of the focused button, straight away
        await settle(pilot)
        assert screen_name(app) == "SavedScreen", "the third press was lost: " + dialog_error(app)
        assert "secrets encrypted" in str(app.screen.query_one("#saved-head").render())
        await pilot.press("q")
    assert_encrypted_and_cron_needs_the_passphrase(config, fake)


async def test_an_unexpected_error_while_encrypting_leaves_the_dialog_usable(
        make_app: Any, fake: FakeProcore, config: Path, monkeypatch: pytest.MonkeyPatch,
        secret_guard: Any) -> None:
    secret_guard.add(PASSPHRASE, "the passphrase")
    real = encryption.encrypt_file
    calls: list[str] = []

    def a_bug_the_first_time(*args: Any, **kwargs: Any) -> int:
        calls.append("called")
        if len(calls) == 1:
            raise RuntimeError(f"a bug, with the passphrase {PASSPHRASE} in its text")
        return real(*args, **kwargs)

    monkeypatch.setattr(encryption, "encrypt_file", a_bug_the_first_time)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _to_saved(pilot, fake)
        before = config.read_bytes()
        await _open_dialog(pilot)
        await type_into(pilot, "#passphrase", PASSPHRASE)
        await type_into(pilot, "#again", PASSPHRASE)
        app.screen.query_one("#command").focus()
        await pilot.press("enter")
        await settle(pilot)
        assert calls == ["called"]
        assert screen_name(app) == "EncryptDialog"
        text = dialog_error(app)
        assert "Unexpected error while encrypting (RuntimeError)" in text and "still stored plainly" in text
        assert PASSPHRASE not in text  # the exception's own text is never shown
        assert config.read_bytes() == before
        assert not any(w.disabled for w in app.screen.query("Input, Button")), "the dialog stayed frozen"
        assert focused(app) == "passphrase"
        await pilot.press("tab", "tab", "enter")  # the same passphrase again, from the command box
        await settle(pilot)
        assert calls == ["called", "called"]
        assert screen_name(app) == "SavedScreen", dialog_error(app) if screen_name(app) == "EncryptDialog" else ""
        await pilot.press("q")
    assert_encrypted_and_cron_needs_the_passphrase(config, fake)


async def test_esc_while_encrypting_waits_for_the_file_to_be_written(
        make_app: Any, fake: FakeProcore, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaving while the worker writes would tell the Saved screen 'not encrypted' about an encrypted file."""
    import threading

    real = encryption.encrypt_file
    started, go_on = threading.Event(), threading.Event()

    def slow(*args: Any, **kwargs: Any) -> int:
        started.set()
        assert go_on.wait(60), "the test never let the encryption go on"
        return real(*args, **kwargs)

    monkeypatch.setattr(encryption, "encrypt_file", slow)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _to_saved(pilot, fake)
        await _open_dialog(pilot)
        await type_into(pilot, "#passphrase", PASSPHRASE)
        await type_into(pilot, "#again", PASSPHRASE)
        await pilot.press("tab", "enter")
        try:
            assert started.wait(30), "the encryption did not start"
            await pilot.press("escape")
            await pilot.pause()
            assert screen_name(app) == "EncryptDialog"  # still there, still at work
        finally:
            go_on.set()
        await settle(pilot)
        assert screen_name(app) == "SavedScreen"
        assert "secrets encrypted" in str(app.screen.query_one("#saved-head").render())
        await pilot.press("q")
    assert_encrypted_and_cron_needs_the_passphrase(config, fake)


async def test_a_passphrase_command_that_disagrees_is_refused_and_nothing_is_written(
        make_app: Any, fake: FakeProcore, config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _to_saved(pilot, fake)
        before = config.read_bytes()
        await _open_dialog(pilot)
        await type_into(pilot, "#passphrase", PASSPHRASE)
        await type_into(pilot, "#again", PASSPHRASE)
        await type_into(pilot, "#command", "echo something else")
        await pilot.click("#encrypt")
        await settle(pilot)
        assert screen_name(app) == "EncryptDialog"
        assert "does not print the passphrase" in dialog_error(app)
        assert "Nothing was changed" in dialog_error(app)
        assert config.read_bytes() == before
        assert not any(w.disabled for w in app.screen.query("Input, Button"))
        await pilot.press("escape")
        await pilot.pause()
        assert screen_name(app) == "SavedScreen"
        assert not app.screen.query_one("#encrypt").disabled
