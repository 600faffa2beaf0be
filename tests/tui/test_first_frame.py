"""What the first frame leaves for later still arrives: the first screen's footer with its keys,
the later steps' styles, the Profiles list (mounted and filled once the frame is drawn).

The first frame is drawn without them (issue 21: the wizard's first frame against a bare
Textual app); these tests hold that nothing a person uses went missing on the way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Footer, OptionList, Static

from helpers.wizard import SIZE, answer_kind, screen_name, settle, write_one_profile


def footer_keys(app: Any) -> list[str]:
    return [str(key.description) for key in app.screen.query_one(Footer).query("FooterKey")]


async def wait_for_footer_keys(pilot: Any) -> list[str]:
    """The footer's keys, once it shows some (it is filled a frame after it is mounted)."""
    for _ in range(100):
        await pilot.pause()
        if pilot.app.screen.query(Footer) and footer_keys(pilot.app):
            return footer_keys(pilot.app)
    raise AssertionError("the footer never showed its keys")


async def test_the_first_question_gets_its_footer_and_the_next_step_has_one_at_once(make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        assert screen_name(app) == "KindScreen"
        assert await wait_for_footer_keys(pilot) == ["Continue", "Back", "Quit"]
        assert len(app.screen.query(Footer)) == 1
        await answer_kind(pilot)  # step 1, shown after the first frame: its footer comes with it
        assert len(app.screen.query(Footer)) == 1
        assert "Continue" in await wait_for_footer_keys(pilot)
        await pilot.press("enter")  # on to the client step, whose button row is styled by later.tcss
        await settle(pilot)
        assert screen_name(app) == "ClientScreen"
        buttons = app.screen.query_one("#buttons")
        assert buttons.styles.dock == "bottom" and buttons.styles.margin.bottom == 1  # later.tcss's rule


async def test_the_profiles_list_is_mounted_and_read_after_the_first_frame_and_its_keys_follow(
        config: Path, clock: Any) -> None:
    """The list is an OptionList, which was a fifth of the Profiles screen's work before its first
    frame while empty: it is mounted once that frame is drawn, then filled, focused, and answers."""
    from procore_setup.stores.file import FileStore
    from procore_setup.tui.app import ProcoreSetupApp

    write_one_profile(config)
    at_ready: list[int] = []

    class Watched(ProcoreSetupApp):
        async def on_ready(self) -> None:  # the first frame is drawn; what waited for it comes next
            at_ready.append(len(self.screen.query(OptionList)))
            await super().on_ready()

    app = Watched(FileStore(config), clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        assert screen_name(app) == "ProfilesScreen"
        keys = await wait_for_footer_keys(pilot)
        assert keys[:2] == ["Add", "Reconfigure"]
        for _ in range(100):
            if app.screen.query("#profiles") and app.screen.query_one("#profiles", OptionList).option_count:
                break
            await pilot.pause()
        listing = app.screen.query_one("#profiles", OptionList)
        assert at_ready == [0]  # no list in the first frame
        assert not app.screen.query("#profiles-wait")  # its placeholder is gone
        assert listing.option_count == 1 and app.focused is listing
        assert "default" in str(app.screen.query_one("#details", Static).render())
        await pilot.press("enter")  # Enter on the list reconfigures the highlighted profile
        await settle(pilot)
        assert screen_name(app) == "KindScreen"  # reconfiguring starts at the first question


async def test_the_first_question_answers_to_the_keys_and_clicks_an_option_list_did(make_app: Any) -> None:
    """The first screen's two choices are a light list now (ChoiceLines, not an OptionList): the
    same labels, up/down/home/end, Enter and a click still choose."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        assert screen_name(app) == "KindScreen"
        kinds = app.screen.query_one("#kinds")
        assert app.focused is kinds
        rendered = str(kinds.render())
        assert "A person's login      authorize once in a browser, as yourself" in rendered
        assert "A service account     client id and secret only, no browser" in rendered
        assert kinds.highlighted_option.id == "user"
        await pilot.press("up")  # already at the top: stays
        assert kinds.highlighted_option.id == "user"
        await pilot.press("down", "down")  # past the end: stays on the last
        assert kinds.highlighted_option.id == "service_account"
        await pilot.press("home")
        assert kinds.highlighted_option.id == "user"
        await pilot.press("end")
        assert kinds.highlighted_option.id == "service_account"
        await pilot.press("escape")  # Back on the first screen asks; Stay keeps the choice
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert screen_name(app) == "KindScreen"
        # A click on the second line (below the border) chooses a service account at once.
        await pilot.click("#kinds", offset=(5, 2))
        await settle(pilot)
        assert screen_name(app) == "EnvironmentScreen"
        assert app.kind == "service_account"
        await pilot.press("escape")
        await settle(pilot)
        assert screen_name(app) == "KindScreen"
        kinds = app.screen.query_one("#kinds")
        assert kinds.highlighted_option.id == "service_account"  # as chosen
        await pilot.click("#kinds", offset=(5, 1))  # the first line: a person's login
        await settle(pilot)
        assert screen_name(app) == "EnvironmentScreen"
        assert app.kind == "user"


async def test_the_line_under_the_mouse_is_lit_as_in_an_option_list(make_app: Any) -> None:
    """OptionList lights the option under the mouse (not the highlighted one: its own colour wins);
    the first question's light list does the same, and lets go when the mouse leaves."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        kinds = app.screen.query_one("#kinds")
        await settle(pilot)

        def line_styles() -> list[str]:
            """Each line's styles as rendered (the text of the lines never changes)."""
            return [" ".join(str(span.style) for span in line.spans) for line in kinds.render().split("\n")]

        plain = line_styles()
        await pilot.hover("#kinds", offset=(5, 2))  # the second line (below the border)
        assert kinds.hovered == 1
        lit = line_styles()
        assert lit[0] == plain[0] and lit[1] != plain[1]  # only the line under the mouse changes
        await pilot.hover("#kinds", offset=(5, 1))  # onto the highlighted line: its look stays
        assert kinds.hovered == 0
        assert line_styles() == plain
        await pilot.hover("#titlebar")  # away from the list
        assert kinds.hovered is None
        assert line_styles() == plain


async def test_a_screen_is_laid_out_again_when_the_terminal_changes_size(make_app: Any) -> None:
    """Resizes of the size a screen already has are not laid out again (three arrive at start-up);
    a real change of size is, both ways, on the screen shown and on the one under it."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        assert screen_name(app) == "KindScreen"
        width = app.screen.query_one("#kinds").outer_size.width
        assert width == SIZE[0] - 2  # the body's padding
        await pilot.resize_terminal(100, 30)
        await settle(pilot)
        assert app.screen.query_one("#kinds").outer_size.width == 98
        assert app.screen.query_one("#titlebar").size.width == 100
        await answer_kind(pilot)  # Environment on top, the first question under it
        await pilot.resize_terminal(*SIZE)
        await settle(pilot)
        assert app.screen.query_one("#titlebar").size.width == SIZE[0]
        await pilot.press("escape")
        await settle(pilot)
        assert screen_name(app) == "KindScreen"
        assert app.screen.query_one("#kinds").outer_size.width == width
        assert app.screen.query_one("#titlebar").size.width == SIZE[0]
