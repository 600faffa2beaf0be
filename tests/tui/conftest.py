"""The wizard tests' fixtures: a clean environment, the injected clock, the credentials path and
the app (the helpers they use are in tests/helpers/wizard.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest

from helpers.wizard import Clock
from procore_setup.stores.file import FileStore
from procore_setup.testing import SERVICE_ACCOUNT_CLIENT_SECRET
from procore_setup.tui.app import ProcoreSetupApp


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No browser, no SSH, no PROCORE_* from the developer's shell: every test says what it needs."""
    for name in list(os.environ):
        if name.startswith("PROCORE_") or name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "SSH_CONNECTION",
                                                   "SSH_CLIENT", "SSH_TTY"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "conf" / "credentials.toml"


@pytest.fixture
def make_app(config: Path, clock: Clock) -> Callable[..., ProcoreSetupApp]:
    def make(**kw: Any) -> ProcoreSetupApp:
        kw.setdefault("clock", clock)
        return ProcoreSetupApp(FileStore(kw.pop("path", config)), **kw)

    return make


@pytest.fixture
def guard_service_account_secret(secret_guard: Any) -> None:
    """The fake's service account secret joins the secrets no output may hold (for the modules that
    type it: `pytestmark = pytest.mark.usefixtures("guard_service_account_secret")`)."""
    secret_guard.add(SERVICE_ACCOUNT_CLIENT_SECRET, "the service account's client secret")
