"""Issue 20, the wizard's rough edges, each through Pilot: the demo never reaching real Procore, the
company list's start and its one Enter, Esc on the first screen, the encrypt notice and cron line,
mouse selection copying whole, the Profiles screen following the file, and the kind column."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from textual.widgets import Input, OptionList

from procore_setup.tui.widgets.choices import ChoiceLines

from procore_setup.demo import _login
from procore_setup.stores.file import FileStore
from procore_setup.testing import FakeProcore
from procore_setup.testing.demo import DemoSession
from procore_setup.tui.app import ProcoreSetupApp

from helpers.cli import CLIENT_ID, CLIENT_SECRET, EXE, base_env
from helpers.wizard import SIZE, answer_kind, message, save_profile, screen_name, settle, type_into

COMPANIES = {"Builder Demo Co.": 8675309, "Zone Two Contractors": 562949953421313}


async def _wait(pilot: Any, done: Any, what: str, timeout: float = 30.0) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
        await pilot.pause()


def _rows(app: ProcoreSetupApp) -> list[str]:
    listing = app.screen.query_one("#profiles", OptionList)
    return [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]


# -- the demo never reaches real Procore ---------------------------------------------------------------

async def test_adding_a_profile_in_the_demo_starts_on_the_fake_server_only() -> None:
    with DemoSession() as session:
        _login(session, FileStore(session.config_path))  # a demo file with profiles: the list comes first
        app = ProcoreSetupApp(FileStore(session.config_path), demo=session)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert screen_name(app) == "ProfilesScreen"
            await pilot.press("a")
            await pilot.pause()
            await answer_kind(pilot)
            envs = app.screen.query_one("#envs", ChoiceLines)
            offered = [choice.id for choice in envs.choices]
            assert offered == ["custom"]  # no production, sandbox or federal host to pick
            assert app.screen.query_one("#login_url", Input).value == session.url
            assert app.screen.query_one("#login_url", Input).disabled
            assert "nothing real is touched" in str(app.screen.query_one("#env-note").render())
            await type_into(pilot, "#name", "second")
            await pilot.press("enter")  # from the name to the list
            await pilot.pause()
            await pilot.press("enter")  # the demo's server: on
            await settle(pilot)
            assert screen_name(app) == "ClientScreen", message(app)
            flow = app.flow
            assert flow is not None
            assert (flow.login_url, flow.api_url) == (session.url, session.url)
            assert flow.client_id == session.client_id


# -- the company list --------------------------------------------------------------------------------

async def _at_verify(pilot: Any, fake: FakeProcore, company_id: int | None = None) -> None:
    app = pilot.app
    flow = app.new_flow("default")
    flow.set_environment("custom", fake.url, fake.url)
    flow.set_client(CLIENT_ID, CLIENT_SECRET)
    flow.start_authorization()
    flow.exchange(fake.issue_code())
    flow.company_id = company_id
    app.dirty = True
    app.push_screen(app.make_screen("verify"))
    await settle(pilot)
    assert screen_name(app) == "VerifyScreen", message(app)


async def test_the_company_list_starts_on_the_first_active_company_and_one_enter_saves(
        make_app: Any, fake: FakeProcore, config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _at_verify(pilot, fake)
        companies = app.screen.query_one("#companies", OptionList)
        assert companies.has_focus
        assert companies.highlighted_option.id == str(COMPANIES["Builder Demo Co."])  # not "No default company"
        await pilot.press("enter")  # one Enter: chosen and saved
        await settle(pilot)
        assert screen_name(app) == "SavedScreen", message(app)
    assert f"company_id = {COMPANIES['Builder Demo Co.']}" in config.read_text()


async def test_the_company_list_starts_on_the_profiles_company(make_app: Any, fake: FakeProcore,
                                                               config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _at_verify(pilot, fake, company_id=COMPANIES["Zone Two Contractors"])
        assert app.screen.query_one("#companies", OptionList).highlighted_option.id == str(COMPANIES["Zone Two Contractors"])
        await pilot.press("enter")
        await settle(pilot)
        assert screen_name(app) == "SavedScreen", message(app)
    assert f"company_id = {COMPANIES['Zone Two Contractors']}" in config.read_text()


# -- Esc on the first screen ---------------------------------------------------------------------------

async def test_esc_on_the_first_screen_asks_rather_than_quitting(make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert screen_name(app) == "KindScreen"
        await pilot.press("escape")
        await pilot.pause()
        assert screen_name(app) == "ConfirmDialog" and app.return_code is None
        assert "Nothing to go back to" in app.screen.heading
        await pilot.press("escape")  # no: stay
        await pilot.pause()
        assert screen_name(app) == "KindScreen" and app.return_code is None
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code == 0


# -- the Saved screen ---------------------------------------------------------------------------------

async def _at_saved(pilot: Any, fake: FakeProcore) -> None:
    await _at_verify(pilot, fake)
    await pilot.press("enter")
    await settle(pilot)
    assert screen_name(pilot.app) == "SavedScreen", message(pilot.app)


async def test_encrypting_without_a_command_says_so_and_updates_the_cron_line(
        make_app: Any, fake: FakeProcore, config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _at_saved(pilot, fake)
        before = app.screen.cron
        await pilot.press("e")
        await pilot.pause()
        await type_into(pilot, "#passphrase", "correct horse battery")
        await type_into(pilot, "#again", "correct horse battery")
        app.screen.query_one("#command").focus()
        await pilot.press("enter")  # no command given
        await settle(pilot)
        assert screen_name(app) == "SavedScreen", message(app)
        said = message(app)
        assert "command you gave" not in said and "passphrase" in said
        assert app.screen.cron.splitlines() == ["PROCORE_SETUP_PASSPHRASE='<your passphrase>'", before]
        assert str(app.screen.query_one("#cron").render()).startswith("PROCORE_SETUP_PASSPHRASE=")
    assert "[encryption]" in config.read_text()


async def test_encrypting_with_a_command_names_it_and_keeps_the_cron_line(
        make_app: Any, fake: FakeProcore) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _at_saved(pilot, fake)
        cron = app.screen.cron
        await pilot.press("e")
        await pilot.pause()
        await type_into(pilot, "#passphrase", "correct horse battery")
        await type_into(pilot, "#again", "correct horse battery")
        await type_into(pilot, "#command", "echo correct horse battery")
        await pilot.press("enter")
        await settle(pilot)
        assert "echo correct horse battery" in message(app) and "stays as it is" in message(app)
        assert app.screen.cron == cron


async def test_a_mouse_selection_of_the_wrapped_cron_line_copies_it_whole(make_app: Any, fake: FakeProcore) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _at_saved(pilot, fake)
        cron_widget = app.screen.query_one("#cron")
        assert cron_widget.size.height >= 2  # it wraps at 80 columns
        height = cron_widget.size.height
        await pilot.mouse_down("#cron", offset=(0, 0))
        await pilot.hover("#cron", offset=(cron_widget.size.width - 1, height - 1))
        await pilot.mouse_up("#cron", offset=(cron_widget.size.width - 1, height - 1))
        await _wait(pilot, lambda: bool(app.clipboard), "the selection to be copied")
        assert "\n" not in app.clipboard.strip()
        assert app.clipboard.strip() == app.screen.cron.strip()
        assert "as one piece" in message(app)


# -- the Profiles screen follows the file, the kind column -----------------------------------------------

async def test_the_profiles_screen_shows_an_outside_revoke(make_app: Any, fake: FakeProcore, config: Path) -> None:
    save_profile(config, fake)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "no tokens" not in _rows(app)[0]
        r = subprocess.run([EXE, "--config", str(config), "revoke", "--local-only"], capture_output=True, text=True,
                           env=base_env(), timeout=60)
        assert r.returncode == 0, r.stderr
        await _wait(pilot, lambda: "no tokens" in _rows(app)[0], "the list to show the revoke")


async def test_the_kind_column_keeps_its_words_apart(make_app: Any, fake: FakeProcore, config: Path) -> None:
    save_profile(config, fake)
    env = base_env(PROCORE_CLIENT_SECRET=fake.service_account_client_secret)
    r = subprocess.run([EXE, "--config", str(config), "login", "--plain", "--service-account", "--profile", "svc",
                        "--environment", "custom", "--login-url", fake.url, "--api-url", fake.url, "--client-id",
                        fake.service_account_client_id, "--company-id", "8675309"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        rows = _rows(app)
        service = next(row for row in rows if "svc" in row)
        assert "service  custom" in service  # two spaces: not "service custom", read as one phrase
        person = next(row for row in rows if "default" in row)
        assert "person   custom" in person
