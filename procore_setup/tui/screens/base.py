"""What every wizard screen shares: the title line, the message line, busy state, the end of its
workers (shared.WorkReporting), Esc for back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Iterable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.geometry import Size
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Static

from ...flow import AUTHORIZE, CLIENT, CODE, ENVIRONMENT, SAVED, VERIFY, SetupFlow, step_for_error
from ..screenkit import KIND, PROFILES, WorkReporting, describe

if TYPE_CHECKING:
    from ..app import ProcoreSetupApp

STEP_TITLES = {
    KIND: "How your scripts sign in",
    ENVIRONMENT: "Environment",
    CLIENT: "Client credentials",
    AUTHORIZE: "Authorize",
    CODE: "Paste the code",
    VERIFY: "Verify, choose company",
    SAVED: "Saved",
    PROFILES: "Profiles",
}


class WizardScreen(WorkReporting, Screen[None]):
    """A screen of the wizard. Subclasses set STEP and fill `compose_body` and `compose_buttons`.

    Work that may block (the file, Procore, a passphrase command) runs in thread workers;
    `set_busy` locks the form meanwhile, and their end arrives in `work_done` / `work_failed`.

    No `on_mount` here: Textual calls the handler of every class in the MRO, so a base
    handler would run again after the subclass's.
    """

    STEP: ClassVar[str] = ""
    NUMBER: ClassVar[int] = 0  # "Step N of 6" (of 4, a service account's); 0 for screens outside the steps
    BINDINGS = [Binding("escape", "back", "Back")]
    # What each button of the row does: button id -> action (as a key binding would name it).
    BUTTON_ACTIONS: ClassVar[dict[str, str]] = {"back": "back", "next": "next"}

    def __init__(self, error: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._initial_error = error
        self._focus_after_busy: Widget | None = None
        self.busy = False

    @property
    def wizard(self) -> ProcoreSetupApp:
        return self.app  # type: ignore[return-value]

    @property
    def flow(self) -> SetupFlow:
        flow = self.wizard.flow
        assert flow is not None, "a wizard step without a flow"
        return flow

    # -- layout ------------------------------------------------------------------------------
    def title_text(self) -> str:
        steps = self.wizard.steps()  # a service account's are fewer: no authorize, no code
        step = f"Step {steps.index(self.STEP) + 1} of {len(steps)} · " if self.NUMBER and self.STEP in steps else ""
        return f" procore-setup · {step}{STEP_TITLES.get(self.STEP, self.STEP.capitalize())}"

    def title_right(self) -> str:
        parts = []
        flow = self.wizard.flow
        if flow is not None and self.NUMBER:
            parts.append(f"profile {flow.profile_name}")
        if self.wizard.demo is not None:
            parts.append("DEMO")
        return " · ".join(parts)

    def compose(self) -> ComposeResult:
        right = self.title_right()
        yield Static(self.title_text() + (f"  ·  {right}" if right else ""), id="titlebar", markup=False)
        with VerticalScroll(id="body"):
            yield from self.compose_body()
            # hidden by the CSS until it has a kind: error, notice or busy
            error = self._initial_error or ""
            yield Static(error, id="message", classes="error" if error else "", markup=False)
        buttons = list(self.compose_buttons())
        if buttons:
            yield Horizontal(*buttons, id="buttons")
        if self.wizard.first_frame_drawn:
            from textual.widgets import Footer

            yield Footer()
        else:
            # The first screen: its footer comes in the frame after the first. Textual fills a footer
            # with its keys only after a frame anyway, so the first frame used to show an empty footer
            # line; now it shows none, and is drawn sooner (the footer's module and CSS come later).
            self.wizard.after_first_frame(self._add_footer)

    async def _add_footer(self) -> None:
        from textual.widgets import Footer

        if not self.is_attached:
            return  # already gone (a test, or a person, fast enough to move on before the first frame)
        await self.mount(Footer())
        self.refresh_bindings()  # the footer lists the keys when told they are ready

    def _screen_resized(self, size: Size) -> None:
        # Textual lays the screen out again for every Resize it gets, even one of the size it has:
        # at start-up three arrive (the terminal's size twice, as the app re-posts its last one when
        # idle, and the screen's own once shown), two full layouts of nothing before the first
        # screen's Ready. A size it was not last laid out at (a real change) is laid out as before.
        if size != self._compositor.size:
            super()._screen_resized(size)

    def compose_body(self) -> Iterable[Widget]:
        return ()

    def focus_when_shown(self, selector: str) -> None:
        """What gets the focus when this screen is first shown (Textual's AUTO_FOCUS, for this
        screen only). Chosen in compose, it is one focus change and one restyle; focusing in
        on_mount would be two."""
        setattr(self, "AUTO_FOCUS", selector)  # a ClassVar in Textual's types; an instance value works alike

    def compose_buttons(self) -> Iterable[Widget]:
        return ()

    # -- the message line -----------------------------------------------------------------
    def _message(self, text: str, kind: str) -> None:
        box = self.query_one("#message", Static)
        box.set_classes(kind if text else "")
        box.update(text)
        if text:
            self.call_after_refresh(box.scroll_visible)

    def show_error(self, text: str) -> None:
        self._message(text, "error")

    def show_notice(self, text: str) -> None:
        self._message(text, "notice")

    def clear_message(self) -> None:
        self._message("", "")

    def returned(self, error: str | None) -> None:
        """Shown again by `back_to` after a later step failed for a reason fixed here."""
        self.set_busy(None)
        if error:
            self.show_error(error)
        else:
            self.clear_message()

    # -- busy state ---------------------------------------------------------------------------
    def set_busy(self, text: str | None) -> None:
        """Show `text` and lock the form while a worker talks to Procore (None: unlock)."""
        busy = text is not None
        if busy == self.busy:
            if busy:
                self._message(text or "", "busy")
            return
        self.busy = busy
        if busy:
            self._focus_after_busy = self.focused
            self._message(text or "", "busy")
        # Only what takes input: each change of `disabled` restyles that widget's subtree.
        for widget in self.query("#body Input, #body OptionList, #body ChoiceLines, #body Checkbox, #body Link, "
                                 "#buttons Button"):
            widget.disabled = busy
        if not busy:
            self.clear_message()
            target = self._focus_after_busy
            if target is not None and target.is_attached and target.focusable:
                target.focus()
            else:
                self.focus_next()

    def sent_back(self, error: BaseException) -> bool:
        """Go back to the step that fixes `error`, showing it there, if that is another step."""
        step = step_for_error(error)
        if step is not None and step != self.STEP:
            self.wizard.back_to(step, describe(error))
            return True
        return False

    # -- keys and buttons ---------------------------------------------------------------------
    @on(Button.Pressed)
    async def _button_pressed(self, event: Button.Pressed) -> None:
        action = self.BUTTON_ACTIONS.get(event.button.id or "")
        if action is not None:
            event.stop()
            await self.run_action(action)

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        elif self.wizard.dirty:  # the first screen, with progress to lose: the quit question says what
            self.app.call_next(self.app.action_quit)
        else:
            # The first screen: the footer says Back, and there is nothing to go back to. Leaving is
            # a question, never a silent quit (Esc again, or Stay, keeps the wizard open).
            from ..widgets.dialogs import ConfirmDialog

            def answer(leave: bool | None) -> None:
                if leave:
                    self.app.exit(0)

            self.app.push_screen(ConfirmDialog(
                "Nothing to go back to",
                "This is the first screen. Leave procore-setup? Nothing has been changed.",
                yes="Quit", no="Stay",
            ), answer)
