"""Step 5: who is logged in, until when the token is valid, and which company is the default."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Static

from ...hints import token_command
from ...flow import VERIFY
from ...text import duration
from .companies import ChoiceList, CompanyStep


class VerifyScreen(CompanyStep):
    STEP = VERIFY
    NUMBER = 5
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("r", "retry", "Retry", show=False),
    ]
    retry_hint = "Press r to try again, or Ctrl+S to finish without verifying."

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

    # -- verify ------------------------------------------------------------------------------------
    def action_retry(self) -> None:
        if self.busy:
            return
        self.query_one("#retry").display = False
        host = self.flow.api_url.split("://", 1)[-1]
        self.set_busy(f"Asking {host} who is logged in...")
        self._verify()

    def check(self) -> None:
        self.flow.verify()

    def checked_ok(self) -> None:
        self._show()

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
                f"`{token_command(self.wizard.store, flow.profile_name)}` and cron renew it with the stored refresh token."
            )
        for widget in ("#company-question", "#companies"):
            self.query_one(widget).display = True
        companies = self.list_companies()
        if not flow.companies:
            why = f" ({flow.companies_error})" if flow.companies_error else ""
            self.query_one("#company-question", Static).update(
                f"This user reaches no companies (or Procore would not list them{why}): no default company is saved."
            )
        companies.focus()
        if not flow.grant_saved:
            self.show_error(self._saved_so_far() + "Press Ctrl+S to save them with the rest.")

    # -- choose and save ------------------------------------------------------------------------------
    def action_save(self) -> None:
        verified = bool(self.flow.user)
        if self.busy or (not verified and not self.query_one("#retry").display):
            return  # still asking Procore
        # Without a verified login there is no list to choose from: keep the stored company.
        self.save_with(self.listed_company() if verified else self.flow.company_id)
