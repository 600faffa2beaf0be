"""The wizard's dialogs, on one base: a box over the current screen that returns a value.

`Dialog` carries what they share: the frame and its CSS, Esc to cancel, the error line,
the busy state that locks the inputs while a worker runs, and the end of that worker
(shared.WorkReporting: any exception ends as a message on the error line, the dialog
usable again). `ConfirmDialog` is the yes/no question (quit with unsaved progress,
remove a profile); the encrypt and unlock dialogs live in their own modules.
"""

from __future__ import annotations

from typing import ClassVar, Iterable, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Static

from ..screenkit import WorkReporting, describe

T = TypeVar("T")

# Textual ignores a press on a button that still shows its pressed state (for 0.2 s after the
# last press), so a quick second press after a refusal would be lost without a trace.
PRESSED_CLASS = "-active"


class Dialog(WorkReporting, ModalScreen[T]):
    """A titled box with a body, an error line and a row of buttons; returns a T, or None when cancelled.

    Subclasses fill `compose_body` and `compose_buttons` and map button ids to actions in
    BUTTON_ACTIONS. While busy (a worker at work) its inputs and buttons are disabled and
    Esc waits: leaving would hide the outcome of the work.
    """

    DEFAULT_CSS = """
    Dialog { align: center middle; background: $background 60%; }
    Dialog #dialog { width: 72; height: auto; padding: 0 2; border: thick $primary; background: $surface; }
    Dialog #dialog-title { text-style: bold; }
    Dialog #dialog-error { color: $error; height: auto; }
    Dialog #dialog-buttons { height: 1; align-horizontal: right; margin-top: 1; }
    Dialog #dialog-buttons Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    BUTTON_ACTIONS: ClassVar[dict[str, str]] = {"cancel": "cancel"}
    ERROR_LINE: ClassVar[bool] = True  # False for a dialog that runs no work and so has nothing to report

    def __init__(self, heading: str) -> None:
        super().__init__()
        self.heading = heading
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.heading, id="dialog-title", markup=False)
            yield from self.compose_body()
            if self.ERROR_LINE:
                yield Static("", id="dialog-error", markup=False)
            with Horizontal(id="dialog-buttons"):
                yield from self.compose_buttons()

    def compose_body(self) -> Iterable[Widget]:
        return ()

    def compose_buttons(self) -> Iterable[Widget]:
        return ()

    @on(Button.Pressed)
    async def _button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        action = self.BUTTON_ACTIONS.get(event.button.id or "")
        if action is not None:
            await self.run_action(action)

    def action_cancel(self) -> None:
        if not self.busy:
            self.dismiss(None)

    # -- the error line and the busy state ---------------------------------------------------------
    def show_error(self, text: str) -> None:
        for line in self.query("#dialog-error").results(Static):
            line.update(text)

    def set_busy(self, text: str | None) -> None:
        """Show `text` and lock the inputs while a worker runs (None: unlock, clear the line)."""
        self.busy = text is not None
        for widget in self.query("Input, Button"):
            widget.disabled = self.busy
        self.show_error(text or "")

    def refuse(self, message: str, focus: str | None = None) -> None:
        """Say why nothing was done, and let the person try again at once: the inputs unlocked,
        the focus on `focus` (a selector), and the next press of a button counted."""
        self.set_busy(None)
        for button in self.query(Button):
            button.remove_class(PRESSED_CLASS)
        self.show_error(message)
        if focus:
            self.query_one(focus).focus()

    def work_failed(self, name: str, error: BaseException) -> None:
        self.refuse(describe(error), self.AUTO_FOCUS)


class ConfirmDialog(Dialog[bool]):
    """Returns True for `yes`. The safe answer (`no`) has the focus, and Esc means no (None)."""

    AUTO_FOCUS = "#no"
    DEFAULT_CSS = """
    ConfirmDialog #dialog { width: 64; padding: 1 2; border: thick $error; }
    ConfirmDialog #dialog-title { margin-bottom: 1; }
    ConfirmDialog #dialog-text { margin-bottom: 1; }
    ConfirmDialog #dialog-buttons { margin-top: 0; }
    """
    ERROR_LINE = False
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", show=False),
        Binding("n", "answer(False)", "No", show=False),
    ]
    BUTTON_ACTIONS = {"yes": "answer(True)", "no": "answer(False)"}

    def __init__(self, title: str, text: str, *, yes: str = "Yes", no: str = "Cancel") -> None:
        super().__init__(title)
        self._text = text
        self._yes = yes
        self._no = no

    def compose_body(self) -> Iterable[Widget]:
        yield Static(self._text, id="dialog-text", markup=False)

    def compose_buttons(self) -> Iterable[Widget]:
        yield Button(self._no, id="no", compact=True)
        yield Button(self._yes, id="yes", variant="error", compact=True)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
