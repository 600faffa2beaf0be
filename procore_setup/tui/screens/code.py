"""Step 4: paste the code (or the address that holds it) and trade it for tokens."""

from __future__ import annotations

from typing import Any, Iterable

from textual import on, work
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Button, Static

from ...errors import ProcoreSetupError
from ...flow import CODE, step_for_error
from ..screenkit import describe
from ..widgets.countdown import Countdown
from ..widgets.inputs import PasteInput
from .base import WizardScreen

RETRY = "Press Enter to try again."


class CodeScreen(WizardScreen):
    STEP = CODE
    NUMBER = 4
    AUTO_FOCUS = "#code"
    BINDINGS = [Binding("enter", "next", "Exchange the code")]

    def __init__(self, error: str | None = None, code: str = "") -> None:
        super().__init__(error=error)
        self._code = code

    def compose_body(self) -> Iterable[Widget]:
        yield Static(
            "Paste the code Procore showed after you allowed access. The whole address of that page "
            "works too (.../oauth/authorize/<code>, or an address with ?code=).", classes="question gap",
            markup=False,
        )
        yield PasteInput(self._code, id="code", placeholder="code, or the address of the page that shows it",
                         max_length=4096, classes="gap")
        yield Countdown(self.flow.seconds_left, id="countdown")

    def compose_buttons(self) -> Iterable[Widget]:
        yield Button("Back", id="back", compact=True)
        yield Button("Exchange the code", id="next", variant="primary", compact=True)

    @on(PasteInput.Submitted, "#code")
    def _submitted(self) -> None:
        self.action_next()

    def action_next(self) -> None:
        if self.busy:
            return
        pasted = self.query_one("#code", PasteInput).value
        if not pasted.strip():
            self.show_error("Paste the code first (or the address of the page that shows it).")
            return
        host = self.flow.login_url.split("://", 1)[-1]
        self.set_busy(f"Exchanging the code with {host}...")
        self._exchange(pasted)

    @work(thread=True, exclusive=True, exit_on_error=False, name="exchange")
    def _exchange(self, pasted: str) -> None:
        self.flow.exchange(pasted)  # its outcome, any exception included, arrives in work_done/work_failed

    def work_done(self, name: str, result: Any) -> None:
        self.wizard.next_step(CODE)

    def work_failed(self, name: str, error: BaseException) -> None:
        if self.sent_back(error):
            return
        text = describe(error)
        if step_for_error(error) is None and isinstance(error, ProcoreSetupError):
            text += "\n" + RETRY  # network trouble: the same code may still work (a bug would fail again)
        self.show_error(text)
        self.query_one("#code", PasteInput).focus()
