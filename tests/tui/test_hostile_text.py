"""Names from Procore and from the file are shown as plain text, never as Textual markup (issue 9).

A company called `Smith [/] Sons` crashed the Verify step with a MarkupError (after the code was
spent), a `user_name` of `[/nope]` in the file crashed the profiles screen at every launch, and
`[@click=app.quit]` became a live action. Row `hostile-markup-names` of docs/reliability.md.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from procore_setup.testing import FakeProcore

from helpers.wizard import SIZE, jump_to_authorize, message, paste_code, save_profile, screen_name, settle

SMITH = "Smith [/] Sons"
CLICK = "[@click=app.quit]Quit now[/]"
LOUD = "[bold red]Loud[/bold red] Co \x1b]0;title\x07"


def shown(widget: Any) -> str:
    """The text the widget puts on the screen, line by line (what a person reads)."""
    return "\n".join(widget.render_line(y).text for y in range(widget.size.height))


def actions(widget: Any) -> list[Any]:
    """The click actions anywhere on the widget (markup's `[@click=...]` puts them there)."""
    return [seg.style.meta["@click"] for y in range(widget.size.height) for seg in widget.render_line(y)
            if seg.style is not None and "@click" in seg.style.meta]


def company(cid: int, name: str) -> dict[str, Any]:
    return {"id": cid, "name": name, "is_active": True, "my_company": False, "logo_url": None}


async def test_company_names_from_procore_are_plain_text_on_verify(make_app: Any, fake: FakeProcore,
                                                                  config: Path) -> None:
    fake.companies = [company(101, SMITH), company(102, CLICK), company(103, LOUD)]
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        await paste_code(pilot, fake.issue_code())
        assert screen_name(app) == "VerifyScreen", message(app)
        listing = app.screen.query_one("#companies")
        on_screen = shown(listing)
        assert f"{SMITH}  · id 101" in on_screen
        assert f"{CLICK}  · id 102" in on_screen  # the markup is text, not an action
        assert "[bold red]Loud[/bold red] Co \\x1b]0;title\\x07" in on_screen  # and control characters escaped
        assert actions(listing) == []  # nothing on the list would quit the app when clicked
        listing.highlighted = 1
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert screen_name(app) == "SavedScreen", message(app)
    prof = tomllib.loads(config.read_text())["profiles"]["default"]
    assert prof["company_id"] == 101 and prof["company_name"] == SMITH


async def test_names_in_the_file_are_plain_text_on_the_profiles_screen(make_app: Any, fake: FakeProcore,
                                                                      config: Path) -> None:
    save_profile(config, fake, "default")
    save_profile(config, fake, "other")
    doc = tomllib.loads(config.read_text())
    doc["profiles"]["default"]["user_name"] = "[/nope]"  # as any editor (or an older version) may leave it
    doc["profiles"]["other"]["user_name"] = "[@click=quit]x"  # within the list's user column (16)
    doc["profiles"]["other"]["company_name"] = "Co [/] \x1b[2J"
    config.write_text(tomli_w.dumps(doc))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)  # the list is read by a worker
        assert screen_name(app) == "ProfilesScreen", message(app)
        listing = app.screen.query_one("#profiles")
        on_screen = shown(listing)
        assert "[/nope]" in on_screen and "[@click=quit]x" in on_screen
        assert actions(listing) == []
        listing.highlighted = 1
        await pilot.pause()
        details = str(app.screen.query_one("#details").render())
        assert "user [@click=quit]x" in details and "company Co [/] \\x1b[2J" in details
        await pilot.press("escape")
        await pilot.pause()
    assert app.return_code == 0
