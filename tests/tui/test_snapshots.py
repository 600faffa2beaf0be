"""Each screen at 80x24, compared with the accepted picture (pytest-textual-snapshot).

The scenes are the ones scripts/screenshots.py turns into the README's PNGs, so the
pictures people see are the ones these tests guard. Everything that moves is fixed:
the clock (so the code countdown reads the same), the credentials path, the
executable in the cron line, the client id, and the environment that decides whether
a browser can open. After an intended change of a screen:
`pytest tests/tui/test_snapshots.py --snapshot-update`, then look at the report.
"""

from __future__ import annotations

import fcntl
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
shots: Any = importlib.import_module("screenshots")  # scripts/screenshots.py, which mypy does not check

# Every scene is staged in one fixed directory (its path is on the screen, so it cannot be a
# random one), which stage() empties at its start and end: two scenes at once, on two xdist
# workers or in two test runs on one machine, would delete each other's credentials file (the
# Saved screen then said "mode ?"). One scene at a time on this machine, then: the tests stay on
# one worker, and each holds a lock beside the directory while it uses it.
pytestmark = pytest.mark.xdist_group("snapshots")
STAGE_LOCK = Path(shots.STAGE_DIR + ".lock")


@pytest.fixture(autouse=True)
def the_stage_to_ourselves() -> Iterator[None]:
    with open(STAGE_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # bounded by pytest-timeout (pyproject.toml)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# Every screen, plus the states that change a screen most (SSH, an error, a dialog). The other
# scenes of scripts/screenshots.py are pictures for the README; pilot tests check what they say.
SNAPSHOTS = ["profiles", "kind", "environment", "client", "authorize", "authorize-ssh", "code", "code-retry", "verify",
             "saved", "encrypt", "quit", "client-service-account", "verify-service-account", "saved-service-account"]


def test_snapshots_are_screenshot_scenes() -> None:
    assert set(SNAPSHOTS) <= set(shots.SCENES)


@pytest.mark.parametrize("scene", SNAPSHOTS)
def test_screen(scene: str, snap_compare: Any) -> None:
    with shots.stage(display=shots.SCENES[scene].display) as st:
        app = shots.scene_app(scene, st)
        assert snap_compare(app, terminal_size=shots.SIZE, run_before=shots.scene_runner(scene, st))
