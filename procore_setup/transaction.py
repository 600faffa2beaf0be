"""Changing a store's document: lock, read again, open the secrets, change, one atomic save.

Above the stores (which only load, lock and save) and beside `passphrase` (which opens the
secrets): the commands and the setup flow change documents through here.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

from .settings import UNATTENDED, Unlock

if TYPE_CHECKING:
    from .profile import Credentials
    from .stores.base import Store


@contextlib.contextmanager
def transaction(store: Store, *, timeout: float | None = None, create: bool = False, secrets: bool = True,
                unlock: Unlock = UNATTENDED) -> Iterator[Credentials]:
    """Lock, read again, let the caller change the document, then save it atomically.

    Nothing is written if the block raises. `create`: an empty document when the store holds none
    yet (else NotConfigured, before the lock would create a directory or a lock file). `secrets`:
    open an encrypted document's secrets first, from this run's passphrase sources (`unlock`).
    """
    if not create and not store.exists():
        store.load()  # raises NotConfigured before the lock would create the directory and lock file
    with store.lock(timeout):
        doc = store.load_or_new() if create else store.load()
        if secrets and doc.encrypted:
            from .passphrase import open_secrets

            open_secrets(doc, unlock)
        yield doc
        store.save(doc)
