"""Step 1: which Procore environment (and, for a new profile, its name)."""

from __future__ import annotations

from typing import Any, Iterable
from urllib.parse import urlsplit

from textual import on, work
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import AwaitMount, Widget
from textual.widgets import Input, Static

from ... import environments
from ...errors import ProcoreSetupError
from ...flow import ENVIRONMENT, FlowError, SetupFlow, validate_profile_name
from ..screenkit import describe
from ..widgets.inputs import FieldInput
from ..widgets.choices import Choice, ChoiceLines
from .base import WizardScreen

SAME_ENVIRONMENT = (
    "Client credentials and tokens belong to one environment: the id and secret of a production app "
    "do not work in a sandbox, and the other way round."
)


def _host(url: str) -> str:
    return url or "(not set)"


class EnvironmentScreen(WizardScreen):
    """No button row here: Enter continues, and the footer's keys take clicks too.

    (This is the first screen most people see; Textual's Button brings 7 KB of CSS
    to parse and match, the largest single cost of the first frame.)
    """

    DEFAULT_CSS = """
    #custom { height: auto; }
    """
    STEP = ENVIRONMENT
    NUMBER = 1
    _fields_mounting: AwaitMount | None = None  # the custom fields, mounted when custom is first highlighted
    BINDINGS = [Binding("enter", "next", "Continue")]

    def compose_body(self) -> Iterable[Widget]:
        app = self.wizard
        flow = app.flow
        if app.asks_profile_name:
            name = flow.profile_name if flow is not None else ""
            with Horizontal(classes="field gap"):
                yield Static("Profile name", classes="field-label")
                yield FieldInput(name, id="name", compact=True, max_length=64, restrict=r"[A-Za-z0-9_.\-]*",
                            placeholder="e.g. default, sandbox, acme-prod")
            self.focus_when_shown("#envs" if name else "#name")
        else:
            self.focus_when_shown("#envs")
        yield Static("Which Procore environment is your app registered in?", classes="question")
        env_id = self._initial()
        demo = app.demo
        if demo is not None:
            # the demo never reaches real Procore: its fake server is the only environment offered
            choices = [Choice("custom", f"{'Demo: fake Procore':<24}custom")]
        else:
            choices = [Choice(env.id, f"{env.label:<24}{env.id}") for env in environments.ENVIRONMENTS.values()]
        # A few fixed lines that all fit: a ChoiceLines, as the first question (an OptionList cost
        # this screen, the first one of `login --service-account`, a third more work before its frame).
        ids = [choice.id for choice in choices]
        yield ChoiceLines(*choices, id="envs", highlighted=ids.index(env_id) if env_id in ids else 0)
        yield Static("", id="env-note", classes="dim gap", markup=False)
        if demo is not None:
            yield self._custom_fields(demo.url, demo.url, fixed=True)
        elif env_id == "custom" and flow is not None:
            yield self._custom_fields(flow.login_url, flow.api_url)
        yield Static("", id="hosts", markup=False)
        yield Static(SAME_ENVIRONMENT, classes="dim", markup=False)

    def _custom_fields(self, login: str = "", api: str = "", *, fixed: bool = False) -> Widget:
        """The URL fields of the custom environment (mounted only once it is chosen; `fixed`: the
        demo's, shown but not editable)."""
        return Vertical(
            Horizontal(Static("Login URL", classes="field-label"),
                       FieldInput(login, id="login_url", compact=True, placeholder="https://login.example.com",
                                  disabled=fixed),
                       classes="field"),
            Horizontal(Static("API URL", classes="field-label"),
                       FieldInput(api, id="api_url", compact=True, placeholder="https://api.example.com",
                                  disabled=fixed),
                       classes="field"),
            id="custom", classes="gap",
        )

    def _initial(self) -> str:
        """The environment highlighted first: the profile's, else production (in the demo: its server)."""
        flow = self.wizard.flow
        if self.wizard.demo is not None:
            return "custom"
        return flow.environment if flow is not None else "production"

    def on_mount(self) -> None:
        self._show_environment(self._selected())

    def _url(self, field: str) -> str:
        found = self.query(f"#{field}")
        return found.first(Input).value if found else ""

    # -- what the person sees while choosing ------------------------------------------------------
    def _selected(self) -> str:
        option = self.query_one("#envs", ChoiceLines).highlighted_option
        return option.id if option is not None else "production"

    def _show_environment(self, env_id: str) -> None:
        env = environments.get(env_id)
        note = env.note
        if self.wizard.demo is not None:
            note = "Demo mode: only the fake Procore running on this machine is offered; nothing real is touched."
        self.query_one("#env-note", Static).update(note)
        custom = env_id == "custom"
        fields = self.query("#custom")
        if custom and not fields:
            self._fields_mounting = self.query_one("#body").mount(self._custom_fields(), after="#env-note")
        elif fields:
            fields.first().display = custom
        if custom:
            login, api = self._url("login_url").strip(), self._url("api_url").strip()
        else:
            login, api = env.login_url, env.api_url
        self.query_one("#hosts", Static).update(
            f"Hosts used: login {_host(_hostname(login))}, API {_host(_hostname(api))}"
        )

    @on(ChoiceLines.Highlighted, "#envs")
    def _highlighted(self, event: ChoiceLines.Highlighted) -> None:
        self._show_environment(event.choice.id)

    @on(Input.Changed, "#login_url, #api_url")
    def _url_changed(self) -> None:
        self._show_environment(self._selected())

    @on(ChoiceLines.Selected, "#envs")
    async def _selected_by_enter(self, event: ChoiceLines.Selected) -> None:
        if event.choice.id == "custom":
            if self._fields_mounting is not None:
                # Highlighted and chosen at once (a click; End and Enter typed in one burst): the
                # fields the highlight mounted may not have their inputs yet.
                await self._fields_mounting
            if not self._url("login_url").strip():
                self.query_one("#login_url", Input).focus()
                return
        self.action_next()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "name":
            self.query_one("#envs").focus()
        elif event.input.id == "login_url" and not self._url("api_url").strip():
            self.query_one("#api_url", Input).focus()
        else:
            self.action_next()

    # -- continue ---------------------------------------------------------------------------------
    def action_next(self) -> None:
        if self.busy:
            return
        app = self.wizard
        if app.asks_profile_name:
            try:
                name = validate_profile_name(self.query_one("#name", Input).value)
            except ProcoreSetupError as exc:
                self.show_error(str(exc))
                self._focus_for(exc)
                return
            if app.flow is None or app.flow.profile_name != name:
                # A new profile in an existing file: the file is read (and an encrypted one's
                # secrets opened) first, in a worker; the step goes on in work_done.
                self.set_busy(f"Reading {app.store.address.describe()}...")
                self._open(name)
                return
        self._go_on()

    @work(thread=True, exclusive=True, exit_on_error=False, name="open")
    def _open(self, name: str) -> SetupFlow:
        return self.wizard.open_flow(name, must_be_new=True)

    def work_done(self, name: str, result: Any) -> None:
        self.wizard.flow = result
        self._go_on()

    def work_failed(self, name: str, error: BaseException) -> None:
        self.show_error(describe(error))
        if isinstance(error, ProcoreSetupError):
            self._focus_for(error)

    def _go_on(self) -> None:
        """Set the environment chosen on the flow, and on to step 2."""
        app = self.wizard
        env_id = self._selected()
        try:
            flow = self.flow
            demo = app.demo
            if demo is not None:  # whatever the fields say: the demo's server only
                flow.set_environment("custom", demo.url, demo.url)
            elif env_id == "custom":
                flow.set_environment("custom", self._url("login_url"), self._url("api_url"))
            else:
                flow.set_environment(env_id)
        except ProcoreSetupError as exc:
            self.show_error(str(exc))
            self._focus_for(exc)
            return
        except Exception as exc:  # pragma: no cover - a bug; keep the wizard alive and say so
            self.show_error(describe(exc))
            return
        self.clear_message()
        app.next_step(ENVIRONMENT)

    def _focus_for(self, exc: ProcoreSetupError) -> None:
        """The input of the answer the error names (FlowError.field)."""
        field = exc.field if isinstance(exc, FlowError) else "profile_name"
        if field == "profile_name":
            if self.wizard.asks_profile_name:
                self.query_one("#name", Input).focus()
        elif field in ("api_url", "login_url"):
            self.query_one(f"#{field}", Input).focus()


def _hostname(url: str) -> str:
    """The scheme and host of `url` as typed (for the 'hosts used' line), or the text itself."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.scheme and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return url
