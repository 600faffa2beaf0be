"""The wizard's first frame imports only what it draws: no httpx, no screens but the first."""

from __future__ import annotations

import subprocess
import sys

from .conftest import base_env

CHECK = """
import sys
from procore_setup import cli
from procore_setup.tui import app
loaded = sorted(m for m in sys.modules if m.startswith("procore_setup.tui.screens.") or m in ("httpx", "httpcore"))
print(" ".join(loaded))
"""

FIRST_SCREEN = """
import sys
from procore_setup.stores.file import FileStore
from procore_setup.tui.app import ProcoreSetupApp
app = ProcoreSetupApp(FileStore(sys.argv[1]))
app.get_default_screen()  # what the first frame shows for a new user: step 1
loaded = sorted(m for m in sys.modules if m.startswith("procore_setup.tui.screens.") or m in ("httpx", "httpcore"))
print(" ".join(loaded))
"""


def run(code: str, *args: str) -> str:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                       env=base_env())
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_importing_the_app_loads_no_screen_and_no_httpx() -> None:
    assert run(CHECK) == ""


def test_the_first_screen_loads_only_itself(tmp_path: object) -> None:
    loaded = run(FIRST_SCREEN, f"{tmp_path}/credentials.toml").split()
    assert loaded == ["procore_setup.tui.screens.base", "procore_setup.tui.screens.environment"]
