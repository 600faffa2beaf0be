"""The setup wizard's App: which screen comes next, unsaved-progress guard, and `run_wizard`.

The first frame matters (people start this by hand, often over SSH), so this
module imports only `textual.app`, the small stdlib-only `flow` module and
`shared` (what the screens need from here); each screen module is imported when
it is first shown, and httpx only when a step talks to Procore.

Nothing here reads the credentials file on the UI thread once a file exists: the
Profiles screen reads it, and opens a profile (which may run a passphrase command
and derive a key), in its thread workers.
"""

from __future__ import annotations

import inspect
import os
import time
from typing import TYPE_CHECKING, Any, Callable

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from .. import flow as flowmod
from .. import settings
from ..flow import AUTHORIZE, CLIENT, CODE, ENVIRONMENT, SAVED, VERIFY, SetupFlow
from ..hints import token_command
from ..profile import SERVICE_ACCOUNT, USER
from ..stores.base import access_note
from .screenkit import ADD, KIND, NEW, PROFILES, REAUTHORIZE, StoreFacts, browser_problem, describe

if TYPE_CHECKING:
    from ..profile import Profile
    from ..stores.base import Store
    from ..testing.demo import DemoSession
    from .screens.base import WizardScreen

STEPS = (ENVIRONMENT, CLIENT, AUTHORIZE, CODE, VERIFY, SAVED)  # a person's login
# A service account signs in with its client id and secret: the token is requested when the
# client step is done, so there is nothing to authorize and no code to paste.
SERVICE_ACCOUNT_STEPS = (ENVIRONMENT, CLIENT, VERIFY, SAVED)
LOGIN_MODE = "login"  # the screen stack `login` moves to once its profile is open (see begin)
_HERE = os.path.dirname(os.path.abspath(__file__))
LATER_CSS_PATH = os.path.join(_HERE, "later.tcss")


# Each screen's module is imported on first use, by a plain import a type checker and
# import-linter can follow (no module names in strings).
def _kind_screen(**kwargs: Any) -> WizardScreen:
    from .screens.kind import KindScreen

    return KindScreen(**kwargs)


def _profiles_screen(**kwargs: Any) -> WizardScreen:
    from .screens.profiles import ProfilesScreen

    return ProfilesScreen(**kwargs)


def _environment_screen(**kwargs: Any) -> WizardScreen:
    from .screens.environment import EnvironmentScreen

    return EnvironmentScreen(**kwargs)


def _client_screen(**kwargs: Any) -> WizardScreen:
    from .screens.client import ClientScreen

    return ClientScreen(**kwargs)


def _authorize_screen(**kwargs: Any) -> WizardScreen:
    from .screens.authorize import AuthorizeScreen

    return AuthorizeScreen(**kwargs)


def _code_screen(**kwargs: Any) -> WizardScreen:
    from .screens.code import CodeScreen

    return CodeScreen(**kwargs)


def _verify_screen(**kwargs: Any) -> WizardScreen:
    from .screens.verify import VerifyScreen

    return VerifyScreen(**kwargs)


def _service_verify_screen(**kwargs: Any) -> WizardScreen:
    from .screens.service_verify import ServiceVerifyScreen

    return ServiceVerifyScreen(**kwargs)


def _saved_screen(**kwargs: Any) -> WizardScreen:
    from .screens.saved import SavedScreen

    return SavedScreen(**kwargs)


_SCREENS: dict[str, Callable[..., WizardScreen]] = {
    KIND: _kind_screen,
    PROFILES: _profiles_screen,
    ENVIRONMENT: _environment_screen,
    CLIENT: _client_screen,
    AUTHORIZE: _authorize_screen,
    CODE: _code_screen,
    VERIFY: _verify_screen,
    SAVED: _saved_screen,
}


class ProcoreSetupApp(App[int]):
    """The wizard. `store`, `clock` and `client_factory` are injectable for tests and screenshots;
    `unlock`: this run's passphrase sources (default: $PROCORE_SETUP_PASSPHRASE_COMMAND's)."""

    # What the first screens need; later.tcss (the later steps' rules) is read once the first frame
    # is drawn (on_ready). Absolute paths: subclasses live elsewhere.
    CSS_PATH = os.path.join(_HERE, "app.tcss")
    TITLE = "procore-setup"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, store: Store | None = None, *, profile: str | None = None,
                 clock: Callable[[], float] = time.time, demo: DemoSession | None = None, login: bool = False,
                 client_factory: Callable[..., Any] | None = None, service_account: bool = False,
                 unlock: settings.Unlock | None = None) -> None:
        super().__init__()
        # Never a prompt on the terminal under the screen: the Unlock dialog asks instead.
        self.unlock = (unlock if unlock is not None else settings.unlock_from(None)).unattended()
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
        # `login --service-account`: the kind is given, so the first question is not asked.
        self.kind_given = service_account
        self.kind = SERVICE_ACCOUNT if service_account else USER  # the kind being set up
        self.flow: SetupFlow | None = None
        self.mode = NEW
        self.dirty = False  # a step was completed and nothing saved since
        self.saved: Profile | None = None  # the last profile saved in this run
        self.first_frame_drawn = False  # until then, screens leave out what can come a frame later
        self.resume_gc = False  # run_wizard: the collector is off for the start-up, on at the first frame
        self._after_first_frame: list[Callable[[], Any]] = []

    # -- start-up ------------------------------------------------------------------------
    def get_default_screen(self) -> Screen[Any]:
        """The first screen: the list of profiles when there is a file, else the first step.

        With a file, even `login` starts on the list: reading the file and opening the
        profile's secrets (a passphrase command may take seconds) happen in its workers,
        and the step it leads to then takes its place.
        """
        if self.store.exists():
            return self.make_screen(PROFILES, selected=self.profile_arg, login=self.login)
        # No file yet, so nothing to read: the flow is ready at once.
        self.mode = NEW
        self.new_flow(self.profile_arg or "default")
        return self.make_screen(ENVIRONMENT if self.kind_given else KIND)

    def after_first_frame(self, callback: Callable[[], Any]) -> None:
        """Run `callback` (a function or a coroutine function) once the first frame is drawn: what
        the first screen can do without (its footer, the read of the file) waits for it. Once the
        frame is drawn, after the next refresh."""
        if self.first_frame_drawn:
            self.call_after_refresh(callback)
        else:
            self._after_first_frame.append(callback)

    async def on_ready(self) -> None:
        # The first frame is drawn: the rest of the stylesheet (rules for the later steps), what the
        # first screen waited for, and the HTTP client, loaded in the background now so that moving
        # on to the Authorize step (which builds its URL with it) does not stall the screen.
        self.first_frame_drawn = True
        if self.resume_gc:
            self.resume_gc = False
            import gc

            gc.freeze()  # what start-up made lives as long as the app: no collection need walk it again
            gc.enable()
        self.stylesheet.read(LATER_CSS_PATH)
        self.stylesheet.update(self)  # parses only the new file: the others' rules are cached
        waiting, self._after_first_frame = self._after_first_frame, []
        for callback in waiting:
            result = callback()
            if inspect.isawaitable(result):
                await result
        self.run_worker(_load_http_client, thread=True, group="prefetch", exit_on_error=False)

    def make_screen(self, step: str, **kwargs: Any) -> WizardScreen:
        if step == VERIFY and self.kind == SERVICE_ACCOUNT:
            return _service_verify_screen(**kwargs)
        return _SCREENS[step](**kwargs)

    def steps(self) -> tuple[str, ...]:
        """The numbered steps of the kind of profile being set up."""
        return SERVICE_ACCOUNT_STEPS if self.kind == SERVICE_ACCOUNT else STEPS

    def demo_client(self, kind: str) -> tuple[str, str] | None:
        """The demo server's own client id and secret for `kind` (None outside demo mode)."""
        demo = self.demo
        if demo is None:
            return None
        if kind == SERVICE_ACCOUNT:
            return demo.fake.service_account_client_id, demo.fake.service_account_client_secret
        return demo.client_id, demo.client_secret

    def demo_company(self) -> int | None:
        """The company the demo server's service account is installed in (None outside demo mode)."""
        if self.demo is None or not self.demo.fake.service_account_companies:
            return None
        return int(self.demo.fake.service_account_companies[0])

    # -- the flow ------------------------------------------------------------------------------
    def open_flow(self, name: str, *, must_be_new: bool = False) -> SetupFlow:
        """A SetupFlow for profile `name`, prefilled from the file (and in demo mode, for the demo server).

        It reads the file and opens its secrets, which may run a passphrase command and
        derives a key: call it from a thread worker (or where there is no file yet). It
        changes nothing in the app; `begin` takes the flow on the UI thread.
        """
        flow = SetupFlow(self.store, name, clock=self.clock, client_factory=self.client_factory, unlock=self.unlock,
                         http_timeout=self.http_timeout)
        existing = flow.load_existing()
        if existing is not None and must_be_new:
            raise flowmod.FlowError(
                f"There is already a profile called {flow.profile_name!r}.", step=ENVIRONMENT, field="profile_name",
                hint="Pick another name, or go back (Esc) and choose Reconfigure for that profile.",
            )
        if existing is None:
            flow.kind = self.kind  # chosen on the first screen, or given on the command line
            demo = self.demo_client(flow.kind)
            if demo is not None and self.demo is not None:
                flow.set_environment("custom", self.demo.url, self.demo.url)
                flow.set_client(*demo)
        return flow

    def new_flow(self, name: str, *, must_be_new: bool = False) -> SetupFlow:
        """open_flow, made the current flow at once (blocking: only where there is no file to read yet)."""
        self.flow = self.open_flow(name, must_be_new=must_be_new)
        return self.flow

    @property
    def asks_profile_name(self) -> bool:
        """Only when adding to a file that has profiles: a first setup is the profile "default"
        (what scripts use when they name none), or the one given with --profile."""
        return self.mode == ADD

    def choose_kind(self, kind: str) -> None:
        """The first question is answered: set up a person's login or a service account, from step 1."""
        self.kind = kind
        flow = self.flow
        if flow is not None:
            previous, flow.kind = flow.kind, kind
            demo = self.demo_client(kind)
            old_demo = self.demo_client(previous)
            if demo is not None and flow.existing is None and flow.client_id in ("", old_demo and old_demo[0]):
                flow.set_client(*demo)  # the demo's own client of that kind, unless one was typed
        self.push_screen(self.make_screen(self.steps()[0]))

    # -- navigation ----------------------------------------------------------------------------
    def begin(self, mode: str, flow: SetupFlow | None = None, *, first: bool = False) -> None:
        """Start setting up a profile in `mode` with `flow` (opened by a worker; None to add one,
        whose name step 1 asks): show its first step on top of the list, or (`first`) as the
        first screen, as if the wizard had started there (`login`: Esc on it quits).

        Adding or reconfiguring starts with how the scripts sign in (prefilled with the profile's
        kind), unless `login --service-account` said so; re-authorizing keeps the kind: a person
        logs in again (Authorize), a service account gets a new token, with a new secret if it
        was rotated (Client credentials)."""
        self.mode = mode
        self.dirty = False
        self.flow = flow
        if self.kind_given:
            self.kind = SERVICE_ACCOUNT
        elif flow is not None and flow.existing is not None:
            self.kind = flow.kind
        else:
            self.kind = USER  # a new profile: the first question starts on a person's login
        if flow is not None:
            flow.kind = self.kind
        if mode == REAUTHORIZE:
            step = CLIENT if self.kind == SERVICE_ACCOUNT else AUTHORIZE
        else:
            step = ENVIRONMENT if self.kind_given else KIND
        if first:
            # A screen stack of its own, whose first screen is the step (Textual cannot switch
            # the default screen for another one); the list it started on stays behind, unseen.
            self.add_mode(LOGIN_MODE, lambda: self.make_screen(step))
            self.switch_mode(LOGIN_MODE)
        else:
            self.push_screen(self.make_screen(step))

    def next_step(self, step: str) -> None:
        """The person finished `step`: show the one after it."""
        self.dirty = True
        steps = self.steps()
        following = steps[steps.index(step) + 1]
        self.push_screen(self.make_screen(following))

    def back_to(self, step: str, error: str | None = None) -> None:
        """Go back to the screen of `step` (after an error that is fixed there), showing `error`."""
        if step not in self.steps():
            step = CLIENT  # a service account: a new token comes from the client step, not a login
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

    def saved_profile(self, profile: Profile, facts: StoreFacts) -> None:
        """The profile is saved; `facts` about the file were read by the worker that saved it."""
        self.saved = profile
        self.dirty = False
        self.push_screen(self.make_screen(SAVED, facts=facts))

    # -- quitting ---------------------------------------------------------------------------------
    async def action_quit(self) -> None:
        if not self.dirty:
            self.exit(0)
            return
        from .widgets.dialogs import ConfirmDialog

        if getattr(self.screen, "STEP", None) == CODE and getattr(self.screen, "busy", False):
            # The code is on its way to Procore: quitting now could lose the grant it brings back.
            self.screen.show_notice("The code is being exchanged: wait a moment, then quit "  # type: ignore[attr-defined]
                                    "(the tokens are saved as soon as they arrive).")
            return
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
                f"Profile {name!r} is already saved with its new {_tokens(flow)}, so scripts can use it. Quitting now "
                f"leaves it with {_and(flow.missing()) or 'nothing more'}.",
                yes="Quit", no="Keep going",
            ), finish)
            return

        def answer(discard: bool | None) -> None:
            if discard:
                self.exit(130, return_code=130)  # like an interrupted command

        if flow is not None and flow.tokens is not None:
            if flow.kind == SERVICE_ACCOUNT:
                text = (f"Procore issued a new token for profile {name!r}, but it could not be saved "
                        f"({flow.grant_save_error}). Quitting now throws it away (the next login requests "
                        "another one).")
            else:
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


def _tokens(flow: SetupFlow) -> str:
    return "token" if flow.kind == SERVICE_ACCOUNT else "tokens"


def _load_http_client() -> None:
    from .. import oauth  # noqa: F401 - imported now, used by the Authorize step


def _end_demo_on_signals(session: DemoSession, app: ProcoreSetupApp) -> None:
    """Nothing of the demo may outlive it: a closed terminal (SIGHUP) or SIGTERM would otherwise
    end the process without its clean-up, leaving the demo's directory (and its file) behind."""
    import signal

    def ended(signum: int, frame: object) -> None:
        session.stop()  # first: the file and the server go whatever happens next
        if signum == signal.SIGHUP:
            os._exit(128 + signum)  # the terminal is gone: there is no screen to restore
        # SIGTERM: leave the terminal as it was. The handler runs between two steps of the event
        # loop, which may be asleep in select(): call_soon_threadsafe wakes it.
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not started yet, or already done: nothing on screen to restore
            os._exit(128 + signum)
        loop.call_soon_threadsafe(lambda: app.exit(128 + signum, return_code=128 + signum))

    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, ended)


def run_wizard(*, config: str | None = None, profile: str | None = None, demo: bool = False,
               login: bool = False, passphrase_command: str | None = None, service_account: bool = False,
               store_url: str | None = None, resume_gc: bool = False) -> int:
    """Run the wizard in this terminal; the exit code for the CLI (0 saved or nothing to do, 130 discarded).
    `service_account` (`login --service-account`): straight on to setting up a service account.
    `store_url`: a shared store (--store), else `config`'s file. `resume_gc`: the caller turned the
    garbage collector off for the start-up; the app turns it on again once its first frame is drawn."""
    from ..stores import open_store

    session = None
    if demo:
        from ..testing.demo import DemoSession

        session = DemoSession().start()
        config, store_url = session.config_path, None
    opened = None
    try:
        unlock = settings.unlock_from(passphrase_command)
        opened = open_store(config, store=store_url)
        app = ProcoreSetupApp(opened, profile=profile, demo=session, login=login, service_account=service_account,
                              unlock=unlock)
        app.resume_gc = resume_gc
        if session is not None:
            _end_demo_on_signals(session, app)
        result = app.run()
        saved = app.saved
        if saved is not None and app.return_code in (0, None):
            # The screen is gone now: leave what to copy in the terminal's scrollback.
            store = app.store
            print(f"Saved profile {saved.name!r} to {store.address.describe()} ({access_note(store.address)}).")
            if session is not None:
                print("Demo mode: that file and the fake server are gone now.")
            elif saved.is_service_account:
                print(f"A service account needs no cron job: `{token_command(store, saved.name)}` requests a new token "
                      "when the stored one is about to expire.")
            else:
                print("Keep it fresh from cron with:")
                print(f"  {flowmod.cron_line(store, saved.name)}")
            note = store.address.password_note()  # a store URL's password, left out of the lines above
            if note and session is None:
                print(note)
    finally:
        if opened is not None:
            opened.close()  # a shared store's connections: the wizard is done with them
        if session is not None:
            session.stop()
    if session is not None:
        # the demo's file and server are gone: say where the headless side can be tried next
        print("To try token, refresh, status, cron and the library against a fake Procore that stays up, run:")
        print(f"  {flowmod.executable()} demo")
    if app.return_code:
        return app.return_code
    return result if isinstance(result, int) else 0


__all__ = ["ProcoreSetupApp", "run_wizard", "browser_problem", "describe"]
