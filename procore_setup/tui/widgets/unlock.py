"""Asks for the passphrase of an encrypted credentials file that no other source could open."""

from __future__ import annotations

from typing import Any, Iterable

from textual import on, work
from textual.widget import Widget
from textual.widgets import Button, Input, Static

from ...stores.base import Store
from ...errors import ProcoreSetupError
from ..screenkit import describe
from .dialogs import Dialog

WRONG = "Wrong passphrase. Nothing was changed; try again."


class UnlockDialog(Dialog[bool]):
    """Returns True once the passphrase opened the file (its key is then remembered in this
    process), or None when cancelled."""

    AUTO_FOCUS = "#unlock-passphrase"
    BUTTON_ACTIONS = {"cancel": "cancel", "unlock": "unlock"}

    def __init__(self, store: Store) -> None:
        super().__init__("This credentials file is encrypted")
        self.store = store

    def compose_body(self) -> Iterable[Widget]:
        yield Static(f"Type the passphrase of {self.store.address.describe()} to change its profiles.", markup=False)
        yield Input(placeholder="passphrase", password=True, id="unlock-passphrase")

    def compose_buttons(self) -> Iterable[Widget]:
        yield Button("Cancel", id="cancel", compact=True)
        yield Button("Unlock", id="unlock", variant="primary", compact=True)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_unlock()

    def action_unlock(self) -> None:
        if self.busy:
            return  # a second press while the key is being derived
        passphrase = self.query_one("#unlock-passphrase", Input).value
        if not passphrase:
            self.refuse("Type the passphrase first.", "#unlock-passphrase")
            return
        self.set_busy("Checking (deriving the key takes a moment)...")
        self._check(passphrase)

    @work(thread=True, exclusive=True, exit_on_error=False, name="unlock")
    def _check(self, passphrase: str) -> bool:
        from ... import passphrase as passphrases

        return passphrases.unlock(self.store.load(), passphrase)

    def work_done(self, name: str, result: Any) -> None:
        # Here, on the UI thread, while the dialog is still the screen on top (a worker's end
        # never reaches a dialog that is gone): the one place it is dismissed with success.
        if result:
            self.dismiss(True)
        else:
            self._wrong(WRONG)

    def work_failed(self, name: str, error: BaseException) -> None:
        self._wrong(error.message if isinstance(error, ProcoreSetupError) else describe(error))

    def _wrong(self, message: str) -> None:
        self.refuse(message, "#unlock-passphrase")
        self.query_one("#unlock-passphrase", Input).value = ""
