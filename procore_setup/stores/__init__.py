"""Where profiles live: the Store protocol and the factory (`open_store`); the file store."""

from __future__ import annotations

from .base import Store, open_store

__all__ = ["Store", "open_store"]
