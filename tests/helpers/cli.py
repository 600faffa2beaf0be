"""The installed executable, the fake's client, a clean environment, and a runner for the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from procore_setup.testing import FakeProcore

EXE = str(Path(sys.executable).with_name("procore-setup"))
CLIENT_ID = "demo-client-id"
CLIENT_SECRET = "demo-client-secret"


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROCORE_", "COVERAGE"))}
    env.update(extra)
    return env


class CLI:
    """Runs the installed `procore-setup` executable against one credentials file."""

    def __init__(self, config: Path, fake: FakeProcore) -> None:
        self.config = config
        self.fake = fake
        self.env = base_env(PROCORE_SETUP_CONFIG=str(config), PROCORE_SETUP_LOCK_TIMEOUT="30")

    def run(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EXE, *args], input=input if input is not None else "", capture_output=True,
                              text=True, env=dict(self.env, **(env or {})), timeout=timeout)

    def popen(self, *args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[str]:
        return subprocess.Popen([EXE, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(self.env, **(env or {})), **kw)

    def login(self, profile: str = "default", *extra: str) -> subprocess.CompletedProcess[str]:
        """A first login through `login --plain`, answering the company question with line 1."""
        code = self.fake.issue_code()
        r = self.run("login", "--plain", "--profile", profile, "--environment", "custom",
                     "--login-url", self.fake.url, "--api-url", self.fake.url, "--client-id", CLIENT_ID,
                     f"--code={code}", *extra, input="1\n", env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
        assert r.returncode == 0, r.stderr
        return r

    def secrets(self) -> list[str]:
        """Every secret in the file now (for 'never printed' checks)."""
        import tomllib

        data = tomllib.loads(self.config.read_text())
        out = [CLIENT_SECRET]
        for prof in data.get("profiles", {}).values():
            out += [prof[k] for k in ("access_token", "refresh_token") if prof.get(k)]
        return out
