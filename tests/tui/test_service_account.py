"""The wizard's service-account path (Procore's client-credentials grant, DMSA), against the fake
Procore over real HTTP, ending in files the real `procore-setup token` reads.

The first question chooses it; there is no authorize step and no code: the client step requests
the token, the next one checks it and asks for the company (which a service account's token
needs even to list its companies), and the profiles screen, reconfigure, re-authorize and
`login --service-account` all know the kind.
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from procore_setup.flow import SetupFlow
from procore_setup.stores.file import FileStore
from procore_setup.testing import SERVICE_ACCOUNT_CLIENT_ID as SA_ID
from procore_setup.testing import Fault
from procore_setup.testing import SERVICE_ACCOUNT_CLIENT_SECRET as SA_SECRET
from procore_setup.testing import SERVICE_ACCOUNT_USER, FakeProcore
from procore_setup.testing.demo import DemoSession
from procore_setup.tui.app import ProcoreSetupApp

from helpers.wizard import (
    SIZE,
    Clock,
    answer_kind,
    message,
    message_kind,
    run_token,
    save_profile,
    screen_name,
    secret_leaks,
    settle,
    type_into,
)

COMPANY = 8675309  # the one company the fake's service account is installed in


pytestmark = pytest.mark.usefixtures("guard_service_account_secret")


def title(app: ProcoreSetupApp) -> str:
    return str(app.screen.query_one("#titlebar").render())


def text_of(app: ProcoreSetupApp, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


def stored(config: Path, name: str = "default") -> dict[str, Any]:
    return tomllib.loads(config.read_text())["profiles"][name]


async def custom_hosts(pilot: Any, fake: FakeProcore) -> None:
    """Step 1: the custom environment at the fake."""
    app = pilot.app
    assert screen_name(app) == "EnvironmentScreen", screen_name(app)
    app.screen.query_one("#envs").highlighted = 4
    await pilot.pause()
    await type_into(pilot, "#login_url", fake.url)
    await type_into(pilot, "#api_url", fake.url)
    await pilot.press("enter")
    await settle(pilot)


async def request_token(pilot: Any, client_id: str | None = SA_ID, secret: str | None = SA_SECRET) -> None:
    """Step 2 of a service account: the id and secret (None: leave the field as it is), then Enter."""
    app = pilot.app
    assert screen_name(app) == "ClientScreen", message(app)
    if client_id is not None:
        await type_into(pilot, "#client_id", client_id)
    if secret is not None:
        await type_into(pilot, "#secret", secret)
    app.screen.query_one("#secret", Input).focus()
    await pilot.press("enter")
    await settle(pilot)


def save_service_account(config: Path, fake: FakeProcore, name: str = "robot",
                         company_id: int | None = COMPANY) -> None:
    """A service account's profile as `login --plain --service-account` leaves it (the same flow, no screens)."""
    flow = SetupFlow(FileStore(config), name)
    flow.set_environment("custom", fake.url, fake.url)
    flow.set_client(SA_ID, SA_SECRET)
    flow.company_id = company_id
    flow.request_token()
    flow.verify_service_account()
    flow.choose_company(company_id)
    flow.save()


# -- the first question, and a new service account -------------------------------------------------

async def test_the_first_question_leads_to_a_service_account_that_token_reads(
        make_app: Any, fake: FakeProcore, config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        assert screen_name(app) == "KindScreen"  # asked first, before any step
        assert "How your scripts sign in" in title(app) and "Step" not in title(app)
        difference = text_of(app, "#difference")
        assert "A person's login sees what that person sees" in difference
        assert "a company admin installs" in difference and "permissions" in difference
        await answer_kind(pilot, "service_account")
        assert "Step 1 of 4" in title(app)  # no authorize, no code: four steps
        await custom_hosts(pilot, fake)
        assert screen_name(app) == "ClientScreen" and "Step 2 of 4" in title(app)
        assert not app.screen.query("#redirect")  # no browser: no redirect URI to give
        assert "Manage App page" in " ".join(str(w.render()) for w in app.screen.query("#body > Static"))
        await request_token(pilot)

        assert screen_name(app) == "ServiceVerifyScreen", message(app)
        assert "Step 3 of 4" in title(app)
        assert fake.counts["token:client_credentials"] == 1 and fake.counts["token:authorization_code"] == 0
        assert stored(config)["kind"] == "service_account"  # saved the moment it arrived
        # Without a company the fake (like Multiple Procore Zones) answers neither /me nor /companies:
        # the company id is asked for, and the token checked again with it. That first answer is the
        # expected one, so it is no error text (issue 20).
        assert "Which company is the app installed in?" in text_of(app, "#company-question")
        assert "could not be listed" not in text_of(app, "#company-question")
        assert "400" not in text_of(app, "#who") and "give it below" in text_of(app, "#who")
        assert message(app) == ""
        assert "app.procore.com/<COMPANY ID>/company/home/list" in text_of(app, "#company-question")
        assert app.focused.id == "company_id"
        await pilot.press(*str(COMPANY), "enter")
        await settle(pilot)
        assert SERVICE_ACCOUNT_USER["name"] in text_of(app, "#who")
        assert "no cron job needed" in text_of(app, "#expiry")
        assert app.screen.query_one("#companies").highlighted_option.id == str(COMPANY)
        await pilot.press("ctrl+s")
        await settle(pilot)

        assert screen_name(app) == "SavedScreen" and "Step 4 of 4" in title(app), message(app)
        assert not app.screen.query("#cron") and not app.screen.query("#copy-cron")
        assert "No cron job needed" in text_of(app, "#no-cron")
        assert f"Procore-Company-Id: {COMPANY}" in text_of(app, "#curl")
        body = "\n".join(str(w.render()) for w in app.screen.query("#body > Static"))
        assert secret_leaks(body, SA_SECRET) == []
        await pilot.press("q")
    assert app.return_code == 0
    prof = stored(config)
    assert prof["kind"] == "service_account" and "refresh_token" not in prof and "redirect_uri" in prof
    assert prof["client_id"] == SA_ID and prof["company_id"] == COMPANY
    assert prof["user_name"] == SERVICE_ACCOUNT_USER["name"]
    r = run_token(config)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == prof["access_token"] and fake.access_token_valid(r.stdout.strip())
    assert fake.counts["token:client_credentials"] == 1  # the saved token is reused, not requested again


async def test_a_refused_secret_is_said_on_the_client_step_and_nothing_is_saved(
        make_app: Any, fake: FakeProcore, config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await answer_kind(pilot, "service_account")
        await custom_hosts(pilot, fake)
        await request_token(pilot, secret="not-the-secret-at-all")
        assert screen_name(app) == "ClientScreen"
        assert "invalid_client" in message(app) and message_kind(app) == "error"
        assert app.focused.id == "secret"  # the usual suspect: a rotated secret
        await request_token(pilot, client_id=None, secret=SA_SECRET)
        assert screen_name(app) == "ServiceVerifyScreen", message(app)
    assert stored(config)["kind"] == "service_account"


async def test_a_token_refused_at_the_check_goes_back_to_the_client_step_not_to_a_login(
        make_app: Any, fake: FakeProcore, config: Path) -> None:
    """A service account has no authorize step to go back to: a new token comes from step 2."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await answer_kind(pilot, "service_account")
        await custom_hosts(pilot, fake)
        fake.inject(Fault(hook=fake.expire_access_tokens, paths="/oauth/token"))  # dead as soon as it is issued
        await request_token(pilot)
        assert screen_name(app) == "ClientScreen", message(app)
        assert "refused the access token it had just issued" in message(app)
        assert [type(s).__name__ for s in app.screen_stack].count("ClientScreen") == 1  # the same one, not a new one
        await pilot.press("enter")  # request another
        await settle(pilot)
        assert screen_name(app) == "ServiceVerifyScreen", message(app)
        assert "Which company is the app installed in?" in text_of(app, "#company-question")
    assert fake.counts["token:client_credentials"] == 2


async def test_esc_from_the_service_account_steps_goes_back_to_the_first_question(
        make_app: Any, fake: FakeProcore) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await answer_kind(pilot, "service_account")
        await custom_hosts(pilot, fake)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert screen_name(app) == "KindScreen"
        assert app.screen.query_one("#kinds").highlighted_option.id == "service_account"  # as chosen
        await answer_kind(pilot, "user")  # changed my mind: a person's login, all six steps
        assert "Step 1 of 6" in title(app)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.query("#redirect")


# -- the profiles screen: both kinds in one file --------------------------------------------------------

async def test_the_profiles_screen_shows_each_profiles_kind(make_app: Any, fake: FakeProcore, config: Path) -> None:
    save_profile(config, fake, "person")
    save_service_account(config, fake, "robot")
    app = make_app(clock=time.time)  # the tokens were issued just now, by the real clock
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert screen_name(app) == "ProfilesScreen", message(app)
        header = text_of(app, "#profiles-header")
        assert "Kind" in header
        listing = app.screen.query_one("#profiles")
        rows = {listing.get_option_at_index(i).id: str(listing.get_option_at_index(i).prompt) for i in range(2)}
        assert " person " in rows["person"] and " service " in rows["robot"]
        # A service account has no refresh token by design: its token is valid, not "no tokens".
        assert "valid 1 h 2" in rows["robot"] or "valid 1 h 30 min" in rows["robot"] and "no tokens" not in rows["robot"]
        assert header.index("Kind") == rows["robot"].index("service") + 2  # under its header (after border, padding)
        listing.highlighted = 1
        await pilot.pause()
        details = text_of(app, "#details")
        assert "a service account (client credentials" in details and "Demo Service Account" in details
        listing.highlighted = 0
        await pilot.pause()
        assert "a person's login" in text_of(app, "#details")


# -- reconfigure and re-authorize a service account --------------------------------------------------

async def test_reconfigure_a_service_account_keeps_the_other_settings(make_app: Any, fake: FakeProcore,
                                                                      config: Path) -> None:
    save_profile(config, fake, "person")
    save_service_account(config, fake, "robot")
    before = stored(config, "robot")
    app = make_app(profile="robot")  # highlighted on the list
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert screen_name(app) == "KindScreen", message(app)
        assert app.screen.query_one("#kinds").highlighted_option.id == "service_account"  # the profile's kind
        await pilot.press("enter")
        await pilot.pause()
        assert screen_name(app) == "EnvironmentScreen" and "Step 1 of 4" in title(app)
        assert app.screen.query_one("#login_url", Input).value == fake.url  # prefilled from the file
        await pilot.press("enter")
        await settle(pilot)
        secret = app.screen.query_one("#secret", Input)
        assert secret.value == "" and "kept" in secret.placeholder
        assert app.screen.query_one("#client_id", Input).value == SA_ID
        await request_token(pilot, client_id=None, secret=None)  # secret left empty: kept
        assert screen_name(app) == "ServiceVerifyScreen", message(app)
        # The company is known, so it is sent: /me and the companies answer at once.
        assert SERVICE_ACCOUNT_USER["name"] in text_of(app, "#who")
        assert app.screen.query_one("#companies").highlighted_option.id == str(COMPANY)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert screen_name(app) == "SavedScreen", message(app)
    after = stored(config, "robot")
    assert after["access_token"] != before["access_token"] and fake.access_token_valid(after["access_token"])
    for key in ("kind", "environment", "login_url", "api_url", "client_id", "client_secret", "redirect_uri",
                "company_id", "company_name", "user_id"):
        assert after[key] == before[key], key
    assert "refresh_token" not in after
    assert stored(config, "person")["refresh_token"]  # the other profile untouched
    assert run_token(config, "--profile", "robot").stdout.strip() == after["access_token"]


async def test_reauthorize_a_service_account_takes_its_rotated_secret(make_app: Any, fake: FakeProcore,
                                                                      config: Path, secret_guard: Any) -> None:
    save_service_account(config, fake, "robot")
    before = stored(config, "robot")
    rotated = "rotated-dmsa-secret-2031-xyz"
    secret_guard.add(rotated, "the rotated secret")
    fake.service_account_client_secret = rotated  # the admin rotated it on the Manage App page
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        assert screen_name(app) == "ClientScreen" and "Step 2 of 4" in title(app), message(app)
        assert app.focused.id == "secret"  # a new token, most likely with a new secret
        await request_token(pilot, client_id=None, secret=None)  # the stored one: refused now
        assert screen_name(app) == "ClientScreen" and "invalid_client" in message(app)
        assert stored(config, "robot") == before  # a refusal changes nothing
        await request_token(pilot, client_id=None, secret=rotated)
        assert screen_name(app) == "ServiceVerifyScreen", message(app)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert screen_name(app) == "SavedScreen", message(app)
    after = stored(config, "robot")
    assert after["client_secret"] == rotated and after["access_token"] != before["access_token"]
    for key in ("kind", "environment", "login_url", "client_id", "company_id", "company_name"):
        assert after[key] == before[key], key
    assert run_token(config, "--profile", "robot").returncode == 0


# -- `login --service-account`, and --demo --------------------------------------------------------

async def test_login_service_account_opens_on_the_service_account_path(make_app: Any, fake: FakeProcore,
                                                                       config: Path) -> None:
    app = make_app(login=True, service_account=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert screen_name(app) == "EnvironmentScreen" and "Step 1 of 4" in title(app)  # the question is answered
        await custom_hosts(pilot, fake)
        await request_token(pilot)
        assert screen_name(app) == "ServiceVerifyScreen", message(app)
        await pilot.press(*str(COMPANY), "enter")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert screen_name(app) == "SavedScreen", message(app)
    assert stored(config)["kind"] == "service_account" and stored(config)["company_id"] == COMPANY


async def test_login_on_a_service_accounts_profile_asks_for_a_new_token(make_app: Any, fake: FakeProcore,
                                                                         config: Path) -> None:
    """`procore-setup login` re-authorizes: for a service account that is its client step."""
    save_service_account(config, fake, "default")
    before = stored(config)
    app = make_app(login=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert screen_name(app) == "ClientScreen" and "Step 2 of 4" in title(app), message(app)
        await request_token(pilot, client_id=None, secret=None)  # the stored secret still works
        assert screen_name(app) == "ServiceVerifyScreen", message(app)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert screen_name(app) == "SavedScreen", message(app)
    after = stored(config)
    assert after["access_token"] != before["access_token"] and after["company_id"] == before["company_id"]
    assert fake.counts["token:client_credentials"] == 2


async def test_login_service_account_turns_a_persons_profile_into_one(make_app: Any, fake: FakeProcore,
                                                                      config: Path) -> None:
    save_profile(config, fake)
    app = make_app(login=True, service_account=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert screen_name(app) == "EnvironmentScreen" and "Step 1 of 4" in title(app), message(app)
        await pilot.press("enter")  # the stored hosts
        await settle(pilot)
        await request_token(pilot, secret=SA_SECRET)
        assert screen_name(app) == "ServiceVerifyScreen", message(app)
        assert app.screen.query_one("#companies").highlighted_option.id == str(COMPANY)  # the stored company
        await pilot.press("ctrl+s")
        await settle(pilot)
    prof = stored(config)
    assert prof["kind"] == "service_account" and prof["client_id"] == SA_ID and "refresh_token" not in prof


async def test_demo_offers_the_service_account_path_prefilled(clock: Clock) -> None:
    with DemoSession() as demo:
        app = ProcoreSetupApp(clock=clock, demo=demo)
        async with app.run_test(size=SIZE) as pilot:
            await answer_kind(pilot, "service_account")
            assert app.screen.query_one("#login_url", Input).value == demo.url
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen.query_one("#client_id", Input).value == demo.fake.service_account_client_id
            secret = app.screen.query_one("#secret", Input)
            assert secret.value == demo.fake.service_account_client_secret and secret.password  # masked
            await pilot.press("enter")  # id and secret prefilled: request the token
            await settle(pilot)
            assert screen_name(app) == "ServiceVerifyScreen", message(app)
            assert app.screen.query_one("#company_id", Input).value == str(COMPANY)  # the demo's company, prefilled
            await pilot.press("enter")
            await settle(pilot)
            await pilot.press("ctrl+s")
            await settle(pilot)
            assert screen_name(app) == "SavedScreen", message(app)
        prof = tomllib.loads(Path(demo.config_path).read_text())["profiles"]["default"]
        assert prof["kind"] == "service_account" and prof["company_id"] == COMPANY
        assert run_token(Path(demo.config_path)).returncode == 0
