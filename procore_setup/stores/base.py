"""The one seam for storage: the Store protocol, and the factory that opens the store of a run.

Everything above it (refresh, the setup flow, status, the encryption commands, both
front-ends, the library) is written against `Store` and never asks what kind of store it
has; each store owns its own details, the way httpx's transports do. The credentials file
(`stores.file.FileStore`) is the embedded default.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, ContextManager, Iterator, Mapping, Protocol

from ..errors import UsageError, env_seconds

from ..profile import SECRET_FIELDS, not_ciphertext, profile_problem

if TYPE_CHECKING:
    from ..profile import Credentials

CONFIG_ENV = "PROCORE_SETUP_CONFIG"
PASSPHRASE_COMMAND_ENV = "PROCORE_SETUP_PASSPHRASE_COMMAND"
LOCK_TIMEOUT_ENV = "PROCORE_SETUP_LOCK_TIMEOUT"


class Store(Protocol):
    """Where the document of profiles lives, and the guarantees the refresh relies on.

    - `load` reads and checks the document (never writes); `load_or_new` gives an empty one
      when there is none yet. Errors are the store-neutral ones of `errors` (NotConfigured,
      CredentialsFileError and its subclasses, LockTimeout).
    - `lock(timeout)` holds the store's exclusive lock (bounded wait, then LockTimeout);
      `transaction` is lock, read again, change, save.
    - `save(doc)` is atomic and versioned: it refuses (StoreConflict) to overwrite a store
      that no longer holds `doc.revision`, what `doc` was read as.
    - `restore(doc, revision)` puts back what the store held at an earlier `doc.revision`,
      unless the store changed since (then it leaves it and returns False).
    - `check_writable()` raises now if a save would be refused (before a login sends its code).
    - `save_last_resort(doc)`: when `save` keeps failing after Procore issued a pair, a write
      that may give up atomicity but keeps the pair (raises OSError or a store error if not);
      returns how it wrote, for the warning.
    - `describe()` names the store in messages and `status` (a path; a URL without its
      password); `locator()` is how scripts name it (("config", PATH): --config, config=);
      `cli_flag()` is what a printed command needs to reach it (" --config PATH", or "");
      `permissions()` says who may read it (a file's mode), `access_note()` the same in words for
      messages ("mode 0600", "readable by ..."); `key_id()` names its keyring entry and key cache.
    """

    passphrase_command: str | None
    kind: str  # "file", "PostgreSQL", "Redis": how messages and `status --json` name the kind of store
    # Whether a holder can lose the lock and go on (a dropped lock connection, a lease that ran
    # out): then an in-flight mark may belong to a live process (see refresh, store move).
    locks_can_be_lost: bool

    def describe(self) -> str: ...
    def durability_note(self) -> str | None: ...
    def password_note(self) -> str | None: ...
    def locator(self) -> tuple[str, str]: ...
    def cli_flag(self, explicit: bool = False) -> str: ...
    def permissions(self) -> str | None: ...
    def access_note(self) -> str: ...
    def key_id(self) -> str: ...
    def exists(self) -> bool: ...
    def load(self) -> Credentials: ...
    def load_or_new(self) -> Credentials: ...
    def open_secrets(self, doc: Credentials, *, interactive: bool = False, passphrase_command: str | None = None,
                     cipher: Any = None, strict: bool = False) -> None: ...
    def lock(self, timeout: float | None = None) -> ContextManager[None]: ...
    def transaction(self, *, timeout: float | None = None, create: bool = False, secrets: bool = True,
                    interactive: bool = False) -> ContextManager[Credentials]: ...
    def save(self, doc: Credentials) -> None: ...
    def restore(self, doc: Credentials, revision: Any) -> bool: ...
    def check_writable(self) -> None: ...
    def save_last_resort(self, doc: Credentials) -> str: ...




class StoreCommon:
    """What every store does the same way on top of its own load, lock and save."""

    passphrase_command: str | None

    def exists(self) -> bool:
        raise NotImplementedError  # each store has its own

    def load(self) -> Credentials:
        raise NotImplementedError  # each store has its own

    def load_or_new(self) -> Credentials:
        raise NotImplementedError  # each store has its own

    def lock(self, timeout: float | None = None) -> ContextManager[None]:
        raise NotImplementedError  # each store has its own

    def save(self, doc: Credentials) -> None:
        raise NotImplementedError  # each store has its own


    def open_secrets(self, doc: Credentials, *, interactive: bool = False, passphrase_command: str | None = None,
                     cipher: Any = None, strict: bool = False) -> None:
        """Decrypt the secrets of an encrypted document in place (no-op for a plain one, or one
        opened already). `cipher`, when given, is the document's (checked by the caller).

        A secret that is no ciphertext of ours (plain text, an unknown `enc:v2:`) is left as it
        is and makes its profile unusable (see Credentials.get), not the whole file; with
        `strict` (decrypting or re-encrypting the whole file) it is an error at once. Profiles
        handed out by get() already are checked here, once their secrets are plain.
        """
        if not doc.encrypted or doc.cipher is not None:
            return
        from .. import crypto
        from ..passphrase import cipher_for

        doc.cipher = cipher or cipher_for(doc, interactive=interactive,
                                                 passphrase_command=passphrase_command or self.passphrase_command)
        for name, prof in doc.profiles.items():
            for field in SECRET_FIELDS:
                value = prof.data.get(field)
                if value is None:
                    continue
                if crypto.is_encrypted_value(value):
                    prof.data[field] = doc.cipher.decrypt(value, f"{name}/{field}", path=doc.where)
                else:
                    doc._left[(name, field)] = (value, not_ciphertext(value) or "is not usable")
        if strict:
            for name, _field in doc._left:
                problem = profile_problem(doc, doc.profiles[name], whole_file=True)
                if problem is not None:
                    raise problem
        for name in sorted(doc._used):
            if name in doc.profiles:
                doc.check(doc.profiles[name])


    @contextlib.contextmanager
    def transaction(self, *, timeout: float | None = None, create: bool = False, secrets: bool = True,
                    interactive: bool = False) -> Iterator[Credentials]:
        """Lock, read again, let the caller change the document, then save it atomically.

        Nothing is written if the block raises.
        """
        if not create and not self.exists():
            self.load()  # raises NotConfigured before the lock would create the directory and lock file
        with self.lock(timeout):
            doc = self.load_or_new() if create else self.load()
            if secrets:
                self.open_secrets(doc, interactive=interactive)
            yield doc
            self.save(doc)


STORE_ENV = "PROCORE_SETUP_STORE"
SHARED_SCHEMES = {"postgresql": "postgres", "postgres": "postgres", "redis": "redis", "rediss": "redis"}


def open_store(config: str | os.PathLike[str] | None = None, *, store: str | None = None,
               passphrase_command: str | None = None, environ: Mapping[str, str] | None = None) -> Store:
    """The store a command, the wizard or a script works on; the only place a store is made.

    `store`: a shared store's URL (postgresql://, redis://, rediss://) or a credentials file's path
    (default: $PROCORE_SETUP_STORE). `config`: the credentials file (default:
    $PROCORE_SETUP_CONFIG, else the user config dir). Given both, or both variables set, is a
    usage error: which one is meant cannot be guessed, and guessing wrong forks the token chain.
    `passphrase_command`: this run's source of an encrypted store's passphrase, tried after
    $PROCORE_SETUP_PASSPHRASE and before the store's own command (default:
    $PROCORE_SETUP_PASSPHRASE_COMMAND). $PROCORE_SETUP_LOCK_TIMEOUT bounds the wait for the lock.
    """
    env = os.environ if environ is None else environ
    named_by_env = False
    if store is not None and config is not None:
        raise UsageError("Give either --store or --config, not both.",
                         hint="--store names a shared store (or a file); --config names a credentials file.")
    if store is None and config is None:
        from_env = {name: env[name] for name in (STORE_ENV, CONFIG_ENV) if env.get(name) is not None}
        for name, value in from_env.items():
            if not value.strip():
                raise UsageError(f"{name} is set but empty.",
                                 hint="Unset it, or set it to " + ("a store URL." if name == STORE_ENV else
                                                                   "the path of a credentials file."))
        if len(from_env) == 2:
            raise UsageError(f"Both {STORE_ENV} and {CONFIG_ENV} are set, so which store to use is unclear.",
                             hint="Unset one of them, or name the store with --store or --config.")
        if STORE_ENV in from_env:
            store = from_env[STORE_ENV]
        elif CONFIG_ENV in from_env:
            config = from_env[CONFIG_ENV]
        named_by_env = bool(from_env)
    if passphrase_command is None:
        command = env.get(PASSPHRASE_COMMAND_ENV)
        if command is not None and not command.strip():
            raise UsageError(f"{PASSPHRASE_COMMAND_ENV} is set but empty.",
                             hint="Unset it, or set it to a command that prints the passphrase.")
        passphrase_command = command
    from .file import DEFAULT_LOCK_TIMEOUT, FileStore

    timeout = env_seconds(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT, 0, 3600, environ=env)
    if store is not None:
        kind = store_kind(store)
        if kind == "postgres":
            from .postgres import PostgresStore

            return PostgresStore(store, passphrase_command=passphrase_command, lock_timeout=timeout,
                                 named_by_env=named_by_env)
        if kind == "redis":
            from .redis import RedisStore

            return RedisStore(store, passphrase_command=passphrase_command, lock_timeout=timeout,
                              named_by_env=named_by_env)
        config = store[len("file://"):] if store.startswith("file://") else store
    return FileStore(config, passphrase_command=passphrase_command, lock_timeout=timeout,
                     named_by_env=named_by_env)


def store_kind(url: str) -> str:
    """"postgres", "redis" or "file" for a --store value; a URL of any other scheme is a usage error."""
    import re

    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if m is None:
        if not url.strip():
            raise UsageError("The store is empty.", hint="Give --store a postgresql:// or redis:// URL, or a file path.")
        return "file"
    scheme = m.group(1).lower()
    if scheme == "file":
        return "file"
    kind = SHARED_SCHEMES.get(scheme)
    if kind is None:
        from ..checks import shown

        raise UsageError(
            f"The store URL's scheme {shown(scheme, 20)!r} is not one procore-setup knows.",
            hint="Use postgresql://USER@HOST:PORT/DB, redis://[:PASSWORD@]HOST[:PORT]/DB, rediss://... (TLS), "
            "or the path of a credentials file.",
        )
    return kind
