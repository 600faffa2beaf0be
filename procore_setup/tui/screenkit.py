"""What the wizard's app, screens and dialogs share, so that none of them imports another.

The app imports each screen when it is first shown; a screen that imported the app back
would make a cycle. So the names both sides use live here: the modes and the step names
of the profiles list and of the first question, the one text a failure gets on screen (`describe`), the guess
whether a browser can open, and the one handler of the end of a worker (`WorkReporting`).
Nothing here imports a screen, a widget or the app.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, NamedTuple

from textual.worker import Worker, WorkerState

from ..stores.base import access_note, readable_by

if TYPE_CHECKING:
    from ..stores.base import Store

PROFILES = "profiles"
KIND = "kind"  # the first question of a new setup: a person's login or a service account

# What the person is doing with a profile; decides the first step and what is asked.
NEW = "new"  # first profile of a new file, or `login` for a profile that does not exist yet
ADD = "add"  # another profile in an existing file
RECONFIGURE = "reconfigure"  # every step, prefilled from the stored profile
REAUTHORIZE = "reauthorize"  # only a new login, keeping the client settings

# Workers of this group read something to show and never lock the form, so their end does
# not end the busy state of another worker running beside them (Verify reads the file while
# it asks Procore who is logged in).
BACKGROUND = "background"


def describe(exc: BaseException) -> str:
    """A message for the screen: our errors say what to do; anything else is a bug, named without values."""
    from ..errors import ProcoreSetupError

    if isinstance(exc, ProcoreSetupError):
        return str(exc)
    # Only the class: the text of an unexpected exception could hold anything, a secret included.
    return (f"Unexpected error: {type(exc).__name__}. Nothing was saved. "
            "Please report it (PROCORE_SETUP_DEBUG=1 shows details in the plain login).")


def browser_problem(environ: dict[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why a browser probably cannot be opened from here, or None when it probably can.

    Guessing wrong in the other direction is worse: on a headless box `webbrowser`
    may start a text browser inside this very terminal, on top of the wizard.
    """
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    ssh = any(env.get(k) for k in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"))
    if env.get("BROWSER"):
        return None  # the person told us how to open one
    if platform == "win32":
        return None
    if platform == "darwin":
        return "this is an SSH session, so a browser would open on the remote Mac" if ssh else None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    if ssh:
        return "this is an SSH session without a display"
    return "there is no graphical display here (DISPLAY is not set)"


class StoreFacts(NamedTuple):
    """What the Saved screen says about the store, read in the worker that saved to it."""

    permissions: str | None
    encrypted: bool
    access: str = ""  # who may read it, in words: "mode 0600", "PostgreSQL; readable by ..."


def store_facts(store: Store) -> StoreFacts:
    """Who may read the store and whether its secrets are encrypted. Reads the store: call it
    from a thread worker, never on the UI thread."""
    try:
        encrypted = store.load().encrypted
    except Exception:  # noqa: BLE001 - only a note on the Saved screen: an unreadable file is "not encrypted"
        encrypted = False
    return StoreFacts(readable_by(store.address), encrypted, access_note(store.address))


class WorkReporting:
    """The one handler of the end of every worker a screen or dialog runs.

    A worker only does its work: it returns a result or raises. Its end arrives here as
    Textual's `Worker.StateChanged`; the form is unlocked (`set_busy(None)`), then the
    screen hears `work_done(name, result)` or, for any exception whatsoever (not only
    ours), `work_failed(name, error)`, whose default shows `describe(error)` on the screen.
    So no exception can leave a form frozen or a failure unsaid. (A mixin, not a Screen:
    Textual calls the handler of every class in the MRO, so it must be defined once, here.)
    """

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker: Worker[Any] = event.worker
        if event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return  # PENDING and RUNNING say nothing; CANCELLED: replaced by a newer one, or the screen is gone
        if worker.group != BACKGROUND:
            self.set_busy(None)
        if event.state == WorkerState.SUCCESS:
            self.work_done(worker.name, worker.result)
        else:
            error = worker.error
            self.work_failed(worker.name, error if error is not None else RuntimeError("worker failed"))

    def set_busy(self, text: str | None) -> None:
        raise NotImplementedError

    def show_error(self, text: str) -> None:
        raise NotImplementedError

    def work_done(self, name: str, result: Any) -> None:
        """The worker called `name` returned `result` (the form is unlocked already)."""

    def work_failed(self, name: str, error: BaseException) -> None:
        """The worker called `name` raised `error` (the form is unlocked already): say so."""
        self.show_error(describe(error))
