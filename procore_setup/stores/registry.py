"""The registry of stores: one table from a `--store` URL's scheme to the store class that
serves it, and `open_store`, the only place a store is made.

A store's module is imported only when that store is used (`token` from a file never imports
a database driver: tests/test_engine_imports.py), so the table holds a loader per store (a
function whose plain `from .x import X` the import contracts and tests/test_layers.py see),
not classes. A new store is a row here and a module beside the others (see "Adding a store" in
docs/development.md).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Mapping, NamedTuple, cast

from ..errors import UsageError, env_seconds
from .base import DEFAULT_LOCK_TIMEOUT

if TYPE_CHECKING:
    from .base import ManagedStore

CONFIG_ENV = "PROCORE_SETUP_CONFIG"
STORE_ENV = "PROCORE_SETUP_STORE"
LOCK_TIMEOUT_ENV = "PROCORE_SETUP_LOCK_TIMEOUT"


class Entry(NamedTuple):
    """Where a store class lives (`procore_setup.stores.<module>.<name>`) and how to import it."""

    module: str
    name: str
    load: Callable[[], Callable[..., ManagedStore]]


def _file() -> Callable[..., ManagedStore]:
    from .file import FileStore

    return cast("Callable[..., ManagedStore]", FileStore)  # its class attributes are narrower than the protocol's


def _postgres() -> Callable[..., ManagedStore]:
    from .postgres import PostgresStore

    return cast("Callable[..., ManagedStore]", PostgresStore)  # its class attributes are narrower than the protocol's


def _redis() -> Callable[..., ManagedStore]:
    from .redis import RedisStore

    return cast("Callable[..., ManagedStore]", RedisStore)  # its class attributes are narrower than the protocol's


FILE = Entry("file", "FileStore", _file)
# The URL schemes of the shared stores (lower case, as compared). `file://` and a plain path are
# the credentials file.
SCHEMES: dict[str, Entry] = {
    "postgresql": Entry("postgres", "PostgresStore", _postgres),
    "postgres": Entry("postgres", "PostgresStore", _postgres),
    "redis": Entry("redis", "RedisStore", _redis),
    "rediss": Entry("redis", "RedisStore", _redis),
}


def store_class(entry: Entry) -> Callable[..., ManagedStore]:
    """The class of a registry entry, its module imported now (and only now). Each class takes
    (where, *, lock_timeout, named_by_env)."""
    return entry.load()


def open_store(config: str | os.PathLike[str] | None = None, *, store: str | None = None,
               environ: Mapping[str, str] | None = None) -> ManagedStore:
    """The store a command, the wizard or a script works on; the only place a store is made.

    `store`: a shared store's URL (postgresql://, redis://, rediss://) or a credentials file's path
    (default: $PROCORE_SETUP_STORE). `config`: the credentials file (default:
    $PROCORE_SETUP_CONFIG, else the user config dir). Given both, or both variables set, is a
    usage error: which one is meant cannot be guessed, and guessing wrong forks the token chain.
    $PROCORE_SETUP_LOCK_TIMEOUT bounds the wait for the lock. (This run's passphrase command is
    not the store's: see `settings.unlock_from`.)
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
    timeout = env_seconds(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT, 0, 3600, environ=env)
    entry, where = FILE, config
    if store is not None:
        entry = entry_for(store)
        where = store[len("file://"):] if entry is FILE and store.startswith("file://") else store
    return store_class(entry)(where, lock_timeout=timeout, named_by_env=named_by_env)


def entry_for(url: str) -> Entry:
    """The registry entry of a --store value (a path: the file); a URL of any other scheme is a
    usage error."""
    import re

    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if m is None:
        if not url.strip():
            raise UsageError("The store is empty.", hint="Give --store a postgresql:// or redis:// URL, or a file path.")
        return FILE
    scheme = m.group(1).lower()
    if scheme == "file":
        return FILE
    entry = SCHEMES.get(scheme)
    if entry is None:
        from ..checks import shown

        raise UsageError(
            f"The store URL's scheme {shown(scheme, 20)!r} is not one procore-setup knows.",
            hint="Use postgresql://USER@HOST:PORT/DB, redis://[:PASSWORD@]HOST[:PORT]/DB, rediss://... (TLS), "
            "or the path of a credentials file.",
        )
    return entry
