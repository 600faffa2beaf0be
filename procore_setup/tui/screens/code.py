"""Step 4: paste the code (or the address that holds it) and trade it for tokens."""

from __future__ import annotations

from typing import Iterable

from textual import on, work
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Static

from ...flow import CODE, step_for_error
from ..app import describe
from ..widgets.countdown import Countdown
from ..widgets.inputs import PasteInput
from .base import WizardScreen

RETRY = "Press Enter to try again."


class CodeScreen(WizardScreen):
    STEP = CODE
    NUMBER = 4
    AUTO_FOCUS = "#code"
    BINDINGS = [Binding("enter", "next", "Exchange the code")]

    class Exchanged(Message):
        """The exchange worker finished; `error` is None when tokens arrived."""

        def __init__(self, error: BaseException | None) -> None:
            super().__init__()
            self.error = error

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

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _exchange(self, pasted: str) -> None:
        try:
            self.flow.exchange(pasted)
        except Exception as exc:  # every failure is reported to the screen, never raised in the worker
            self.post_message(self.Exchanged(exc))
        else:
            self.post_message(self.Exchanged(None))

    @on(Exchanged)
    def _exchanged(self, message: Exchanged) -> None:
        self.set_busy(None)
        exc = message.error
        if exc is None:
            self.wizard.next_step(CODE)
            return
        step = step_for_error(exc)
        if step is not None and step != CODE:
            self.wizard.back_to(step, describe(exc))
            return
        text = describe(exc)
        if step is None and not _is_bug(exc):
            text += "\n" + RETRY
        self.show_error(text)
        self.query_one("#code", PasteInput).focus()


def _is_bug(exc: BaseException) -> bool:
    from ...errors import ProcoreSetupError

    return not isinstance(exc, ProcoreSetupError)
