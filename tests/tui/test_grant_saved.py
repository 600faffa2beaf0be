"""The wizard saves the grant when the code is exchanged: quitting, hanging up or failing later loses nothing.

Pilot tests of the real app against the fake over HTTP, and one real terminal (tmux) whose
session is killed on the company screen, as a dropped SSH connection would.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from procore_setup.testing import FakeProcore, Fault

from helpers.cli import CLIENT_ID, CLIENT_SECRET, EXE, base_env
from helpers.terminal import Terminal
from helpers.wizard import SIZE, jump_to_authorize, message, paste_code, run_token, screen_name, settle

TWO_COMPANIES = [{"id": 8675309, "name": "Builder Demo Co."}, {"id": 42, "name": "Second Co."}]


def dialog_text(app: Any) -> str:
    return str(app.screen.query_one("#dialog-text").render())


async def test_ctrl_q_on_the_company_screen_says_the_tokens_are_saved_and_quits_with_them(
        make_app: Any, config: Path) -> None:
    with FakeProcore(companies=TWO_COMPANIES) as fake:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await jump_to_authorize(pilot, fake)
            await paste_code(pilot, fake.issue_code())
            assert screen_name(app) == "VerifyScreen", message(app)
            await pilot.press("ctrl+q")
            await pilot.pause()
            assert screen_name(app) == "ConfirmDialog"
            text = dialog_text(app)
            assert "already saved with its new tokens" in text and "no default company" in text
            assert "discard" not in text.lower() and "will be lost" not in text
            await pilot.press("y")
            await pilot.pause()
        assert app.return_code in (0, None)
        r = run_token(config)
        assert r.returncode == 0, r.stderr
        assert fake.access_token_valid(r.stdout.strip())
        prof = tomllib.loads(config.read_text())["profiles"]["default"]
        assert "company_id" not in prof and prof["client_id"] == CLIENT_ID


async def test_ctrl_q_while_the_code_is_being_exchanged_waits_for_the_grant(
        make_app: Any, fake: FakeProcore, config: Path) -> None:
    import asyncio

    from helpers.wizard import type_into

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        fake.inject(Fault(hang=3, paths="/oauth/token"))  # Procore takes its time to answer
        await pilot.press("n")
        await pilot.pause()
        await type_into(pilot, "#code", fake.issue_code())
        await pilot.press("enter")
        deadline = asyncio.get_running_loop().time() + 30
        while fake.pending_faults():  # until the request is at the server, which holds it
            assert asyncio.get_running_loop().time() < deadline, "the exchange never reached the server"
            await asyncio.sleep(0.02)
        assert app.screen.busy
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert screen_name(app) == "CodeScreen" and "being exchanged" in message(app)
        await settle(pilot)
        assert screen_name(app) == "VerifyScreen"  # the exchange finished and the grant is saved
    r = run_token(config)
    assert r.returncode == 0 and fake.access_token_valid(r.stdout.strip())


async def test_ctrl_q_before_the_exchange_still_warns_that_the_setup_is_discarded(
        make_app: Any, fake: FakeProcore, config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert "is not saved yet" in dialog_text(app) and "will be lost" in dialog_text(app)
        await pilot.press("n")
        await pilot.pause()
        assert screen_name(app) == "AuthorizeScreen"
    assert not config.exists()


async def test_a_grant_the_file_cannot_take_is_kept_in_memory_and_saved_by_ctrl_s(
        make_app: Any, fake: FakeProcore, config: Path) -> None:
    """The early save fails (the file is damaged while Procore answers, after the check made before
    the code was sent); the tokens wait in memory, Ctrl+S writes them."""
    config.parent.mkdir(mode=0o700)

    def damage() -> None:
        config.write_text("this is not toml [")
        config.chmod(0o600)

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        fake.inject(Fault(hook=damage, paths="/oauth/token"))
        await paste_code(pilot, fake.issue_code())
        assert screen_name(app) == "VerifyScreen"
        assert "NOT saved yet" in message(app) and "does not parse" in message(app)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert "could not be saved" in dialog_text(app) and "code is used up" in dialog_text(app)
        await pilot.press("n")
        await pilot.pause()
        config.unlink()  # the person fixes the file
        await pilot.press("enter", "enter")  # the first company, then Save
        await settle(pilot)
        assert screen_name(app) == "SavedScreen", message(app)
    r = run_token(config)
    assert r.returncode == 0 and fake.access_token_valid(r.stdout.strip())


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/test installs it)")
def test_a_terminal_that_hangs_up_on_the_company_screen_keeps_the_grant(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "credentials.toml"
    env = base_env(TERM="xterm-256color", HOME=str(tmp_path))
    with FakeProcore(companies=TWO_COMPANIES) as fake:
        term = Terminal(tmp_path, f"{EXE} --config {config} login", env)
        try:
            term.wait_for("How will your scripts sign in")
            term.keys("Enter")  # a person's login
            term.wait_for("Step 1 of 6")
            term.keys("Down", "Down", "Down", "Down")
            term.wait_for("Login URL")
            term.keys("Enter")
            term.type(fake.url)
            term.keys("Enter")
            term.type(fake.url)
            term.wait_for(f"API {fake.url}")
            term.keys("Enter")
            term.wait_for("Step 2 of 6")
            term.type(CLIENT_ID)
            term.keys("Enter")
            term.type(CLIENT_SECRET)
            term.keys("Enter")
            term.wait_for("Step 3 of 6")
            term.keys("n")
            term.wait_for("Step 4 of 6")
            term.type(fake.issue_code())
            term.keys("Enter")
            term.wait_for("Second Co.")  # the company list: the person has not chosen yet
        finally:
            term.close()  # the terminal goes away: the wizard gets SIGHUP
        r = run_token(config)
        assert r.returncode == 0, r.stderr
        assert fake.access_token_valid(r.stdout.strip())
        assert fake.counts["token:authorization_code"] == 1
