"""Where profiles live: the Store protocol and its address value (`base`), the registry and
factory (`registry.open_store`), and the stores themselves (file, postgres, redis)."""

from __future__ import annotations

from .base import Store, StoreAddress
from .registry import open_store

__all__ = ["Store", "StoreAddress", "open_store"]
