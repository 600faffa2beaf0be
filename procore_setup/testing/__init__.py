"""Offline test helpers: a fake Procore login + API server (`FakeProcore`), stdlib only.

Importing this package pulls in nothing heavy (no httpx, no textual).
Run `python -m procore_setup.testing` to serve a fake for testing scripts by hand.
"""

from __future__ import annotations

from .server import DEFAULT_COMPANIES, DEFAULT_USER, OOB_REDIRECT_URI, FakeProcore

__all__ = ["FakeProcore", "OOB_REDIRECT_URI", "DEFAULT_USER", "DEFAULT_COMPANIES"]
