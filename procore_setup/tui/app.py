"""The setup wizard's App: which screen comes next, unsaved-progress guard, and `run_wizard`.

The first frame matters (people start this by hand, often over SSH), so this
module imports only `textual.app` and the small stdlib-only `flow` module; each
screen module is imported when it is first shown, and httpx only when a step
talks to Procore.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from .. import flow as flowmod
from .. import settings
from ..flow import AUTHORIZE, CLIENT, CODE, ENVIRONMENT, SAVED, VERIFY, SetupFlow

if TYPE_CHECKING:
    from ..profile import Profile
    from ..stores.base import Store
    from ..testing.demo import DemoSession

PROFILES = "profiles"
STEPS = (ENVIRONMENT, CLIENT, AUTHORIZE, CODE, VERIFY, SAVED)

# step -> (module under procore_setup.tui.screens, class): imported on first use
_SCREENS: dict[str, tuple[str, str]] = {
    PROFILES: ("profiles", "ProfilesScreen"),
    ENVIRONMENT: ("environment", "EnvironmentScreen"),
    CLIENT: ("client", "ClientScreen"),
    AUTHORIZE: ("authorize", "AuthorizeScreen"),
    CODE: ("code", "CodeScreen"),
    VERIFY: ("verify", "VerifyScreen"),
    SAVED: ("saved", "SavedScreen"),
}

# What the person is doing with a profile; decides the first step and what is asked.
NEW = "new"  # first profile of a new file, or `login` for a profile that does not exist yet
ADD = "add"  # another profile in an existing file
RECONFIGURE = "reconfigure"  # every step, prefilled from the stored profile
REAUTHORIZE = "reauthorize"  # only a new login, keeping the client settings


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


class ProcoreSetupApp(App[int]):
    """The wizard. `store`, `clock` and `client_factory` are injectable for tests and screenshots."""

    CSS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "procore-setup"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, store: Store | None = None, *, profile: str | None = None,
                 clock: Callable[[], float] = time.time, demo: DemoSession | None = None, login: bool = False,
                 client_factory: Callable[..., Any] | None = None) -> None:
        super().__init__()
        if store is None:
            from ..stores import open_store

            store = open_store(demo.config_path if demo is not None else None)
        self.store = store
        self.profile_arg = settings.profile(profile)
        self.http_timeout = settings.http_timeout()  # read at the edge, used by every flow
        self.clock = clock
        self.demo = demo
        self.login = login
        self.client_factory = client_factory
        self.flow: SetupFlow | None = None
        self.mode = NEW
        self.dirty = False  # a step was completed and nothing saved since
        self.saved: Profile | None = None  # the last profile saved in this run
        self.exit_code = 0
        self.needs_passphrase = False  # the last start() failed for want of a passphrase

    # -- start-up ------------------------------------------------------------------------
    def get_default_screen(self) -> Screen[Any]:
        """The first screen: the list of profiles when there is a file, else the first step."""
        if self.login:
            name = self._login_profile()
            if name is not None:
                error = self.start(REAUTHORIZE, name)
                if error is None:
                    return self.make_screen(AUTHORIZE)
                return self.make_screen(PROFILES, error=error, selected=name)
            self.start(NEW, self.profile_arg or "default")
            return self.make_screen(ENVIRONMENT)
        if self.store.exists():
            return self.make_screen(PROFILES, selected=self.profile_arg)
        self.start(NEW, self.profile_arg or "default")
        return self.make_screen(ENVIRONMENT)

    def on_ready(self) -> None:
        # The first frame is up: load the HTTP client in the background now, so that moving on
        # to the Authorize step (which builds its URL with it) does not stall the screen.
        self.run_worker(_load_http_client, thread=True, group="prefetch", exit_on_error=False)

    def _login_profile(self) -> str | None:
        """The stored profile `procore-setup login` re-authorizes, or None to set one up from scratch."""
        if not self.store.exists():
            return None
        try:
            doc = flowmod.read_profiles(self.store)
        except Exception:
            return self.profile_arg or "default"  # let the Profiles screen show what is wrong
        name = self.profile_arg or doc.default_profile
        return name if name in doc.profiles else None

    def make_screen(self, step: str, **kwargs: Any) -> Screen[Any]:
        module, cls = _SCREENS[step]
        mod = importlib.import_module(f"{__package__}.screens.{module}")
        return getattr(mod, cls)(**kwargs)

    # -- the flow ------------------------------------------------------------------------------
    def new_flow(self, name: str, *, must_be_new: bool = False) -> SetupFlow:
        """A SetupFlow for profile `name`, prefilled from the file (and in demo mode, for the demo server)."""
        flow = SetupFlow(self.store, name, clock=self.clock, client_factory=self.client_factory, interactive=False,
                         http_timeout=self.http_timeout)
        existing = flow.load_existing()
        if existing is not None and must_be_new:
            raise flowmod.FlowError(
                f"There is already a profile called {flow.profile_name!r}.", step=ENVIRONMENT,
                hint="Pick another name, or go back (Esc) and choose Reconfigure for that profile.",
            )
        if existing is None and self.demo is not None:
            flow.set_environment("custom", self.demo.url, self.demo.url)
            flow.set_client(self.demo.client_id, self.demo.client_secret)
        self.flow = flow
        return flow

    def start(self, mode: str, name: str | None) -> str | None:
        """Begin setting up profile `name` in `mode`; returns an error message, or None."""
        self.mode = mode
        self.dirty = False
        self.flow = None
        if name is None:  # ADD: the name is asked on the Environment screen
            return None
        self.needs_passphrase = False
        try:
            self.new_flow(name)
        except Exception as exc:  # an unreadable file or a wrong passphrase: say so where the person is
            from ..errors import PassphraseNeeded

            self.needs_passphrase = isinstance(exc, PassphraseNeeded)
            return describe(exc)
        return None

    @property
    def asks_profile_name(self) -> bool:
        """Only when adding to a file that has profiles: a first setup is the profile "default"
        (what scripts use when they name none), or the one given with --profile."""
        return self.mode == ADD

    # -- navigation ----------------------------------------------------------------------------
    def begin(self, mode: str, name: str | None = None) -> None:
        """From the Profiles screen: add, reconfigure or re-authorize a profile."""
        error = self.start(mode, name)
        if error is not None and self.needs_passphrase:
            # An encrypted file that no env, command or keyring opens: ask here, then try again.
            from .widgets.unlock import UnlockDialog

            def unlocked(ok: bool | None) -> None:
                if ok:
                    self.begin(mode, name)

            self.push_screen(UnlockDialog(self.store), unlocked)
            return
        if error is not None:
            self.screen_error(error)
            return
        self.push_screen(self.make_screen(AUTHORIZE if mode == REAUTHORIZE else ENVIRONMENT))

    def next_step(self, step: str) -> None:
        """The person finished `step`: show the one after it."""
        self.dirty = True
        following = STEPS[STEPS.index(step) + 1]
        self.push_screen(self.make_screen(following))

    def back_to(self, step: str, error: str | None = None) -> None:
        """Go back to the screen of `step` (after an error that is fixed there), showing `error`."""
        stack = self.screen_stack
        for i in range(len(stack) - 1, -1, -1):
            if getattr(stack[i], "STEP", None) == step:
                while len(self.screen_stack) > i + 1:
                    self.pop_screen()
                stack[i].returned(error)  # type: ignore[attr-defined]
                return
        # Not in the stack (re-authorize skips Environment and Client): drop the wizard screens
        # above the base and show that step fresh.
        while len(self.screen_stack) > 1 and getattr(self.screen, "STEP", PROFILES) != PROFILES:
            self.pop_screen()
        self.push_screen(self.make_screen(step, error=error))

    def show_profiles(self) -> None:
        """Back to the list of profiles (after saving, or from the first step)."""
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.flow = None
        self.dirty = False
        if getattr(self.screen, "STEP", None) == PROFILES:
            self.screen.reload(select=self.saved.name if self.saved else None)  # type: ignore[attr-defined]
        else:  # the first run started at step 1, which stays underneath
            self.push_screen(self.make_screen(PROFILES, selected=self.saved.name if self.saved else None))

    def saved_profile(self, profile: Profile) -> None:
        self.saved = profile
        self.dirty = False
        self.push_screen(self.make_screen(SAVED))

    def screen_error(self, text: str) -> None:
        show = getattr(self.screen, "show_error", None)
        if show is not None:
            show(text)
        else:
            self.notify(text, severity="error")

    # -- quitting ---------------------------------------------------------------------------------
    async def action_quit(self) -> None:
        if not self.dirty:
            self.exit(self.exit_code)
            return
        from .widgets.dialogs import ConfirmDialog

        flow = self.flow
        name = flow.profile_name if flow else ""
        if flow is not None and flow.grant_saved:
            # The grant is on disk already: quitting loses only what the last steps would add.
            def finish(quit_now: bool | None) -> None:
                if quit_now:
                    self.saved = flow.saved_profile
                    self.exit(0)

            self.push_screen(ConfirmDialog(
                "Quit now?",
                f"Profile {name!r} is already saved with its new tokens, so scripts can use it. Quitting now "
                f"leaves it with {_and(flow.missing()) or 'nothing more'}.",
                yes="Quit", no="Keep going",
            ), finish)
            return

        def answer(discard: bool | None) -> None:
            if discard:
                self.exit(130, return_code=130)  # like an interrupted command

        if flow is not None and flow.tokens is not None:
            text = (f"Procore issued new tokens for profile {name!r}, but they could not be saved "
                    f"({flow.grant_save_error}). Quitting now throws them away, and the code is used up.")
        else:
            text = (f"Profile {name!r} is not saved yet: what you entered here will be lost. "
                    "The credentials file is unchanged.")
        self.push_screen(
            ConfirmDialog("Quit and discard this setup?", text, yes="Discard and quit", no="Keep going"),
            answer,
        )

    def done(self) -> None:
        self.exit(0)


def _and(items: list[str]) -> str:
    return " and ".join(items)


def _load_http_client() -> None:
    importlib.import_module("procore_setup.oauth")


def describe(exc: BaseException) -> str:
    """A message for the screen: our errors say what to do; anything else is a bug, named without values."""
    from ..errors import ProcoreSetupError

    if isinstance(exc, ProcoreSetupError):
        return str(exc)
    return (f"Unexpected error: {type(exc).__name__}. Nothing was saved. "
            "Please report it (PROCORE_SETUP_DEBUG=1 shows details in the plain login).")


def run_wizard(*, config: str | None = None, profile: str | None = None, demo: bool = False,
               login: bool = False, passphrase_command: str | None = None) -> int:
    """Run the wizard in this terminal; the exit code for the CLI (0 saved or nothing to do, 130 discarded)."""
    from ..stores import open_store

    session = None
    if demo:
        from ..testing.demo import DemoSession

        session = DemoSession().start()
        config = session.config_path
    try:
        app = ProcoreSetupApp(open_store(config, passphrase_command=passphrase_command), profile=profile,
                              demo=session, login=login)
        result = app.run()
        saved = app.saved
        if saved is not None and app.return_code in (0, None):
            # The screen is gone now: leave what to copy in the terminal's scrollback.
            where = app.store.describe()
            print(f"Saved profile {saved.name!r} to {where} (mode {app.store.permissions()}).")
            if session is not None:
                print("Demo mode: that file and the fake server are gone now.")
            else:
                print("Keep it fresh from cron with:")
                print(f"  {flowmod.cron_line(app.store, saved.name)}")
    finally:
        if session is not None:
            session.stop()
    if app.return_code:
        return app.return_code
    return result if isinstance(result, int) else 0


__all__ = ["ProcoreSetupApp", "run_wizard", "browser_problem", "describe"]
