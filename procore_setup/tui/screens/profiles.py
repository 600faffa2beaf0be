"""The profiles in the credentials file, and what to do with them: add, reconfigure, re-authorize,
set the default, remove."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple

from textual import work
from textual.binding import Binding
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static

from ... import hints
from ...errors import PassphraseNeeded
from ...text import NAME_LIMIT, clean, duration
from ...flow import read_profiles, remove_profile, set_default_profile
from ...profile import SERVICE_ACCOUNT
from ...status import profile_info
from ...stores.base import access_note, readable_by
from ..screenkit import ADD, BACKGROUND, NEW, PROFILES, REAUTHORIZE, RECONFIGURE, describe
from .base import WizardScreen

if TYPE_CHECKING:
    from textual.widgets import OptionList

    from ...profile import Credentials
    from ...flow import SetupFlow

def column(value: Any, width: int) -> str:
    """A value from the file as one column of a row: printable, and exactly `width` terminal cells
    wide (a Japanese name's characters take two; a row that does not fit wraps onto two lines),
    cut with an ellipsis that leaves at least one blank cell before the next column."""
    from rich.cells import cell_len, set_cell_size

    text = plain(value, 4 * width)
    if cell_len(text) >= width:
        text = set_cell_size(text, width - 2) + "…"
    return set_cell_size(text, width)


def plain(value: Any, limit: int = NAME_LIMIT) -> str:
    """A value read from the file, fit to show: printable and capped."""
    return clean(value, limit) if value is not None else ""


# Columns of the list's rows: at 80 columns a row has 74 (the body's padding, the list's border and
# padding); a wrapped row would draw as two. The last column holds the token's state, up to 18
# ("needs a new login", "valid 11 h 59 min").
HEADER = f"    {'Profile':<12}{'Kind':<9}{'Environment':<16}{'User':<17}Access token"
# The kind in a word, for the list (the details below it say it in full).
KIND_WORDS = {SERVICE_ACCOUNT: "service"}
KIND_NAMES = {SERVICE_ACCOUNT: "a service account (client credentials, no refresh token)"}
WATCH_EVERY = 2.0  # seconds between looks at the store for changes made outside the wizard
SHARED_WATCH_TICKS = 5  # a shared store has no cheap change stamp: read it again every 5th look


def _left(seconds: float) -> str:
    return "expired (renews)" if seconds < 0 else f"valid {duration(seconds)}"


def token_state(info: dict[str, Any], seconds_left: float | None) -> str:
    if info["problems"] and any(p.startswith("needs a new login") for p in info["problems"]):
        return "needs a new login"
    if info["kind"] == SERVICE_ACCOUNT:  # no refresh token by design: the access token is all there is
        if info["access_token"] == "(none)":
            return "none (on use)"
        return "unknown" if seconds_left is None else _left(seconds_left)
    if info["refresh_token"] == "(none)":
        return "no tokens"
    if seconds_left is None:
        return "unknown"
    return _left(seconds_left)


class Listing(NamedTuple):
    """The file as the list shows it, read by a worker: the document, each profile's status, the mode."""

    doc: Credentials
    infos: dict[str, dict[str, Any]]
    permissions: str | None
    access: str = ""  # who may read it, in words (Store.access_note)
    is_file: bool = True


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
    since this is the first screen whenever a file exists.

    Nothing here reads the file on the UI thread: the list is read by a worker (the actions
    wait for it, greyed out), and opening a profile, which may run a passphrase command and
    derive a key, is a worker with a busy line, while Esc and Ctrl+Q keep working.
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

    def __init__(self, error: str | None = None, selected: str | None = None, login: bool = False) -> None:
        """`login`: `procore-setup login`, which re-authorizes `selected` (or the default profile)
        once the file is read, or sets it up when the file does not hold it; the step it leads
        to takes the place of this screen."""
        super().__init__(error=error)
        self.selected = selected
        self.login = login
        self.doc: Credentials | None = None
        self.infos: dict[str, dict[str, Any]] = {}
        self._resumed = False
        self._reading = False
        self._clear_after_read = False
        self._opening = (RECONFIGURE, "")  # the mode and profile of the last open
        self._stamp: Any = None  # the file's (inode, size, mtime) when it was last read
        self._ticks = 0

    def compose_body(self) -> Iterable[Widget]:
        yield Static(f"Credentials file: {self.wizard.store.address.describe()}", id="file", classes="gap", markup=False)
        yield Static(HEADER, id="profiles-header", classes="dim", markup=False)
        if self.wizard.first_frame_drawn:
            from ..widgets.lists import ProfileList

            yield ProfileList(id="profiles", classes="gap")
        else:
            # The first screen: the list (an OptionList: it scrolls, and holds any number of
            # profiles) is mounted here once the first frame is drawn, as its rows are read. It would
            # be empty in that frame, and building and styling it was a fifth of the work before it.
            yield Static("", id="profiles-wait", classes="gap", markup=False)
        yield Static("", id="details", markup=False)

    def on_mount(self) -> None:
        # The first read starts once the first frame is drawn: its thread (tomllib, the store's
        # read, each profile's status) would otherwise compete with that frame for the
        # interpreter. Until it ends the list is empty and the actions are greyed out, as they
        # are while any read is on its way.
        self._reading = True
        self.wizard.after_first_frame(self._show_list)
        # A refresh by cron or a script, a revoke in another terminal: the list follows the store
        # rather than showing what it held when the wizard started.
        self.set_interval(WATCH_EVERY, self._watch)

    def _show_list(self) -> None:
        """Put the list in its place (the first frame is drawn) and read the file into it."""
        if not self.query("#profiles-wait"):  # not the first screen: the list was composed with it
            self.reload(keep_message=True)
            return
        from ..widgets.lists import ProfileList

        wait = self.query_one("#profiles-wait")
        listing = ProfileList(id="profiles", classes="gap", disabled=self.busy)
        self.query_one("#body").mount(listing, before=wait)
        wait.remove()
        if self.focused is None and not self.busy:
            listing.focus()
        self.reload(keep_message=True)

    def _watch(self) -> None:
        if not self.is_current or self.busy or self._reading:
            return
        self._ticks += 1
        self._probe()

    @work(thread=True, exit_on_error=False, group=BACKGROUND, name="probe")  # BACKGROUND: never unlocks a busy form
    def _probe(self) -> bool:
        """Whether the store changed since the list was read (off the UI thread: a stat, or for a
        shared store, every few looks, a read)."""
        store = self.wizard.store
        where = store.address.mode_path  # a file: its stat says; a shared store: a read now and then
        if where is None:
            return self._ticks % SHARED_WATCH_TICKS == 0
        return _stamp(where) != self._stamp

    def on_screen_resume(self) -> None:
        if self._resumed:
            self.reload(keep_message=True)  # back from a wizard that may have saved
        self._resumed = True  # the first resume is the first showing: on_mount has just started the read

    # -- the list -----------------------------------------------------------------------------------
    def reload(self, keep_message: bool = False, select: str | None = None) -> None:
        """Read the file again (in a worker) and list its profiles, keeping the highlighted one (or `select`)."""
        if select is not None:
            self.selected = select
        elif not self._reading:  # while a read is on its way, the list on screen is older than `selected`
            current = self._list().highlighted_option
            if current is not None and current.id:
                self.selected = current.id
        self._reading = True
        self._clear_after_read = self._clear_after_read or not keep_message
        self._read()

    # BACKGROUND: a read never locks the form, nor ends the busy state of an open beside it
    # (the list is read again when the unlock dialog closes, as the opening starts).
    @work(thread=True, exclusive=True, exit_on_error=False, group=BACKGROUND, name="read")
    def _read(self) -> Listing:
        store = self.wizard.store
        where = store.address.mode_path
        self._stamp = _stamp(where) if where is not None else None  # before the read: a change during it shows next time
        doc = read_profiles(store)
        infos = {name: profile_info(doc, prof) for name, prof in doc.profiles.items()}
        return Listing(doc, infos, readable_by(store.address), access_note(store.address),
                       store.address.mode_path is not None)

    def _listed(self, listing: Listing) -> None:
        """Show what the read worker found."""
        doc = listing.doc
        self.doc = doc
        self.infos = listing.infos
        from textual.widgets.option_list import Option

        listing_widget = self._list()
        listing_widget.clear_options()
        encrypted = ", secrets encrypted" if doc.encrypted else ""
        self.query_one("#file", Static).update(
            f"{'Credentials file' if listing.is_file else 'Store'}: {self.wizard.store.address.describe()} "
            f"({listing.access or 'mode ' + (listing.permissions or '?')}{encrypted})")
        now = datetime.fromtimestamp(self.wizard.clock(), timezone.utc)
        chosen = 0
        for i, (name, prof) in enumerate(doc.profiles.items()):
            info = self.infos[name]
            star = "★" if info["default"] else " "
            user = column(prof.user_name or prof.user_login or "-", 17)
            kind = KIND_WORDS.get(prof.kind, "person")  # two spaces after the longest: "service  custom"
            row = f"{star} {column(name, 12)}{kind:<9}{column(prof.environment, 16)}{user}" \
                  f"{token_state(info, prof.seconds_left(now))}"
            listing_widget.add_option(Option(Content(row), id=name))
            if name == self.selected:
                chosen = i
        if doc.profiles:
            listing_widget.highlighted = chosen  # in view once laid out: ProfileList.on_resize
            self._show_details(listing_widget.highlighted_option.id if listing_widget.highlighted_option else None)
        else:
            self.query_one("#details", Static).update("No profiles in this file yet: press a to add one.")
        self.refresh_bindings()  # the footer greys out what cannot be done now (check_action)

    def _unreadable(self, error: BaseException) -> None:
        self.doc = None
        self.infos = {}
        self._list().clear_options()
        self.query_one("#file", Static).update(f"Credentials file: {self.wizard.store.address.describe()}")
        self.query_one("#details", Static).update("")
        self.show_error("The file cannot be used: " + describe(error))
        self.refresh_bindings()

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
        kind = KIND_NAMES.get(info["kind"], "a person's login (with a refresh token)")
        lines = [
            f"{info['profile']}{default}: {kind}",
            f"{info['environment']}: login {info['login_url']} · API {info['api_url']}",
            f"client id {info['client_id']} · secret {info['client_secret']}",
        ]
        user = info["user"]
        who = f"user {plain(user['name'])} <{plain(user['login'])}>" if user else "user unknown"
        lines.append(f"{who} · company {self._company(info)}")
        if info["expires_at"] and info["kind"] == SERVICE_ACCOUNT:
            lines.append(f"access token expires {prof_expiry(info['expires_at'])} · l requests a new one "
                         "(or takes a rotated secret)")
        elif info["expires_at"]:
            refreshed = prof_expiry(info["last_refresh_at"]) if info["last_refresh_at"] else "never"
            lines.append(f"access token expires {prof_expiry(info['expires_at'])} · last refresh {refreshed}")
        lines += [f"⚠ {p}" for p in info["problems"]]
        self.query_one("#details", Static).update("\n".join(lines))

    @staticmethod
    def _company(info: dict[str, Any]) -> str:
        company = info["company"]
        return f"{plain(company['name'])} ({company['id']})" if company else "none"

    # (Handlers by name: a decorator would import OptionList with this module, before the first frame.)
    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "profiles":
            self._show_details(event.option.id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "profiles":
            self.action_reconfigure()

    def _current(self) -> str | None:
        if not self.query("#profiles"):
            return None  # not mounted yet: the first frame is not drawn
        option = self._list().highlighted_option
        return option.id if option is not None else None

    def _list(self) -> OptionList:
        return self.query_one("#profiles")  # type: ignore[return-value]  # a ProfileList, mounted after the first frame

    # -- actions ---------------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.call_next(self.app.action_quit)

    def action_add(self) -> None:
        if self.doc is not None and not self.busy:
            self.wizard.begin(ADD)

    def action_reconfigure(self) -> None:
        name = self._current()
        if name:
            self.open_profile(RECONFIGURE, name)

    def action_reauthorize(self) -> None:
        name = self._current()
        if name:
            self.open_profile(REAUTHORIZE, name)

    def open_profile(self, mode: str, name: str) -> None:
        """Reconfigure or re-authorize `name`: its secrets are opened in a worker, then its first step shows."""
        if self.busy:
            return
        doc = self.doc
        how = " (decrypting its secrets)" if doc is not None and doc.encrypted else ""
        self._opening = (mode, name)
        self.set_busy(f"Opening profile {name!r}{how}...")
        self._open(mode, name)

    @work(thread=True, exclusive=True, exit_on_error=False, name="open")
    def _open(self, mode: str, name: str) -> tuple[str, SetupFlow]:
        return mode, self.wizard.open_flow(name)

    def action_set_default(self) -> None:
        name = self._current()
        if not name or self.busy:
            return
        if self.infos[name]["default"]:
            self.show_notice(f"{name!r} is already the default profile.")
            return
        self._change("default", name)

    def action_remove(self) -> None:
        name = self._current()
        if not name or self.busy:
            return
        from ..widgets.dialogs import ConfirmDialog

        def answer(yes: bool | None) -> None:
            if yes:
                self._change("remove", name)

        self.app.push_screen(
            ConfirmDialog(
                f"Remove profile {name!r}?",
                f"Its client settings and tokens are deleted from {self.wizard.store.address.describe()}. The tokens are "
                f"not revoked at Procore (`{hints.command(self.wizard.store, 'revoke', '--profile', hints.shell_quote(name))}` does "
                "that first). Scripts "
                "and cron lines that use this profile will stop working.",
                yes="Remove", no="Keep it",
            ),
            answer,
        )

    def _change(self, what: str, name: str) -> None:
        self.set_busy("Removing..." if what == "remove" else "Setting the default profile...")
        self._write(what, name)

    @work(thread=True, exclusive=True, exit_on_error=False, name="write")
    def _write(self, what: str, name: str) -> str:
        store = self.wizard.store
        if what == "remove":
            remove_profile(store, name)
            return f"Removed profile {name!r}."
        set_default_profile(store, name)
        return f"{name!r} is now the default profile."

    # -- the end of the workers ----------------------------------------------------------------------
    def work_done(self, name: str, result: Any) -> None:
        if name == "probe":
            if result and self.is_current and not self.busy and not self._reading:
                self.reload(keep_message=True)
            return
        if name == "read":
            self._reading = False
            login = self._login_profile(result.doc) if self.login else None
            if login is not None:
                self.selected = login[1]
            self._listed(result)
            if self._clear_after_read:
                self._clear_after_read = False
                self.clear_message()
            if login is not None:
                self.open_profile(*login)
        elif name == "open":
            mode, flow = result
            first = self.login  # `login`: the step takes this screen's place, as if it were the first
            self.login = False
            self.wizard.begin(mode, flow, first=first)
        else:  # "write"
            self.show_notice(result)
            self.reload(keep_message=True)

    def work_failed(self, name: str, error: BaseException) -> None:
        if name == "probe":
            return  # only a look: the next one, or a reload, says what is wrong
        if name == "read":
            self._reading = False
            self._clear_after_read = False
            self.login = False  # nothing to re-authorize from a file that cannot be read: say why here
            self._unreadable(error)
        elif name == "open":
            if isinstance(error, PassphraseNeeded) and not self.login:
                self._ask_passphrase(*self._opening)  # no env, command or keyring opened it: ask here
            else:
                self.show_error(describe(error))
            self.login = False
        else:  # "write"
            self.show_error(describe(error))
            self.reload(keep_message=True)

    def _login_profile(self, doc: Credentials) -> tuple[str, str]:
        """What `procore-setup login` does with this file: re-authorize the profile it names
        (--profile, else the file's default) when the file holds it, else set that one up.
        With --service-account, a person's login of that name is set up again as a service
        account (its other settings prefilled), as `login --plain --service-account` does."""
        arg = self.wizard.profile_arg
        name = arg or doc.default_profile
        if name is not None and name in doc.profiles:
            if self.wizard.kind_given and doc.profiles[name].kind != SERVICE_ACCOUNT:
                return RECONFIGURE, name
            return REAUTHORIZE, name
        return NEW, arg or "default"

    def _ask_passphrase(self, mode: str, name: str) -> None:
        from ..widgets.unlock import UnlockDialog

        def unlocked(ok: bool | None) -> None:
            if ok:
                self.open_profile(mode, name)  # its key is known in this process now

        self.app.push_screen(UnlockDialog(self.wizard.store), unlocked)


def _stamp(path: str) -> tuple[int, int, int] | None:
    """What changes when the file is rewritten (every save renames a new file over it)."""
    import os

    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
