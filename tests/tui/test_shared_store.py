"""The wizard over a shared store (PostgreSQL, Redis): the same screens, the store named without
its password, no credentials file written, and the profile usable at once by `token` elsewhere."""

from __future__ import annotations

import subprocess
from pathlib import Path
import pytest

from procore_setup.stores import open_store
from procore_setup.testing import FakeProcore
from procore_setup.tui.app import ProcoreSetupApp

from helpers.cli import CLIENT_SECRET, EXE, base_env
from helpers.stores import close_store
from helpers.wizard import (
    SIZE,
    Clock,
    answer_kind,
    paste_code,
    save_on_verify,
    screen_name,
    secret_leaks,
    settle,
    walk_to_authorize,
)


@pytest.fixture(params=["postgres", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("pg_store_url" if request.param == "postgres" else "redis_store_url"))


async def test_the_wizard_saves_into_a_shared_store_and_token_reads_it_on_another_host(
        store_url: str, fake: FakeProcore, clock: Clock, tmp_path: Path) -> None:
    store = open_store(store=store_url, environ={})
    password = store_url.split("@")[0].rsplit(":", 1)[-1]
    app = ProcoreSetupApp(store, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        assert screen_name(app) == "KindScreen"  # an empty store: a first set-up
        await answer_kind(pilot)
        await walk_to_authorize(pilot, fake)
        await paste_code(pilot, fake.issue_code())
        await save_on_verify(pilot, company_row=1)
        body = "\n".join(str(w.render()) for w in app.screen.query("#body > Static"))
        assert store.address.describe() in body and "readable by" in body and "mode None" not in body
        assert password not in body and secret_leaks(body, CLIENT_SECRET) == []
        assert f"--store {store.address.describe()}" in str(app.screen.query_one("#cron").render())
        await pilot.press("q")
    assert app.return_code == 0

    again = ProcoreSetupApp(open_store(store=store_url, environ={}), clock=clock)
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert screen_name(again) == "ProfilesScreen"
        head = str(again.screen.query_one("#file").render())
        assert head.startswith("Store: " + store.address.describe()) and password not in head
        await pilot.press("q")
    for opened in (store, again.store):  # their connections, in this process (run_wizard's own close)
        close_store(opened)

    home = tmp_path / "other-host"
    home.mkdir()
    r = subprocess.run([EXE, "token"], capture_output=True, text=True, timeout=60,
                       env=base_env(HOME=str(home), PROCORE_SETUP_STORE=store_url))
    assert r.returncode == 0, r.stderr
    assert fake.access_token_valid(r.stdout.strip())
    assert fake.counts["token:refresh_token"] == 0
    assert not any(home.rglob("*"))  # nothing written on that host
    assert not any(p.name.startswith("credentials") for p in tmp_path.rglob("*"))
