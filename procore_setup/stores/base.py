"""The one seam for storage: the Store protocol (what moves data) and StoreAddress (how a store
is named, for the edge to render).

Everything above it (refresh, the setup flow, status, the encryption commands, both
front-ends, the library) is written against `Store` and never asks what kind of store it
has; each store owns its own details, the way httpx's transports do. The registry and the
factory (`open_store`) are in `registry`; the credentials file (`stores.file.FileStore`) is
the embedded default. Standard library only, and no import of a store: the stores import this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ContextManager, NamedTuple, Protocol

if TYPE_CHECKING:
    from ..profile import Credentials

DEFAULT_LOCK_TIMEOUT = 60.0  # seconds a command waits for a store's lock ($PROCORE_SETUP_LOCK_TIMEOUT)


class StoreAddress(NamedTuple):
    """How a store is named, as one value the edge renders (messages, `status`, printed
    commands, the keyring and key cache): never what moves data. Made once, when the store is
    opened; it holds no secret (a URL's password is left out). Frozen: a NamedTuple rather than
    a frozen dataclass, because `dataclasses` (and `inspect`, which it imports) would cost
    `token` about 15 ms of imports.

    - `kind`: "file", "PostgreSQL", "Redis": how messages and `status --json` name the kind.
    - `option`: "config" (a credentials file's path) or "store" (a shared store's URL): how a
      command line (--config / --store), a script (`ProcoreAuth(config=/store=)`) and the
      environment (PROCORE_SETUP_CONFIG / PROCORE_SETUP_STORE) name it.
    - `where`: the path, or the URL without its password.
    - `flag_implied`: the commands a hint prints need no flag to reach it (the platform's default
      file; a store named by the environment, which the same environment still has).
    - `mode_path`: the file whose mode says who may read the store (read live: a chmod, or the
      encrypt command, changes it between two messages); None when `readers` says it.
    - `readers`: who may read a shared store, in words (its server's access control decides).
    - `password_sources`: None when the URL holds no password; else where a job may get the
      password the printed commands leave out, besides PROCORE_SETUP_STORE (PGPASSWORD...).
    - `networked`: reached over a connection, so a save can fail because a server is gone (and
      come back), rather than because a disk is full.
    """

    kind: str
    option: str
    where: str
    flag_implied: bool = False
    mode_path: str | None = None
    readers: str | None = None
    password_sources: tuple[str, ...] | None = None
    networked: bool = False

    def describe(self) -> str:
        """The store as messages and `status` name it: a path, or a URL without its password."""
        return self.where

    def locator(self) -> tuple[str, str]:
        """How a script names this store: ("config", PATH) or ("store", URL)."""
        return self.option, self.where

    def cli_flag(self, explicit: bool = False) -> str:
        """What a printed command needs to reach the store (" --config PATH", " --store URL" or "");
        always the flag with `explicit` (a cron job runs with another HOME and environment)."""
        from ..hints import shell_quote

        if self.flag_implied and not explicit:
            return ""
        return f" --{self.option} {shell_quote(self.where)}"

    def key_id(self) -> str:
        """What the OS keyring entry and the in-process key cache of this store are named by."""
        return self.where

    def password_note(self) -> str | None:
        """What to tell a person about the commands printed for this store, when its URL holds a
        password that they leave out; None when there is nothing to say."""
        if self.password_sources is None:
            return None
        others = f", or {' or '.join(self.password_sources)}" if self.password_sources else ""
        return ("(The store's password is left out of the commands above: give the jobs the whole URL in "
                f"PROCORE_SETUP_STORE{others}.)")


def readable_by(address: StoreAddress) -> str | None:
    """Who may read the store, for messages: a file's mode as 0600-style text (read now: a function,
    not a field of the address, because the mode changes under a running program), or the words
    of a shared store's address."""
    if address.mode_path is not None:
        from .. import filesystem as fs

        return fs.mode_text(address.mode_path)
    return address.readers


def file_mode(address: StoreAddress) -> str | None:
    """A file store's mode now (as readable_by), None for a store no file mode governs."""
    return readable_by(address) if address.mode_path is not None else None


def access_note(address: StoreAddress) -> str:
    """Who may read the store, in words for messages: "mode 0600", "Redis; readable by ..."."""
    if address.mode_path is not None:
        return f"mode {readable_by(address)}"
    return f"{address.kind}; readable by {address.readers}"


class Store(Protocol):
    """Where the document of profiles lives, and the guarantees the refresh relies on. Only what
    moves data; naming and wording are in `address`.

    - `load` reads and checks the document (never writes); `load_or_new` gives an empty one
      when there is none yet; `exists` says whether there is one, without reading it if it can
      (a file: a stat, for the wizard's first screen). Errors are the store-neutral ones of `errors` (NotConfigured,
      CredentialsFileError and its subclasses, LockTimeout).
    - `lock(timeout)` holds the store's exclusive lock (bounded wait, then LockTimeout).
    - `save(doc)` is atomic and versioned: it refuses (StoreConflict) to overwrite a store
      that no longer holds `doc.revision`, what `doc` was read as.
    - `restore(doc, revision)` puts back what the store held at an earlier `doc.revision`,
      unless the store changed since (then it leaves it and returns False).
    - `check_writable()` raises now if a save would be refused (before a login sends its code).
    - `save_last_resort(doc)`: when `save` keeps failing after Procore issued a pair, a write
      that may give up atomicity but keeps the pair (raises OSError or a store error if not);
      returns how it wrote, for the warning.
    - `durability_note()`: a sentence when the server may lose what it holds (None: nothing to
      say). A method, not part of the address: it is asked of the server, live.
    - `close()` lets go of connections; a store is a context manager that closes on exit.

    A store knows nothing of passphrases: this run's passphrase command belongs to the run
    (`settings.Unlock`, made by the edge), and opening secrets to `passphrase.open_secrets`.
    """

    @property
    def address(self) -> StoreAddress: ...

    # Whether a holder can lose the lock and go on (a dropped lock connection, a lease that ran
    # out): then an in-flight mark may belong to a live process (see refresh, store move).
    locks_can_be_lost: bool

    def exists(self) -> bool: ...
    def load(self) -> Credentials: ...
    def load_or_new(self) -> Credentials: ...
    def lock(self, timeout: float | None = None) -> ContextManager[None]: ...
    def save(self, doc: Credentials) -> None: ...
    def restore(self, doc: Credentials, revision: Any) -> bool: ...
    def check_writable(self) -> None: ...
    def save_last_resort(self, doc: Credentials) -> str: ...
    def durability_note(self) -> str | None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Store: ...
    def __exit__(self, *exc: object) -> None: ...


class ManagedStore(Store, Protocol):
    """A store as the registry makes it: the Store, plus what `store init` and `store move` ask
    of its kind. Each store class answers for itself: no caller asks which kind it has."""

    driver_name: str | None  # the driver module it imports when used (None: standard library only)

    def init(self) -> str:
        """`store init`: make what the store needs (a table), check this user may use it, and say so.
        A store that needs nothing raises UsageError saying so."""
        ...

    def schema_sql(self) -> str:
        """What `store init --print` prints for an owner to run (SQL, or a comment saying none is needed)."""
        ...

    def same_place(self, other: Store) -> bool:
        """Whether `other` is this very store spelt another way (a link to the same file; the same
        server, database and key prefix under another URL): a move onto it would wait on its own lock."""
        ...


class StoreCommon:
    """What every store does the same way: the context-manager protocol over its own `close`."""

    def durability_note(self) -> str | None:
        return None  # nothing to say unless the store's server may lose what it holds

    def close(self) -> None:
        """Let go of what the store holds open (nothing, unless a store says otherwise)."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
