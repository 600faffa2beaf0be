"""`procore-setup store init`: setting up a shared store (its table), or printing the SQL for a
role that may. Each store kind says what it needs (ManagedStore.init, schema_sql)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .encryption import Outcome

if TYPE_CHECKING:
    from .stores.base import ManagedStore


def run_init(store: ManagedStore, *, print_sql: bool = False) -> Outcome:
    """Create the shared store's schema (or print its SQL for a role that may)."""
    out = Outcome()
    out.say(store.schema_sql().rstrip() if print_sql else store.init())
    return out
