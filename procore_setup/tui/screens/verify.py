"""Step 5: who is logged in, until when the token is valid, and which company is the default."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

from textual import on, work
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Button, Checkbox, OptionList, Static
from textual.widgets.option_list import Option

from ...flow import VERIFY, read_profiles
from ...text import duration
from ..screenkit import BACKGROUND, StoreFacts, describe, store_facts
from ..widgets.lists import ChoiceList
from .base import WizardScreen

NO_COMPANY = "none"


def company_label(company: dict[str, Any]) -> Any:
    """One line of the company list, a plain `textual.content.Content`: the name is Procore's, never markup."""
    from textual.content import Content

    from ...text import NAME_LIMIT, clean

    name = clean(company.get("name") or "(no name)", NAME_LIMIT)
    inactive = "" if company.get("is_active", True) else "  (inactive)"
    return Content(f"{name}  · id {clean(company['id'], 30)}{inactive}")


class VerifyScreen(WizardScreen):
    DEFAULT_CSS = """
    #companies { height: auto; max-height: 8; }
    """
    STEP = VERIFY
    NUMBER = 5
    AUTO_FOCUS = ""  # nothing to focus until Procore has answered
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("r", "retry", "Retry", show=False),
    ]
    BUTTON_ACTIONS = {"back": "back", "retry": "retry", "save": "save"}

    def compose_body(self) -> Iterable[Widget]:
        yield Static("", id="who", markup=False)
        yield Static("", id="expiry", classes="gap", markup=False)
        yield Static("Default company for your scripts (sent as the Procore-Company-Id header):",
                     id="company-question", classes="question", markup=False)
        yield ChoiceList(id="companies", classes="gap")
        yield Checkbox(f"Make {self.flow.profile_name!r} the default profile", id="make-default", compact=True)

    def compose_buttons(self) -> Iterable[Widget]:
        yield Button("Back", id="back", compact=True)
        yield Button("Retry", id="retry", compact=True)
        yield Button("Save", id="save", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#retry").display = False
        self.query_one("#make-default").display = False  # until the file says whether to offer it
        for widget in ("#company-question", "#companies"):
            self.query_one(widget).display = False
        self._offer_default()
        if self.flow.user:
            self._show()
        else:
            self.action_retry()

    @work(thread=True, exclusive=True, exit_on_error=False, group=BACKGROUND, name="offer-default")
    def _offer_default(self) -> bool:
        """Offer to make this profile the default only when the file holds other profiles and
        another one is the default (read off the UI thread, beside the call to Procore)."""
        doc = read_profiles(self.flow.store)
        others = [name for name in doc.profiles if name != self.flow.profile_name]
        return bool(others) and doc.default_profile != self.flow.profile_name

    # -- verify ------------------------------------------------------------------------------------
    def action_retry(self) -> None:
        if self.busy:
            return
        self.query_one("#retry").display = False
        host = self.flow.api_url.split("://", 1)[-1]
        self.set_busy(f"Asking {host} who is logged in...")
        self._verify()

    @work(thread=True, exclusive=True, exit_on_error=False, name="verify")
    def _verify(self) -> None:
        self.flow.verify()

    @work(thread=True, exclusive=True, exit_on_error=False, name="save")
    def _save(self) -> StoreFacts:
        self.flow.save()
        return store_facts(self.flow.store)  # for the Saved screen, read here rather than on the UI thread

    def work_done(self, name: str, result: Any) -> None:
        if name == "offer-default":
            self.query_one("#make-default").display = bool(result)
        elif name == "verify":
            self._show()
        else:
            assert self.flow.saved_profile is not None
            self.wizard.saved_profile(self.flow.saved_profile, result)

    def work_failed(self, name: str, error: BaseException) -> None:
        if name == "offer-default":
            return  # only an offer: without it the file's default stays as it is
        if self.sent_back(error):
            return
        if name == "verify":
            self.query_one("#retry").display = True
            self.query_one("#retry", Button).focus()
            self.show_error(describe(error) + "\n" + self._saved_so_far()
                            + "Press r to try again, or Ctrl+S to finish without verifying.")
        else:
            self.show_error(describe(error) + "\nPress Ctrl+S to try again.")

    def _saved_so_far(self) -> str:
        flow = self.flow
        if flow.grant_saved:
            return (f"The new tokens are already saved to {flow.store.address.describe()}, "
                    f"so profile {flow.profile_name!r} works. ")
        return f"The new tokens are NOT saved yet ({flow.grant_save_error}). "

    def _show(self) -> None:
        flow = self.flow
        user = flow.user
        self.query_one("#who", Static).update(
            f"Logged in as {user.get('name') or '(no name)'} <{user.get('login') or '?'}>, user id {user.get('id')}."
        )
        expires_in = getattr(flow.tokens, "expires_in", None)
        if expires_in:
            until = datetime.fromtimestamp(flow.clock() + expires_in, timezone.utc)
            self.query_one("#expiry", Static).update(
                f"Access token valid until {until:%Y-%m-%d %H:%M} UTC ({duration(expires_in)}); "
                "`procore-setup token` and cron renew it with the stored refresh token."
            )
        companies = self.query_one("#companies", OptionList)
        companies.clear_options()
        companies.add_option(Option("No default company", id=NO_COMPANY))
        for c in flow.companies:
            companies.add_option(Option(company_label(c), id=str(c["id"])))
        for widget in ("#company-question", "#companies"):
            self.query_one(widget).display = True
        companies.highlighted = _first_choice(flow.companies, flow.company_id)
        if not flow.companies:
            why = f" ({flow.companies_error})" if flow.companies_error else ""
            self.query_one("#company-question", Static).update(
                f"This user reaches no companies (or Procore would not list them{why}): no default company is saved."
            )
        companies.focus()
        if not flow.grant_saved:
            self.show_error(self._saved_so_far() + "Press Ctrl+S to save them with the rest.")

    # -- choose and save ------------------------------------------------------------------------------
    @on(OptionList.OptionSelected, "#companies")
    def _company_selected(self) -> None:
        self.action_save()  # one Enter on a company chooses it and saves

    def _chosen_company(self) -> int | None:
        option = self.query_one("#companies", OptionList).highlighted_option
        if option is None or option.id in (None, NO_COMPANY):
            return None
        return int(option.id)

    def action_save(self) -> None:
        verified = bool(self.flow.user)
        if self.busy or (not verified and not self.query_one("#retry").display):
            return  # still asking Procore
        try:
            # Without a verified login there is no list to choose from: keep the stored company.
            self.flow.choose_company(self._chosen_company() if verified else self.flow.company_id)
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
