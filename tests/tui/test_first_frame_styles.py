"""The first frame is drawn with app.tcss alone (later.tcss is read once it is drawn, issue 21):
nothing a first screen shows in that frame may need a rule of later.tcss, or it is drawn unstyled,
then jumps into place a moment later.

Each first screen a person can start on is checked at Ready (the frame is drawn, later.tcss not
read yet): what it shows, laid out as it will stay, and no later.tcss rule matching any of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers.wizard import SIZE, Clock, screen_name, settle, write_one_profile
from procore_setup.stores.file import FileStore
from procore_setup.testing.demo import DemoSession
from procore_setup.tui.app import LATER_CSS_PATH, ProcoreSetupApp


class AtReady(ProcoreSetupApp):
    """The wizard, noting at Ready (its first frame drawn, later.tcss not yet read) each widget's
    place and the later.tcss rules that match it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first_regions: dict[str, Any] = {}
        self.later_matches: list[str] = []

    async def on_ready(self) -> None:
        from textual.css.match import match
        from textual.css.stylesheet import Stylesheet
        from textual.widget import Widget

        later = Stylesheet(variables=self.get_css_variables())
        later.read(LATER_CSS_PATH)
        later.parse()
        for widget in self.screen.walk_children(Widget, with_self=True):
            if widget.id:
                self.first_regions[widget.id] = widget.region
            for rule in later.rules:
                if match(rule.selector_set, widget):
                    self.later_matches.append(f"{widget!r} by {rule.selector_set[0].css}")
        await super().on_ready()


def field_rows(app: ProcoreSetupApp) -> list[tuple[int, int, int]]:
    """Each field row of the screen: its height, its label's width, its input's x."""
    rows = []
    for row in app.screen.query(".field"):
        label = row.query_one(".field-label")
        box = row.children[-1]
        rows.append((row.region.height, label.region.width, box.region.x))
    return rows


async def test_login_demo_service_account_draws_its_first_frame_as_it_stays(clock: Clock) -> None:
    """`procore-setup login --demo --service-account` starts on step 1 with the demo's URLs shown in
    two field rows. Their rules were moved to later.tcss: the first frame showed "Login URL" alone on
    a row 11 lines tall, "API URL" under it, the URLs off the right edge and the rest of the screen
    pushed below it, then everything jumped into place."""
    with DemoSession() as demo:
        app = AtReady(FileStore(demo.config_path), clock=clock, demo=demo, login=True, service_account=True)
        async with app.run_test(size=SIZE) as pilot:
            assert screen_name(app) == "EnvironmentScreen"
            await settle(pilot)
            settled = field_rows(app)
            assert settled == [(1, 15, 16), (1, 15, 16)]  # label, then the URL, one line each
            first = {name: app.first_regions[name] for name in ("login_url", "api_url", "hosts")}
            now = {name: app.screen.query_one(f"#{name}").region for name in first}
            assert first == now, "the first frame was laid out otherwise than the screen then stays"
            assert app.later_matches == []


@pytest.mark.parametrize("start", ["profiles", "kind", "environment", "demo-kind"])
async def test_no_first_screen_needs_a_later_rule_in_its_first_frame(start: str, config: Path, clock: Clock) -> None:
    """Profiles (a file exists), the first question (none yet), step 1 (`login --service-account`,
    no file), the demo's first question: nothing in their first frame is styled by later.tcss."""
    demo = DemoSession().start() if start == "demo-kind" else None
    try:
        if start == "profiles":
            write_one_profile(config)
        path = Path(demo.config_path) if demo is not None else config
        app = AtReady(FileStore(path), clock=clock, demo=demo, login=start == "environment",
                      service_account=start == "environment")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            expected = {"profiles": "ProfilesScreen", "environment": "EnvironmentScreen"}.get(start, "KindScreen")
            assert screen_name(app) == expected
            assert app.first_regions, "on_ready never ran"
            assert app.later_matches == []
    finally:
        if demo is not None:
            demo.stop()
