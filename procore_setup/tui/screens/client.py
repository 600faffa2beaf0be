"""Step 2: the app's client id, client secret (masked) and redirect URI.

For a service account there is no redirect URI: Continue requests the token with the id and
secret (the client-credentials grant), so a refused secret is said here, where it is fixed.
"""

from __future__ import annotations

from typing import Any, Iterable

from textual import on, work
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Static

from ... import environments
from ...environments import OOB_REDIRECT_URI
from ...errors import ProcoreSetupError
from ...flow import CLIENT, DEVELOPER_PORTAL_HELP, step_for_error
from ...profile import SERVICE_ACCOUNT
from ..screenkit import REAUTHORIZE, describe
from ..widgets.inputs import FieldInput
from .base import WizardScreen

FIELDS = ("client_id", "secret", "redirect")
SERVICE_ACCOUNT_HELP = (
    "A company admin installs the app (a Developer Managed Service Account); its id and secret are on "
    "the app's Manage App page, OAuth Credentials. Continue requests a token with them."
)


class ClientScreen(WizardScreen):
    STEP = CLIENT
    NUMBER = 2
    BINDINGS = [
        Binding("enter", "next", "Continue"),
        Binding("ctrl+r", "reveal", "Show/hide secret"),
    ]

    @property
    def service_account(self) -> bool:
        return self.flow.kind == SERVICE_ACCOUNT

    def compose_body(self) -> Iterable[Widget]:
        flow = self.flow
        env = environments.get(flow.environment)
        if not flow.client_id:
            self.focus_when_shown("#client_id")
        elif not flow.has_secret or (self.service_account and self.wizard.mode == REAUTHORIZE):
            self.focus_when_shown("#secret")  # re-authorizing a service account: most likely a rotated secret
        else:
            self.focus_when_shown("#next")
        where = flow.login_url if flow.environment == "custom" else env.label.lower()
        if self.service_account:
            yield Static(f"The service account's client credentials, for {where}.", classes="question gap",
                         markup=False)
            yield Static(SERVICE_ACCOUNT_HELP, classes="dim gap", markup=False)
        else:
            yield Static(f"The OAuth credentials of your app, for {where}.", classes="question gap", markup=False)
            yield Static(DEVELOPER_PORTAL_HELP, classes="dim gap", markup=False)
        with Horizontal(classes="field gap"):
            yield Static("Client ID", classes="field-label")
            yield FieldInput(flow.client_id, id="client_id", compact=True, max_length=512,
                        placeholder="Client ID from the Developer Portal")
        with Horizontal(classes="field"):
            yield Static("Client secret", classes="field-label")
            yield FieldInput(self._prefilled_secret(), id="secret", password=True, compact=True, max_length=512,
                        placeholder=self._secret_placeholder())
            yield Checkbox("show", id="reveal", compact=True)
        yield Static(self._secret_note(), id="secret-note", classes="dim gap", markup=False)
        if self.service_account:
            return  # no redirect URI: nothing is redirected without a browser
        with Horizontal(classes="field gap"):
            yield Static("Redirect URI", classes="field-label")
            yield FieldInput(flow.redirect_uri, id="redirect", compact=True, placeholder=OOB_REDIRECT_URI)
        yield Static(
            f"Keep {OOB_REDIRECT_URI} unless your app lists another redirect URI: with it, "
            "Procore shows the code on a page for you to copy.", classes="dim", markup=False,
        )

    def compose_buttons(self) -> Iterable[Widget]:
        yield Button("Back", id="back", compact=True)
        yield Button("Request a token" if self.service_account else "Continue", id="next", variant="primary",
                     compact=True)

    def _prefilled_secret(self) -> str:
        demo = self.wizard.demo_client(self.flow.kind)
        if demo is not None and self.flow.client_id == demo[0] and self.flow.existing is None:
            return demo[1]  # shown masked, like any other secret
        return ""

    def _secret_placeholder(self) -> str:
        if self.flow.has_secret and not self._prefilled_secret():
            return "(stored secret kept: type only to replace it)"
        return "Client Secret from the Developer Portal"

    def _secret_note(self) -> str:
        if self.flow.has_secret and not self._prefilled_secret() and self.service_account:
            return ("A secret is already stored for this profile: type the new one if it was rotated, or leave "
                    "the field empty to keep it.")
        if self.flow.has_secret and not self._prefilled_secret():
            return "A secret is already stored for this profile: leave the field empty to keep it."
        return "The secret is masked as you type or paste it; Ctrl+R shows it."

    def on_mount(self) -> None:
        pass  # focus: AUTO_FOCUS, set in compose_body (one focus change, one restyle)

    def returned(self, error: str | None) -> None:
        super().returned(error)
        self.query_one("#secret", Input).focus()  # a refused client: the secret is the usual suspect

    # -- keys and fields ------------------------------------------------------------------------
    def action_reveal(self) -> None:
        box = self.query_one("#reveal", Checkbox)
        box.value = not box.value

    @on(Checkbox.Changed, "#reveal")
    def _reveal_changed(self, event: Checkbox.Changed) -> None:
        self.query_one("#secret", Input).password = not event.value

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        # Enter moves on to the next field still to fill, and continues from the last one.
        fields = FIELDS[:2] if self.service_account else FIELDS
        i = fields.index(event.input.id or "redirect") if event.input.id in fields else len(fields)
        for field in fields[i + 1:]:
            box = self.query_one(f"#{field}", Input)
            if field != "redirect" and not box.value and not (field == "secret" and self.flow.has_secret):
                box.focus()
                return
        self.action_next()

    def action_next(self) -> None:
        if self.busy:
            return
        client_id = self.query_one("#client_id", Input).value
        secret = self.query_one("#secret", Input).value
        redirect = None if self.service_account else self.query_one("#redirect", Input).value
        try:
            self.flow.set_client(client_id, secret or None, redirect or OOB_REDIRECT_URI)
        except ProcoreSetupError as exc:
            self.show_error(str(exc))
            self._focus_for(getattr(exc, "field", None))
            return
        except Exception as exc:  # pragma: no cover - a bug; keep the wizard alive and say so
            self.show_error(describe(exc))
            return
        self.clear_message()
        if self.service_account:
            host = self.flow.login_url.split("://", 1)[-1]
            self.set_busy(f"Requesting a token from {host}...")
            self._request_token()
            return
        self.wizard.next_step(CLIENT)

    @work(thread=True, exclusive=True, exit_on_error=False, name="token")
    def _request_token(self) -> None:
        self.flow.request_token()  # saved the moment it arrives, like a person's grant

    def work_done(self, name: str, result: Any) -> None:
        self.wizard.next_step(CLIENT)

    def work_failed(self, name: str, error: BaseException) -> None:
        text = describe(error)
        if step_for_error(error) is None and isinstance(error, ProcoreSetupError):
            text += "\nPress Enter to try again."  # network trouble: nothing was used up, the same request may work
        self.show_error(text)
        self._focus_for(getattr(error, "field", None))

    def _focus_for(self, field: str | None) -> None:
        """The input of the answer the error names (FlowError.field); the secret when it names none."""
        widget = {"redirect_uri": "redirect", "client_id": "client_id"}.get(field or "", "secret")
        self.query_one(f"#{widget}", Input).focus()
