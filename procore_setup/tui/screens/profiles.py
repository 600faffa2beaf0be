"""The profiles in the credentials file, and what to do with them: add, reconfigure, re-authorize,
set the default, remove."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable

from textual import on, work
from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ...text import NAME_LIMIT, clean
from ...flow import read_profiles, remove_profile, set_default_profile
from ...status import profile_info
from ..app import ADD, PROFILES, REAUTHORIZE, RECONFIGURE, describe
from .base import WizardScreen

if TYPE_CHECKING:
    from ...profile import Credentials

# The list's rows start 2 columns further right than the header (border and padding), and after the ★.
class ProfileList(OptionList):
    """The profiles of the file. Rows are plain text: names in the file are Procore's or anyone's
    who edited it, never markup (`[/nope]` would crash the screen at every launch)."""

    BINDINGS = [Binding("enter", "select", "Reconfigure", show=False)]  # `r` in the footer says it already

    def __init__(self, *content: Any, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        super().__init__(*content, **kwargs)


def plain(value: Any, limit: int = NAME_LIMIT) -> str:
    """A value read from the file, fit to show: printable and capped."""
    return clean(value, limit) if value is not None else ""


HEADER = f"    {'Profile':<14}{'Environment':<16}{'User':<20}Access token"


def _left(seconds: float) -> str:
    if seconds < 0:
        return "expired (renews)"
    if seconds < 3600:
        return f"valid {int(seconds // 60)} min"
    if seconds < 48 * 3600:
        return f"valid {int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    return f"valid {int(seconds // 86400)} days"


def token_state(info: dict[str, Any], seconds_left: float | None) -> str:
    if info["problems"] and any(p.startswith("needs a new login") for p in info["problems"]):
        return "needs a new login"
    if info["refresh_token"] == "(none)":
        return "no tokens"
    if seconds_left is None:
        return "unknown"
    return _left(seconds_left)


def prof_expiry(iso: str | None) -> str:
    if not iso:
        return "unknown"
    try:
        when = datetime.fromisoformat(iso).astimezone(timezone.utc)
    except ValueError:
        return iso
    return f"{when:%Y-%m-%d %H:%M} UTC"


class ProfilesScreen(WizardScreen):
    """The actions are the footer's keys (they take clicks too): no button row, like step 1,
    since this is the first screen whenever a file exists."""

    DEFAULT_CSS = """
    #profiles { height: auto; max-height: 8; }
    """
    STEP = PROFILES
    NUMBER = 0
    AUTO_FOCUS = "#profiles"
    BINDINGS = [
        Binding("a", "add", "Add"),
        Binding("r", "reconfigure", "Reconfigure"),
        Binding("l", "reauthorize", "Re-authorize"),
        Binding("d", "set_default", "Default"),
        Binding("x,delete", "remove", "Remove"),
        Binding("escape", "app.quit", "Quit", show=False),
    ]

    class Changed(Message):
        """A worker changed the file (or failed to)."""

        def __init__(self, note: str, error: BaseException | None) -> None:
            super().__init__()
            self.note = note
            self.error = error

    def __init__(self, error: str | None = None, selected: str | None = None) -> None:
        super().__init__(error=error)
        self.selected = selected
        self.doc: Credentials | None = None
        self.infos: dict[str, dict[str, Any]] = {}
        self._resumed = False

    def compose_body(self) -> Iterable[Widget]:
        yield Static("", id="file", classes="gap", markup=False)
        yield Static(HEADER, id="profiles-header", classes="dim", markup=False)
        yield ProfileList(id="profiles", classes="gap")
        yield Static("", id="details", markup=False)

    def on_mount(self) -> None:
        self.reload(keep_message=True)

    def on_screen_resume(self) -> None:
        if self._resumed:
            self.reload(keep_message=True)  # back from a wizard that may have saved
        self._resumed = True  # the first resume is the first showing: on_mount has just read the file

    # -- the list -----------------------------------------------------------------------------------
    def reload(self, keep_message: bool = False, select: str | None = None) -> None:
        """Read the file again and list its profiles, keeping the highlighted one (or `select`)."""
        path = self.wizard.store.describe()
        listing = self.query_one("#profiles", OptionList)
        current = listing.highlighted_option
        if select is not None:
            self.selected = select
        elif current is not None and current.id:
            self.selected = current.id
        listing.clear_options()
        self.infos = {}
        try:
            self.doc = doc = read_profiles(self.wizard.store)
        except Exception as exc:
            self.doc = None
            self.query_one("#file", Static).update(f"Credentials file: {path}")
            self.query_one("#details", Static).update("")
            self.show_error("The file cannot be used: " + describe(exc))
            self._enable(False)
            return
        encrypted = ", secrets encrypted" if doc.encrypted else ""
        self.query_one("#file", Static).update(f"Credentials file: {path} (mode {self.wizard.store.permissions()}{encrypted})")
        now = datetime.fromtimestamp(self.wizard.clock(), timezone.utc)
        chosen = 0
        for i, (name, prof) in enumerate(doc.profiles.items()):
            info = profile_info(doc, prof)
            self.infos[name] = info
            star = "★" if info["default"] else " "
            user = plain(prof.user_name or prof.user_login or "-", 19)
            row = f"{star} {plain(name, 13):<14}{plain(prof.environment, 15):<16}{user:<20}" \
                  f"{token_state(info, prof.seconds_left(now))}"
            listing.add_option(Option(Content(row), id=name))
            if name == self.selected:
                chosen = i
        if doc.profiles:
            listing.highlighted = chosen
            self._show_details(listing.highlighted_option.id if listing.highlighted_option else None)
        else:
            self.query_one("#details", Static).update("No profiles in this file yet: press a to add one.")
        self._enable(True)
        if not keep_message:
            self.clear_message()

    def _enable(self, ok: bool) -> None:
        self.refresh_bindings()  # the footer greys out what cannot be done now (check_action)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("reconfigure", "reauthorize", "set_default", "remove"):
            return bool(self.infos) or None  # None: shown greyed out in the footer
        if action == "add":
            return self.doc is not None or None
        return True

    def _show_details(self, name: str | None) -> None:
        info = self.infos.get(name or "")
        if info is None:
            self.query_one("#details", Static).update("")
            return
        default = " (the default profile)" if info["default"] else ""
        lines = [
            f"{info['profile']}{default} · {info['environment']}: login {info['login_url']} · API {info['api_url']}",
            f"client id {info['client_id']} · secret {info['client_secret']}",
        ]
        user = info["user"]
        who = f"user {plain(user['name'])} <{plain(user['login'])}>" if user else "user unknown"
        lines.append(f"{who} · company {self._company(info)}")
        if info["expires_at"]:
            refreshed = prof_expiry(info["last_refresh_at"]) if info["last_refresh_at"] else "never"
            lines.append(f"access token expires {prof_expiry(info['expires_at'])} · last refresh {refreshed}")
        lines += [f"⚠ {p}" for p in info["problems"]]
        self.query_one("#details", Static).update("\n".join(lines))

    @staticmethod
    def _company(info: dict[str, Any]) -> str:
        company = info["company"]
        return f"{plain(company['name'])} ({company['id']})" if company else "none"

    @on(OptionList.OptionHighlighted, "#profiles")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_details(event.option.id)

    @on(OptionList.OptionSelected, "#profiles")
    def _selected(self) -> None:
        self.action_reconfigure()

    def _current(self) -> str | None:
        option = self.query_one("#profiles", OptionList).highlighted_option
        return option.id if option is not None else None

    # -- actions ---------------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.call_next(self.app.action_quit)

    def action_add(self) -> None:
        if self.doc is not None:
            self.wizard.begin(ADD)

    def action_reconfigure(self) -> None:
        name = self._current()
        if name:
            self.wizard.begin(RECONFIGURE, name)

    def action_reauthorize(self) -> None:
        name = self._current()
        if name:
            self.wizard.begin(REAUTHORIZE, name)

    def action_set_default(self) -> None:
        name = self._current()
        if not name:
            return
        if self.infos[name]["default"]:
            self.show_notice(f"{name!r} is already the default profile.")
            return
        self._change("default", name)

    def action_remove(self) -> None:
        name = self._current()
        if not name:
            return
        from ..widgets.dialogs import ConfirmDialog

        def answer(yes: bool | None) -> None:
            if yes:
                self._change("remove", name)

        self.app.push_screen(
            ConfirmDialog(
                f"Remove profile {name!r}?",
                f"Its client settings and tokens are deleted from {self.wizard.store.describe()}. The tokens are "
                f"not revoked at Procore (`procore-setup revoke --profile {name}` does that first). Scripts "
                "and cron lines that use this profile will stop working.",
                yes="Remove", no="Keep it",
            ),
            answer,
        )

    def _change(self, what: str, name: str) -> None:
        self.set_busy("Removing..." if what == "remove" else "Setting the default profile...")
        self._write(what, name)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _write(self, what: str, name: str) -> None:
        store = self.wizard.store
        try:
            if what == "remove":
                remove_profile(store, name)
                note = f"Removed profile {name!r}."
            else:
                set_default_profile(store, name)
                note = f"{name!r} is now the default profile."
        except Exception as exc:
            self.post_message(self.Changed("", exc))
        else:
            self.post_message(self.Changed(note, None))

    @on(Changed)
    def _changed(self, message: Changed) -> None:
        self.set_busy(None)
        self.reload()
        if message.error is not None:
            self.show_error(describe(message.error))
        else:
            self.show_notice(message.note)
