"""The OptionList whose Enter key shows in the footer (Textual's own hides it) and continues.

(Only this one here: the first screen imports this module, and each Textual widget class costs
about a millisecond to create. The company lists' ChoiceList is in screens/companies.py.)
"""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import OptionList


class ContinueList(OptionList):
    """A list whose choice is the answer to the step (an environment, how scripts sign in), so
    Enter continues. Its entries are the program's own text."""

    BINDINGS = [Binding("enter", "select", "Continue")]
