"""The Profiles screen's list, an OptionList: it scrolls and holds any number of profiles.

No first frame waits for this module (each Textual widget class costs about a millisecond to
create): the Profiles screen mounts its list after its first frame; the first question and the
environments are ChoiceLines. The company lists' ChoiceList is in screens/companies.py.
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.binding import Binding
from textual.widgets import OptionList


class ProfileList(OptionList):
    """The profiles of the file (the Profiles screen mounts it once its first frame is drawn).
    Rows are plain text: names in the file are Procore's or anyone's who edited it, never markup
    (`[/nope]` would crash the screen at every launch)."""

    BINDINGS = [Binding("enter", "select", "Reconfigure", show=False)]  # `r` in the footer says it already

    def __init__(self, *content: Any, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        super().__init__(*content, **kwargs)

    def on_resize(self, event: events.Resize) -> None:
        # Its height is auto: the first rows arrive before it is laid out with them, so a scroll to
        # the highlighted row then stops at the top (`--profile` naming one further down). Each new
        # size, once known, is the moment to bring it into view.
        self.scroll_to_highlight()
