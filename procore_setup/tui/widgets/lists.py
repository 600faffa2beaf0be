"""OptionLists whose Enter key shows in the footer (Textual's own hides it)."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import OptionList


class ChoiceList(OptionList):
    """A list to pick one entry from: the highlighted entry is the choice, Enter confirms it."""

    BINDINGS = [Binding("enter", "select", "Choose")]


class ProfileList(ChoiceList):
    BINDINGS = [Binding("enter", "select", "Reconfigure", show=False)]  # `r` in the footer says it already


class ContinueList(ChoiceList):
    """A choice that is also the step's answer: Enter chooses and moves on."""

    BINDINGS = [Binding("enter", "select", "Continue")]
