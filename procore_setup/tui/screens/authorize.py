"""Step 3: the authorize address, in full, to open in a browser or copy; the code clock starts here."""

from __future__ import annotations

from typing import Any, Iterable

from textual import work
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Button, Link, Static

from ...flow import AUTHORIZE, CODE
from ..screenkit import browser_problem, describe
from ..widgets.countdown import Countdown
from .base import WizardScreen

COPIED = ("Copied the address (OSC 52: this reaches your own computer's clipboard, also over SSH, in most "
          "terminals). If nothing was copied, select the address with the mouse (Shift+drag in most terminals).")


class UrlLink(Link):
    """The whole authorize address, wrapped over as many lines as it needs; Enter or a click opens it."""

    def action_open_link(self) -> None:
        self.screen.action_open()  # type: ignore[attr-defined]  # the screen knows whether a browser can open


class AuthorizeScreen(WizardScreen):
    DEFAULT_CSS = """
    #url { width: 1fr; }
    #browser-note { color: $warning; }
    """
    STEP = AUTHORIZE
    NUMBER = 3
    BINDINGS = [
        Binding("o", "open", "Open"),
        Binding("c", "copy", "Copy"),
        Binding("f", "fetch_demo_code", "Demo code"),
        Binding("n", "next", "Next"),
    ]
    BUTTON_ACTIONS = {"back": "back", "open": "open", "copy": "copy", "fetch": "fetch_demo_code", "next": "next"}

    def __init__(self, error: str | None = None) -> None:
        super().__init__(error=error)
        self.url = ""

    def compose_body(self) -> Iterable[Widget]:
        self.url = self.flow.start_authorization()
        yield Static(
            "Open this address in a browser, log in to Procore as the user your scripts will act as, "
            "and allow access. Procore then shows a code.", classes="question gap", markup=False,
        )
        yield UrlLink(self.url, id="url", classes="gap", tooltip="Enter or click: open in a browser")
        problem = browser_problem()
        self.focus_when_shown("#copy" if problem else "#open")
        if problem is not None:
            yield Static(
                f"No browser can be opened from here: {problem}. Copy the address (c) and open it "
                "on your own computer.", id="browser-note", classes="gap", markup=False,
            )
        if self.wizard.demo is not None:
            yield Static(
                "Demo: no browser needed. Press f to fetch the code from the fake login page, or fetch the "
                "page yourself: curl -sL '<the address above>' (it redirects to .../oauth/authorize/<CODE>).",
                id="demo-note", classes="dim gap", markup=False,
            )
        yield Countdown(self.flow.seconds_left, id="countdown")

    def compose_buttons(self) -> Iterable[Widget]:
        yield Button("Back", id="back", compact=True)
        yield Button("Open in browser", id="open", compact=True)
        yield Button("Copy", id="copy", compact=True)
        if self.wizard.demo is not None:
            yield Button("Demo code", id="fetch", compact=True)  # short: the row must fit 80 columns
        yield Button("Next: paste the code", id="next", variant="primary", compact=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "fetch_demo_code":
            return self.wizard.demo is not None  # hidden from the footer outside demo mode
        return True

    def returned(self, error: str | None) -> None:
        super().returned(error)
        self._restart_clock()  # back here for a new code: a new login starts a new 10 minutes
        self.query_one("#open", Button).focus()

    def _restart_clock(self) -> None:
        url = self.flow.start_authorization()
        if url != self.url:  # the client id or redirect URI changed on the way
            self.url = url
            link = self.query_one("#url", UrlLink)
            link.text = link.url = url
        self.query_one("#countdown", Countdown).tick()

    # -- actions ----------------------------------------------------------------------------------
    def action_open(self) -> None:
        problem = browser_problem()
        if problem is not None:
            self.show_notice(f"No browser can be opened from here ({problem}). Press c to copy the address, "
                             "then open it in a browser on your own computer.")
            self.query_one("#copy", Button).focus()
            return
        self._restart_clock()
        try:
            self.app.open_url(self.url)
        except Exception as exc:
            self.show_notice(f"Could not start a browser ({type(exc).__name__}). Press c to copy the address.")
            return
        self.show_notice("Opened in your browser. After you allow access, press n and paste the code.")
        self.query_one("#next", Button).focus()

    def action_copy(self) -> None:
        self._restart_clock()
        self.app.copy_to_clipboard(self.url)
        self.show_notice(COPIED)
        self.query_one("#next", Button).focus()

    def action_next(self) -> None:
        self.wizard.next_step(AUTHORIZE)

    def action_fetch_demo_code(self) -> None:
        if self.wizard.demo is None:
            return
        self._restart_clock()
        self.set_busy("Fetching the fake login page...")
        self._fetch(self.url)

    @work(thread=True, exclusive=True, exit_on_error=False, name="demo-code")
    def _fetch(self, url: str) -> str | None:
        demo = self.wizard.demo
        assert demo is not None
        return demo.fetch_code(url)

    def work_done(self, name: str, result: Any) -> None:
        if not result:
            self.show_error("The demo page showed no code.")
            return
        self.wizard.dirty = True
        self.app.push_screen(self.wizard.make_screen(CODE, code=result))

    def work_failed(self, name: str, error: BaseException) -> None:
        self.show_error(f"Could not fetch the demo page: {describe_fetch(error)}")


def describe_fetch(exc: BaseException) -> str:
    if isinstance(exc, (ValueError, OSError)):
        return str(exc) or type(exc).__name__
    return describe(exc)
