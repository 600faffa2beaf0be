"""The wizard's OptionLists: the one whose Enter key shows in the footer (Textual's own hides it)
and continues, and the Profiles screen's list.

No first frame waits for this module (each Textual widget class costs about a millisecond to
create): the first question is a ChoiceLines, and the Profiles screen mounts its list after its
first frame. The company lists' ChoiceList is in screens/companies.py.
"""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.widgets import OptionList


class ContinueList(OptionList):
    """A list whose choice is the answer to the step (an environment, how scripts sign in), so
    Enter continues. Its entries are the program's own text."""

    BINDINGS = [Binding("enter", "select", "Continue")]


class ProfileList(OptionList):
    """The profiles of the file (the Profiles screen mounts it once its first frame is drawn).
    Rows are plain text: names in the file are Procore's or anyone's who edited it, never markup
    (`[/nope]` would crash the screen at every launch)."""

    BINDINGS = [Binding("enter", "select", "Reconfigure", show=False)]  # `r` in the footer says it already

    def __init__(self, *content: Any, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        super().__init__(*content, **kwargs)
