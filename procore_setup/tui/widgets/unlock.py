"""Asks for the passphrase of an encrypted credentials file that no other source could open."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from ...stores.base import Store
from ...errors import ProcoreSetupError


class UnlockDialog(ModalScreen[bool]):
    """Returns True once the passphrase opened the file (its key is then remembered in this process)."""

    AUTO_FOCUS = "#unlock-passphrase"
    DEFAULT_CSS = """
    UnlockDialog { align: center middle; background: $background 60%; }
    #unlock-dialog { width: 72; height: auto; padding: 0 2; border: thick $primary; background: $surface; }
    #unlock-title { text-style: bold; }
    #unlock-error { color: $error; height: auto; }
    #unlock-buttons { height: 1; align-horizontal: right; margin-top: 1; }
    #unlock-buttons Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    def compose(self) -> ComposeResult:
        with Vertical(id="unlock-dialog"):
            yield Static("This credentials file is encrypted", id="unlock-title", markup=False)
            yield Static(f"Type the passphrase of {self.store.describe()} to change its profiles.", markup=False)
            yield Input(placeholder="passphrase", password=True, id="unlock-passphrase")
            yield Static("", id="unlock-error", markup=False)
            with Horizontal(id="unlock-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Unlock", id="unlock", variant="primary", compact=True)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_unlock()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "unlock":
            self.action_unlock()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_unlock(self) -> None:
        passphrase = self.query_one("#unlock-passphrase", Input).value
        if not passphrase:
            self.query_one("#unlock-error", Static).update("Type the passphrase first.")
            return
        self.query_one("#unlock-error", Static).update("Checking (deriving the key takes a moment)...")
        self._check(passphrase)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _check(self, passphrase: str) -> None:
        from ... import passphrase as passphrases

        try:
            ok = passphrases.unlock(self.store.load(), passphrase)
        except ProcoreSetupError as exc:
            self.app.call_from_thread(self._wrong, exc.message)
            return
        if ok:
            self.app.call_from_thread(self.dismiss, True)
        else:
            self.app.call_from_thread(self._wrong, "Wrong passphrase. Nothing was changed; try again.")

    def _wrong(self, message: str) -> None:
        box = self.query_one("#unlock-passphrase", Input)
        box.value = ""
        box.focus()
        self.query_one("#unlock-error", Static).update(message)
