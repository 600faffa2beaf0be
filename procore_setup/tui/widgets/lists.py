"""OptionLists whose Enter key shows in the footer (Textual's own hides it), showing plain text."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.widgets import OptionList


class ChoiceList(OptionList):
    """A list to pick one entry from: the highlighted entry is the choice, Enter confirms it.

    Its entries are plain text, never markup: they hold names from Procore (a company called
    `Smith [/] Sons` would crash the screen, `[@click=app.quit]` would become a live action).
    Subclasses only change the footer's word for Enter. (Each Textual widget class costs
    about a millisecond to create, so the first screen defines only the one it needs.)
    """

    BINDINGS = [Binding("enter", "select", "Choose and save")]  # one Enter: the company lists save on it

    def __init__(self, *content: Any, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        super().__init__(*content, **kwargs)


class ContinueList(OptionList):
    """A list whose choice is the answer to the step (an environment, how scripts sign in), so
    Enter continues. Its entries are the program's own text."""

    BINDINGS = [Binding("enter", "select", "Continue")]
