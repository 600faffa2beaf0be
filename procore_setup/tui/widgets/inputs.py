"""Inputs with the behaviour the wizard needs on top of Textual's."""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.widgets import Input


class FieldInput(Input):
    """A form field whose Enter (on to the next field, or on with the step) shows in the footer."""

    BINDINGS = [Binding("enter", "submit", "Next")]


class PasteInput(Input):
    """An Input that keeps every line of a paste.

    Terminals wrap a long code or address when it is selected with the mouse, and
    Textual's Input would keep only the first line; joined, `flow.parse_code`
    can drop the breaks and spaces.
    """

    BINDINGS = [Binding("enter", "submit", "Exchange the code")]

    def _on_paste(self, event: events.Paste) -> None:
        if event.text:
            text = "".join(event.text.splitlines())
            selection = self.selection
            if selection.is_empty:
                self.insert_text_at_cursor(text)
            else:
                self.replace(text, *selection)
        event.stop()
        event.prevent_default()  # Textual would also run Input._on_paste, which keeps only the first line
