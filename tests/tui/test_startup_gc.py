"""The wizard's start-up runs with the garbage collector off (cli._wizard): it is on again once the
first frame is drawn, with what start-up made frozen out of its reach; on again too when the start
fails before that frame; and an app built by anyone else (a test, a library user) never touches it."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers.wizard import SIZE, screen_name, settle
from procore_setup import cli
from procore_setup.errors import EXIT_USAGE


@pytest.fixture
def gc_restored() -> Iterator[None]:
    was = gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        yield
    finally:
        if gc.get_freeze_count() > frozen:
            gc.unfreeze()  # this process is pytest's: none of its objects may stay out of the collector's reach
        (gc.enable if was else gc.disable)()


async def test_the_collector_paused_for_start_up_is_on_again_at_the_first_frame(make_app: Any, gc_restored: None) -> None:
    app = make_app()
    app.resume_gc = True  # as run_wizard sets it, the collector turned off by cli._wizard
    gc.disable()
    frozen = gc.get_freeze_count()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert screen_name(app) == "KindScreen"
        assert gc.isenabled()
        assert gc.get_freeze_count() > frozen  # start-up's objects: out of later collections' way
        assert not app.resume_gc  # once


async def test_an_app_built_elsewhere_leaves_the_collector_as_it_was(make_app: Any, gc_restored: None) -> None:
    frozen = gc.get_freeze_count()
    for enabled in (False, True):
        (gc.enable if enabled else gc.disable)()
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert gc.isenabled() is enabled
        assert gc.get_freeze_count() == frozen


def test_a_start_that_fails_before_its_first_frame_turns_the_collector_on_again(
        config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], gc_restored: None) -> None:
    """Through cli.main as the script calls it, in a 'terminal', with a store that cannot be opened."""
    monkeypatch.setattr(cli, "_interactive", lambda: True)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    seen: list[bool] = []
    real_disable = gc.disable

    def disable() -> None:
        real_disable()
        seen.append(gc.isenabled())

    monkeypatch.setattr(gc, "disable", disable)
    gc.enable()
    code = cli.main(["--store", "nosuch://host/db", "--config", str(config)])
    assert seen == [False]  # it was turned off for the start...
    assert gc.isenabled()  # ...and is on again after the failure
    assert code == EXIT_USAGE, capsys.readouterr().err
