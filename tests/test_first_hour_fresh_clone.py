"""Issue 20: the README's first commands, from a fresh clone, in a temporary HOME, with pipx.

SLOW (marked `slow`: a minute or more): it installs pipx into a venv of its own, then the clone
with `pipx install .` exactly as the README says, which fetches the dependencies from the package
index. Skipped when pipx cannot be installed (no index reachable). Run it alone with
`scripts/test -q tests/test_first_hour_fresh_clone.py`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_readme_first_commands_from_a_fresh_clone_with_pipx(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    home = tmp_path / "home"
    home.mkdir()
    clone = tmp_path / "procore-setup"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120,
                   capture_output=True)
    tools = tmp_path / "tools"
    subprocess.run([sys.executable, "-m", "venv", str(tools)], check=True, timeout=120)
    got = subprocess.run([str(tools / "bin" / "pip"), "install", "--quiet", "pipx"], capture_output=True, text=True,
                         timeout=300)
    if got.returncode != 0:
        pytest.skip(f"pipx could not be installed here: {got.stderr[-300:]}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROCORE_", "VIRTUAL_ENV", "PIPX_"))}
    env.update(HOME=str(home), PATH=f"{tools / 'bin'}:/usr/bin:/bin", TMPDIR=str(tmp_path))

    def sh(command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """A README line, run by a shell in the clone, as a newcomer would type it."""
        return subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                              timeout=timeout)

    r = sh("pipx install .")
    assert r.returncode == 0, r.stdout + r.stderr
    program = home / ".local" / "bin" / "procore-setup"
    assert program.exists()  # where the README says the program lives
    r = sh("~/.local/bin/procore-setup --version")
    assert r.returncode == 0 and r.stdout.startswith("procore-setup ")
    env["PATH"] = f"{home / '.local' / 'bin'}:{env['PATH']}"  # after `pipx ensurepath` and a new terminal
    r = sh("procore-setup completion bash > /dev/null && procore-setup --help")
    assert r.returncode == 0 and "demo" in r.stdout
    # the demo's headless side, as `procore-setup demo` prints it
    demo = subprocess.Popen(["procore-setup", "demo", "--no-shell"], cwd=clone, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert demo.stdout is not None
        config = ""
        for line in demo.stdout:
            if line.strip().startswith("export PROCORE_SETUP_CONFIG="):
                config = line.strip().split("=", 1)[1]
            if line.startswith("Serving until stopped"):
                break
        assert config
        r = sh(f"PROCORE_SETUP_CONFIG={config} procore-setup status && "
               f"PROCORE_SETUP_CONFIG={config} procore-setup token > /dev/null")
        assert r.returncode == 0, r.stderr
    finally:
        demo.terminate()
        demo.wait(timeout=60)
