"""Helpers of the first-hour tests (issue 20): the installed executable, a clean environment, a
logged-in credentials file against the fake Procore, and a tmux terminal that waits on state."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from procore_setup.testing import FakeProcore

EXE = str(Path(sys.executable).with_name("procore-setup"))
BIN = str(Path(sys.executable).parent)
CLIENT_ID = "demo-client-id"
CLIENT_SECRET = "demo-client-secret"
HEAVY = ("textual", "httpx", "psycopg", "redis", "tomlkit")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROCORE_", "COVERAGE", "_ARGCOMPLETE", "COMP_"))}
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str] | None = None, input: str = "", timeout: float = 60,
        cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], input=input, capture_output=True, text=True, env=env or clean_env(),
                          timeout=timeout, cwd=cwd)


def login(fake: FakeProcore, config: Path, profile: str = "default") -> None:
    """A person's login through `login --plain`, as a user scripts it (company: the first one)."""
    r = run("login", "--plain", "--profile", profile, "--environment", "custom", "--login-url", fake.url,
            "--api-url", fake.url, "--client-id", CLIENT_ID, f"--code={fake.issue_code()}", input="1\n",
            env=clean_env(PROCORE_SETUP_CONFIG=str(config), PROCORE_CLIENT_SECRET=CLIENT_SECRET))
    assert r.returncode == 0, r.stderr


def wait_for(what: Callable[[], Any], timeout: float = 30, message: str = "") -> Any:
    """Poll until `what()` is truthy (state, not time: the deadline only bounds a failure)."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {message}")
        time.sleep(0.05)


def imports_of(r: subprocess.CompletedProcess[str]) -> set[str]:
    """Top-level modules a run imported, from PYTHONPROFILEIMPORTTIME=1's report on stderr."""
    names = set()
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name.split(".")[0])
    assert names, "no import-time report"
    return names


class Tmux:
    """One private tmux server (its own socket) running one window."""

    def __init__(self, tmp: Path, command: str, *, env: dict[str, str], width: int = 160, height: int = 40) -> None:
        if shutil.which("tmux") is None:
            import pytest

            pytest.skip("tmux is not installed")
        self.socket = str(tmp / f"tmux-{uuid.uuid4().hex[:8]}")
        self.env = env
        self._tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), command)

    def _tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, env=self.env,
                              timeout=30)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t", "-S", "-200").stdout

    def send(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", "t", "-l", "--", text)

    def wait(self, text: str, timeout: float = 30) -> str:
        return wait_for(lambda: text in (s := self.screen()) and s, timeout, f"{text!r} on screen:\n{self.screen()}")

    def pid(self) -> int:
        return int(self._tmux("display-message", "-p", "-t", "t", "#{pane_pid}").stdout.strip())

    def kill(self) -> None:
        self._tmux("kill-server")


def demo_without_shell(env: dict[str, str], cwd: Path | None = None) -> tuple[subprocess.Popen[str], list[str]]:
    """`procore-setup demo --no-shell` started, and what it prints up to "Serving until stopped"
    (its guide and the export line). The caller stops it (SIGTERM) and kills it if it is left."""
    proc = subprocess.Popen([EXE, "demo", "--no-shell"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=env, cwd=cwd)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while not lines or not lines[-1].startswith("Serving until stopped"):
            line = proc.stdout.readline()
            assert line, f"demo ended early: {''.join(lines)}"
            lines.append(line)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, lines
