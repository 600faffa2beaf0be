"""A real terminal for the wizard: a private tmux server (its own socket in the test's temp dir, so
tests never share one) runs a command at 80x24; keys go in with `send-keys`, `capture-pane` reads
the screen."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

PAUSE = 0.3


def joined(screen: str) -> str:
    """The screen's lines stripped and run together, for text the wizard wrapped over lines."""
    return "".join(line.strip() for line in screen.splitlines())


class Terminal:
    """One tmux session on a private server, 80x24."""

    def __init__(self, tmp: Path, command: str, env: dict[str, str]) -> None:
        self.socket = str(tmp / "tmux.sock")
        self.env = env
        self.tmux("new-session", "-d", "-s", "wizard", "-x", "80", "-y", "24", command)

    def tmux(self, *args: str) -> str:
        r = subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, env=self.env,
                           timeout=20)
        if r.returncode != 0:
            raise RuntimeError(f"tmux {args[0]} failed: {r.stderr.strip()}")
        return r.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "wizard")

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "wizard", key)
            time.sleep(PAUSE)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "wizard", "-l", text)
        time.sleep(PAUSE)

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen or text.replace(" ", "") in joined(screen).replace(" ", ""):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} did not appear; the screen is:\n{screen}")

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, env=self.env, timeout=20)
