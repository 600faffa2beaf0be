"""Service accounts (Procore's client-credentials grant, DMSA) as a second kind of profile.

Through the real executable against the fake Procore over HTTP: the profile kind in the file,
`login --plain --service-account`, a token reused while valid and requested again (once, under
the lock) when it is not, a rotated secret, both kinds in one file, revoke and encryption.
"""

from __future__ import annotations

import json
import os
import tomllib
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import tomli_w

from procore_setup.testing import SERVICE_ACCOUNT_CLIENT_ID as SA_ID
from procore_setup.testing import SERVICE_ACCOUNT_CLIENT_SECRET as SA_SECRET
from procore_setup.testing import FakeProcore

from helpers.cli import CLI

COMPANY = 8675309  # the one company the fake's service account is installed in
PASS = {"PROCORE_SETUP_PASSPHRASE": "correct horse battery staple"}


@pytest.fixture(autouse=True)
def _guard_the_service_account_secret(secret_guard: Any) -> None:
    secret_guard.add(SA_SECRET, "the service account's client secret")


def sa_login(cli: CLI, profile: str = "robot", *extra: str, secret: str = SA_SECRET,
             env: dict[str, str] | None = None) -> Any:
    return cli.run("login", "--plain", "--service-account", "--profile", profile, "--environment", "custom",
                   "--login-url", cli.fake.url, "--api-url", cli.fake.url, "--client-id", SA_ID, *extra,
                   env={"PROCORE_CLIENT_SECRET": secret, **(env or {})})


def stored(cli: CLI, profile: str = "robot") -> dict[str, Any]:
    return tomllib.loads(cli.config.read_text())["profiles"][profile]


def expire_stored(cli: CLI, *profiles: str) -> None:
    """Make the stored tokens of `profiles` look expired (as if their 90 minutes had passed)."""
    data = tomllib.loads(cli.config.read_text())
    for name in profiles:
        data["profiles"][name]["expires_at"] = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=5)
    tmp = cli.config.with_name("edit.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        tomli_w.dump(data, f)
    os.replace(tmp, cli.config)


def token(cli: CLI, *args: str, env: dict[str, str] | None = None) -> str:
    r = cli.run("token", *args, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def write(cli: CLI, text: str) -> None:
    cli.config.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    cli.config.touch(mode=0o600)
    cli.config.write_text(text)


PERSON = """schema_version = 1
[profiles.{name}]
environment = "custom"
login_url = "{url}"
api_url = "{url}"
client_id = "demo-client-id"
client_secret = "demo-client-secret"
{extra}
"""


def test_a_profile_without_a_kind_is_a_persons_login(cli: CLI) -> None:
    write(cli, PERSON.format(name="old", url=cli.fake.url, extra=""))
    r = cli.run("status", "--json")
    info = json.loads(r.stdout)["profiles"][0]
    assert info["kind"] == "user"
    assert r.returncode == 4  # as before kinds existed: no tokens, a person must log in
    assert any("never logged in" in p for p in info["problems"])
    assert "kind:          a person's login" in cli.run("status").stdout


def test_an_unknown_kind_is_refused_naming_the_profile(cli: CLI) -> None:
    write(cli, PERSON.format(name="robot", url=cli.fake.url, extra='kind = "robot"'))
    before = cli.config.read_bytes()
    for args in (("token",), ("status",), ("refresh", "--all")):
        r = cli.run(*args)
        assert r.returncode == 6, (args, r.stderr)
        assert "profile 'robot'" in r.stderr and "unknown kind 'robot'" in r.stderr
        assert "user and service_account" in r.stderr
    assert cli.config.read_bytes() == before


def test_a_kind_that_is_not_text_is_refused(cli: CLI) -> None:
    write(cli, PERSON.format(name="p", url=cli.fake.url, extra="kind = 3"))
    r = cli.run("status")
    assert r.returncode == 6 and "field kind must be a str" in r.stderr


# -- login --plain --service-account ---------------------------------------------------------------

def test_login_requests_a_token_verifies_it_and_saves_the_profile(cli: CLI, fake: FakeProcore) -> None:
    r = sa_login(cli, "robot", "--company-id", str(COMPANY))
    assert r.returncode == 0, r.stderr
    prof = stored(cli)
    assert prof["kind"] == "service_account" and prof["client_id"] == SA_ID
    assert "refresh_token" not in prof and prof["token_type"] == "Bearer" and prof["expires_in"] == 5400
    assert prof["company_id"] == COMPANY and prof["company_name"] == "Builder Demo Co."
    assert prof["user_name"] == "Demo Service Account" and prof["user_id"] == 9001
    assert fake.access_token_valid(prof["access_token"])
    assert oct(cli.config.stat().st_mode & 0o777) == "0o600"
    # no browser, no code: one client-credentials request, then token info, /me and the companies
    assert fake.counts["token:client_credentials"] == 1 and fake.counts["authorize"] == 0
    assert fake.counts["token:authorization_code"] == 0 and fake.counts["token_info"] == 1
    assert fake.counts["me"] == 1 and fake.counts["companies"] == 1
    assert "Saved service account profile 'robot'" in r.stdout and "Procore-Company-Id: 8675309" in r.stdout
    assert "Default company: Builder Demo Co. (8675309)" in r.stderr
    assert token(cli, "--profile", "robot") == prof["access_token"]
    assert fake.counts["token:client_credentials"] == 1  # reused, not requested again


def test_login_without_a_company_says_the_companies_could_not_be_listed(cli: CLI, fake: FakeProcore) -> None:
    r = sa_login(cli)  # stdin is no terminal: nobody to ask for a company id
    assert r.returncode == 0, r.stderr
    assert "companies could not be listed" in r.stderr and "Procore-Company-Id" in r.stderr
    assert "--company-id ID" in r.stderr
    prof = stored(cli)
    assert "company_id" not in prof and prof["kind"] == "service_account"
    assert fake.access_token_valid(prof["access_token"])


def test_a_company_the_app_is_not_installed_in_is_exit_2_with_the_token_saved(cli: CLI, fake: FakeProcore) -> None:
    r = sa_login(cli, "robot", "--company-id", "31337")
    # the header names a company the app is not in: Procore refuses /me and /companies (403)
    assert r.returncode == 0, r.stderr
    assert "Default company: 31337 (not checked" in r.stderr and "403" in r.stderr
    assert fake.access_token_valid(stored(cli)["access_token"])


def test_a_wrong_secret_at_login_is_exit_4_and_saves_nothing(cli: CLI, fake: FakeProcore) -> None:
    r = sa_login(cli, secret="not-the-secret-at-all")
    assert r.returncode == 4 and "invalid_client" in r.stderr
    assert not cli.config.exists()


def test_service_account_opens_the_wizard_or_plain_and_takes_no_code(cli: CLI) -> None:
    # Without --plain it is the wizard's service-account path (tests/tui/test_service_account.py),
    # which needs a terminal: here there is none, so the answer is the line-prompt version.
    r = cli.run("login", "--service-account")
    assert r.returncode == 2 and "needs a terminal" in r.stderr and "goes with `login --plain`" not in r.stderr
    r = cli.run("login", "--service-account", "--client-id", "x")  # the flags still go with --plain
    assert r.returncode == 2 and "--client-id goes with `login --plain`" in r.stderr
    r = sa_login(cli, "robot", "--code=abc")
    assert r.returncode == 2 and "--code and --redirect-uri go with a person's login" in r.stderr


# -- tokens: reused while valid, requested once when not ------------------------------------------

def test_sixteen_token_calls_after_expiry_make_one_request_and_print_one_token(cli: CLI, fake: FakeProcore) -> None:
    assert sa_login(cli, "robot", "--company-id", str(COMPANY)).returncode == 0
    old = stored(cli)["access_token"]
    expire_stored(cli, "robot")
    procs = [cli.popen("token", "--profile", "robot") for _ in range(16)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 16, [err for _, err in results]
    printed = {out.strip() for out, _ in results}
    assert len(printed) == 1
    new = printed.pop()
    assert new != old and new == stored(cli)["access_token"] and fake.access_token_valid(new)
    assert fake.counts["token:client_credentials"] == 2  # the login's and exactly one more
    assert "refresh_started_at" not in stored(cli)  # nothing single-use: no in-flight mark


def test_an_expired_token_is_replaced_and_the_library_follows(cli: CLI, fake: FakeProcore,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    from procore_setup import ProcoreAuth, get_token

    assert sa_login(cli, "robot", "--company-id", str(COMPANY)).returncode == 0
    first = stored(cli)["access_token"]
    monkeypatch.setenv("PROCORE_SETUP_CONFIG", str(cli.config))
    assert get_token("robot") == first and fake.counts["token:client_credentials"] == 1
    fake.expire_access_tokens()  # Procore refuses the stored token although its expiry is later
    with httpx.Client(base_url=fake.url, auth=ProcoreAuth("robot")) as api:
        me = api.get("/rest/v1.0/me")  # 401, a new token, the retry (with the saved company header)
    assert me.status_code == 200 and me.json()["name"] == "Demo Service Account"
    second = stored(cli)["access_token"]
    assert second != first and fake.counts["token:client_credentials"] == 2
    expire_stored(cli, "robot")
    third = token(cli, "--profile", "robot")
    assert third not in (first, second) and fake.counts["token:client_credentials"] == 3
    assert stored(cli)["company_id"] == COMPANY and stored(cli)["kind"] == "service_account"


def test_a_rotated_secret_is_exit_4_with_the_command_and_a_new_login_keeps_the_rest(
        cli: CLI, fake: FakeProcore, secret_guard: Any) -> None:
    assert sa_login(cli, "robot", "--company-id", str(COMPANY)).returncode == 0
    before = stored(cli)
    rotated = "rotated-dmsa-secret-0042"
    secret_guard.add(rotated, "the rotated secret")
    fake.service_account_client_secret = rotated  # rotated on the Manage App page
    expire_stored(cli, "robot")
    r = cli.run("token", "--profile", "robot")
    assert r.returncode == 4 and "invalid_client" in r.stderr
    assert "procore-setup --config" in r.stderr and "login --plain --service-account --profile robot" in r.stderr
    after = stored(cli)
    assert after["reauth_required"] is True
    for key in ("client_id", "client_secret", "access_token", "company_id", "company_name", "login_url", "kind"):
        assert after[key] == before[key], key
    status = cli.run("status", "--json")
    assert status.returncode == 4
    assert any("login --plain --service-account --profile robot" in p
               for p in json.loads(status.stdout)["profiles"][0]["problems"])
    # the next call is refused at once, without asking Procore again
    assert cli.run("token", "--profile", "robot").returncode == 4
    assert fake.counts["token:client_credentials"] == 2

    r = sa_login(cli, "robot", secret=rotated)  # no --company-id: the stored one is kept
    assert r.returncode == 0, r.stderr
    prof = stored(cli)
    assert prof["client_secret"] == rotated and prof["company_id"] == COMPANY
    assert prof["company_name"] == "Builder Demo Co." and "reauth_required" not in prof
    assert token(cli, "--profile", "robot") == prof["access_token"]
    assert cli.run("status").returncode == 0


# -- both kinds in one file ---------------------------------------------------------------------

def test_a_person_and_a_service_account_in_one_file(cli: CLI, fake: FakeProcore) -> None:
    cli.login("person")
    assert sa_login(cli, "robot", "--company-id", str(COMPANY)).returncode == 0
    status = cli.run("status", "--json")
    assert status.returncode == 0, status.stdout
    infos = {p["profile"]: p for p in json.loads(status.stdout)["profiles"]}
    assert infos["person"]["kind"] == "user" and infos["robot"]["kind"] == "service_account"
    assert infos["robot"]["problems"] == [] and infos["person"]["problems"] == []
    text = cli.run("status").stdout
    assert "kind:          a service account" in text
    assert "no refresh token: a new token is requested as needed" in text

    old = {name: stored(cli, name)["access_token"] for name in ("person", "robot")}
    expire_stored(cli, "person", "robot")
    r = cli.run("refresh", "--all", "--json")
    assert r.returncode == 0, r.stderr
    outcomes = {o["profile"]: o for o in json.loads(r.stdout)}
    assert {name: o["refreshed"] for name, o in outcomes.items()} == {"person": True, "robot": True}
    assert {name: o["kind"] for name, o in outcomes.items()} == {"person": "user", "robot": "service_account"}
    assert fake.counts["refresh_ok"] == 1 and fake.counts["token:client_credentials"] == 2
    for name in ("person", "robot"):
        assert stored(cli, name)["access_token"] != old[name]
        assert fake.access_token_valid(stored(cli, name)["access_token"])
    assert "refresh_token" in stored(cli, "person") and "refresh_token" not in stored(cli, "robot")
    r = cli.run("refresh", "--all")  # both valid now: nothing to do
    assert r.returncode == 0 and r.stdout.count("still valid, nothing to do") == 2
    assert fake.counts["token:client_credentials"] == 2 and fake.counts["refresh_ok"] == 1


def test_refresh_says_a_service_account_got_a_new_token_not_a_refresh(cli: CLI, fake: FakeProcore) -> None:
    """A service account has no refresh token: `refresh` requests a new token, and says so."""
    cli.login("person")
    assert sa_login(cli, "robot", "--company-id", str(COMPANY)).returncode == 0
    r = cli.run("refresh", "--all", "--force")
    assert r.returncode == 0, r.stderr
    lines = {line.split(":", 1)[0]: line for line in r.stdout.splitlines()}
    assert lines["robot"].startswith("robot: new token requested (service account); access token valid until")
    assert "refreshed" not in lines["robot"]
    assert lines["person"].startswith("person: refreshed; access token valid until")
    assert fake.counts["refresh_ok"] == 1 and fake.counts["token:client_credentials"] == 2
    r = cli.run("refresh", "--profile", "robot", "--force", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["refreshed"] is True and out["kind"] == "service_account" and out["ok"] is True


def test_revoke_revokes_the_current_token_and_the_next_token_call_gets_a_new_one(cli: CLI, fake: FakeProcore) -> None:
    assert sa_login(cli, "robot", "--company-id", str(COMPANY)).returncode == 0
    old = stored(cli)["access_token"]
    r = cli.run("revoke", "--profile", "robot")
    assert r.returncode == 0, r.stderr
    assert "token revoked at Procore and locally" in r.stdout and fake.counts["revoke"] == 1
    assert not fake.access_token_valid(old)
    prof = stored(cli)
    assert "access_token" not in prof and prof["client_secret"] == SA_SECRET and prof["company_id"] == COMPANY
    assert cli.run("status").returncode == 0  # nothing a person must do
    new = token(cli, "--profile", "robot")
    assert new != old and fake.access_token_valid(new) and fake.counts["token:client_credentials"] == 2


def test_encryption_covers_the_secret_and_the_token(cli: CLI, fake: FakeProcore) -> None:
    assert sa_login(cli, "robot", "--company-id", str(COMPANY)).returncode == 0
    r = cli.run("encrypt", env=PASS)
    assert r.returncode == 0, r.stderr
    first = token(cli, "--profile", "robot", env=PASS)
    text = cli.config.read_text()
    prof = stored(cli)
    assert prof["client_secret"].startswith("enc:v1:") and prof["access_token"].startswith("enc:v1:")
    assert SA_SECRET not in text and first not in text
    expire_stored(cli, "robot")
    second = token(cli, "--profile", "robot", env=PASS)
    assert second != first and fake.counts["token:client_credentials"] == 2
    text = cli.config.read_text()
    assert second not in text and stored(cli)["access_token"].startswith("enc:v1:")
    # a rotated secret goes in encrypted too
    fake.service_account_client_secret = "rotated-dmsa-secret-0042"
    r = sa_login(cli, "robot", secret="rotated-dmsa-secret-0042", env=PASS)
    assert r.returncode == 0, r.stderr
    assert "rotated-dmsa-secret-0042" not in cli.config.read_text()
    assert stored(cli)["client_secret"].startswith("enc:v1:")
    assert token(cli, "--profile", "robot", env=PASS) == token(cli, "--profile", "robot", env=PASS)


def test_on_a_terminal_the_company_id_is_asked_for_and_checked(cli: CLI, fake: FakeProcore) -> None:
    import subprocess

    from helpers.cli import EXE

    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [EXE, "login", "--plain", "--service-account", "--profile", "robot", "--environment", "custom",
             "--login-url", fake.url, "--api-url", fake.url, "--client-id", SA_ID],
            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(cli.env, PROCORE_CLIENT_SECRET=SA_SECRET))
        os.write(master, f"{COMPANY}\n".encode())  # the answer waits in the terminal until it is asked
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, err
    assert "could not be listed" in err and "app.procore.com/<COMPANY ID>/company/home/list" in err
    prof = stored(cli)
    # asked, then checked with the header: the name comes from the companies the app is installed in
    assert prof["company_id"] == COMPANY and prof["company_name"] == "Builder Demo Co."
    assert prof["user_name"] == "Demo Service Account"
    assert fake.counts["companies"] == 2 and fake.counts["token:client_credentials"] == 1


def test_demo_offers_the_service_account_path(cli: CLI) -> None:
    r = cli.run("login", "--plain", "--demo", "--service-account",
                env={"PROCORE_CLIENT_SECRET": "a-real-secret-never-sent"})
    assert r.returncode == 0, r.stderr
    assert "Demo mode" in r.stderr and "Saved service account profile 'default'" in r.stdout
    assert not cli.config.exists()  # a throwaway file, not the user's
