"""What the two Verify steps share (a person's login, a service account's token): the check in a
worker, the offer to make the profile the default, the company list, saving.

Each step says only what differs: which check it runs, what it shows once Procore answered,
and its words for a failed check.
"""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.widgets import Button, OptionList
from textual.widgets.option_list import Option

from textual.binding import Binding

from ...flow import VERIFY, read_profiles
from ..screenkit import BACKGROUND, StoreFacts, describe, store_facts
from .base import WizardScreen

NO_COMPANY = "none"


class ChoiceList(OptionList):
    """A list to pick one entry from: the highlighted entry is the choice, Enter confirms it.

    Its entries are plain text, never markup: they hold names from Procore (a company called
    `Smith [/] Sons` would crash the screen, `[@click=app.quit]` would become a live action).
    (Here rather than in widgets/lists.py: each Textual widget class costs about a millisecond
    to create, and only the Verify steps need this one.)
    """

    BINDINGS = [Binding("enter", "select", "Choose and save")]  # one Enter: the company lists save on it

    def __init__(self, *content: Any, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        super().__init__(*content, **kwargs)


def company_label(company: dict[str, Any]) -> Any:
    """One line of the company list, a plain `textual.content.Content`: the name is Procore's, never markup."""
    from textual.content import Content

    from ...text import NAME_LIMIT, clean

    name = clean(company.get("name") or "(no name)", NAME_LIMIT)
    inactive = "" if company.get("is_active", True) else "  (inactive)"
    return Content(f"{name}  · id {clean(company['id'], 30)}{inactive}")


class CompanyStep(WizardScreen):
    """A Verify step. Its body has `#companies` (a ChoiceList) and `#make-default` (a Checkbox);
    its button row `#retry`. Subclasses give `check` (run in a worker), `checked_ok` (Procore
    answered), `retry_hint` and `tokens` (the words for what was issued)."""

    DEFAULT_CSS = """
    #companies { height: auto; max-height: 8; }
    """
    STEP = VERIFY
    AUTO_FOCUS = ""  # nothing to focus until Procore has answered
    BUTTON_ACTIONS = {"back": "back", "retry": "retry", "save": "save"}
    retry_hint = ""  # after a failed check: how to try again, or finish without it
    tokens = "tokens"  # what Procore issued, in the step's words

    # -- what each step says -------------------------------------------------------------------------
    def check(self) -> None:
        """Ask Procore (in a worker thread): raise when the check fails."""
        raise NotImplementedError

    def checked_ok(self) -> None:
        """Procore answered the check: show what it said (on the UI thread)."""
        raise NotImplementedError

    def check_failed(self) -> None:
        """The check failed (the error is on the screen already)."""

    # -- the workers ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group=BACKGROUND, name="offer-default")
    def _offer_default(self) -> bool:
        """Offer to make this profile the default only when the file holds other profiles and
        another one is the default (read off the UI thread, beside the call to Procore)."""
        doc = read_profiles(self.flow.store)
        others = [name for name in doc.profiles if name != self.flow.profile_name]
        return bool(others) and doc.default_profile != self.flow.profile_name

    @work(thread=True, exclusive=True, exit_on_error=False, name="verify")
    def _verify(self) -> None:
        self.check()

    @work(thread=True, exclusive=True, exit_on_error=False, name="save")
    def _save(self) -> StoreFacts:
        self.flow.save()
        return store_facts(self.flow.store)  # for the Saved screen, read here rather than on the UI thread

    def work_done(self, name: str, result: Any) -> None:
        if name == "offer-default":
            self.query_one("#make-default").display = bool(result)
        elif name == "verify":
            self.checked_ok()
        else:
            assert self.flow.saved_profile is not None
            self.wizard.saved_profile(self.flow.saved_profile, result)

    def work_failed(self, name: str, error: BaseException) -> None:
        if name == "offer-default":
            return  # only an offer: without it the file's default stays as it is
        if self.sent_back(error):
            return
        if name == "verify":
            self.check_failed()
            self.query_one("#retry").display = True
            self.query_one("#retry", Button).focus()
            self.show_error(describe(error) + "\n" + self._saved_so_far() + self.retry_hint)
        else:
            self.show_error(describe(error) + "\nPress Ctrl+S to try again.")

    def _saved_so_far(self) -> str:
        flow = self.flow
        what = f"The new {self.tokens} {'is' if self.tokens == 'token' else 'are'}"
        if flow.grant_saved:
            return f"{what} already saved to {flow.store.address.describe()}, so profile {flow.profile_name!r} works. "
        return f"{what} NOT saved yet ({flow.grant_save_error}). "

    # -- the company list ----------------------------------------------------------------------------
    def list_companies(self) -> OptionList:
        """Fill the list with "No default company" and each company Procore listed, on the
        profile's company (else the first active one); it is shown and focused by the caller."""
        flow = self.flow
        companies = self.query_one("#companies", OptionList)
        companies.clear_options()
        companies.add_option(Option("No default company", id=NO_COMPANY))
        for c in flow.companies:
            companies.add_option(Option(company_label(c), id=str(c["id"])))
        companies.highlighted = _first_choice(flow.companies, flow.company_id)
        return companies

    def listed_company(self) -> int | None:
        """The company highlighted in the list (None: "No default company")."""
        option = self.query_one("#companies", OptionList).highlighted_option
        if option is None or option.id in (None, NO_COMPANY):
            return None
        return int(option.id)

    @on(OptionList.OptionSelected, "#companies")
    def _company_selected(self) -> None:
        self.action_save()  # one Enter on a company chooses it and saves

    def action_save(self) -> None:
        raise NotImplementedError

    def save_with(self, company: int | None) -> None:
        """Save the profile with `company` as its default (in a worker; the Saved step follows)."""
        from textual.widgets import Checkbox

        try:
            self.flow.choose_company(company)
        except Exception as exc:
            self.show_error(describe(exc))
            return
        self.flow.make_default = self.query_one("#make-default", Checkbox).value
        self.set_busy(f"Saving to {self.flow.store.address.describe()}...")
        self._save()


def _first_choice(companies: list[dict[str, Any]], current: int | None) -> int:
    """The row the company list starts on: the profile's company, else the first active one, else
    the first (row 0 is "No default company", chosen only on purpose)."""
    for i, c in enumerate(companies, 1):
        if current is not None and int(c["id"]) == current:
            return i
    for i, c in enumerate(companies, 1):
        if c.get("is_active", True):
            return i
    return 1 if companies else 0
