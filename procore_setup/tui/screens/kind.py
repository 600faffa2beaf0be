"""The first question: how the scripts will sign in, as a person or as a service account."""

from __future__ import annotations

from typing import Iterable

from textual import on
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Static

from ...profile import SERVICE_ACCOUNT, USER
from ..screenkit import KIND
from ..widgets.choices import Choice, ChoiceLines
from .base import WizardScreen

KINDS = (USER, SERVICE_ACCOUNT)
LABELS = {
    USER: "A person's login      authorize once in a browser, as yourself",
    SERVICE_ACCOUNT: "A service account     client id and secret only, no browser",
}
# The difference in two lines (the README's "Which one do I need" says more).
DIFFERENCE = (
    "A person's login sees what that person sees in Procore; cron keeps its single-use refresh token alive.\n"
    "A service account (DMSA) is an app a company admin installs: its token sees what the app's permissions "
    "allow, and a new one is requested with the id and secret when it expires."
)


class KindScreen(WizardScreen):
    """No button row, like step 1: Enter continues, and the footer's keys take clicks too
    (this is the first screen of a first setup, where every millisecond of start-up shows)."""

    STEP = KIND
    NUMBER = 0  # before the numbered steps: how many there are depends on the answer
    AUTO_FOCUS = "#kinds"
    BINDINGS = [Binding("enter", "next", "Continue")]

    def compose_body(self) -> Iterable[Widget]:
        yield Static("How will your scripts sign in to Procore?", classes="question", markup=False)
        yield ChoiceLines(*(Choice(kind, LABELS[kind]) for kind in KINDS), id="kinds", classes="gap",
                          highlighted=KINDS.index(self.wizard.kind))
        yield Static(DIFFERENCE, id="difference", classes="dim", markup=False)

    def _chosen(self) -> str:
        option = self.query_one("#kinds", ChoiceLines).highlighted_option
        return option.id if option is not None and option.id in KINDS else USER

    @on(ChoiceLines.Selected, "#kinds")
    def _selected_by_enter(self) -> None:
        self.action_next()

    def action_next(self) -> None:
        self.wizard.choose_kind(self._chosen())
