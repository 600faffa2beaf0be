"""An OptionList whose Enter key shows in the footer (Textual's own hides it)."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import OptionList


class ChoiceList(OptionList):
    """A list to pick one entry from: the highlighted entry is the choice, Enter confirms it.

    Subclasses only change the footer's word for Enter. (Each Textual widget class costs
    about a millisecond to create, so the first screen defines only the one it needs.)
    """

    BINDINGS = [Binding("enter", "select", "Choose")]
