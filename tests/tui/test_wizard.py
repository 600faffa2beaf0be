"""The wizard, step by step, against the fake Procore over real HTTP, ending in files `token` reads."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any, cast

import pytest
from textual.widgets import Input

from procore_setup.stores.file import FileStore
from procore_setup.testing import FakeProcore
from procore_setup.testing.demo import DemoSession
from procore_setup.tui.app import ProcoreSetupApp

from helpers.cli import CLIENT_ID, CLIENT_SECRET, EXE, base_env
from helpers.wizard import (
    SIZE,
    Clock,
    answer_kind,
    assert_not_in_file,
    jump_to_authorize,
    message,
    paste_code,
    run_token,
    save_on_verify,
    save_profile,
    screen_name,
    secret_leaks,
    settle,
    setup_profile,
    type_into,
    walk_to_authorize,
)


# -- the first run ------------------------------------------------------------------------------

async def test_first_run_saves_a_profile_that_token_reads(make_app: Any, fake: FakeProcore, config: Path,
                                                          clock: Clock) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        assert screen_name(app) == "KindScreen"  # no file yet: how will the scripts sign in, then step 1
        await answer_kind(pilot)  # a person's login
        assert not app.screen.query("#name")  # a first setup is the profile "default"
        await walk_to_authorize(pilot, fake)
        url = app.screen.url
        assert url.startswith(fake.url + "/oauth/authorize?") and "client_id=demo-client-id" in url
        await paste_code(pilot, fake.issue_code())
        assert screen_name(app) == "VerifyScreen", message(app)
        who = str(app.screen.query_one("#who").render())
        assert "Pat Builder" in who and "pat@example.com" in who and "4242" in who
        assert "(1 h 30 min)" in str(app.screen.query_one("#expiry").render())
        await save_on_verify(pilot, company_row=1)  # Builder Demo Co.
        body = "\n".join(str(w.render()) for w in app.screen.query("#body > Static"))
        assert str(config.resolve()) in body and "mode 0600" in body
        assert "refresh --profile default --quiet" in str(app.screen.query_one("#cron").render())
        assert "Procore-Company-Id: 8675309" in str(app.screen.query_one("#curl").render())
        assert secret_leaks(body, CLIENT_SECRET) == []  # no secret on the last screen either, in any form
        await pilot.press("q")
    assert app.return_code == 0
    data = tomllib.loads(config.read_text())
    prof = data["profiles"]["default"]
    assert prof["environment"] == "custom" and prof["login_url"] == fake.url
    assert prof["company_id"] == 8675309 and prof["user_login"] == "pat@example.com"
    assert data["default_profile"] == "default"
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    r = run_token(config)
    assert r.returncode == 0, r.stderr
    assert fake.access_token_valid(r.stdout.strip())


async def test_copy_on_saved_screen_puts_the_cron_line_on_the_clipboard(make_app: Any, fake: FakeProcore) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        await paste_code(pilot, fake.issue_code())
        await save_on_verify(pilot, 1)
        await pilot.press("c")
        assert app.clipboard.startswith("*/20 * * * * ") and app.clipboard.endswith("--quiet")
        await pilot.press("y")
        assert "ProcoreAuth(profile='default'" in app.clipboard
        await pilot.press("escape")  # Esc on Saved: the list of profiles
        await pilot.pause()
        assert screen_name(app) == "ProfilesScreen"
        assert "default" in str(app.screen.query_one("#profiles").get_option_at_index(0).prompt)


async def test_demo_mode_walks_without_a_browser(clock: Clock) -> None:
    with DemoSession() as demo:
        app = ProcoreSetupApp(clock=clock, demo=demo)
        assert cast(FileStore, app.store).path == str(Path(demo.config_path).resolve())
        async with app.run_test(size=SIZE) as pilot:
            await answer_kind(pilot)
            assert app.screen.query_one("#login_url", Input).value == demo.url  # prefilled for the fake server
            await pilot.press("enter")  # the prefilled environment
            await pilot.pause()
            assert screen_name(app) == "ClientScreen"
            secret = app.screen.query_one("#secret", Input)
            assert secret.value == demo.client_secret and secret.password  # prefilled, masked
            await pilot.press("enter")
            await pilot.pause()
            assert screen_name(app) == "AuthorizeScreen"
            assert "Demo" in str(app.screen.query_one("#demo-note").render())
            await pilot.press("f")  # fetch the fake authorize page: no browser needed
            await settle(pilot)
            assert screen_name(app) == "CodeScreen", message(app)
            assert app.screen.query_one("#code", Input).value
            await pilot.press("enter")
            await settle(pilot)
            await save_on_verify(pilot)
            await pilot.press("q")
        saved = tomllib.loads(Path(demo.config_path).read_text())
        assert saved["profiles"]["default"]["login_url"] == demo.url
        assert run_token(Path(demo.config_path)).returncode == 0


async def test_fetch_demo_code_is_not_offered_outside_demo_mode(make_app: Any, fake: FakeProcore) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        assert not app.screen.query("#fetch") and not app.screen.query("#demo-note")
        await pilot.press("f")
        await pilot.pause()
        assert screen_name(app) == "AuthorizeScreen"


# -- profiles: reconfigure, re-authorize, add, default, remove -----------------------------------

@pytest.fixture
def one_profile(fake: FakeProcore, config: Path) -> Path:
    save_profile(config, fake)
    return config


async def test_existing_file_opens_on_profiles(make_app: Any, fake: FakeProcore, one_profile: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)  # the list is read by a worker
        assert screen_name(app) == "ProfilesScreen"
        row = str(app.screen.query_one("#profiles").get_option_at_index(0).prompt)
        assert "★ default" in row and "custom" in row and "Pat Builder" in row
        details = str(app.screen.query_one("#details").render())
        assert "client id demo-client-id" in details and secret_leaks(details, CLIENT_SECRET) == []
        await pilot.press("escape")  # Esc on the list: quit, nothing to lose
        await pilot.pause()
    assert app.return_code == 0


async def test_reconfigure_keeps_the_stored_secret(make_app: Any, fake: FakeProcore, one_profile: Path) -> None:
    before = tomllib.loads(one_profile.read_text())["profiles"]["default"]
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)  # the profile is opened by a worker
        assert app.screen.query_one("#kinds").highlighted_option.id == "user"  # the profile's kind
        await answer_kind(pilot)
        assert not app.screen.query("#name")  # the name of an existing profile is not asked
        assert app.screen.query_one("#login_url", Input).value == fake.url  # prefilled from the file
        await pilot.press("enter")
        await pilot.pause()
        assert screen_name(app) == "ClientScreen"
        secret = app.screen.query_one("#secret", Input)
        assert secret.value == "" and "kept" in secret.placeholder
        await pilot.press("enter")  # id prefilled, secret left empty: kept
        await pilot.pause()
        assert screen_name(app) == "AuthorizeScreen", message(app)
        await paste_code(pilot, fake.issue_code())
        await save_on_verify(pilot, company_row=2)
        await pilot.press("q")
    after = tomllib.loads(one_profile.read_text())["profiles"]["default"]
    assert after["client_secret"] == before["client_secret"] == CLIENT_SECRET
    assert after["company_id"] == 562949953421313  # ids beyond 32 bits survive
    assert after["refresh_token"] != before["refresh_token"]
    assert fake.refresh_token_state(after["refresh_token"]) == "active"
    assert run_token(one_profile).returncode == 0


async def test_reauthorize_only_skips_to_authorize(make_app: Any, fake: FakeProcore, one_profile: Path) -> None:
    before = tomllib.loads(one_profile.read_text())["profiles"]["default"]
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        assert screen_name(app) == "AuthorizeScreen"
        await paste_code(pilot, fake.issue_code())
        await save_on_verify(pilot)
        await pilot.press("escape")  # back to the list, which shows the new state
        await pilot.pause()
        assert screen_name(app) == "ProfilesScreen"
        await pilot.press("ctrl+q")  # nothing unsaved: quits without asking
        await pilot.pause()
    after = tomllib.loads(one_profile.read_text())["profiles"]["default"]
    assert after["access_token"] != before["access_token"]
    assert after["client_id"] == before["client_id"] and after["login_url"] == before["login_url"]
    assert after["company_id"] == 8675309  # the earlier choice is the default
    assert run_token(one_profile).returncode == 0


async def test_login_command_goes_straight_to_authorize(make_app: Any, one_profile: Path) -> None:
    app = make_app(login=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)  # the file is read and the profile opened by workers
        assert screen_name(app) == "AuthorizeScreen"  # `procore-setup login`: the client settings are kept
        assert app.mode == "reauthorize" and app.flow.client_id == CLIENT_ID and app.flow.has_secret
        await pilot.press("escape")  # the first screen: Esc asks (nothing to go back to), y leaves
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code == 0


async def test_login_command_without_a_file_sets_the_profile_up(make_app: Any, fake: FakeProcore,
                                                                 config: Path) -> None:
    app = make_app(login=True, profile="acme")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await answer_kind(pilot)
        assert not app.screen.query("#name")  # --profile acme was given
        await setup_profile(pilot, fake)
        await pilot.press("q")
    data = tomllib.loads(config.read_text())
    assert list(data["profiles"]) == ["acme"] and data["default_profile"] == "acme"
    assert run_token(config, "--profile", "acme").returncode == 0


async def test_add_a_second_profile_and_make_it_the_default(make_app: Any, fake: FakeProcore,
                                                            one_profile: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await pilot.pause()
        await answer_kind(pilot)
        await type_into(pilot, "#name", "default")
        await pilot.press("enter")  # to the list of environments
        await pilot.press("enter")  # production
        await settle(pilot)  # the file is read by a worker
        assert "already a profile called 'default'" in message(app)
        await walk_to_authorize(pilot, fake, name="sandbox")
        await paste_code(pilot, fake.issue_code())
        assert screen_name(app) == "VerifyScreen"
        make_default = app.screen.query_one("#make-default")
        assert make_default.display  # another profile is the default: offer to switch
        make_default.value = True
        await save_on_verify(pilot, company_row=0)  # no default company
        await pilot.press("escape")
        await pilot.pause()
        names = [str(app.screen.query_one("#profiles").get_option_at_index(i).prompt) for i in range(2)]
        assert any(n.startswith("★ sandbox") for n in names)
        await pilot.press("q")  # `q` is not a key on the list: still there
        await pilot.pause()
        assert screen_name(app) == "ProfilesScreen"
    data = tomllib.loads(one_profile.read_text())
    assert sorted(data["profiles"]) == ["default", "sandbox"] and data["default_profile"] == "sandbox"
    assert "company_id" not in data["profiles"]["sandbox"]
    assert run_token(one_profile).returncode == 0  # the new default


async def test_set_default_and_remove_with_confirmation(make_app: Any, fake: FakeProcore,
                                                        one_profile: Path) -> None:
    save_profile(one_profile, fake, "second")
    app = make_app(profile="second")  # --profile: that one is highlighted
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        listing = app.screen.query_one("#profiles")
        assert listing.highlighted_option.id == "second"
        await pilot.press("d")
        await settle(pilot)
        assert "'second' is now the default profile" in message(app)
        assert tomllib.loads(one_profile.read_text())["default_profile"] == "second"
        assert str(listing.get_option_at_index(1).prompt).startswith("★ second")

        await pilot.press("x")
        await pilot.pause()
        assert screen_name(app) == "ConfirmDialog"
        await pilot.press("escape")  # changed my mind
        await pilot.pause()
        assert sorted(tomllib.loads(one_profile.read_text())["profiles"]) == ["default", "second"]

        await pilot.press("x")
        await pilot.pause()
        await pilot.press("tab", "enter")  # from "Keep it" to "Remove"
        await settle(pilot)
        assert screen_name(app) == "ProfilesScreen"
        assert "Removed profile 'second'" in message(app)
        assert app.screen.query_one("#profiles").option_count == 1
    data = tomllib.loads(one_profile.read_text())
    assert list(data["profiles"]) == ["default"] and "default_profile" not in data
    assert run_token(one_profile).returncode == 0  # the one left is used


async def test_broken_file_is_shown_not_overwritten(make_app: Any, config: Path) -> None:
    config.parent.mkdir(mode=0o700)
    config.write_text("schema_version = 1\n[profiles.x]\nenvironment = 'production'\n")
    config.chmod(0o600)
    before = config.read_bytes()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert screen_name(app) == "ProfilesScreen"
        assert "cannot be used" in message(app) and "missing the field" in message(app)
        assert app.screen.check_action("add", ()) is None  # greyed out in the footer
        await pilot.press("a")
        await pilot.pause()
        assert screen_name(app) == "ProfilesScreen"
    assert config.read_bytes() == before


# -- quitting -------------------------------------------------------------------------------------

async def test_ctrl_q_asks_before_discarding_progress(make_app: Any, fake: FakeProcore, config: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump_to_authorize(pilot, fake)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert screen_name(app) == "ConfirmDialog"
        assert "not saved yet" in str(app.screen.query_one("#dialog-text").render())
        await pilot.press("escape")  # keep going
        await pilot.pause()
        assert screen_name(app) == "AuthorizeScreen"
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code == 130 and app.return_value == 130
    assert not config.exists()


async def test_ctrl_q_on_the_first_screen_quits_at_once(make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert app.return_code == 0


async def test_esc_goes_back_step_by_step(make_app: Any, fake: FakeProcore) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_authorize(pilot, fake)
        await pilot.press("n")
        await pilot.pause()
        seen = [screen_name(app)]
        for _ in range(4):
            await pilot.press("escape")
            await pilot.pause()
            seen.append(screen_name(app))
            if seen[-1] == "EnvironmentScreen":
                assert app.screen.query_one("#login_url", Input).value == fake.url  # what was typed is still there
        assert seen == ["CodeScreen", "AuthorizeScreen", "ClientScreen", "EnvironmentScreen", "KindScreen"]


async def test_encrypted_file_needs_its_passphrase(make_app: Any, fake: FakeProcore, one_profile: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    r = subprocess.run([EXE, "--config", str(one_profile), "encrypt"], capture_output=True, text=True, timeout=60,
                       env=base_env(PROCORE_SETUP_PASSPHRASE="correct horse"))
    assert r.returncode == 0, r.stderr
    before = one_profile.read_bytes()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "secrets encrypted" in str(app.screen.query_one("#file").render())
        assert "(encrypted)" in str(app.screen.query_one("#details").render())
        await pilot.press("l")  # re-authorize: the stored secret must be decrypted first
        await settle(pilot)
        assert screen_name(app) == "UnlockDialog"  # no env, command or keyring: the wizard asks
        await type_into(pilot, "#unlock-passphrase", "wrong horse")
        await pilot.press("enter")
        await settle(pilot)
        assert "Wrong passphrase" in str(app.screen.query_one("#dialog-error").render())
        await pilot.press("escape")  # cancel: back on the list, nothing changed
        await pilot.pause()
        assert screen_name(app) == "ProfilesScreen"
        await pilot.press("l")
        await settle(pilot)
        await type_into(pilot, "#unlock-passphrase", "correct horse")
        await pilot.press("enter")
        await settle(pilot)
        assert screen_name(app) == "AuthorizeScreen", message(app)
    assert one_profile.read_bytes() == before

    monkeypatch.setenv("PROCORE_SETUP_PASSPHRASE", "correct horse")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        assert screen_name(app) == "AuthorizeScreen", message(app)
        await paste_code(pilot, fake.issue_code())
        await save_on_verify(pilot)
    # still encrypted, the new tokens too: no secret in the file in any quoting, escape or encoding
    prof = tomllib.loads(one_profile.read_text())["profiles"]["default"]
    assert all(prof[k].startswith("enc:v1:") for k in ("client_secret", "access_token", "refresh_token"))
    r = subprocess.run([EXE, "token"], capture_output=True, text=True, timeout=60,
                       env=base_env(PROCORE_SETUP_CONFIG=str(one_profile), PROCORE_SETUP_PASSPHRASE="correct horse"))
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert fake.access_token_valid(token)  # the new pair of the re-authorization, stored encrypted
    assert_not_in_file(one_profile, CLIENT_SECRET, token, "correct horse")
