"""Step 6: where the profile was saved, the cron line that keeps it fresh, and how to use the token.

A service account's last step (4 of 4) has no cron line: there is no refresh token to keep
alive, `procore-setup token` requests a new token when the stored one is about to expire.
"""

from __future__ import annotations

from typing import Iterable

from textual import events
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Button, Static

from ...hints import token_command
from ...flow import SAVED, cron_line, usage_examples
from ..screenkit import StoreFacts
from .base import WizardScreen


class SavedScreen(WizardScreen):
    DEFAULT_CSS = """
    #saved-head { text-style: bold; }
    """
    STEP = SAVED
    NUMBER = 6
    AUTO_FOCUS = "#done"
    BINDINGS = [
        Binding("escape", "profiles", "Profiles"),
        Binding("c", "copy('cron')", "Copy cron line"),
        Binding("u", "copy('curl')", "Copy curl"),
        Binding("y", "copy('python')", "Copy Python"),
        Binding("e", "encrypt", "Encrypt"),
        Binding("q", "done", "Done"),
    ]
    BUTTON_ACTIONS = {"copy-cron": "copy('cron')", "copy-curl": "copy('curl')", "copy-python": "copy('python')",
                      "encrypt": "encrypt", "profiles": "profiles", "done": "done"}

    def __init__(self, facts: StoreFacts, error: str | None = None) -> None:
        """`facts` about the file come from the worker that saved it: nothing is read here."""
        super().__init__(error=error)
        prof = self.wizard.saved
        assert prof is not None, "the Saved screen without a saved profile"
        self.profile = prof
        self.permissions = facts.permissions or "?"
        self.access = facts.access or f"mode {self.permissions}"
        self.encrypted = facts.encrypted
        store = self.wizard.store
        self.service_account = prof.is_service_account
        self.cron = "" if self.service_account else cron_line(store, prof.name)
        self.curl, self.python = usage_examples(store, prof.name, prof.company_id, prof.api_url)

    def compose_body(self) -> Iterable[Widget]:
        prof = self.profile
        mode = self.permissions
        if self.wizard.demo is not None:
            note = " (a demo file: deleted when you quit)"
        else:
            note = ": only you can read it" if mode == "0600" else ""
        if self.encrypted:
            note += "; secrets encrypted"
        yield Static(f"✓ Saved profile {prof.name!r} to {self.wizard.store.address.describe()}, {self.access}{note}.",
                     id="saved-head", classes="ok gap", markup=False)
        if self.service_account:
            yield Static("No cron job needed: a service account has no refresh token to keep alive. "
                         f"`{token_command(self.wizard.store, prof.name)}` requests a new token with the client id and secret when the "
                         "stored one expires within 5 minutes.", id="no-cron", classes="gap", markup=False)
        else:
            yield Static("Keep the tokens fresh from cron (crontab -e):", classes="question", markup=False)
            yield Static(self.cron, id="cron", classes="code gap", markup=False)
        yield Static("Use the token from a shell, or from Python (the Copy keys, or select with the mouse: "
                     "a wrapped line copies whole):", classes="question", markup=False)
        yield Static(self.curl, id="curl", classes="code gap", markup=False)
        yield Static(self.python, id="python", classes="code", markup=False)
        password = self.wizard.store.address.password_note()  # a store URL's password, left out above
        if password:
            yield Static(password, id="password-note", classes="dim", markup=False)

    def compose_buttons(self) -> Iterable[Widget]:
        if not self.service_account:
            yield Button("Copy cron line", id="copy-cron", compact=True)
        yield Button("Copy curl", id="copy-curl", compact=True)
        yield Button("Copy Python", id="copy-python", compact=True)
        yield Button("Encrypt", id="encrypt", compact=True, disabled=self.encrypted)
        yield Button("Profiles", id="profiles", compact=True)
        yield Button("Done", id="done", variant="primary", compact=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "copy" and parameters == ("cron",):
            return not self.service_account  # no cron line to copy: hidden from the footer
        return True

    def action_copy(self, what: str) -> None:
        if what == "cron" and self.service_account:
            return
        text = {"cron": self.cron, "curl": self.curl, "python": self.python}[what]
        self.app.copy_to_clipboard(text)
        self.show_notice(f"Copied the {what} {'line' if what == 'cron' else 'example'} to the clipboard (OSC 52).")

    def action_encrypt(self) -> None:
        """Offer encryption at rest (issue: encrypt the secrets, optionally, without breaking cron)."""
        if self.encrypted:
            self.show_notice("The secrets in this file are encrypted already.")
            return
        from ..widgets.encrypt import EncryptDialog

        dialog = EncryptDialog(self.wizard.store)

        def done(encrypted: bool | None) -> None:
            if encrypted:
                self.encrypted = True
                self.query_one("#encrypt", Button).disabled = True
                head = self.query_one("#saved-head", Static)
                head.update(f"{head.content}".rstrip(".") + "; secrets encrypted.")
                self._after_encrypting(dialog.command)

        self.app.push_screen(dialog, callback=done)

    def _after_encrypting(self, command: str | None) -> None:
        """Say what the encryption means for cron, in the words of what was done, and show the
        cron line as it must now be."""
        if self.service_account:
            how = (f"scripts get the passphrase from the command you gave ({command!r}, stored in the file)"
                   if command else "scripts now need the passphrase: PROCORE_SETUP_PASSPHRASE in their "
                   "environment, or the OS keyring")
            self.show_notice(f"Secrets encrypted; {how}.")
            return
        if command:
            self.show_notice(f"Secrets encrypted. Cron runs the command you gave ({command!r}, stored in the file) "
                             "to get the passphrase: the cron line stays as it is.")
            return
        # No command stored: cron must be given the passphrase. A crontab variable line does it (or a
        # passphrase command in its place), above the same job line.
        self.cron = "PROCORE_SETUP_PASSPHRASE='<your passphrase>'\n" + self.cron
        self.query_one("#cron", Static).update(self.cron)
        self.show_notice("Secrets encrypted. Cron now needs the passphrase: put your passphrase in the first line "
                         "of the cron entry above (or PROCORE_SETUP_PASSPHRASE_COMMAND='pass show procore' there).")

    def on_text_selected(self, event: events.TextSelected) -> None:
        """A selection made with the mouse is copied whole (a long cron line wraps on screen, and the
        terminal's own selection would copy it broken in two)."""
        text = self.get_selected_text()
        if text and text.strip():
            self.app.copy_to_clipboard(text)
            self.show_notice("Copied the selected text to the clipboard (OSC 52), as one piece.")

    def action_profiles(self) -> None:
        self.wizard.show_profiles()

    def action_done(self) -> None:
        self.wizard.done()
