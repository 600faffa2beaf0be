"""The Saved screen's offer to encrypt the secrets at rest: a passphrase, twice, and an optional command."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from ...credentials import FileStore
from ...errors import ProcoreSetupError

MIN_PASSPHRASE = 8


class EncryptDialog(ModalScreen[bool]):
    """Encrypts the file's secrets (crypto.encrypt_file) and returns True, or False when cancelled."""

    AUTO_FOCUS = "#passphrase"
    DEFAULT_CSS = """
    EncryptDialog { align: center middle; background: $background 60%; }
    #enc-dialog { width: 72; height: auto; padding: 0 2; border: thick $primary; background: $surface; }
    #enc-title { text-style: bold; }
    #enc-dialog Input { margin: 0; }
    #enc-error { color: $error; height: auto; }
    #enc-buttons { height: 1; align-horizontal: right; margin-top: 1; }
    #enc-buttons Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, store: FileStore) -> None:
        super().__init__()
        self.store = store

    def compose(self) -> ComposeResult:
        with Vertical(id="enc-dialog"):
            yield Static("Encrypt the secrets in this file", id="enc-title", markup=False)
            yield Static(
                "The client secret and tokens are stored AES-GCM encrypted under a key derived from this "
                "passphrase (scrypt). Everything else stays readable. Cron and scripts then need the "
                "passphrase: PROCORE_SETUP_PASSPHRASE, the command below, or the OS keyring.",
                markup=False,
            )
            yield Input(placeholder="passphrase (8 characters or more)", password=True, id="passphrase")
            yield Input(placeholder="the same passphrase again", password=True, id="again")
            yield Input(placeholder="optional: command that prints it, e.g. pass show procore", id="command")
            yield Static("", id="enc-error", markup=False)
            with Horizontal(id="enc-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Encrypt", id="encrypt", variant="primary", compact=True)

    def _error(self, text: str) -> None:
        self.query_one("#enc-error", Static).update(text)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "command":
            self.action_encrypt()
        else:
            self.focus_next()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "encrypt":
            self.action_encrypt()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_encrypt(self) -> None:
        passphrase = self.query_one("#passphrase", Input).value
        again = self.query_one("#again", Input).value
        command = self.query_one("#command", Input).value.strip() or None
        if len(passphrase) < MIN_PASSPHRASE:
            self._error(f"Use a passphrase of {MIN_PASSPHRASE} characters or more.")
            self.query_one("#passphrase", Input).focus()
            return
        if passphrase != again:
            self._error("The two passphrases differ. Type the same one twice.")
            self.query_one("#again", Input).focus()
            return
        self._error("Encrypting (deriving the key takes a moment)...")
        for widget in self.query("Input, Button"):
            widget.disabled = True
        self._encrypt(passphrase, command)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _encrypt(self, passphrase: str, command: str | None) -> None:
        from ... import crypto

        try:
            crypto.encrypt_file(self.store, passphrase, passphrase_command=command)
        except ProcoreSetupError as exc:
            self.app.call_from_thread(self._failed, exc.message)
            return
        self.app.call_from_thread(self.dismiss, True)

    def _failed(self, message: str) -> None:
        for widget in self.query("Input, Button"):
            widget.disabled = False
        self._error(message)
        self.query_one("#passphrase", Input).focus()
