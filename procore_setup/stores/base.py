"""The one seam for storage: the Store protocol, and the factory that opens the store of a run.

Everything above it (refresh, the setup flow, status, the encryption commands, both
front-ends, the library) is written against `Store` and never asks what kind of store it
has; each store owns its own details, the way httpx's transports do. The credentials file
(`stores.file.FileStore`) is the embedded default.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ContextManager, Mapping, Protocol

from ..errors import UsageError, env_seconds

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
      `permissions()` says who may read it; `key_id()` names its keyring entry and key cache.
    """

    passphrase_command: str | None

    def describe(self) -> str: ...
    def locator(self) -> tuple[str, str]: ...
    def cli_flag(self, explicit: bool = False) -> str: ...
    def permissions(self) -> str | None: ...
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


def open_store(config: str | os.PathLike[str] | None = None, *, passphrase_command: str | None = None,
               environ: Mapping[str, str] | None = None) -> Store:
    """The store a command, the wizard or a script works on; the only place a store is made.

    `config`: the credentials file (default: $PROCORE_SETUP_CONFIG, else the user config dir).
    `passphrase_command`: this run's source of an encrypted store's passphrase, tried after
    $PROCORE_SETUP_PASSPHRASE and before the store's own command (default:
    $PROCORE_SETUP_PASSPHRASE_COMMAND). $PROCORE_SETUP_LOCK_TIMEOUT bounds the wait for the lock.
    """
    env = os.environ if environ is None else environ
    named_by_env = False
    if config is None and env.get(CONFIG_ENV) is not None:
        config = env[CONFIG_ENV]
        if not config.strip():
            raise UsageError(f"{CONFIG_ENV} is set but empty.",
                             hint="Unset it, or set it to the path of a credentials file.")
        named_by_env = True
    if passphrase_command is None:
        command = env.get(PASSPHRASE_COMMAND_ENV)
        if command is not None and not command.strip():
            raise UsageError(f"{PASSPHRASE_COMMAND_ENV} is set but empty.",
                             hint="Unset it, or set it to a command that prints the passphrase.")
        passphrase_command = command
    from .file import DEFAULT_LOCK_TIMEOUT, FileStore

    timeout = env_seconds(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT, 0, 3600, environ=env)
    return FileStore(config, passphrase_command=passphrase_command, lock_timeout=timeout,
                     named_by_env=named_by_env)
