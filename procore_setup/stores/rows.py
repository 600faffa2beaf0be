"""What the shared stores (PostgreSQL, Redis) have in common, written once.

A shared store keeps the document as rows: one per profile (its fields, unknown ones
included) and one for the document-level settings (the default profile, the encryption
table, any key the program does not know), all under ONE version number. The version is the
fence: every save is a compare-and-set against the version this run read, so a writer whose
lock is gone (its connection was killed, its lease ran out while it was stopped) can never
overwrite a newer pair; what it holds is then refused, and said so.

A subclass gives the primitives: `_read()` (one consistent snapshot), `_write()` (one atomic
compare-and-set), `_hold_lock()`, `_prepare_write()`, the connection handling, and the
wording of `_readers()`. Everything else (loading, the diff, the retries after a dropped
connection, the last-resort save of a pair Procore has just issued) is here.

Standard library only at module level: the drivers are imported by the subclasses, and only
when their store is used.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import threading
import time
from datetime import date, datetime, time as dtime
from typing import Any, Callable, Iterator, NamedTuple, TypeVar
from urllib.parse import urlsplit

from ..errors import (LockTimeout, NewerTokensInStore, StoreChanged, StoreConflict, StoreEmpty, StoreRefused,
                      StoreUnavailable)
from ..hints import add_command
from ..profile import SCHEMA_VERSION, SECRET_FIELDS, Credentials, check_document
from .base import StoreAddress, StoreCommon

STORE_SCHEMA = 1  # the layout of the rows; a store written by a newer layout is refused
MAX_DOCUMENT_BYTES = 1 << 20  # as for the file: a store holds a few KB; anything this big is not ours
MAX_ROWS = 10000
# The versions this program writes: 1, 2, 3... A document row holding anything else (negative,
# zero, absurd, not a number) was written by someone else or restored badly: refused before
# anything is sent, since a refresh's saves rest on it.
MAX_VERSION = (1 << 62) - 1
# Reconnect-and-save after a dropped connection: bounded, about 10 s in all for a save, and
# about 30 s more for a pair Procore has just issued (a server restart takes a few seconds).
SAVE_RETRY_DELAYS = (0.0, 0.2, 0.5, 1.0, 2.0, 3.0, 3.0)
LAST_RESORT_SECONDS = 30.0
# A secret shorter than this is masked in a driver's text only as a whole word (see scrub).
MIN_SCRUB_WORD = 8


class Revision(NamedTuple):
    """What the store held when a document was read: its version (0: nothing yet), the settings
    row (None: none yet) and each profile's fields, as decoded values. `version_text`: a version
    this program never writes, as the store holds it (only from the lenient read of
    save_last_resort, whose save must match exactly that text); None otherwise. It travels with
    the revision, never as the store's state, so another thread's read cannot change what a save
    compares against."""

    version: int
    settings: dict[str, Any] | None
    profiles: dict[str, dict[str, Any]]
    version_text: str | None = None


EMPTY = Revision(0, None, {})


# -- values: TOML's types in JSON ---------------------------------------------------

def encode(value: Any) -> str:
    """JSON text for a row's value; datetimes and non-finite floats, which JSON lacks, tagged."""
    return json.dumps(_tag(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True)


def decode(text: str) -> Any:
    """The value of a row; ValueError for text that is no JSON, or nested too deep to read (json
    recurses: a store can hold thousands of `[`)."""
    try:
        return json.loads(text, object_hook=_untag)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def version_of(text: Any) -> int | None:
    """A document row's version as this program writes it (1..MAX_VERSION), or None for anything
    else: -1, 0, '²', 5000 digits, 1.5. Never converts an unbounded text (int() of 5000 digits
    raises, of a million is slow)."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text if 1 <= text <= MAX_VERSION else None
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if not isinstance(text, str) or not (0 < len(text) <= 19) or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if 1 <= value <= MAX_VERSION and str(value) == text else None


def _tag(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _tag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, dtime):
        return {"$time": value.isoformat()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    return value


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        (key, value), = obj.items()
        if isinstance(value, str):
            try:
                if key == "$datetime":
                    return datetime.fromisoformat(value)
                if key == "$date":
                    return date.fromisoformat(value)
                if key == "$time":
                    return dtime.fromisoformat(value)
                if key == "$float":
                    return float(value)
            except ValueError:
                return obj  # not ours: kept as it is, and the field checks say what is wrong
    return obj


def rows_of(doc: Credentials) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(settings, profiles) as the store keeps them, secrets encrypted if the document is."""
    raw = doc.to_toml_dict()
    profiles = raw.pop("profiles")
    return raw, profiles


# -- URLs ---------------------------------------------------------------------------
#
# libpq and Python's urlsplit cut a URL differently: libpq takes everything up to the first `@`
# (before any `/`) as USER:PASSWORD, even a `?` or `#`; urlsplit ends the host part at `?` or `#`.
# `postgresql://app:?SecretPW9@host/db` is then a password to libpq and a query to urlsplit, and
# whatever shows "the URL without its password" shows the password. So a URL that the two would
# read differently is refused before anything uses it (see _check_url), and every other one is
# cut here once, the way both read it: what is shown, stored in a tombstone or printed in a
# command is built from those pieces.

# Any parameter whose name holds one of these is a secret (password=, sslpassword= for a key's
# passphrase): never shown, never stored, never printed.
_SECRET_PARAMETER_WORDS = ("password", "passwd", "secret")


class URLParts(NamedTuple):
    """A store URL in the pieces both libpq and urlsplit read alike (_check_url vouches for that).
    Raw text, as written (percent-encoding kept): `userinfo` (None: no `@`), `hostport`, `path`
    (with its leading `/`, or ''), `query` (without `?`, or '')."""

    scheme: str
    userinfo: str | None
    hostport: str
    path: str
    query: str


def split_url(url: str) -> URLParts:
    """The pieces of a store URL as libpq reads it (ValueError for one that has no `scheme://`)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise ValueError("no scheme")
    head, slash, tail = rest.partition("/")
    userinfo: str | None = None
    if "@" in head:  # libpq: the user info ends at the first `@` before any `/`
        userinfo, head = head.split("@", 1)
    # what follows the host: libpq ends it at `/` or `?`
    hostport, qmark, after = head.partition("?")
    if qmark:
        return URLParts(scheme, userinfo, hostport, "", after + (slash + tail if slash else ""))
    path, _, query = (slash + tail).partition("?")
    return URLParts(scheme, userinfo, hostport, path, query)


def is_secret_parameter(name: str) -> bool:
    """Whether a URL parameter (its name as written, percent-encoded or not) holds a secret."""
    from urllib.parse import unquote_plus

    low = unquote_plus(name).lower()
    return any(word in low for word in _SECRET_PARAMETER_WORDS)


def without_password(url: str) -> str:
    """The URL with its secrets left out (the password of the user info, and every parameter that
    holds one: password=, sslpassword=), for every message, `status`, a printed command, a
    tombstone and a repr: what a person may see of the store. `postgresql:///db?host=/run/x`
    keeps its `//`, so that a command printed with it runs as printed."""
    try:
        parts = split_url(url)
    except ValueError:
        return "(a store URL that does not parse)"
    netloc = parts.hostport
    if parts.userinfo is not None:
        user = parts.userinfo.split(":", 1)[0]
        netloc = f"{user}@{netloc}" if user else netloc
    query = parts.query
    if query:
        # Each parameter as it was written (re-encoding would show ?prefix=a%3A for ?prefix=a:),
        # but any secret parameter left out, however its name is spelt.
        query = "&".join(p for p in query.split("&") if p and not is_secret_parameter(p.split("=", 1)[0]))
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def url_secrets(url: str) -> list[str]:
    """The secrets a URL holds (its password, each secret parameter's value), as written and
    decoded, longest first: what `scrub` keeps out of any text a driver or server hands back."""
    from urllib.parse import unquote, unquote_plus

    found = []
    with contextlib.suppress(ValueError):
        parts = split_url(url)
        if parts.userinfo is not None and ":" in parts.userinfo:
            password = parts.userinfo.split(":", 1)[1]
            found += [password, unquote(password)]
        for p in parts.query.split("&"):
            name, _, value = p.partition("=")
            if value and is_secret_parameter(name):
                found += [value, unquote_plus(value)]
    return sorted({s for s in found if s}, key=len, reverse=True)


def url_texts(url: str) -> list[str]:
    """The pieces of a URL's own text that hold a secret (the whole URL, its user info, each
    secret parameter), longest first: where a driver's message could echo the password."""
    texts = [url]
    with contextlib.suppress(ValueError):
        parts = split_url(url)
        if parts.userinfo is not None and ":" in parts.userinfo:
            texts += [f"{parts.userinfo}@{parts.hostport}", parts.userinfo]
        texts += [p for p in parts.query.split("&") if "=" in p and is_secret_parameter(p.split("=", 1)[0])]
    return sorted({t for t in texts if t}, key=len, reverse=True)


def _loopback(host: str | None) -> bool:
    """Whether a host (as a URL or libpq names it) is this machine: a Unix socket, or what
    checks.is_loopback says is this machine. Anything else goes over a network, where TLS matters."""
    if not host or host.startswith(("/", "@")):
        return True  # no host: the default Unix socket (libpq), or localhost (redis-py)
    from ..checks import is_loopback

    return is_loopback(host)


_warned: set[str] = set()


def tls_warning(text: str) -> None:
    """A warning on stderr, once per run, about a connection to a store that a network could read.
    Through logging (as oauth's warnings), so a library's user can route it: the stores print nothing."""
    if text in _warned:
        return
    _warned.add(text)
    import logging

    logging.getLogger("procore_setup.stores").warning("procore-setup: warning: %s", text)


def check_driver(module: str, kind: str, extra: str) -> None:
    """Say now (exit 2) if a store's driver is missing, without importing it (that is what costs:
    the fast path reads without it)."""
    from importlib.util import find_spec

    from ..errors import UsageError

    try:
        found = find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        message, hint = _no_driver(module, kind, extra)
        raise UsageError(message, hint=hint)


def import_driver(module: str, kind: str, extra: str) -> Any:
    """The driver module, imported the first time more than the fast path's read is needed."""
    import importlib

    from ..errors import UsageError

    try:
        return importlib.import_module(module)
    except ImportError:
        message, hint = _no_driver(module, kind, extra)
        raise UsageError(message, hint=hint) from None


def _no_driver(module: str, kind: str, extra: str) -> tuple[str, str]:
    return (f"The {kind} store needs the {module} driver, which is not installed.",
            f"Install it with: pip install 'procore-setup[{extra}]'")


def host_addresses(host: str, port: int) -> frozenset[str]:
    """What a host name resolves to (a Unix socket directory: itself), so that two names of one
    server compare equal; the name itself when it does not resolve."""
    import os

    if host.startswith("/"):
        return frozenset({"unix:" + os.path.realpath(host)})
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return frozenset({host.lower()})
    return frozenset(str(info[4][0]) for info in infos) or frozenset({host.lower()})


def _check_url(url: str) -> None:
    """Refuse (exit 2) a URL that libpq (or redis-py) and this module would read differently,
    before either uses it: its password could otherwise be taken for a host, a query or a
    database name, and end up in a message, a printed command or a tombstone. Never echoes it."""
    from ..errors import UsageError

    scheme = url.split("://", 1)[0]
    hint = (f"Use {scheme}://USER:PASSWORD@HOST:PORT/DATABASE, with any @, :, /, ? or # inside the user or "
            "password percent-encoded (@ is %40, ? is %3F, # is %23, / is %2F), or give the password through "
            "the environment.")
    not_shown = "(it is not shown: it may hold a password)"
    try:
        parts = urlsplit(url)
        mine = split_url(url)
    except ValueError:
        raise UsageError(f"The {scheme}:// store URL does not parse {not_shown}.", hint=hint) from None
    head = url.split("://", 1)[1].split("/", 1)[0]  # libpq's user info and host: up to the first `/`
    if head.count("@") > 1 or parts.netloc.count("@") > 1:
        raise UsageError(f"The {scheme}:// store URL has more than one @ before its host, so where its password "
                         f"ends is unclear {not_shown}.", hint=hint)
    if "#" in url or (mine.userinfo is not None and "?" in mine.userinfo):
        # libpq reads a `?` or `#` before the `@` as part of the password; urlsplit and redis-py end
        # the host part there (and take `#...` for a fragment anywhere)
        raise UsageError(f"The {scheme}:// store URL has an unencoded " + ("#" if "#" in url else "? before its @")
                         + f", which libpq and redis-py read differently, so where its password ends is unclear "
                         f"{not_shown}.", hint=hint)
    if "@" in mine.path:
        raise UsageError(f"The {scheme}:// store URL has an @ after a /, so what is its password and what its "
                         f"host or database is unclear {not_shown}.", hint=hint)
    # Both must agree on the host part and the user info: what is shown is then what is used.
    netloc = (f"{mine.userinfo}@" if mine.userinfo is not None else "") + mine.hostport
    if parts.netloc != netloc:
        raise UsageError(f"The {scheme}:// store URL is read differently by libpq and by procore-setup, so it "
                         f"could show its password {not_shown}.", hint=hint)
    # each HOST[:PORT] (libpq takes several, comma-separated): a port is a number
    for entry in mine.hostport.split(","):
        if entry.startswith("["):  # [IPv6]:PORT
            after = entry.partition("]")[2] if "]" in entry else "x"
            port = after[1:] if after.startswith(":") else ("x" if after else "")
        else:
            port = entry.rsplit(":", 1)[1] if entry.count(":") == 1 else ""
        if port and not (port.isascii() and port.isdigit() and len(port) <= 5):
            raise UsageError(f"The {scheme}:// store URL does not parse {not_shown}.", hint=hint)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def guarded(method: _Method) -> _Method:
    """A store method that uses the data connection: one thread at a time (a `ProcoreAuth` shared
    by a script's threads), so that no thread makes a second connection over another's, or drops
    the one another thread is reading from."""

    @functools.wraps(method)
    def run(self: SharedStore, *args: Any, **kwargs: Any) -> Any:
        with self._guard:
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


class SharedStore(StoreCommon):
    """A store on a server that several hosts share. Subclasses: PostgresStore, RedisStore."""

    kind = "shared"  # "PostgreSQL", "Redis": how messages (and the address) name the kind of store
    # Where a job may get the password that printed commands leave out, besides the URL in
    # $PROCORE_SETUP_STORE (see StoreAddress.password_sources)
    password_sources: tuple[str, ...] = ()
    # A holder can lose the lock and go on (a dropped lock connection, a lease that ran out): so an
    # in-flight mark may belong to a live process, whose answer can still land (see refresh).
    locks_can_be_lost = True
    # The driver: checked when the store is opened, imported only when more than the fast path's
    # read is needed (see `driver`). Subclasses name it.
    driver_name = ""
    driver_extra = ""

    def __init__(self, url: str, *, lock_timeout: float = 60.0, named_by_env: bool = False) -> None:
        _check_url(url)
        self._url = url  # may hold the password: never shown, never in a repr
        self.url = without_password(url)
        self._secrets = url_secrets(url)
        self._url_texts = url_texts(url)
        self.lock_timeout = lock_timeout
        self._named_by_env = named_by_env
        check_driver(self.driver_name, self.kind, self.driver_extra)
        self._driver: Any = None
        self._lenient_version = False  # only save_last_resort reads a version this program did not write
        # The data connection is one thread's at a time (see `guarded`); reentrant, as the store's
        # methods call each other. The locks held now, each told when close() is called (see `_held`).
        self._guard = threading.RLock()
        self._held_locks: list[tuple[threading.Event, int, Callable[[], None]]] = []

    @property
    def driver(self) -> Any:
        """The driver module (psycopg, redis), imported the first time it is needed."""
        if self._driver is None:
            self._driver = import_driver(self.driver_name, self.kind, self.driver_extra)
        return self._driver

    def server_identity(self) -> tuple[str, ...]:
        """What names this store on its server, however the URL spells it (asked of the server)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- naming ------------------------------------------------------------------
    @functools.cached_property
    def address(self) -> StoreAddress:
        """` --store URL` in printed commands (without its password: libpq's PGPASSWORD or
        ~/.pgpass, or the URL in $PROCORE_SETUP_STORE, gives it) unless the store came from
        $PROCORE_SETUP_STORE, which the same environment still has."""
        return StoreAddress(kind=self.kind, option="store", where=self.url, flag_implied=self._named_by_env,
                            readers=self._readers(),
                            password_sources=self.password_sources if self._secrets else None, networked=True)

    def describe(self) -> str:
        """The URL without its password, for this store's own messages (the edge uses `address`)."""
        return self.url

    def _readers(self) -> str:
        """Who can read the store: the server's own access control decides, not a file mode."""
        raise NotImplementedError

    # -- what `store init` and `store move` ask of a store's kind ----------------------------
    def init(self) -> str:
        raise NotImplementedError

    def schema_sql(self) -> str:
        raise NotImplementedError

    def url_identity(self) -> tuple[frozenset[str], tuple[Any, ...]] | None:
        """(the host's addresses, what else names the store: port, database, prefix) as the URL
        spells it, normalised (None: the URL does not say)."""
        raise NotImplementedError

    def same_place(self, other: object) -> bool:
        """The same server, database and key prefix however the URL spells them (postgres:// or
        postgresql://, localhost or 127.0.0.1, a default port left out); spelt so that the URL
        cannot tell (a Unix socket and TCP, hostaddr=, a host given twice, Redis's /00), the
        servers are asked. A server that cannot be asked is not the same: the move then says why."""
        if type(other) is not type(self):
            return False
        assert isinstance(other, SharedStore)
        if self.url == other.url:
            return True
        mine, theirs = self.url_identity(), other.url_identity()
        if mine is not None and theirs is not None and mine[1] == theirs[1] and bool(mine[0] & theirs[0]):
            return True
        from ..errors import ProcoreSetupError

        try:
            return self.server_identity() == other.server_identity()
        except ProcoreSetupError:
            return False

    def scrub(self, text: str) -> str:
        """Text from the driver or the server, printable, capped, and without the store's secrets.

        Only where a secret can appear is it masked: the URL's own text (the URL, its user info,
        a password= parameter), and a long secret as a whole word. A short password is never
        masked inside ordinary words: "us****rnam****" would spell it out."""
        from ..text import clean

        for piece in self._url_texts:
            text = text.replace(piece, without_password(piece) if "://" in piece else "****")
        for secret in self._secrets:
            if len(secret) >= MIN_SCRUB_WORD:
                text = text.replace(secret, "****")
            elif secret in text:
                import re

                text = re.sub(r"(?<![\w.-])" + re.escape(secret) + r"(?![\w.-])", "****", text)
        return clean(text, 300)

    # -- primitives a subclass gives ------------------------------------------------
    def _read(self) -> Revision:
        """One consistent snapshot of the rows (EMPTY when there are none, or no schema yet)."""
        raise NotImplementedError

    def _write(self, expect: int, new: int, settings: dict[str, Any], upserts: dict[str, dict[str, Any]],
               deletes: list[str], *, create: bool, expect_text: str | None = None) -> bool:
        """Atomically: if the version is still `expect`, write the rows and set it to `new` (True);
        else change nothing (False). `create`: there was no document row (insert it, if there is
        still none). `expect_text`: the Revision's version_text, for a store that keeps versions
        as text (a foreign one is matched as written). Raises StoreUnavailable if the connection
        is lost."""
        raise NotImplementedError

    def _hold_lock(self, timeout: float) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def _prepare_write(self) -> None:
        """Before the first write: make the schema if there is none and the role may (else say what
        to run), and check that this role may write."""
        raise NotImplementedError

    def _drop_connection(self) -> None:
        """Forget the data connection, so that the next call makes a new one."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the data connection, and tell each lock held now that its store is closed: a Redis
        lease is no longer renewed, so a holder that never ends its block loses the lock when the
        lease runs out (the version fence then refuses what it still saves). A lock held by the
        thread that calls this ends now, with its connection (that thread is here, not in a command
        on it); one that another thread holds or waits for is never cut under that thread
        mid-command: its block ends it when it ends. Other threads that use the store meanwhile
        connect again, as a store used after this does. Idempotent."""
        me = threading.get_ident()
        with self._guard:
            held, self._held_locks = self._held_locks, []
            self._drop_connection()
        for ended, owner, end_now in held:
            ended.set()
            if owner == me:
                with contextlib.suppress(Exception):
                    end_now()

    @contextlib.contextmanager
    def _held(self, end_now: Callable[[], None]) -> Iterator[threading.Event]:
        """While a lock is held by this thread: an event set when the block ends, or when close() is
        called first (a lease's renewal stops on it); `end_now` ends the lock's connection, which
        close() calls only when it is called from this thread (inside the block)."""
        ended = threading.Event()
        entry = (ended, threading.get_ident(), end_now)
        with self._guard:
            self._held_locks.append(entry)
        try:
            yield ended
        finally:
            ended.set()
            with self._guard:
                with contextlib.suppress(ValueError):
                    self._held_locks.remove(entry)

    # -- reading -------------------------------------------------------------------
    def exists(self) -> bool:
        rev = self._read()
        return rev.settings is not None or bool(rev.profiles)

    def load(self) -> Credentials:
        rev = self._read()
        if rev.settings is None and not rev.profiles:
            # the note: why it may be empty (a server that keeps nothing across a restart)
            raise StoreEmpty(kind=self.kind, store=self.url, command=add_command(self), note=self.durability_note())
        return self._document(rev)

    def load_or_new(self) -> Credentials:
        rev = self._read()
        if rev.settings is None and not rev.profiles:
            return Credentials(store=self, revision=rev)
        return self._document(rev)

    def _document(self, rev: Revision) -> Credentials:
        raw: dict[str, Any] = copy.deepcopy(rev.settings) if rev.settings is not None else \
            {"schema_version": SCHEMA_VERSION}
        raw["profiles"] = copy.deepcopy(rev.profiles)
        check_document(raw, self)
        return Credentials(raw, store=self, revision=rev)

    # -- locking -------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the store's exclusive lock (across hosts), waiting at most `timeout` seconds."""
        with self._hold_lock(self.lock_timeout if timeout is None else timeout):
            yield

    def _bad_version(self, shown_value: str, fix: str) -> StoreRefused:
        """A document row whose version this program never writes: exit 6, before anything is sent."""
        from ..checks import shown

        return StoreRefused(
            f"The {self.kind} store {self.url} holds version {shown(shown_value, 24)} in its document row, which "
            "procore-setup never writes (versions count up from 1): another client wrote it, or a backup was "
            "restored badly. Nothing was sent to Procore, and nothing was changed.",
            hint=f"If the store's profiles are right, set the version to a positive number larger than any it held: {fix}",
        )

    def _lock_timeout(self, timeout: float) -> LockTimeout:
        return LockTimeout(
            f"Another procore-setup process (on this host or another) has held the lock of the {self.kind} "
            f"store {self.url} for more than {timeout:g} s.",
            hint="It may be hung on the network; try again later. Nothing was changed.",
        )

    # -- writing -------------------------------------------------------------------
    def check_writable(self) -> None:
        """Raise now if a save would be refused (before a login sends its single-use code)."""
        self._prepare_write()
        self.load_or_new()

    def save(self, doc: Credentials) -> None:
        """Write what changed, as one compare-and-set against the version `doc` was read at."""
        settings, profiles = rows_of(doc)
        doc.revision = self._commit(self._revision(doc), settings, profiles)

    def restore(self, doc: Credentials, revision: Any) -> bool:
        """Put back the rows of `revision`, unless the store changed since `doc` was last saved."""
        if not isinstance(revision, Revision):
            return False
        try:
            settings = revision.settings if revision.settings is not None else {"schema_version": SCHEMA_VERSION}
            doc.revision = self._commit(self._revision(doc), settings, revision.profiles)
        except StoreConflict:
            return False
        return True

    def _revision(self, doc: Credentials) -> Revision:
        rev = doc.revision
        return rev if isinstance(rev, Revision) else EMPTY

    def _commit(self, base: Revision, settings: dict[str, Any], profiles: dict[str, dict[str, Any]],
                floor: int = 0) -> Revision:
        """Write (settings, profiles) over `base` as one compare-and-set. The new version is above
        `base`'s and `floor`; whether the document row is inserted or updated depends on whether
        `base` had one, never on its version's value (a foreign -1 must not turn an update into a
        first insert that fails, see save_last_resort)."""
        if base.settings == settings and base.profiles == profiles:
            return base  # nothing changed: no write, no new version
        self._check_size(settings, profiles)
        upserts = {name: fields for name, fields in profiles.items() if base.profiles.get(name) != fields}
        deletes = [name for name in base.profiles if name not in profiles]
        wanted = Revision(min(max(base.version, floor, 0) + 1, MAX_VERSION), settings, profiles)
        if base.settings is None or base.version == 0:
            self._prepare_write()
        lost: StoreUnavailable | None = None
        for delay in SAVE_RETRY_DELAYS:
            time.sleep(delay)
            try:
                if self._write(base.version, wanted.version, settings, upserts, deletes,
                               create=base.settings is None, expect_text=base.version_text):
                    return wanted
            except StoreUnavailable as exc:  # the connection dropped: a new one, and again
                lost = exc
                self._drop_connection()
                continue
            if lost is not None and self._read() == wanted:
                return wanted  # the write before the drop had committed: its answer was what got lost
            raise StoreChanged(kind=self.kind, store=self.url)  # a lost lock, not a store that cannot be used: exit 5
        assert lost is not None
        raise lost

    def _check_size(self, settings: dict[str, Any], profiles: dict[str, dict[str, Any]]) -> None:
        from ..errors import FileTooBig

        size = len(encode(settings)) + sum(len(encode(f)) + len(n) for n, f in profiles.items())
        if size > MAX_DOCUMENT_BYTES or len(profiles) >= MAX_ROWS:
            raise FileTooBig(
                f"Not saved: the {self.kind} store {self.url} would hold {size} bytes in {len(profiles)} profiles, "
                "more than procore-setup reads back.",
                hint="The store was left as it was. Remove profiles or fields nobody uses, then try again.",
            )

    def save_last_resort(self, doc: Credentials) -> str:
        """For a pair Procore has just issued, when `save` failed: keep trying for a while (a
        server restarting, a connection that comes back), and write it over what the store holds
        now, but only if no newer pair reached the store meanwhile (the fence). Raises if not."""
        deadline = time.monotonic() + LAST_RESORT_SECONDS
        delay = 0.5
        settings, profiles = rows_of(doc)
        mine = self._revision(doc)
        while True:
            try:
                # Procore has answered: a version this program did not write (a foreign -1) must not
                # cost the pair. It is read as it is, and the pair's save goes above it and ours.
                with self._guard:  # lenient for this read only, not another thread's
                    self._lenient_version = True
                    try:
                        current = self._read()
                    finally:
                        self._lenient_version = False
                merged = dict(current.profiles)
                moved = (current.settings or {}).get("moved")
                for name, fields in profiles.items():
                    if mine.profiles.get(name) == fields:
                        continue  # this run did not change it: whatever is there now stays
                    if isinstance(moved, dict) and name in moved:
                        to = moved[name].get("to") if isinstance(moved[name], dict) else None
                        raise NewerTokensInStore(
                            f"Profile {name!r} was moved from the {self.kind} store {self.url} to "
                            f"{self.scrub(str(to or 'another store'))} while this run refreshed it, so this run's "
                            "tokens were not written back here (that would make two live copies).",
                            hint="The move took the chain as it was when this run's refresh began: if the new store's "
                            "copy is refused, log in again there.",
                        )
                    now = current.profiles.get(name)
                    # A profile that vanished (a Redis restarted without persistence) holds no newer
                    # pair: this one is the only live copy, so it is written back.
                    if now is not None and now != mine.profiles.get(name) and self._chain(doc, name, now) != \
                            self._chain(doc, name, mine.profiles.get(name)):
                        raise NewerTokensInStore(
                            f"The {self.kind} store {self.url} already holds newer tokens for profile {name!r} than "
                            "the ones this run read (another host refreshed it after this one lost its lock), so "
                            "this run's tokens were not written over them.",
                            hint="Nothing is lost: the store's tokens are the live ones. Run the command again.",
                        )
                    merged[name] = fields
                keep = settings if current.version == mine.version else (current.settings or settings)
                doc.revision = self._commit(current, keep, merged, floor=mine.version)
                if current.version == mine.version:
                    return f"to {self.url} after the connection came back"
                # Someone wrote after this run read (it had lost its lock), but not a newer pair:
                # what it wrote (a refusal on the spent token, say) is what this pair replaces.
                return (f"to {self.url} over what another process wrote there after this run had lost its lock "
                        "(it held no newer tokens)")
            except StoreUnavailable:
                if time.monotonic() + delay > deadline:
                    raise
                self._drop_connection()
                time.sleep(delay)
                delay = min(delay * 2, 4.0)

    @staticmethod
    def _chain(doc: Credentials, name: str, fields: dict[str, Any] | None) -> tuple[Any, ...]:
        """A profile's token chain, as plain values (ciphertexts differ on every save)."""
        if fields is None:
            return (None, None)
        out = []
        for field in ("refresh_token", "access_token"):
            value = fields.get(field)
            if value is not None and doc.cipher is not None and field in SECRET_FIELDS:
                with contextlib.suppress(Exception):
                    value = doc.cipher.decrypt(value, f"{name}/{field}", path=doc.where)
            out.append(value)
        return tuple(out)
