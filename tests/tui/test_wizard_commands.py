"""The commands the wizard's texts tell a person to run name the program as it can be run: the
bare name where PATH finds this very program, else its path (hints.program)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import EXE
from helpers.wizard import SIZE, save_profile, screen_name, settle
from procore_setup.testing import FakeProcore


@pytest.mark.parametrize("on_path", [True, False], ids=["on-PATH", "off-PATH"])
async def test_the_remove_dialog_names_the_revoke_command_as_it_can_be_run(
        make_app: Any, fake: FakeProcore, config: Path, monkeypatch: pytest.MonkeyPatch, on_path: bool) -> None:
    save_profile(config, fake)
    bin_dir = os.path.dirname(EXE)
    rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and os.path.realpath(p) != os.path.realpath(bin_dir)]
    monkeypatch.setenv("PATH", os.pathsep.join(([bin_dir] if on_path else []) + rest))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert screen_name(app) == "ProfilesScreen"
        await pilot.press("x")
        await settle(pilot)
        text = str(app.screen.query_one("#dialog-text").render())
        program = "procore-setup" if on_path else EXE
        # the file's flag too: this file is not the default one, so the bare command would revoke another
        assert f"`{program} --config {config} revoke --profile default`" in text, text
        await pilot.press("escape")
