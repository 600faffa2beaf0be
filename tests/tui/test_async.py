"""The wizard's slow work runs in workers: the screen keeps drawing and answering, and any failure
of a worker ends as a message on screen with the form usable again."""

from __future__ import annotations

import subprocess
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

from procore_setup import passphrase as passphrases
from procore_setup import filesystem
from procore_setup.stores.file import FileStore
from procore_setup.testing import FakeProcore

from helpers.cli import EXE, base_env
from helpers.wizard import (
    SIZE,
    GatedCommand,
    answer_kind,
    message,
    message_kind,
    paste_code,
    save_on_verify,
    save_profile,
    screen_name,
    settle,
    type_into,
)

PASSPHRASE = "correct horse battery"


@pytest.fixture
def encrypted(fake: FakeProcore, config: Path) -> Path:
    """One profile, its secrets encrypted under PASSPHRASE (no passphrase source left for the wizard)."""
    save_profile(config, fake)
    r = subprocess.run([EXE, "--config", str(config), "encrypt"], capture_output=True, text=True, timeout=60,
                       env=base_env(PROCORE_SETUP_PASSPHRASE=PASSPHRASE), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    return config


async def _to_unlock_dialog(pilot: Any) -> None:
    await settle(pilot)
    await pilot.press("l")  # re-authorize: the stored secret must be decrypted first
    await settle(pilot)
    assert screen_name(pilot.app) == "UnlockDialog", message(pilot.app)


def dialog_error(app: Any) -> str:
    return str(app.screen.query_one("#dialog-error").render())


async def wait_until(pilot: Any, done: Any, what: str, timeout: float = 30.0) -> None:
    """Let the app run (its event loop is this one) until `done()` holds."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what} did not happen"
        await pilot.pause(0.02)


# -- a failed worker: a message, and the dialog usable again ------------------------------------------

async def test_an_unexpected_error_while_unlocking_leaves_the_dialog_usable(
        make_app: Any, encrypted: Path, monkeypatch: pytest.MonkeyPatch, secret_guard: Any) -> None:
    secret_guard.add(PASSPHRASE, "the passphrase")
    real = passphrases.unlock
    calls: list[str] = []

    def a_bug_the_first_time(doc: Any, passphrase: str) -> bool:
        calls.append("called")
        if len(calls) == 1:
            raise RuntimeError(f"a bug, with the passphrase {passphrase} in its text")
        return real(doc, passphrase)

    monkeypatch.setattr(passphrases, "unlock", a_bug_the_first_time)
    before = encrypted.read_bytes()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _to_unlock_dialog(pilot)
        await type_into(pilot, "#unlock-passphrase", PASSPHRASE)
        await pilot.press("enter")
        await settle(pilot)
        assert calls == ["called"]
        assert screen_name(app) == "UnlockDialog"
        text = dialog_error(app)
        assert "Unexpected error: RuntimeError" in text, text
        assert PASSPHRASE not in text  # the exception's own text is never shown
        assert not any(w.disabled for w in app.screen.query("Input, Button")), "the dialog stayed frozen"
        assert app.focused is not None and app.focused.id == "unlock-passphrase"
        await type_into(pilot, "#unlock-passphrase", PASSPHRASE)
        await pilot.press("enter")
        await settle(pilot)
        assert calls == ["called", "called"]
        assert screen_name(app) == "AuthorizeScreen", message(app)
        assert app.flow is not None and app.flow.has_secret  # opened with the passphrase typed here
    assert encrypted.read_bytes() == before


async def test_a_second_press_of_unlock_right_after_a_refused_one_counts(make_app: Any, encrypted: Path) -> None:
    """As for the Encrypt button: a refusal must not leave Unlock in its pressed state, which
    would make Textual ignore the person's next press."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _to_unlock_dialog(pilot)
        button = app.screen.query_one("#unlock")
        button.active_effect_duration = 600  # the pressed state outlasts the correction on any machine
        await pilot.click("#unlock")  # nothing typed yet
        assert "Type the passphrase first" in dialog_error(app)
        await type_into(pilot, "#unlock-passphrase", "wrong horse")
        await pilot.click("#unlock")  # straight away
        await settle(pilot)
        assert "Wrong passphrase" in dialog_error(app), "the second press was lost: " + dialog_error(app)
        assert app.screen.query_one("#unlock-passphrase").value == ""
        await type_into(pilot, "#unlock-passphrase", PASSPHRASE)
        await pilot.click("#unlock")
        await settle(pilot)
        assert screen_name(app) == "AuthorizeScreen", "the third press was lost: " + (
            dialog_error(app) if screen_name(app) == "UnlockDialog" else message(app))


# -- a passphrase command that takes its time -----------------------------------------------------------

@pytest.mark.parametrize("key", ["escape", "ctrl+q"])
async def test_a_slow_passphrase_command_leaves_the_profiles_screen_drawn_and_answering(
        make_app: Any, fake: FakeProcore, config: Path, tmp_path: Path, key: str) -> None:
    save_profile(config, fake)
    command = GatedCommand(tmp_path, PASSPHRASE)
    command.encrypt(config)
    before = config.read_bytes()
    app = make_app()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert screen_name(app) == "ProfilesScreen"
            await pilot.press("l")  # re-authorize: the stored command is asked for the passphrase
            await wait_until(pilot, command.started.exists, "the passphrase command's start")
            # The command is waiting: the screen says so, and is drawn that way...
            assert message_kind(app) == "busy" and "Opening profile 'default'" in message(app), message(app)
            assert "Opening" in app.export_screenshot()
            assert app.screen.query_one("#profiles").disabled
            # ...and keys still work: leaving needs no answer from the command.
            await pilot.press(key)
            await wait_until(pilot, lambda: app.return_code is not None, f"quitting with {key}")
            assert app.return_code == 0
            assert not command.go.exists()  # the command was still waiting all along
    finally:
        command.release()
    assert config.read_bytes() == before


async def test_login_draws_the_list_while_the_passphrase_command_runs_then_goes_to_authorize(
        make_app: Any, fake: FakeProcore, config: Path, tmp_path: Path) -> None:
    """`procore-setup login` used to open the profile (and run the command) before its first frame."""
    save_profile(config, fake)
    command = GatedCommand(tmp_path, PASSPHRASE)
    command.encrypt(config)
    app = make_app(login=True)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, command.started.exists, "the passphrase command's start")
            assert screen_name(app) == "ProfilesScreen"
            assert message_kind(app) == "busy" and "Opening profile 'default'" in message(app), message(app)
            command.release()
            await settle(pilot)
            assert screen_name(app) == "AuthorizeScreen", message(app)
            assert app.mode == "reauthorize" and app.flow is not None and app.flow.has_secret
            await pilot.press("escape")  # the first screen of `login`: Esc asks, and y leaves (issue 20)
            await pilot.pause()
            await pilot.press("y")
            await pilot.pause()
        assert app.return_code == 0
    finally:
        command.release()


# -- nothing reads the file on the UI thread ---------------------------------------------------------------

async def test_the_wizard_never_reads_the_file_on_its_ui_thread(
        make_app: Any, fake: FakeProcore, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The list, opening a profile, saving, the Saved screen, encrypting and adding a profile all
    read the store; on a slow disk (or, later, a database) each read would freeze the screen."""
    save_profile(config, fake)
    ui_thread = threading.get_ident()
    on_ui: list[str] = []

    def watch(owner: Any, name: str) -> None:
        real = getattr(owner, name)

        def watched(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == ui_thread:
                ours = [line for line in traceback.format_stack()[:-1] if "procore_setup" in line]
                on_ui.append(f"{owner.__name__}.{name}, from:\n" + "".join(ours[-4:]))
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, watched)

    for name in ("load", "read_bytes", "save"):
        watch(FileStore, name)
    # the file's mode (who may read it) and the opening of its secrets are read outside the store
    watch(filesystem, "mode_text")
    watch(passphrases, "unlock_with")
    monkeypatch.setenv("PROCORE_SETUP_PASSPHRASE", PASSPHRASE)  # for opening the file once it is encrypted
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        assert screen_name(app) == "AuthorizeScreen", message(app)
        await paste_code(pilot, fake.issue_code())
        await save_on_verify(pilot)
        await pilot.press("e")  # encrypt, from the Saved screen
        await pilot.pause()
        await type_into(pilot, "#passphrase", PASSPHRASE)
        await type_into(pilot, "#again", PASSPHRASE)
        await pilot.click("#encrypt")
        await settle(pilot)
        assert "secrets encrypted" in str(app.screen.query_one("#saved-head").render())
        await pilot.press("escape")  # to the list, read again
        await settle(pilot)
        assert screen_name(app) == "ProfilesScreen"
        assert "secrets encrypted" in str(app.screen.query_one("#file").render())
        await pilot.press("r")  # reconfigure the encrypted profile
        await settle(pilot)
        assert screen_name(app) == "KindScreen", message(app)
        await answer_kind(pilot)
        await pilot.press("escape", "escape")
        await settle(pilot)
        await pilot.press("a")  # and add one: its name is checked against the file
        await pilot.pause()
        await answer_kind(pilot)
        await type_into(pilot, "#name", "default")
        await pilot.press("enter", "enter")
        await settle(pilot)
        assert "already a profile called 'default'" in message(app)
    assert not on_ui, "the UI thread read the store:\n" + "\n".join(on_ui)
