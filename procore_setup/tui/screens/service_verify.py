"""A service account's step 3: check the token it was just given, and choose its company.

The token is checked with Procore's token info, then `/rest/v1.0/me` and the companies the
app is installed in are asked for, sending `Procore-Company-Id` once a company is known: in
Multiple Procore Zones a service account's token needs that header even there. So when the
companies cannot be listed, the company id is asked for here and the token checked again with it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from textual import on
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, OptionList, Static

from ...hints import token_command
from ...flow import VERIFY
from ...text import NAME_LIMIT, clean, duration
from ..widgets.inputs import FieldInput
from .companies import ChoiceList, CompanyStep

MAX_COMPANY_DIGITS = 19  # company ids may exceed 32 bits; 19 digits still fit the file's integers
WHERE_THE_ID_IS = ("The company id is in Procore's address bar after logging in: "
                   "https://app.procore.com/<COMPANY ID>/company/home/list")


class ServiceVerifyScreen(CompanyStep):
    STEP = VERIFY
    NUMBER = 3
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+r", "retry", "Check again", show=False),
    ]
    retry_hint = "Press Ctrl+R to check again, or Ctrl+S to finish without checking."
    tokens = "token"

    def __init__(self, error: str | None = None) -> None:
        super().__init__(error=error)
        self.checked = False  # Procore answered the last check (token info at least)

    def compose_body(self) -> Iterable[Widget]:
        yield Static("", id="who", markup=False)
        yield Static("", id="expiry", classes="gap", markup=False)
        yield Static("", id="company-question", classes="question", markup=False)
        yield ChoiceList(id="companies", classes="gap")
        with Horizontal(id="company-field", classes="field gap"):
            yield Static("Company id", classes="field-label")
            yield FieldInput(id="company_id", compact=True, max_length=MAX_COMPANY_DIGITS, restrict=r"[0-9]*",
                             placeholder="e.g. 8675309 (Enter checks the token with it)")
        yield Checkbox(f"Make {self.flow.profile_name!r} the default profile", id="make-default", compact=True)

    def compose_buttons(self) -> Iterable[Widget]:
        yield Button("Back", id="back", compact=True)
        yield Button("Check again", id="retry", compact=True)
        yield Button("Save", id="save", variant="primary", compact=True)

    def on_mount(self) -> None:
        for widget in ("#retry", "#make-default", "#company-question", "#companies", "#company-field"):
            self.query_one(widget).display = False
        self._offer_default()
        self.action_retry()

    # -- check -------------------------------------------------------------------------------------
    def action_retry(self) -> None:
        if self.busy:
            return
        self.query_one("#retry").display = False
        host = self.flow.api_url.split("://", 1)[-1]
        company = f" (company {self.flow.company_id})" if self.flow.company_id is not None else ""
        self.set_busy(f"Checking the token with {host}{company}...")
        self._verify()

    def check(self) -> None:
        self.flow.verify_service_account()

    def checked_ok(self) -> None:
        self.checked = True
        self._show()

    def check_failed(self) -> None:
        self.checked = False

    def _show(self) -> None:
        flow = self.flow
        user = flow.user
        # With no company known yet, /me and /companies refusing (400: Procore-Company-Id missing) is
        # the answer to expect from a service account's token, not an error: the company id is asked.
        expected = flow.company_id is None and not user and not flow.companies
        if expected:
            self.query_one("#who", Static).update(
                "Token checked with Procore's token info. Who it is and its companies are read with a company "
                "id (the Procore-Company-Id header a service account's token needs): give it below.")
        elif user:
            self.query_one("#who", Static).update(
                f"Token checked. It is the service account {clean(user.get('name') or '(no name)', NAME_LIMIT)} "
                f"<{clean(user.get('login') or '?', NAME_LIMIT)}>, user id {clean(user.get('id'), 30)}.")
        else:
            self.query_one("#who", Static).update(
                "Token checked with Procore's token info. Who it is could not be read"
                + (f": {flow.user_error}" if flow.user_error else "."))
        # The life Procore gave it when it was issued (token info's count goes down with the clock).
        expires_in = getattr(flow.tokens, "expires_in", None) or flow.token_info.get("expires_in_seconds")
        if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
            until = datetime.fromtimestamp(flow.clock() + expires_in, timezone.utc)
            self.query_one("#expiry", Static).update(
                f"Access token valid until {until:%Y-%m-%d %H:%M} UTC ({duration(expires_in)}); "
                f"`{token_command(self.wizard.store, flow.profile_name)}` then requests a new one with the id and secret (no cron job needed).")
        question = self.query_one("#company-question", Static)
        question.display = True
        companies = self.query_one("#companies", OptionList)
        field = self.query_one("#company-field")
        if flow.companies:
            question.update("Default company for your scripts (sent as the Procore-Company-Id header, which a "
                            "service account's token needs on every request):")
            self.list_companies()
            companies.display, field.display = True, False
            companies.focus()
            return
        why = flow.companies_error or "Procore listed none"
        known = f"Company {flow.company_id}: the" if flow.company_id is not None else "The"
        box = self.query_one("#company_id", Input)
        demo = self.wizard.demo_company() if flow.company_id is None else None
        hint = f"Demo: the fake's service account is installed in company {demo}." if demo else WHERE_THE_ID_IS
        if expected:
            question.update(f"Which company is the app installed in? {hint}")
        else:
            question.update(f"{known} companies the app is installed in could not be listed ({why}). {hint}")
        companies.display, field.display = False, True
        if not box.value and (flow.company_id is not None or demo):
            box.value = str(flow.company_id if flow.company_id is not None else demo)
        box.focus()

    # -- the company id, typed ----------------------------------------------------------------------
    @on(Input.Submitted, "#company_id")
    def _company_typed(self) -> None:
        typed = self._typed_company()
        if typed is None:
            self.show_error("Type the company id (digits only), or press Ctrl+S to save without a company.")
            return
        self.flow.company_id = typed  # sent as Procore-Company-Id from now on
        self.clear_message()
        self.action_retry()

    def _typed_company(self) -> int | None:
        value = self.query_one("#company_id", Input).value.strip()
        return int(value) if value.isdigit() and int(value) > 0 else None

    # -- choose and save ----------------------------------------------------------------------------
    def _chosen_company(self) -> int | None:
        if self.flow.companies:
            return self.listed_company()
        if self.query_one("#company-field").display:
            return self._typed_company()  # not checked: Procore would not list the companies
        return self.flow.company_id  # not checked at all: keep the one the profile had

    def action_save(self) -> None:
        if self.busy or (not self.checked and not self.query_one("#retry").display):
            return  # still asking Procore
        self.save_with(self._chosen_company())
