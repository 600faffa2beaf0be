"""The wizard's first frame imports only what it draws: no httpx, no screens but the first; and the
app and its screens import each other one way only, by imports a type checker can follow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import procore_setup.tui

from helpers.cli import base_env

LOADED = 'sorted(m for m in sys.modules if m.startswith("procore_setup.tui.screens.") or m in ("httpx", "httpcore"))'

CHECK = f"""
import sys
from procore_setup import cli
from procore_setup.tui import app
print(" ".join({LOADED}))
"""

FIRST_SCREEN = f"""
import sys
from procore_setup.stores.file import FileStore
from procore_setup.tui.app import ProcoreSetupApp
app = ProcoreSetupApp(FileStore(sys.argv[1]))
app.get_default_screen()  # what the first frame shows: the first question for a new user, else the list
print(" ".join({LOADED}))
"""

# Every screen and widget module, imported on its own: none may pull in the app (a cycle).
NO_APP = """
import importlib, pkgutil, sys
import procore_setup.tui.screens as screens, procore_setup.tui.widgets as widgets
for package in (screens, widgets):
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
print("procore_setup.tui.app" in sys.modules)
"""

TUI = Path(procore_setup.tui.__file__).parent  # the installed package


def run(code: str, *args: str) -> str:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                       env=base_env())
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_importing_the_app_loads_no_screen_and_no_httpx() -> None:
    assert run(CHECK) == ""


def test_the_first_screen_loads_only_itself(tmp_path: Path) -> None:
    loaded = run(FIRST_SCREEN, f"{tmp_path}/credentials.toml").split()
    # how the scripts will sign in: asked before step 1, whose screen is loaded only once it is answered
    assert loaded == ["procore_setup.tui.screens.base", "procore_setup.tui.screens.kind"]


def test_with_a_file_the_first_screen_is_the_list_and_loads_only_itself(tmp_path: Path) -> None:
    config = tmp_path / "credentials.toml"
    config.write_text("schema_version = 1\n")
    config.chmod(0o600)
    loaded = run(FIRST_SCREEN, str(config)).split()
    assert loaded == ["procore_setup.tui.screens.base", "procore_setup.tui.screens.profiles"]


def test_no_screen_or_widget_imports_the_app() -> None:
    assert run(NO_APP) == "False"


def test_the_app_reaches_each_screen_by_a_plain_import() -> None:
    """Not by module names in strings (importlib), which neither mypy nor import-linter can see."""
    tree = ast.parse((TUI / "app.py").read_text())
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    imported = {node.module.split(".", 1)[1] for function in functions for node in ast.walk(function)
                if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
                and node.module.startswith("screens.")}  # inside functions: imported on first use
    # base and companies hold what screens share (every screen; the two Verify steps), not a screen
    screens = {path.stem for path in (TUI / "screens").glob("*.py")} - {"__init__", "base", "companies"}
    assert imported == screens
    assert "importlib" not in (TUI / "app.py").read_text()
