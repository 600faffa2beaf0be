"""The Profiles list once it arrives (it is mounted after the first frame, then read into): the
profile the run names is the one on show, highlighted, whatever its place in the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers.wizard import SIZE, Clock, screen_name, settle
from procore_setup.stores.file import FileStore
from procore_setup.tui.app import ProcoreSetupApp

NAMES = [f"site{i:02d}" for i in range(14)]  # more than the list's 6 rows


def many_profiles(config: Path) -> None:
    parts = ['schema_version = 1\ndefault_profile = "site00"\n']
    for name in NAMES:
        parts.append(f"""
[profiles.{name}]
environment = "production"
login_url = "https://login.procore.com"
api_url = "https://api.procore.com"
client_id = "client-{name}"
client_secret = "secret-{name}-0000"
redirect_uri = "urn:ietf:wg:oauth:2.0:oob"
""")
    config.parent.mkdir(mode=0o700)
    config.write_text("".join(parts))
    config.chmod(0o600)


def rows_on_show(app: ProcoreSetupApp) -> list[str]:
    """The list's rows as drawn inside its border (what the person sees of it)."""
    listing: Any = app.screen.query_one("#profiles")
    return [listing.render_line(y).text.split()[0] for y in range(listing.scrollable_content_region.height)]


@pytest.mark.parametrize("how", ["--profile", "PROCORE_SETUP_PROFILE"])
async def test_the_named_profile_is_on_show_in_a_long_list(how: str, config: Path, clock: Clock,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`procore-setup --profile site12` with 14 profiles: the details below the list described site12
    while the list showed site00 to site05, its highlighted row out of sight (the list scrolled to it
    before it was laid out with its rows, so the scroll stopped at the top)."""
    many_profiles(config)
    if how == "PROCORE_SETUP_PROFILE":
        monkeypatch.setenv("PROCORE_SETUP_PROFILE", "site12")
        app = ProcoreSetupApp(FileStore(config), clock=clock)
    else:
        app = ProcoreSetupApp(FileStore(config), clock=clock, profile="site12")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert screen_name(app) == "ProfilesScreen"
        assert str(app.screen.query_one("#details").render()).startswith("site12:")
        assert "site12" in rows_on_show(app), rows_on_show(app)
        listing: Any = app.screen.query_one("#profiles")
        assert listing.highlighted_option.id == "site12"
        assert app.focused is app.screen.query_one("#profiles")
        await pilot.press("down")  # the keys go on from there
        assert listing.highlighted_option.id == "site13" and "site13" in rows_on_show(app)


WIDEST = """schema_version = 1
default_profile = "a-long-profile-name"

[profiles.a-long-profile-name]
environment = "monthly-sandbox"
login_url = "https://login-sandbox-monthly.procore.com"
api_url = "https://api-sandbox-monthly.procore.com"
client_id = "client-wide"
client_secret = "secret-wide-0000"
redirect_uri = "urn:ietf:wg:oauth:2.0:oob"
access_token = "old-access-token-0000"
refresh_token = "spent-refresh-token-0000"
expires_at = 2031-10-17T10:00:00Z
reauth_required = true
user_name = "Alexandra Konstantinopoulou-Smythe"

[profiles.valid-for-long]
environment = "monthly-sandbox"
login_url = "https://login-sandbox-monthly.procore.com"
api_url = "https://api-sandbox-monthly.procore.com"
client_id = "client-long"
client_secret = "secret-long-0000"
redirect_uri = "urn:ietf:wg:oauth:2.0:oob"
access_token = "access-token-0000"
refresh_token = "refresh-token-0000"
expires_at = {expires}
user_name = "Bartholomew Featherstonehaugh"
"""


async def test_each_profile_is_one_row_at_80_columns_whatever_its_state(config: Path, clock: Clock) -> None:
    """A row that did not fit wrapped onto a second line ("needs a new login" after the longest
    environment and a capped user name: 75 characters where the list has 74)."""
    from datetime import datetime, timezone

    expires = datetime.fromtimestamp(clock() + 47 * 3600 + 59 * 60 + 30, timezone.utc)  # "valid 47 h 59 min"
    config.parent.mkdir(mode=0o700)
    config.write_text(WIDEST.replace("{expires}", f"{expires:%Y-%m-%dT%H:%M:%SZ}"))
    config.chmod(0o600)
    app = ProcoreSetupApp(FileStore(config), clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        listing: Any = app.screen.query_one("#profiles")
        assert listing.option_count == 2
        rows = [str(listing.get_option_at_index(i).prompt) for i in range(2)]
        assert rows[0].endswith("needs a new login") and rows[1].endswith("valid 47 h 59 min"), rows
        assert listing.virtual_size.height == 2, rows  # one line each: nothing wrapped
        header = str(app.screen.query_one("#profiles-header").render())
        assert header.index("Access token") - 2 == rows[0].index("needs a new login")  # under its heading
