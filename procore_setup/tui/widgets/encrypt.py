"""The Saved screen's offer to encrypt the secrets at rest: a passphrase, twice, and an optional command."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static
from textual.worker import Worker, WorkerState

from ...stores.base import Store
from ...errors import ProcoreSetupError

MIN_PASSPHRASE = 8
# Textual ignores a press on a button that still shows its pressed state (for 0.2 s after the
# last press), so a quick second press after a refusal would be lost without a trace.
PRESSED_CLASS = "-active"


class EncryptDialog(ModalScreen[bool]):
    """Encrypts the file's secrets (encryption.encrypt_file) and returns True, or False when cancelled."""

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

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.busy = False  # the key is being derived and the file written: one attempt at a time

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
        if self.busy:
            # The file is being written: leaving now would hide whether it was encrypted.
            return
        self.dismiss(False)

    def action_encrypt(self) -> None:
        if self.busy:
            return  # a second press (a double click, Enter) while the first one is at work
        passphrase = self.query_one("#passphrase", Input).value
        again = self.query_one("#again", Input).value
        command = self.query_one("#command", Input).value.strip() or None
        if len(passphrase) < MIN_PASSPHRASE:
            self._refused(f"Use a passphrase of {MIN_PASSPHRASE} characters or more.", "#passphrase")
            return
        if passphrase != again:
            self._refused("The two passphrases differ. Type the same one twice.", "#again")
            return
        self._error("Encrypting (deriving the key takes a moment)...")
        self._set_busy(True)
        self._encrypt(passphrase, command)

    @work(thread=True, exclusive=True, exit_on_error=False, name="encrypt")
    def _encrypt(self, passphrase: str, command: str | None) -> None:
        from ... import encryption

        # Every outcome, a refusal or a bug included, arrives in on_worker_state_changed.
        encryption.encrypt_file(self.store, passphrase, passphrase_command=command)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "encrypt":
            return
        event.stop()
        if event.state == WorkerState.SUCCESS:
            self.dismiss(True)
        elif event.state == WorkerState.ERROR:
            self._failed(event.worker.error)
        # CANCELLED only happens as the dialog itself goes away (the app quits): nothing to show.

    def _failed(self, error: BaseException | None) -> None:
        """Never leave the dialog frozen: say what happened and let the person try again."""
        if isinstance(error, ProcoreSetupError):
            self._refused(str(error), "#passphrase")
            return
        try:
            encrypted = self.store.load().encrypted
        except Exception:  # noqa: BLE001 - the file cannot be read now: say so below
            encrypted = None
        if encrypted:
            self.dismiss(True)  # the file was written before the failure: the secrets are encrypted
            return
        # Only the class name: the exception's text could hold anything, a passphrase included.
        command = "procore-setup" + self.store.cli_flag(explicit=True)
        state = ("the secrets in the file are still stored plainly" if encrypted is False
                 else f"check the file with `{command} status`")
        self._refused(f"Unexpected error while encrypting ({type(error).__name__}): {state}. "
                      f"Please report it; you can try again, or run `{command} encrypt`.", "#passphrase")

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        for widget in self.query("Input, Button"):
            widget.disabled = busy

    def _refused(self, message: str, focus: str) -> None:
        """Say why nothing was encrypted, and make the next press of Encrypt count at once."""
        self._set_busy(False)
        self.query_one("#encrypt", Button).remove_class(PRESSED_CLASS)
        self._error(message)
        self.query_one(focus, Input).focus()
