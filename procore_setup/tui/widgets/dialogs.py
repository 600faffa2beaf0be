"""A yes/no question over the current screen (quit with unsaved progress, remove a profile)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmDialog(ModalScreen[bool]):
    """Returns True for `yes`. The safe answer (`no`) has the focus, and Esc means no."""

    AUTO_FOCUS = "#no"
    DEFAULT_CSS = """
    ConfirmDialog { align: center middle; background: $background 60%; }
    #dialog { width: 64; height: auto; padding: 1 2; border: thick $error; background: $surface; }
    #dialog-title { text-style: bold; margin-bottom: 1; }
    #dialog-text { margin-bottom: 1; }
    #dialog-buttons { height: 1; align-horizontal: right; }
    #dialog-buttons Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("escape", "answer(False)", "Cancel"),
        Binding("y", "answer(True)", "Yes", show=False),
        Binding("n", "answer(False)", "No", show=False),
    ]

    def __init__(self, title: str, text: str, *, yes: str = "Yes", no: str = "Cancel") -> None:
        super().__init__()
        self._title = title
        self._text = text
        self._yes = yes
        self._no = no

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self._title, id="dialog-title", markup=False)
            yield Static(self._text, id="dialog-text", markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button(self._no, id="no", compact=True)
                yield Button(self._yes, id="yes", variant="error", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
