"""The wizard's texts (found by a review): the commands they name act on what was saved, and the
Profiles list's rows fit in terminal cells.

A service account saved to a file that is not the default one, under a profile that is not the
default one: the Verify step and the Saved screen say "`procore-setup token` requests a new token
...": run as printed, that command reads the default profile of the default file (here: no such
file), not the profile just saved. The Saved screen's curl example, beside it, names both."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from helpers.cli import EXE
from helpers.stores import close_store
from helpers.wizard import (
    SIZE,
    answer_kind,
    message,
    paste_code,
    save_on_verify,
    screen_name,
    settle,
    type_into,
    walk_to_authorize,
)
from procore_setup.stores import open_store
from procore_setup.stores.file import FileStore
from procore_setup.testing import SERVICE_ACCOUNT_CLIENT_ID as SA_ID
from procore_setup.testing import SERVICE_ACCOUNT_CLIENT_SECRET as SA_SECRET
from procore_setup.testing import FakeProcore
from procore_setup.tui.app import ProcoreSetupApp

COMPANY = 8675309  # the one company the fake's service account is installed in


pytestmark = pytest.mark.usefixtures("guard_service_account_secret")


def text_of(app: Any, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


async def test_the_token_command_of_a_saved_service_account_names_its_file_and_profile(
        make_app: Any, fake: FakeProcore, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.pathsep.join([os.path.dirname(EXE), "/usr/bin", "/bin"]))
    app = make_app(profile="robot")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await answer_kind(pilot, "service_account")
        assert screen_name(app) == "EnvironmentScreen", screen_name(app)
        app.screen.query_one("#envs").highlighted = 4
        await pilot.pause()
        await type_into(pilot, "#login_url", fake.url)
        await type_into(pilot, "#api_url", fake.url)
        await pilot.press("enter")
        await settle(pilot)
        assert screen_name(app) == "ClientScreen", message(app)
        await type_into(pilot, "#client_id", SA_ID)
        await type_into(pilot, "#secret", SA_SECRET)
        app.screen.query_one("#secret", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert screen_name(app) == "ServiceVerifyScreen", message(app)
        await pilot.press(*str(COMPANY), "enter")
        await settle(pilot)
        expiry = text_of(app, "#expiry")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert screen_name(app) == "SavedScreen", message(app)
        no_cron = text_of(app, "#no-cron")
        curl = text_of(app, "#curl")
        await pilot.press("q")
    wanted = f"procore-setup --config {config} token --profile robot"
    assert wanted in curl  # the curl example beside it has it right
    assert f"`{wanted}`" in no_cron, no_cron
    assert f"`{wanted}`" in expiry, expiry


WIDE_USER = """schema_version = 1
default_profile = "tokyo"

[profiles.tokyo]
environment = "production"
login_url = "https://login.procore.com"
api_url = "https://api.procore.com"
client_id = "client-tokyo"
client_secret = "secret-tokyo-0000"
redirect_uri = "urn:ietf:wg:oauth:2.0:oob"
access_token = "old-access-token-0000"
refresh_token = "spent-refresh-token-0000"
expires_at = 2031-10-17T10:00:00Z
reauth_required = true
user_name = "山田太郎建設株式会社工事部長"
"""


async def test_a_row_with_a_wide_user_name_is_one_line_at_80_columns(config: Path, clock: Any) -> None:
    """The user column is capped at 16 characters and padded to 17 by character count; a name in
    Japanese (what Procore's /me gives a Japanese account) is two cells a character: the row is 87
    cells where the list has 74, and wraps onto a second line, its token state under the next row."""
    config.parent.mkdir(mode=0o700)
    config.write_text(WIDE_USER)
    config.chmod(0o600)
    app = ProcoreSetupApp(FileStore(config), clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        listing: Any = app.screen.query_one("#profiles")
        assert listing.option_count == 1
        row = str(listing.get_option_at_index(0).prompt)
        assert row.endswith("needs a new login"), row
        assert listing.virtual_size.height == 1, row  # one line: nothing wrapped


async def test_the_saved_screen_of_a_store_url_with_a_password_says_where_cron_gets_it(
        redis_store_url: str, fake: FakeProcore, clock: Any) -> None:
    """The Saved screen's cron line names the store without its password (rightly), but says
    nothing of where the job is to get it: pasted into crontab, the job fails on every run ('asks
    for a password'). `login --plain` prints the store's password_note under the same line."""
    store = open_store(store=redis_store_url, environ={})
    note = store.address.password_note()
    assert note is not None  # the URL holds a password
    app = ProcoreSetupApp(store, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await answer_kind(pilot)
        await walk_to_authorize(pilot, fake)
        await paste_code(pilot, fake.issue_code())
        await save_on_verify(pilot, company_row=1)
        assert screen_name(app) == "SavedScreen", message(app)
        body = "\n".join(str(w.render()) for w in app.screen.query("#body > Static"))
        await pilot.press("q")
    close_store(store)
    assert "PROCORE_SETUP_STORE" in body, body


HOSTILE_NAME = """schema_version = 1
default_profile = "x; touch PWNED #"

[profiles."x; touch PWNED #"]
environment = "production"
login_url = "https://login.procore.com"
api_url = "https://api.procore.com"
client_id = "client-hostile"
client_secret = "secret-hostile-0000"
redirect_uri = "urn:ietf:wg:oauth:2.0:oob"
"""


async def test_the_remove_dialogs_revoke_command_quotes_the_profile_name(
        config: Path, clock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile name from the file (or a shared store others write) is anything TOML allows: the
    remove dialog joins it into `... revoke --profile NAME` unquoted, so pasting the command runs
    what the name says (here `touch PWNED`). reauth_command quotes it; hints.command's words are not."""
    monkeypatch.setenv("PATH", os.pathsep.join([os.path.dirname(EXE), "/usr/bin", "/bin"]))
    config.parent.mkdir(mode=0o700)
    config.write_text(HOSTILE_NAME)
    config.chmod(0o600)
    app = ProcoreSetupApp(FileStore(config), clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert screen_name(app) == "ProfilesScreen"
        await pilot.press("x")
        await settle(pilot)
        text = str(app.screen.query_one("#dialog-text").render())
        await pilot.press("escape")
    command = text.split("`")[1]
    assert shlex.split(command) == ["procore-setup", "--config", str(config), "revoke", "--profile",
                                    "x; touch PWNED #"], command
