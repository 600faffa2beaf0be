"""The Saved screen's offer to encrypt the secrets at rest: a passphrase, twice, and an optional command."""

from __future__ import annotations

from typing import Any, Iterable

from textual import on, work
from textual.widget import Widget
from textual.widgets import Button, Input, Static

from ... import hints
from ...stores.base import Store
from ...errors import ProcoreSetupError
from .dialogs import Dialog

MIN_PASSPHRASE = 8


class EncryptDialog(Dialog[bool]):
    """Encrypts the file's secrets (encryption.encrypt_file) and returns True, or None when cancelled."""

    AUTO_FOCUS = "#passphrase"
    DEFAULT_CSS = """
    EncryptDialog #dialog Input { margin: 0; }
    """
    BUTTON_ACTIONS = {"cancel": "cancel", "encrypt": "encrypt"}

    def __init__(self, store: Store) -> None:
        super().__init__("Encrypt the secrets in this file")
        self.store = store
        self.command: str | None = None  # the passphrase command given (stored in the file), if any
        # Whether the file was encrypted after all when the worker failed with a bug (it is read
        # there, off the UI thread; None: it could not be read).
        self._encrypted_after_bug: bool | None = None

    def compose_body(self) -> Iterable[Widget]:
        yield Static(
            "The client secret and tokens are stored AES-GCM encrypted under a key derived from this "
            "passphrase (scrypt). Everything else stays readable. Cron and scripts then need the "
            "passphrase: PROCORE_SETUP_PASSPHRASE, the command below, or the OS keyring.",
            markup=False,
        )
        yield Input(placeholder="passphrase (8 characters or more)", password=True, id="passphrase")
        yield Input(placeholder="the same passphrase again", password=True, id="again")
        yield Input(placeholder="optional: command that prints it, e.g. pass show procore", id="command")

    def compose_buttons(self) -> Iterable[Widget]:
        yield Button("Cancel", id="cancel", compact=True)
        yield Button("Encrypt", id="encrypt", variant="primary", compact=True)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "command":
            self.action_encrypt()
        else:
            self.focus_next()

    def action_encrypt(self) -> None:
        if self.busy:
            return  # a second press (a double click, Enter) while the first one is at work
        passphrase = self.query_one("#passphrase", Input).value
        again = self.query_one("#again", Input).value
        command = self.query_one("#command", Input).value.strip() or None
        if len(passphrase) < MIN_PASSPHRASE:
            self.refuse(f"Use a passphrase of {MIN_PASSPHRASE} characters or more.", "#passphrase")
            return
        if passphrase != again:
            self.refuse("The two passphrases differ. Type the same one twice.", "#again")
            return
        self.command = command
        self.set_busy("Encrypting (deriving the key takes a moment)...")
        self._encrypt(passphrase, command)

    @work(thread=True, exclusive=True, exit_on_error=False, name="encrypt")
    def _encrypt(self, passphrase: str, command: str | None) -> None:
        from ... import encryption

        try:
            encryption.encrypt_file(self.store, passphrase, passphrase_command=command)
        except ProcoreSetupError:
            raise  # a refusal: nothing was written
        except Exception:
            self._encrypted_after_bug = _encrypted(self.store)  # was the file written before the bug?
            raise

    def work_done(self, name: str, result: Any) -> None:
        self.dismiss(True)

    def work_failed(self, name: str, error: BaseException) -> None:
        """Never leave the dialog frozen: say what happened and let the person try again."""
        if isinstance(error, ProcoreSetupError):
            self.refuse(str(error), "#passphrase")
            return
        encrypted = self._encrypted_after_bug
        if encrypted:
            self.dismiss(True)  # the file was written before the failure: the secrets are encrypted
            return
        # Only the class name: the exception's text could hold anything, a passphrase included.
        command = hints.program() + self.store.address.cli_flag(explicit=True)
        state = ("the secrets in the file are still stored plainly" if encrypted is False
                 else f"check the file with `{command} status`")
        self.refuse(f"Unexpected error while encrypting ({type(error).__name__}): {state}. "
                    f"Please report it; you can try again, or run `{command} encrypt`.", "#passphrase")


def _encrypted(store: Store) -> bool | None:
    """Whether the store's secrets are encrypted now; None when it cannot be read."""
    try:
        return store.load().encrypted
    except Exception:  # noqa: BLE001 - the file cannot be read now: the message says to check it
        return None
