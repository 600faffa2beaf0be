"""The light choice lists (ChoiceLines: the first question, the environments) against the
OptionList they replaced: what a person sees and can do with them in a narrow terminal, with
the page keys, while the screen is busy, and when the Environment step is shown again."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest

from procore_setup import environments
from procore_setup.testing import FakeProcore

from helpers.cli import EXE, base_env
from helpers.terminal import Terminal
from helpers.wizard import (
    SIZE,
    GatedCommand,
    answer_kind,
    message,
    message_kind,
    save_profile,
    screen_name,
    settle,
    type_into,
)

KIND_LINES = ("A person's login      authorize once in a browser, as yourself",
              "A service account     client id and secret only, no browser")
ENV_WORDS = ("Production", "Developer sandbox", "Monthly sandbox", "monthly-sandbox", "Procore for Government",
             "federal", "Custom hosts")


def drawn(app: Any) -> str:
    """The screen as drawn, as text (what Textual's own export_screenshot records, without styles)."""
    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True,
                      legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text(styles=False)


def flat(text: str) -> str:
    """Drawn text with its frame and blanks gone, words run together: a label wrapped over two
    lines of a list reads whole again."""
    return " ".join(text.replace("│", " ").split())


def lines_of(screen: str, selector: str, app: Any) -> list[str]:
    """The drawn rows of one widget's content region."""
    region = app.screen.query_one(selector).content_region
    rows = screen.splitlines()
    return [rows[y][region.x:region.right] for y in range(region.y, region.bottom)]


# -- a terminal narrower than a line -------------------------------------------------------------------

async def test_the_first_question_wraps_its_choices_in_a_narrow_terminal(make_app: Any) -> None:
    """At 50 columns each choice is longer than the list is wide. An OptionList wraps each one
    over two lines and grows; the light list must too, or the second choice is not on screen at
    all (its lines were cut to the list's height of two)."""
    app = make_app()
    async with app.run_test(size=(50, 24)) as pilot:
        await settle(pilot)
        kinds = app.screen.query_one("#kinds")
        screen = drawn(app)
        rows = lines_of(screen, "#kinds", app)
        assert len(rows) == 4, rows  # two choices, two lines each
        assert flat(" ".join(rows[:2])) == flat(KIND_LINES[0])
        assert flat(" ".join(rows[2:])) == flat(KIND_LINES[1])
        # The mouse finds each choice on its own lines: the second line of the first choice is
        # still the first choice; the third line is the second choice.
        await pilot.hover("#kinds", offset=(5, 2))
        assert kinds.hovered == 0
        await pilot.hover("#kinds", offset=(5, 4))
        assert kinds.hovered == 1
        await pilot.click("#kinds", offset=(5, 4))
        await settle(pilot)
        assert screen_name(app) == "EnvironmentScreen" and app.kind == "service_account"
        await pilot.press("escape")
        await settle(pilot)
        await pilot.click("#kinds", offset=(5, 2))  # the first choice's second line
        await settle(pilot)
        assert screen_name(app) == "EnvironmentScreen" and app.kind == "user"


async def test_the_highlight_covers_every_line_of_a_wrapped_choice_and_only_those(make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=(50, 24)) as pilot:
        await settle(pilot)
        kinds = app.screen.query_one("#kinds")
        lines = kinds.render().split("\n")
        assert len(lines) == 4
        styles = [{str(span.style) for span in line.spans} for line in lines]
        assert styles[0] == styles[1] and styles[0] != {""} and styles[0]  # the highlighted choice, both lines
        assert not styles[2] and not styles[3]
        assert all(line.cell_length == kinds.content_size.width for line in lines)  # lit to the edge


async def test_the_environments_wrap_in_a_terminal_narrower_than_their_lines(make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=(40, 30)) as pilot:
        await answer_kind(pilot)
        await settle(pilot)
        screen = drawn(app)
        listed = flat(" ".join(lines_of(screen, "#envs", app)))
        for words in ENV_WORDS:
            assert words in listed, (words, screen)
        envs = app.screen.query_one("#envs")
        await pilot.press("end")
        assert envs.highlighted_option.id == "custom"
        assert "Login URL" in drawn(app)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed; this test needs a real terminal")
def test_a_terminal_narrowed_while_the_first_question_is_shown_keeps_both_choices(tmp_path: Path) -> None:
    """A real terminal made narrower under the wizard (a split pane, a smaller window): both
    choices are still there to read, and the arrow keys and Enter still reach the second."""
    config = tmp_path / "conf" / "credentials.toml"
    env = base_env(TERM="xterm-256color", HOME=str(tmp_path))
    # pytest-xdist's workers have COLUMNS and LINES set, and Textual (shutil.get_terminal_size)
    # then takes them over the terminal's own size: the wizard would never see the resize.
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    term = Terminal(tmp_path, f"{EXE} --config {config}; echo WIZARD-EXIT=$?; sleep 60", env)
    try:
        term.wait_for("How will your scripts sign in")
        term.wait_for("Continue")  # the footer: the first frame is behind us
        term.tmux("resize-window", "-t", "wizard", "-x", "50", "-y", "24")
        top = "╭" + "─" * 46 + "╮"  # the list's frame, drawn again 50 columns wide
        screen = term.wait_for(top)
        rows = screen.splitlines()
        first = next(y for y, row in enumerate(rows) if top in row)
        last = next(y for y, row in enumerate(rows) if "╰" in row)
        listed = flat(" ".join(rows[first + 1:last]))
        assert flat(KIND_LINES[0]) in listed and flat(KIND_LINES[1]) in listed, screen
        term.keys("Down", "Enter")
        term.wait_for("Step 1 of 4")  # a service account's steps
    finally:
        term.close()


# -- the look -----------------------------------------------------------------------------------------

def cell_look(app: Any, x: int, y: int) -> tuple[Any, Any, Any]:
    """The colours and boldness of the cell drawn at (x, y)."""
    position = 0
    for segment in app.screen._compositor.render_strips()[y]:
        if position <= x < position + len(segment.text):
            style = segment.style
            return (style.color, style.bgcolor, style.bold) if style is not None else (None, None, None)
        position += len(segment.text)
    raise AssertionError(f"nothing drawn at {x},{y}")


async def test_the_lines_look_as_an_option_lists_focused_unfocused_and_under_the_mouse(make_app: Any) -> None:
    """An OptionList with the same two lines, mounted under the first question's list in the same
    app: the highlighted line, the other line, the frame and the line under the mouse are drawn in
    the same colours, whichever of the two has the focus."""
    from textual.widgets import OptionList

    app = make_app()
    async with app.run_test(size=(80, 30)) as pilot:
        await settle(pilot)
        kinds = app.screen.query_one("#kinds")
        options = OptionList(*KIND_LINES, id="reference")
        await app.screen.query_one("#body").mount(options, after="#kinds")
        options.highlighted = 0
        await settle(pilot)

        def look(widget: Any, line: int, dx: int = 2) -> tuple[Any, Any, Any]:
            box = widget.content_region
            return cell_look(app, box.x + dx, box.y + line)

        def looks(widget: Any) -> list[tuple[Any, Any, Any]]:
            """The highlighted line, the other line, the padding and the frame beside the first."""
            return [look(widget, 0), look(widget, 1), look(widget, 0, -1), look(widget, 0, -2)]

        async def hovered(widget: Any, selector: str) -> tuple[Any, Any, Any]:
            await pilot.hover(selector, offset=(5, 2))  # the second line, not the highlighted one
            await pilot.pause()
            return look(widget, 1)

        kinds.focus()
        await pilot.pause()
        ours_focused, theirs_blurred = looks(kinds), looks(options)
        ours_lit_focused, theirs_lit_blurred = await hovered(kinds, "#kinds"), await hovered(options, "#reference")
        options.focus()
        await pilot.pause()
        await pilot.hover("#titlebar")
        await pilot.pause()
        theirs_focused, ours_blurred = looks(options), looks(kinds)
        theirs_lit_focused, ours_lit_blurred = await hovered(options, "#reference"), await hovered(kinds, "#kinds")

        assert ours_focused == theirs_focused
        assert ours_blurred == theirs_blurred
        assert ours_focused[0] != ours_blurred[0]  # (the focus shows)
        assert ours_lit_focused == theirs_lit_focused and ours_lit_focused != ours_focused[1]
        assert ours_lit_blurred == theirs_lit_blurred and ours_lit_blurred != ours_blurred[1]


# -- the mouse ----------------------------------------------------------------------------------------

async def test_dragging_across_the_choices_selects_no_text_as_in_an_option_list(make_app: Any) -> None:
    """An OptionList takes no text selection (ALLOW_SELECT = False): a press that slides along a
    line (a trackpad's click, often) leaves the list as it was. The light list drew a selection
    band over its lines instead, and offered that text to copy."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.mouse_down("#kinds", offset=(3, 1))
        await pilot.hover("#kinds", offset=(30, 1))
        await pilot.mouse_up("#kinds", offset=(30, 1))
        await pilot.pause()
        assert not app.screen.selections and app.screen.get_selected_text() is None
        assert screen_name(app) == "KindScreen"
        await pilot.click("#kinds", offset=(5, 2))  # a plain click still chooses
        await settle(pilot)
        assert screen_name(app) == "EnvironmentScreen" and app.kind == "service_account"


async def test_a_click_on_custom_hosts_opens_its_empty_login_url_field(make_app: Any) -> None:
    """A click highlights and chooses at once: the custom fields, mounted on the highlight, had not
    mounted their inputs yet when the choice asked for the Login URL field, and the wizard crashed
    (NoMatches '#login_url'). Now the field takes the focus, empty, and nothing moves on."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await answer_kind(pilot)
        await settle(pilot)
        await pilot.click("#envs", offset=(5, 5))  # Custom hosts, the last line
        await settle(pilot)
        assert screen_name(app) == "EnvironmentScreen"
        login_url = app.screen.query_one("#login_url")
        assert app.focused is login_url and login_url.value == ""
        assert "Hosts used: login (not set), API (not set)" in drawn(app)


async def test_end_and_enter_typed_at_once_open_the_login_url_field(make_app: Any) -> None:
    """The same with the keys, typed ahead (End, Enter in one burst, before a frame is drawn)."""
    from textual import events

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await answer_kind(pilot)
        await settle(pilot)
        assert app.focused is app.screen.query_one("#envs")
        app.post_message(events.Key("end", None))  # as the terminal driver posts a burst of input
        app.post_message(events.Key("enter", "\r"))
        await settle(pilot)
        assert screen_name(app) == "EnvironmentScreen"
        assert app.focused is app.screen.query_one("#login_url")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed; this test needs a real terminal")
def test_end_and_enter_in_one_burst_in_a_real_terminal_open_the_login_url_field(tmp_path: Path) -> None:
    """tmux writes both keys at once, as a quick typist or a key macro does: the wizard used to
    die there with a traceback (exit 1)."""
    config = tmp_path / "conf" / "credentials.toml"
    term = Terminal(tmp_path, f"{EXE} --config {config}; echo WIZARD-EXIT=$?; sleep 60",
                    base_env(TERM="xterm-256color", HOME=str(tmp_path)))
    try:
        term.wait_for("How will your scripts sign in")
        term.keys("Enter")
        term.wait_for("Step 1 of 6")
        term.wait_for("Continue")
        term.tmux("send-keys", "-t", "wizard", "End", "Enter")  # one write: both keys in one read
        term.wait_for("Login URL")
        term.type("https://login.example.com")  # typed into the field that has the focus
        screen = term.wait_for("Hosts used: login https://login.example.com")
        assert "Traceback" not in screen and "WIZARD-EXIT" not in screen
    finally:
        term.close()


# -- a terminal shorter than the list -----------------------------------------------------------------

async def test_the_highlighted_choice_stays_on_screen_in_a_terminal_shorter_than_the_list(make_app: Any) -> None:
    """Seven rows (a small split pane): the five environments and their frame do not fit between
    the title and the footer. An OptionList (at most as high as the screen's body) scrolls its
    highlight into view; the light list must bring it into view too, or End lights a line nobody
    can see."""
    app = make_app()
    async with app.run_test(size=(80, 7)) as pilot:
        await answer_kind(pilot)
        await settle(pilot)
        envs = app.screen.query_one("#envs")
        for key, label in (("end", "Custom hosts"), ("home", "Production"), ("pagedown", "Custom hosts"),
                           ("up", "Procore for Government"), ("pageup", "Production")):
            await pilot.press(key)
            await pilot.pause()
            rows = drawn(app).splitlines()
            lit = [row for row in rows if label in row]
            assert lit, (key, label, "\n".join(rows))
            assert envs.highlighted_option.id in lit[0]


# -- the page keys -------------------------------------------------------------------------------------

async def test_page_down_and_page_up_move_the_highlight_as_in_an_option_list(make_app: Any) -> None:
    """OptionList moves a page of lines with PageDown / PageUp; every line of these lists is on
    screen, so a page takes the highlight to the last and the first choice."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        kinds = app.screen.query_one("#kinds")
        await pilot.press("pagedown")
        assert kinds.highlighted_option.id == "service_account"
        await pilot.press("pageup")
        assert kinds.highlighted_option.id == "user"
        await answer_kind(pilot)
        envs = app.screen.query_one("#envs")
        assert app.focused is envs
        await pilot.press("pagedown")
        assert envs.highlighted_option.id == "custom"
        assert "Login URL" in drawn(app)
        await pilot.press("pageup")
        assert envs.highlighted_option.id == "production"


# -- busy: adding a profile reads the file first ------------------------------------------------------------

async def test_keys_and_clicks_on_the_environments_do_nothing_while_the_file_is_read(
        make_app: Any, fake: FakeProcore, config: Path, tmp_path: Path) -> None:
    """Adding a profile to an encrypted file: the file is opened (the passphrase command runs) in
    a worker while the list is disabled. Nothing typed or clicked on the list then changes the
    environment the step goes on with; afterwards the step goes on with the one chosen before."""
    save_profile(config, fake)
    command = GatedCommand(tmp_path, "correct horse battery")
    command.encrypt(config)
    app = make_app()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("a")
            await settle(pilot)
            await answer_kind(pilot)
            await type_into(pilot, "#name", "second")
            envs = app.screen.query_one("#envs")
            envs.focus()
            await pilot.press("down")  # Developer sandbox
            await pilot.pause()
            assert envs.highlighted_option.id == "sandbox"
            await pilot.press("enter")
            for _ in range(200):
                if command.started.exists():
                    break
                await pilot.pause(0.02)
            assert command.started.exists(), message(app)
            assert app.screen.busy and message_kind(app) == "busy"
            assert envs.disabled
            await pilot.press("down", "end", "pagedown", "home", "enter")
            await pilot.click("#envs", offset=(5, 5))  # Procore for Government
            await pilot.hover("#envs", offset=(5, 3))
            assert envs.highlighted_option.id == "sandbox"
            assert "sandbox" in str(app.screen.query_one("#hosts").render())
            assert screen_name(app) == "EnvironmentScreen"
            command.release()
            await settle(pilot)
            assert screen_name(app) == "ClientScreen", message(app)
            assert app.flow is not None and app.flow.environment == "sandbox"
            await pilot.press("escape")  # back: the list has the focus again, and keys move it
            await settle(pilot)
            assert screen_name(app) == "EnvironmentScreen"
            assert app.focused is envs and not envs.disabled
            await pilot.press("down")
            assert envs.highlighted_option.id == "monthly-sandbox"
    finally:
        command.release()


# -- shown again: Esc from the Client step -----------------------------------------------------------------

async def test_back_from_the_client_step_the_environment_step_is_as_it_was_left(make_app: Any,
                                                                                fake: FakeProcore) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await answer_kind(pilot)
        envs = app.screen.query_one("#envs")
        await pilot.press("end")  # Custom hosts
        await pilot.pause()
        await type_into(pilot, "#login_url", fake.url)
        await type_into(pilot, "#api_url", fake.url)
        await pilot.press("enter")
        await settle(pilot)
        assert screen_name(app) == "ClientScreen", message(app)
        await pilot.press("escape")
        await settle(pilot)
        assert screen_name(app) == "EnvironmentScreen"
        assert envs.highlighted_option.id == "custom"
        screen = drawn(app)
        assert f"Login URL      {fake.url}" in screen and f"API URL        {fake.url}" in screen
        assert f"Hosts used: login {fake.url}, API {fake.url}" in screen
        assert flat(environments.get("custom").note) in flat(screen)
        envs.focus()
        await pilot.press("home")  # production: the fields hide, the note and the hosts follow
        await pilot.pause()
        screen = drawn(app)
        assert "Login URL" not in screen and "Hosts used: login https://login.procore.com" in screen
        assert flat(environments.get("production").note) in flat(screen)
        await pilot.press("end")  # and custom again: what was typed is still there
        await pilot.pause()
        assert f"Login URL      {fake.url}" in drawn(app)


# -- the demo's single choice ---------------------------------------------------------------------------

@pytest.mark.parametrize("choose", ["enter", "click"])
async def test_the_demos_single_environment_stays_put_and_goes_on(choose: str) -> None:
    """In the demo the fake server is the only environment: no key moves off it, and Enter or a
    click on it goes on to the Client step with the demo's server set."""
    from procore_setup.stores.file import FileStore
    from procore_setup.testing.demo import DemoSession
    from procore_setup.tui.app import ProcoreSetupApp
    from procore_setup.tui.widgets.choices import ChoiceLines

    with DemoSession() as session:
        app = ProcoreSetupApp(FileStore(session.config_path), demo=session)
        async with app.run_test(size=SIZE) as pilot:
            await answer_kind(pilot)
            await settle(pilot)
            envs = app.screen.query_one("#envs", ChoiceLines)
            await pilot.press("down", "end", "pagedown", "up", "home", "pageup")
            assert envs.highlighted_option is not None and envs.highlighted_option.id == "custom"
            assert len(envs.choices) == 1
            assert f"Hosts used: login {session.url}, API {session.url}" in drawn(app)
            if choose == "enter":
                await pilot.press("enter")
            else:
                await pilot.click("#envs", offset=(5, 1))
            await settle(pilot)
            assert screen_name(app) == "ClientScreen", message(app)
            assert app.flow is not None and app.flow.login_url == session.url
