"""What the bench scripts share: the installed executable, a timed subprocess, a first login."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from procore_setup.testing import FakeProcore

EXE = str(Path(sys.executable).with_name("procore-setup"))


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds one run of `cmd` takes; a failing run ends the benchmark."""
    start = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit {r.returncode}: {r.stderr.decode()[:300]}")
    return elapsed


def login(fake: FakeProcore, env: dict[str, str]) -> None:
    """A first login through `login --plain` into the file named by env's PROCORE_SETUP_CONFIG."""
    r = subprocess.run(
        [EXE, "login", "--plain", "--environment", "custom", "--login-url", fake.url, "--api-url", fake.url,
         "--client-id", fake.client_id, f"--code={fake.issue_code()}", "--company-id", "8675309"],
        env=dict(env, PROCORE_CLIENT_SECRET=fake.client_secret), capture_output=True, text=True,
    )
    if r.returncode != 0:
        raise SystemExit(f"login failed: {r.stderr}")


def interleaved(a: tuple[list[str], dict[str, str]], b: tuple[list[str], dict[str, str]],
                runs: int) -> tuple[list[float], list[float]]:
    """Time two commands alternately (after a warm-up of the page cache), so load hits both alike."""
    for _ in range(3):
        timed(*a), timed(*b)
    times_a: list[float] = []
    times_b: list[float] = []
    for _ in range(runs):
        times_a.append(timed(*a))
        times_b.append(timed(*b))
    return times_a, times_b


def clean_env() -> dict[str, str]:
    """This environment without any PROCORE_* setting, so each run names its own file."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PROCORE_")}


def header(runs: int) -> str:
    """The first line of an interleaved benchmark's report."""
    return f"runs: {runs} each, interleaved; python {sys.version.split()[0]}; {os.cpu_count()} CPUs"


def difference(base: float, other: float) -> str:
    """`other` against `base` (medians in seconds): the difference in ms and the ratio."""
    return f"difference {(other - base) * 1000:+.1f} ms, ratio {other / base:.2f}x"
