"""Every way a step can fail, and where the wizard sends the person to fix it."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from procore_setup.stores.file import FileStore
from procore_setup.testing import FakeProcore, Fault
from procore_setup.tui.app import ProcoreSetupApp, browser_problem

from helpers.cli import CLIENT_SECRET
from helpers.wizard import (
    SIZE,
    Clock,
    answer_kind,
    jump_to_authorize,
    message,
    message_kind,
    paste_code,
    run_token,
    save_profile,
    screen_name,
    settle,
    type_into,
    walk_to_authorize,
)

# -- Environment ------------------------------------------------------------------------------------


async def custom_env(pilot: Any, login: str, api: str) -> None:
    app = pilot.app
    app.screen.query_one("#envs").highlighted = 4
    await pilot.pause()
    await type_into(pilot, "#login_url", login)
    await type_into(pilot, "#api_url", api)
    await pilot.press("enter")
    await pilot.pause()


async def test_custom_urls_are_checked(make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await answer_kind(pilot)
        for login, api, says, focus in [
            ("http://procore.example.com", "https://api.example.com", "unencrypted", "login_url"),
            ("https://login.example.com", "", "API URL is empty", "api_url"),
            ("ftp://login.example.com", "https://api.example.com", "must start with https://", "login_url"),
        ]:
            await custom_env(pilot, login, api)
            assert screen_name(app) == "EnvironmentScreen"
            assert says in message(app) and message_kind(app) == "error"
            assert app.focused.id == focus


async def test_environment_shows_the_hosts_and_the_one_environment_rule(make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await answer_kind(pilot)
        hosts = app.screen.query_one("#hosts")
        assert "https://login.procore.com" in str(hosts.render()) and "https://api.procore.com" in str(hosts.render())
        app.screen.query_one("#envs").highlighted = 1
        await pilot.pause()
        assert "login-sandbox.procore.com" in str(hosts.render())
        assert not app.screen.query("#custom")  # the URL fields come with the custom environment only
        texts = " ".join(str(w.render()) for w in app.screen.query("#body > Static"))
        assert "belong to one environment" in texts
        await pilot.press("enter")  # Enter on the list chooses the highlighted environment
        await pilot.pause()
        assert screen_name(app) == "ClientScreen"
        assert app.flow.environment == "sandbox" and app.flow.api_url == "https://sandbox.procore.com"


async def test_profile_name_is_checked(make_app: Any, fake: FakeProcore, config: Path) -> None:
    save_profile(config, fake)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)  # the list is read by a worker
        await pilot.press("a")  # add a profile: its name is asked (on step 1, after how it signs in)
        await pilot.pause()
        await answer_kind(pilot)
        assert app.focused.id == "name"
        await type_into(pilot, "#name", "-bad")  # allowed characters, but not as the first one
        await pilot.press("enter", "enter")
        await pilot.pause()
        assert "not usable" in message(app) and app.focused.id == "name"


# -- Client credentials -----------------------------------------------------------------------------

async def to_client(pilot: Any) -> None:
    await answer_kind(pilot)  # a person's login
    await pilot.press("enter")  # production
    await pilot.pause()
    assert screen_name(pilot.app) == "ClientScreen"


async def test_client_credentials_are_checked(make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_client(pilot)
        for client_id, secret, says, focus in [
            ("", "s3cret-value-xyz", "client id is empty", "client_id"),
            ("abc def", "s3cret-value-xyz", "contains spaces", "client_id"),
            ("same-value-123", "same-value-123", "pasted into the id field", "client_id"),
            ("an-id", "", "client secret is empty", "secret"),
        ]:
            await type_into(pilot, "#client_id", client_id)
            await type_into(pilot, "#secret", secret)
            await pilot.click("#next")
            await pilot.pause()
            assert screen_name(app) == "ClientScreen"
            assert says in message(app)
            assert app.focused.id == focus
            assert not secret or secret not in message(app)  # the secret itself is never echoed


async def test_secret_is_masked_until_revealed(make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_client(pilot)
        await type_into(pilot, "#secret", "top-secret-value", paste=False)  # typed key by key
        box = app.screen.query_one("#secret")
        assert box.password and "top-secret-value" not in str(box.render_line(0).text)
        await pilot.press("ctrl+r")
        assert not box.password and "top-secret-value" in str(box.render_line(0).text)
        await pilot.press("ctrl+r")
        assert box.password


async def test_enter_moves_through_the_fields(make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_client(pilot)
        assert app.focused.id == "client_id"
        await pilot.press(*"my-id", "enter")
        assert app.focused.id == "secret"  # Enter goes on to the next field still empty
        await pilot.press(*"my-secret", "enter")
        await pilot.pause()
        assert screen_name(app) == "AuthorizeScreen"


# -- Authorize ----------------------------------------------------------------------------------

async def test_authorize_shows_the_whole_address_and_copies_it(make_app: Any, fake: FakeProcore) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        link = app.screen.query_one("#url")
        assert link.url == app.screen.url and str(link.render()) == app.screen.url  # not cut
        assert link.size.height >= 2  # wrapped over lines, all visible
        await pilot.press("c")
        assert app.clipboard == app.screen.url
        assert "OSC 52" in message(app)


async def test_no_browser_says_so_and_points_to_copy(make_app: Any, fake: FakeProcore,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.1 50000 10.0.0.2 22")
    opened: list[str] = []
    monkeypatch.setattr(ProcoreSetupApp, "open_url", lambda self, url, **kw: opened.append(url))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        assert "SSH session" in str(app.screen.query_one("#browser-note").render())
        assert app.focused.id == "copy"
        await pilot.press("o")
        assert opened == []
        assert "No browser can be opened" in message(app) and app.focused.id == "copy"
        app.screen.query_one("#url").focus()
        await pilot.press("enter")  # Enter on the link: the same check
        assert opened == []


async def test_open_in_browser(make_app: Any, fake: FakeProcore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":0")
    opened: list[str] = []
    monkeypatch.setattr(ProcoreSetupApp, "open_url", lambda self, url, **kw: opened.append(url))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        assert not app.screen.query("#browser-note")
        assert app.focused.id == "open"
        await pilot.press("enter")
        assert opened == [app.screen.url]
        assert "Opened in your browser" in message(app) and app.focused.id == "next"


def test_browser_problem_guesses() -> None:
    assert browser_problem({}, "linux") is not None
    assert browser_problem({"DISPLAY": ":0"}, "linux") is None
    assert "SSH" in (browser_problem({"SSH_TTY": "/dev/pts/1"}, "linux") or "")
    assert browser_problem({"SSH_TTY": "/dev/pts/1", "DISPLAY": "localhost:10.0"}, "linux") is None  # X forwarding
    assert browser_problem({"BROWSER": "w3m"}, "linux") is None
    assert browser_problem({}, "darwin") is None and browser_problem({"SSH_CLIENT": "x"}, "darwin")


# -- Paste the code ----------------------------------------------------------------------------------

async def test_countdown_follows_the_injected_clock(make_app: Any, fake: FakeProcore, clock: Clock) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        await pilot.press("n")
        await pilot.pause()
        countdown = app.screen.query_one("#countdown")
        assert "10:00 left" in str(countdown.render())
        clock.advance(61)
        countdown.tick()
        assert "8:59 left" in str(countdown.render()) and countdown.has_class("ok")
        clock.advance(8 * 60)
        deadline = time.monotonic() + 10  # the screen's own 1-second timer picks the time up
        while "0:59 left" not in str(countdown.render()):
            assert time.monotonic() < deadline, "the countdown's own timer never picked the time up"
            await pilot.pause(0.05)
        assert "0:59 left" in str(countdown.render()) and countdown.has_class("warn")
        clock.advance(60)
        countdown.tick()
        assert "expired" in str(countdown.render()) and countdown.has_class("expired")


async def test_code_is_accepted_as_an_address_even_when_wrapped(make_app: Any, fake: FakeProcore) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        code = fake.issue_code()
        # the page's address, as a terminal wraps it when selected with the mouse, with stray spaces
        await paste_code(pilot, f"  {fake.url}/oauth/autho\nrize/{code[:10]}\n{code[10:]} \n")
        assert screen_name(app) == "VerifyScreen", message(app)
        await pilot.press("escape")
        await pilot.pause()
        await paste_code(pilot, f"urn:ietf:wg:oauth:2.0:oob?code={fake.issue_code()}")
        assert screen_name(app) == "VerifyScreen", message(app)
        assert fake.counts["code_ok"] == 2


async def test_not_a_code_stays_in_place(make_app: Any, fake: FakeProcore) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        await paste_code(pilot, f"{fake.url}/oauth/authorize")
        assert screen_name(app) == "CodeScreen"
        assert "holds no authorization code" in message(app)
        await paste_code(pilot, CLIENT_SECRET)
        assert "client secret, not the authorization code" in message(app)
        assert fake.counts["token:authorization_code"] == 0  # nothing was sent


async def test_used_code_goes_back_to_authorize(make_app: Any, fake: FakeProcore) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        code = fake.issue_code()
        await paste_code(pilot, code)
        assert screen_name(app) == "VerifyScreen"
        await pilot.press("escape")  # back, and the same code again
        await pilot.pause()
        await paste_code(pilot, code)
        assert screen_name(app) == "AuthorizeScreen"
        assert "already used, has expired" in message(app) and message_kind(app) == "error"


async def test_expired_code_goes_back_to_authorize_and_restarts_the_clock(config: Path, clock: Clock) -> None:
    with FakeProcore(clock=clock) as fake:  # the server's code clock is the wizard's clock
        app = ProcoreSetupApp(FileStore(config), clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await jump_to_authorize(pilot, fake)
            code = fake.issue_code()
            clock.advance(601)
            await paste_code(pilot, code)
            assert screen_name(app) == "AuthorizeScreen"
            assert "more than 10 minutes old" in message(app)
            assert app.flow is not None and app.flow.seconds_left() == 600  # back here: a new login gets a new 10 minutes
            await paste_code(pilot, fake.issue_code())
            assert screen_name(app) == "VerifyScreen"


async def test_refused_client_goes_back_to_client_credentials(make_app: Any, fake: FakeProcore,
                                                              config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_authorize(pilot, fake, secret="not-the-secret")
        await paste_code(pilot, fake.issue_code())
        assert screen_name(app) == "ClientScreen"
        assert "invalid_client" in message(app) and "not-the-secret" not in message(app)
        assert app.focused.id == "secret"
        await type_into(pilot, "#secret", CLIENT_SECRET)
        await pilot.press("enter")
        await pilot.pause()
        assert screen_name(app) == "AuthorizeScreen"
        await paste_code(pilot, fake.issue_code())
        assert screen_name(app) == "VerifyScreen"


async def test_refused_client_while_reauthorizing_opens_client_credentials(make_app: Any, fake: FakeProcore,
                                                                           config: Path) -> None:
    from helpers.wizard import save_profile

    save_profile(config, fake)
    fake.client_secret = "rotated-in-the-portal"  # the app's secret was changed in the Developer Portal
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l")  # re-authorize only
        await settle(pilot)
        await paste_code(pilot, fake.issue_code())
        assert screen_name(app) == "ClientScreen" and "invalid_client" in message(app)
        await type_into(pilot, "#secret", "rotated-in-the-portal")
        await pilot.press("enter")
        await pilot.pause()
        await paste_code(pilot, fake.issue_code())
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert screen_name(app) == "SavedScreen", message(app)
    assert tomllib.loads(config.read_text())["profiles"]["default"]["client_secret"] == "rotated-in-the-portal"


async def test_network_trouble_is_retried_in_place(make_app: Any, fake: FakeProcore) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        code = fake.issue_code()
        fake.inject(Fault(status=503, times=3, retry_after=0, paths="/oauth/token"))  # every attempt of one exchange
        await paste_code(pilot, code)
        assert screen_name(app) == "CodeScreen"
        assert "503" in message(app) and "Press Enter to try again" in message(app)
        assert app.screen.query_one("#code").value  # the code is still there
        assert not app.screen.query_one("#next").disabled  # no longer busy
        await pilot.press("enter")
        await settle(pilot)
        assert screen_name(app) == "VerifyScreen", message(app)


async def test_unreachable_server_is_retried_in_place(make_app: Any, config: Path) -> None:
    fake = FakeProcore().start()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        code = fake.issue_code()
        port = fake.port
        fake.stop()  # the network is gone
        await paste_code(pilot, code)
        assert screen_name(app) == "CodeScreen"
        assert "Cannot reach" in message(app) and "try again" in message(app)
        fake2 = FakeProcore(port=port).start()  # and back (a new server: the old code is unknown there)
        try:
            await paste_code(pilot, code)
            assert screen_name(app) == "AuthorizeScreen"
        finally:
            fake2.stop()


async def test_busy_state_while_exchanging(make_app: Any, fake: FakeProcore) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        await pilot.press("n")
        await pilot.pause()
        fake.inject(Fault(hang=1.5, paths="/oauth/token"))
        await type_into(pilot, "#code", fake.issue_code())
        await pilot.press("enter")
        assert message_kind(app) == "busy" and "Exchanging the code" in message(app)
        assert app.screen.query_one("#next").disabled and app.screen.query_one("#code").disabled
        await pilot.press("enter")  # a second Enter does not send the code twice
        await settle(pilot)
        assert screen_name(app) == "VerifyScreen"
        assert fake.counts["token:authorization_code"] == 1


# -- Verify ---------------------------------------------------------------------------------------------

async def _verify_while_me_fails(pilot: Any, fake: FakeProcore) -> None:
    """Exchange a code while /rest/v1.0/me answers 502 to every attempt: Verify shows the failure."""
    await jump_to_authorize(pilot, fake)
    fake.inject(Fault(status=502, times=3, retry_after=0, paths="/rest/v1.0/me"))
    await paste_code(pilot, fake.issue_code())
    assert screen_name(pilot.app) == "VerifyScreen"


async def test_verify_network_trouble_is_retried_in_place(make_app: Any, fake: FakeProcore, config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _verify_while_me_fails(pilot, fake)
        assert "502" in message(app) and "Press r to try again" in message(app)
        assert "already saved" in message(app)
        assert app.screen.query_one("#retry").display
        # the grant is on disk before verification: a script can use the profile right now
        assert run_token(config).returncode == 0
        await pilot.press("r")
        await settle(pilot)
        assert "Pat Builder" in str(app.screen.query_one("#who").render())
        await pilot.press("enter")  # Enter on the list: this company, then Save
        await pilot.press("enter")
        await settle(pilot)
        assert screen_name(app) == "SavedScreen"
    assert run_token(config).returncode == 0


async def test_verification_that_keeps_failing_still_leaves_a_working_profile(
        make_app: Any, fake: FakeProcore, config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _verify_while_me_fails(pilot, fake)
        assert "Ctrl+S to finish without verifying" in message(app)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert screen_name(app) == "SavedScreen"
    prof = tomllib.loads(config.read_text())["profiles"]["default"]
    assert "user_name" not in prof and "company_id" not in prof
    r = run_token(config)
    assert r.returncode == 0 and fake.access_token_valid(r.stdout.strip())
    assert fake.counts["token:authorization_code"] == 1


async def test_one_company_is_chosen_for_the_person(make_app: Any, config: Path) -> None:
    with FakeProcore(companies=[{"id": 77, "name": "Only Co."}]) as fake:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await jump_to_authorize(pilot, fake)
            await paste_code(pilot, fake.issue_code())
            listing = app.screen.query_one("#companies")
            assert listing.highlighted_option.id == "77"
            await pilot.press("ctrl+s")
            await settle(pilot)
    assert tomllib.loads(config.read_text())["profiles"]["default"]["company_id"] == 77


async def test_save_failure_is_shown_and_the_tokens_stay_saved(make_app: Any, fake: FakeProcore,
                                                                config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        await paste_code(pilot, fake.issue_code())
        before = config.read_bytes()  # the grant, saved at the exchange
        config.parent.chmod(0o777)  # someone else could swap the file: the store refuses to write here
        try:
            await pilot.press("ctrl+s")
            await settle(pilot)
            assert screen_name(app) == "VerifyScreen"
            assert "writable by group or others" in message(app)
            assert "saved with its new tokens" in message(app) and "Press Ctrl+S to try again" in message(app)
            assert config.read_bytes() == before
        finally:
            config.parent.chmod(0o700)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert screen_name(app) == "SavedScreen"
    assert run_token(config).returncode == 0
