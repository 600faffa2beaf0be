"""The scriptable commands, run as the real `procore-setup` executable against the fake Procore.

Login through `login --plain`, `token`, `refresh`, `status`, `revoke`, usage errors and
"not configured". Each test uses a fresh credentials file in a temporary directory and
a fake Procore over real HTTP on 127.0.0.1; every output is checked for secrets.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers.cli import CLIENT_ID, CLIENT_SECRET, EXE, base_env
from helpers.engine import (
    FIRST_COMPANY,
    SECOND_COMPANY,
    Engine,
    load,
    mode_of,
    rewrite,
    set_expiry,
    Snapshot,
    temp_files,
)


OOB = "urn:ietf:wg:oauth:2.0:oob"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _authorize_lines(stdout: str, base: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(base + "/oauth/authorize?")]


# -- first login through `login --plain` ------------------------------------------------------

def test_first_login_with_flags_creates_an_owner_only_file(eng: Engine) -> None:
    # umask 000: the modes must come from how the file is created, not from the user's umask
    r = eng.login_cli(umask=0)
    assert r.returncode == 0
    conf_dir = eng.config.parent
    assert mode_of(conf_dir) == 0o700
    assert mode_of(eng.config) == 0o600
    lock = eng.config.with_name(eng.config.name + ".lock")
    if lock.exists():
        assert mode_of(lock) & 0o077 == 0
    assert temp_files(conf_dir) == []
    assert f"Saved profile 'default' to {eng.config}" in r.stdout
    assert "(mode 0600)" in r.stdout

    doc = load(eng.config)
    assert doc["schema_version"] == 1
    assert doc["default_profile"] == "default"
    prof = doc["profiles"]["default"]
    assert prof["environment"] == "custom"
    assert prof["login_url"] == eng.fake.url and prof["api_url"] == eng.fake.url
    assert prof["client_id"] == CLIENT_ID and prof["client_secret"] == CLIENT_SECRET
    assert prof["redirect_uri"] == OOB
    assert eng.fake.access_token_valid(prof["access_token"])
    assert eng.fake.refresh_token_state(prof["refresh_token"]) == "active"
    assert prof["token_type"] == "bearer"
    left = (prof["expires_at"] - _now()).total_seconds()
    assert 5400 - 60 < left <= 5400
    assert isinstance(prof["created_at"], int)
    assert (prof["user_id"], prof["user_login"], prof["user_name"]) == (4242, "pat@example.com", "Pat Builder")
    assert prof["company_id"] == FIRST_COMPANY
    assert "last_refresh_at" not in prof and "refresh_started_at" not in prof

    c = eng.fake.counts
    assert c["code_ok"] == 1 and c["token:refresh_token"] == 0
    assert c["token_info"] >= 1 and c["me"] >= 1  # the login was verified


def test_login_answers_from_stdin_lines_with_the_secret_in_the_environment(eng: Engine) -> None:
    code = eng.fake.issue_code()
    answers = ["custom", eng.fake.url, eng.fake.url, CLIENT_ID, code, "2"]
    r = eng.run("login", "--plain", input="\n".join(answers) + "\n", env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    assert r.returncode == 0, r.stderr

    # the authorize URL is on stdout, on one line of its own, unwrapped
    lines = _authorize_lines(r.stdout, eng.fake.url)
    assert len(lines) == 1
    query = parse_qs(urlsplit(lines[0]).query)
    assert query == {"response_type": ["code"], "client_id": [CLIENT_ID], "redirect_uri": [OOB]}

    prof = eng.profile()
    assert prof["client_secret"] == CLIENT_SECRET
    assert prof["company_id"] == SECOND_COMPANY  # answer "2"
    assert eng.fake.access_token_valid(prof["access_token"])


def test_login_reads_the_client_secret_as_a_stdin_line(eng: Engine) -> None:
    code = eng.fake.issue_code()
    answers = ["custom", eng.fake.url, eng.fake.url, CLIENT_ID, CLIENT_SECRET, code, ""]
    r = eng.run("login", "--plain", "--profile", "site-a", input="\n".join(answers) + "\n")
    assert r.returncode == 0, r.stderr
    prof = eng.profile("site-a")
    assert prof["client_secret"] == CLIENT_SECRET
    assert "company_id" not in prof  # Enter: no default company
    assert eng.fake.access_token_valid(prof["access_token"])


def test_login_company_id_flag(eng: Engine) -> None:
    r = eng.login_cli("site-c", "--company-id", str(SECOND_COMPANY), company="")
    assert "Saved profile 'site-c'" in r.stdout
    assert eng.profile("site-c")["company_id"] == SECOND_COMPANY


def test_the_cron_line_login_prints_works_from_a_bare_cron_environment(eng: Engine) -> None:
    r = eng.login_cli()
    lines = [line.strip() for line in r.stdout.splitlines() if line.strip().startswith("*/")]
    assert len(lines) == 1, r.stdout
    command = shlex.split(lines[0])[5:]  # drop the five schedule fields
    assert command[0] == EXE and "--quiet" in command
    set_expiry(eng.config, 600)  # due for the cron's 20-minute window
    cron_env = {"PATH": "/usr/bin:/bin", "HOME": str(eng.config.parent.parent / "cron-home"), "LANG": "C"}
    done = subprocess.run(command, env=cron_env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=60)
    eng.check(done)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert eng.fake.counts["refresh_ok"] == 1


def _wrapped(text: str) -> str:
    """As pasted from a narrow terminal: surrounding blanks, a line break and a space inside."""
    return f"  {text[:9]}\n{text[9:30]} {text[30:]} \n"


CODE_FORMS = {
    "bare code": lambda base, code: code,
    "authorize/<CODE> URL": lambda base, code: f"{base}/oauth/authorize/{code}",
    "?code= URL": lambda base, code: f"{base}/oauth/authorize/native?code={code}",
}


@pytest.mark.parametrize("form", list(CODE_FORMS))
@pytest.mark.parametrize("how", ["flag", "flag with line breaks", "stdin line with spaces"])
def test_login_accepts_the_code_bare_or_inside_a_pasted_url(eng: Engine, form: str, how: str) -> None:
    code = eng.fake.issue_code()
    pasted = CODE_FORMS[form](eng.fake.url, code)
    base = ["login", "--plain", "--environment", "custom", "--login-url", eng.fake.url, "--api-url",
            eng.fake.url, "--client-id", CLIENT_ID]
    env = {"PROCORE_CLIENT_SECRET": CLIENT_SECRET}
    if how == "flag":
        r = eng.run(*base, "--code=" + pasted, input="1\n", env=env)
    elif how == "flag with line breaks":
        r = eng.run(*base, "--code=" + _wrapped(pasted), input="1\n", env=env)
    else:
        spaced = "   " + pasted[:12] + " " + pasted[12:] + "   "
        r = eng.run(*base, input=f"{spaced}\n1\n", env=env)
    assert r.returncode == 0, r.stderr
    assert eng.fake.counts["code_ok"] == 1
    assert eng.fake.access_token_valid(eng.profile()["access_token"])


def test_login_with_a_used_code_fails_and_keeps_the_existing_file(eng: Engine) -> None:
    code = eng.fake.issue_code()
    env = {"PROCORE_CLIENT_SECRET": CLIENT_SECRET}
    r = eng.run(*eng.login_args(code=code), input="1\n", env=env)
    assert r.returncode == 0, r.stderr
    before = Snapshot.of(eng.config)
    r = eng.run(*eng.login_args(code=code), input="1\n", env=env)  # the same code again
    assert r.returncode == 4, r.stderr
    assert "refused the code" in r.stderr
    before.assert_untouched(eng.config)


def test_login_with_a_wrong_client_secret_says_so_without_echoing_it(eng: Engine) -> None:
    wrong = "wrong-secret-0123456789abcdef"
    eng.extra_secrets.add(wrong)
    r = eng.run(*eng.login_args(), input="1\n", env={"PROCORE_CLIENT_SECRET": wrong})
    assert r.returncode == 4, r.stderr
    assert "invalid_client" in r.stderr
    assert not eng.config.exists()


def test_login_rejects_text_that_is_not_a_code(eng: Engine) -> None:
    r = eng.run(*eng.login_args(code="this is <not> a code!"), input="1\n",
                env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    assert r.returncode == 2, r.stderr
    assert "does not look like an authorization code" in r.stderr
    assert eng.fake.counts["token:authorization_code"] == 0
    assert not eng.config.exists()


def test_login_plain_with_stdin_at_eof_exits_2_at_once(eng: Engine) -> None:
    t0 = time.monotonic()
    r = eng.run("login", "--plain", input="", timeout=20)
    assert r.returncode == 2, r.stderr
    assert time.monotonic() - t0 < 10
    assert "stdin ended" in r.stderr
    assert r.stdout == ""
    assert not eng.config.exists() and not eng.config.parent.exists()


def test_login_plain_stops_at_the_first_missing_answer_without_a_request(eng: Engine) -> None:
    # everything but the code is given; stdin is empty: no prompt, no hang, no token request
    args = eng.login_args()
    args = [a for a in args if not a.startswith("--code=")]
    r = eng.run(*args, input="", env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET}, timeout=20)
    assert r.returncode == 2, r.stderr
    assert "authorization code" in r.stderr
    assert eng.fake.counts["token:authorization_code"] == 0
    assert not eng.config.exists()


def test_the_client_secret_is_never_a_command_line_flag(eng: Engine) -> None:
    r = eng.run(*eng.login_args(), "--client-secret", "flag-secret-value", input="1\n")
    assert r.returncode == 2
    assert not eng.config.exists()


@pytest.mark.parametrize("args", [[], ["login"]])
def test_the_wizard_refuses_to_start_without_a_terminal(eng: Engine, args: list[str]) -> None:
    r = eng.run(*args, input="", timeout=20)
    assert r.returncode == 2, r.stderr
    assert "login --plain" in r.stderr
    assert not eng.config.exists()


# -- token --------------------------------------------------------------------------------------

def test_token_prints_only_the_token(eng: Engine) -> None:
    eng.login()
    before = Snapshot.of(eng.config)
    token = eng.token()  # checks: exit 0, stdout is exactly the token, stderr empty
    assert token == eng.profile()["access_token"]
    assert eng.fake.access_token_valid(token)
    assert eng.fake.counts["token:refresh_token"] == 0
    before.assert_untouched(eng.config)  # a valid token costs a read, never a write


def test_token_refreshes_an_expired_token_first(eng: Engine) -> None:
    eng.login()
    old = eng.profile()
    eng.expire()
    assert not eng.fake.access_token_valid(old["access_token"])

    token = eng.token()
    assert token != old["access_token"]
    assert eng.fake.access_token_valid(token)
    assert eng.fake.counts["token:refresh_token"] == 1
    assert eng.fake.refresh_token_state(old["refresh_token"]) == "used"
    new = eng.profile()
    assert new["access_token"] == token
    assert eng.fake.refresh_token_state(new["refresh_token"]) == "active"
    assert "last_refresh_at" in new and "refresh_started_at" not in new
    assert (new["expires_at"] - _now()).total_seconds() > 5000
    assert mode_of(eng.config) == 0o600
    assert temp_files(eng.config.parent) == []

    assert eng.token() == token  # and now it is simply used
    assert eng.fake.counts["token:refresh_token"] == 1


def test_token_min_valid_sets_the_margin(eng: Engine) -> None:
    eng.login()
    first = eng.profile()["access_token"]
    assert eng.token("--min-valid", "60") == first  # 90 minutes left: nothing to do
    assert eng.token("--min-valid", "0") == first
    # a margin past half the token's life is cut to half: a just-issued token is used
    assert eng.token("--min-valid", "6000") == first
    set_expiry(eng.config, 2000)
    second = eng.token("--min-valid", "2500")  # fewer than 2500 s left: refresh first
    assert second != first
    assert eng.fake.counts["token:refresh_token"] == 1
    set_expiry(eng.config, 200)  # within the default 5 minutes
    third = eng.token()
    assert third != second
    assert eng.fake.counts["token:refresh_token"] == 2


def test_profile_selection_flag_and_environment(eng: Engine) -> None:
    eng.login("default")
    eng.login("site-b")
    a, b = eng.profile("default")["access_token"], eng.profile("site-b")["access_token"]
    assert eng.token() == a
    assert eng.token("--profile", "site-b") == b
    assert eng.token(env={"PROCORE_SETUP_PROFILE": "site-b"}) == b
    assert eng.token("--profile", "default", env={"PROCORE_SETUP_PROFILE": "site-b"}) == a
    # the global --config option overrides PROCORE_SETUP_CONFIG
    r = eng.run("--config", str(eng.config), "token", "--profile", "site-b",
                env={"PROCORE_SETUP_CONFIG": str(eng.config.with_name("elsewhere.toml"))})
    assert r.returncode == 0 and r.stdout.strip() == b


# -- refresh (cron) -----------------------------------------------------------------------------

def test_refresh_does_nothing_before_it_is_due(eng: Engine) -> None:
    eng.login()
    before = Snapshot.of(eng.config)
    r = eng.run("refresh")
    assert r.returncode == 0, r.stderr
    assert "nothing to do" in r.stdout
    assert eng.fake.counts["token:refresh_token"] == 0
    before.assert_untouched(eng.config)


def test_refresh_when_due(eng: Engine) -> None:
    eng.login()
    old = eng.profile()
    set_expiry(eng.config, 600)  # inside the default 20-minute window
    r = eng.run("refresh")
    assert r.returncode == 0, r.stderr
    assert "refreshed" in r.stdout
    assert eng.fake.counts["token:refresh_token"] == 1
    new = eng.profile()
    assert new["access_token"] != old["access_token"] and new["refresh_token"] != old["refresh_token"]
    assert eng.fake.access_token_valid(new["access_token"])
    # the next cron run finds nothing to do
    r = eng.run("refresh")
    assert r.returncode == 0 and "nothing to do" in r.stdout
    assert eng.fake.counts["token:refresh_token"] == 1


def test_refresh_min_valid_window_and_force(eng: Engine) -> None:
    eng.login()
    r = eng.run("refresh", "--min-valid", "5000")  # 5400 s left > 5000: not due
    assert r.returncode == 0 and eng.fake.counts["token:refresh_token"] == 0
    r = eng.run("refresh", "--min-valid", "6000")  # more than the token's life: cut to half of it, not due
    assert r.returncode == 0 and eng.fake.counts["token:refresh_token"] == 0
    set_expiry(eng.config, 2000)
    r = eng.run("refresh", "--min-valid", "2500")  # 2000 s left < 2500: due
    assert r.returncode == 0 and eng.fake.counts["token:refresh_token"] == 1
    r = eng.run("refresh", "--force")  # valid for 90 minutes, refreshed anyway
    assert r.returncode == 0, r.stderr
    assert eng.fake.counts["token:refresh_token"] == 2
    assert eng.fake.access_token_valid(eng.profile()["access_token"])


def test_refresh_quiet_prints_nothing_on_success(eng: Engine) -> None:
    eng.login()
    r = eng.run("refresh", "--quiet")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = eng.run("refresh", "--quiet", "--force")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert eng.fake.counts["token:refresh_token"] == 1
    # ... but a failure is still reported, on stderr, for cron's mail
    eng.fake.revoke_all()
    r = eng.run("refresh", "--quiet", "--force")
    assert r.returncode == 4
    assert r.stdout == "" and "login --profile default" in r.stderr


def test_refresh_json(eng: Engine) -> None:
    eng.login()
    r = eng.run("refresh", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["profile"] == "default" and out["ok"] is True and out["refreshed"] is False
    assert out["seconds_left"] > 5000
    r = eng.run("refresh", "--json", "--force")
    out = json.loads(r.stdout)
    assert out["ok"] is True and out["refreshed"] is True
    assert datetime.fromisoformat(out["expires_at"]) == eng.profile()["expires_at"]


def test_refresh_all_with_two_profiles(eng: Engine) -> None:
    eng.login("default")
    eng.login("site-b")
    set_expiry(eng.config, 300, "site-b")
    old_b = eng.profile("site-b")["access_token"]
    r = eng.run("refresh", "--all", "--json")
    assert r.returncode == 0, r.stderr
    out = {o["profile"]: o for o in json.loads(r.stdout)}
    assert set(out) == {"default", "site-b"}
    assert out["default"]["refreshed"] is False and out["site-b"]["refreshed"] is True
    assert eng.fake.counts["token:refresh_token"] == 1
    assert eng.profile("site-b")["access_token"] != old_b

    r = eng.run("refresh", "--all", "--force")
    assert r.returncode == 0, r.stderr
    assert "default: refreshed" in r.stdout and "site-b: refreshed" in r.stdout
    assert eng.fake.counts["token:refresh_token"] == 3
    for name in ("default", "site-b"):
        assert eng.fake.access_token_valid(eng.profile(name)["access_token"])


def test_refresh_all_keeps_going_when_one_profile_fails(eng: Engine) -> None:
    eng.login("default")
    eng.login("site-b")
    doc = load(eng.config)
    doc["profiles"]["default"]["refresh_token"] = "not-a-refresh-token-anyone-issued"
    rewrite(eng.config, doc)
    r = eng.run("refresh", "--all", "--force", "--json")
    assert r.returncode == 4, r.stderr
    out = {o["profile"]: o for o in json.loads(r.stdout)}
    assert out["default"]["ok"] is False and out["default"]["exit_code"] == 4
    assert "login --profile default" in out["default"]["hint"]
    assert out["site-b"]["ok"] is True and out["site-b"]["refreshed"] is True
    assert eng.fake.access_token_valid(eng.profile("site-b")["access_token"])


# -- status -----------------------------------------------------------------------------------

def test_status_text_shows_everything_but_secrets(eng: Engine) -> None:
    eng.login()
    eng.run("refresh", "--force")
    prof = eng.profile()
    r = eng.run("status")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert str(eng.config) in out and "0600" in out
    assert "custom" in out and eng.fake.url in out
    assert prof["expires_at"].isoformat() in out
    assert prof["last_refresh_at"].isoformat() in out
    assert "Pat Builder" in out and "pat@example.com" in out and "4242" in out
    assert str(FIRST_COMPANY) in out and "Builder Demo Co." in out
    assert CLIENT_ID in out  # the client id is not a secret
    for secret in (CLIENT_SECRET, prof["access_token"], prof["refresh_token"]):
        assert "****" + secret[-4:] in out  # at most the last 4 characters
    assert eng.fake.counts["token_info"] == 1  # offline: only the login's own check


def test_status_json(eng: Engine) -> None:
    eng.login()
    eng.login("site-b", company=SECOND_COMPANY)
    r = eng.run("status", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["path"] == str(eng.config) and out["mode"] == "0600" and out["default_profile"] == "default"
    infos = {p["profile"]: p for p in out["profiles"]}
    assert set(infos) == {"default", "site-b"}
    b = infos["site-b"]
    raw = eng.profile("site-b")
    assert b["environment"] == "custom" and b["login_url"] == eng.fake.url and b["api_url"] == eng.fake.url
    assert b["company"]["id"] == SECOND_COMPANY
    assert b["user"] == {"id": 4242, "login": "pat@example.com", "name": "Pat Builder"}
    assert b["problems"] == []
    for field in ("client_secret", "access_token", "refresh_token"):
        shown = b[field]
        assert shown.strip("*") == raw[field][-4:] or shown == "****"
        assert len(shown.strip("*")) <= 4
    r = eng.run("status", "--json", "--profile", "site-b")
    assert [p["profile"] for p in json.loads(r.stdout)["profiles"]] == ["site-b"]


def test_status_online_asks_token_info(eng: Engine) -> None:
    eng.login()
    before = eng.fake.counts["token_info"]
    r = eng.run("status", "--json", "--online")
    assert r.returncode == 0, r.stderr
    online = json.loads(r.stdout)["profiles"][0]["online"]
    assert online["ok"] is True and 5000 < online["expires_in_seconds"] <= 5400
    assert online["resource_owner_id"] == 4242
    assert eng.fake.counts["token_info"] == before + 1

    eng.fake.expire_access_tokens()
    r = eng.run("status", "--online")
    assert r.returncode == 5, r.stderr  # the check failed: a health check must be able to tell (issue 20)
    assert "FAILED" in r.stdout and "refused the access token" in r.stdout


def test_status_reports_problems(eng: Engine) -> None:
    eng.login()
    eng.expire()
    r = eng.run("status", "--json")
    assert r.returncode == 0
    problems = json.loads(r.stdout)["profiles"][0]["problems"]
    assert any("expired" in p for p in problems)


# -- revoke -----------------------------------------------------------------------------------

def test_revoke_forgets_tokens_keeps_settings_and_a_new_login_works(eng: Engine) -> None:
    eng.login()
    old = eng.profile()
    r = eng.run("revoke")
    assert r.returncode == 0, r.stderr
    assert "login --profile default" in r.stdout

    # gone at Procore
    assert not eng.fake.access_token_valid(old["access_token"])
    assert eng.fake.refresh_token_state(old["refresh_token"]) == "revoked"
    assert eng.fake.counts["revoke"] >= 1
    # gone locally, settings kept
    now = eng.profile()
    for key in ("access_token", "refresh_token", "expires_at"):
        assert key not in now
    for key in ("environment", "login_url", "api_url", "client_id", "client_secret", "redirect_uri", "company_id"):
        assert now[key] == old[key]
    assert mode_of(eng.config) == 0o600

    r = eng.run("token")
    assert r.returncode == 4 and r.stdout == ""
    assert "login --profile default" in r.stderr
    r = eng.run("revoke")
    assert r.returncode == 0 and "nothing to revoke" in r.stdout

    # re-authorize with only a new code: stored settings and the stored secret are the defaults
    code = eng.fake.issue_code()
    r = eng.run("login", "--plain", "--code=" + code, input="\n\n\n\n\n1\n")
    assert r.returncode == 0, r.stderr
    token = eng.token()
    assert eng.fake.access_token_valid(token)
    assert eng.profile()["client_secret"] == CLIENT_SECRET


def test_revoke_with_the_server_down_keeps_the_tokens(eng: Engine) -> None:
    eng.login()
    before = Snapshot.of(eng.config)
    eng.fake.stop()
    r = eng.run("revoke")
    assert r.returncode == 5, r.stderr
    before.assert_same_content(eng.config)


# -- not configured, usage ------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["token"], ["refresh"], ["refresh", "--all"], ["status"], ["status", "--online"],
                                  ["revoke"]])
def test_no_file_is_not_configured(eng: Engine, args: list[str]) -> None:
    r = eng.run(*args)
    assert r.returncode == 3, r.stderr
    assert r.stdout == ""
    assert f"No credentials file at {eng.config}" in r.stderr
    assert not eng.config.parent.exists()  # nothing was created on the way


@pytest.mark.parametrize("args", [["token", "--profile", "nope"], ["refresh", "--profile", "nope"],
                                  ["status", "--profile", "nope"], ["revoke", "--profile", "nope"]])
def test_no_such_profile_is_not_configured(eng: Engine, args: list[str]) -> None:
    eng.login()
    before = Snapshot.of(eng.config)
    r = eng.run(*args)
    assert r.returncode == 3, r.stderr
    assert "No profile 'nope'" in r.stderr and "profiles: default" in r.stderr
    assert "login --profile nope" in r.stderr
    before.assert_untouched(eng.config)
    r = eng.run("token", env={"PROCORE_SETUP_PROFILE": "nope"})
    assert r.returncode == 3


@pytest.mark.parametrize("args", [
    ["frobnicate"],
    ["token", "--min-valid", "soon"],
    ["token", "--min-valid", "-5"],
    ["token", "--no-such-flag"],
    ["refresh", "--all", "--profile", "default"],
    ["refresh", "--min-valid", "1e9"],
    ["status", "--online=yes"],
    ["login", "--code", "abc"],
    ["login", "--plain", "--environment", "mars"],
    ["login", "--plain", "--profile", "../../etc/passwd"],
    ["login", "--plain", "--environment", "custom", "--login-url", "http://login.example.com", "--api-url",
     "https://api.example.com"],
    ["login", "--plain", "--store", "bogus://x"],  # no store opened: its error, not one from closing nothing
])
def test_usage_errors_exit_2(eng: Engine, args: list[str]) -> None:
    eng.login()
    before = Snapshot.of(eng.config)
    r = eng.run(*args, env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET}, timeout=20)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip() and "internal error" not in r.stderr
    before.assert_untouched(eng.config)


def test_an_empty_config_variable_is_a_usage_error(eng: Engine) -> None:
    r = eng.run("token", env={"PROCORE_SETUP_CONFIG": ""})
    assert r.returncode == 2 and "PROCORE_SETUP_CONFIG" in r.stderr


def test_help_documents_the_exit_codes(eng: Engine) -> None:
    r = eng.run("--help")
    assert r.returncode == 0
    for line in ("0  ok", "2  usage", "3  not configured", "4  re-authorization", "5  temporary", "6  credentials file"):
        assert line in r.stdout
    r = eng.run("token", "--help")
    assert r.returncode == 0 and "exit codes" in r.stdout


def test_nothing_prompts_when_stdin_is_not_a_terminal(eng: Engine) -> None:
    """Commands with stdin closed either work or fail at once; none waits for input."""
    eng.login()
    for args in (["token"], ["refresh", "--force"], ["status"], ["revoke"], ["token"], ["login", "--plain"]):
        t0 = time.monotonic()
        r = eng.run(*args, input="", timeout=20)
        assert time.monotonic() - t0 < 10, args
        assert r.returncode in (0, 2, 4), (args, r.stderr)
    assert os.path.exists(eng.config)


def test_missing_parent_directories_are_created_owner_only_whatever_the_umask(tmp_path: Path, fake) -> None:
    # cron jobs and containers sometimes run with umask 000; no level we create may be world-writable
    config = tmp_path / "a" / "b" / "credentials.toml"
    env = base_env(PROCORE_SETUP_CONFIG=str(config), PROCORE_CLIENT_SECRET=CLIENT_SECRET)
    r = subprocess.run(
        [EXE, "login", "--plain", "--environment", "custom", "--login-url", fake.url, "--api-url", fake.url,
         "--client-id", CLIENT_ID, f"--code={fake.issue_code()}", "--company-id", "8675309"],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, preexec_fn=lambda: os.umask(0),
    )
    assert r.returncode == 0, r.stderr
    for level in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700, level
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_a_client_secret_given_as_a_flag_is_refused_without_echoing_it(cli) -> None:
    r = cli.run("login", "--plain", "--client-secret", "hunter2-not-a-flag-secret")
    assert r.returncode == 2
    assert "hunter2-not-a-flag-secret" not in r.stdout + r.stderr
    assert "never a flag" in r.stderr


def test_temp_files_of_killed_writers_are_swept_by_the_next_save(eng: Engine) -> None:
    eng.login()
    conf = eng.config.parent
    # what a writer SIGKILLed between its write and its rename leaves: its pid is gone by now
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = conf / f".{eng.config.name}.{dead.pid}.123.tmp"
    stale.write_text("secret-bearing leftovers")
    other = conf / "notes.tmp"  # not ours: never touched
    other.write_text("x")
    r = eng.run("refresh", "--force")
    assert r.returncode == 0, r.stderr
    assert not stale.exists()
    assert other.exists()


def test_login_plain_demo_walks_the_flow_against_the_built_in_fake(tmp_path: Path) -> None:
    import re
    import urllib.request

    proc = subprocess.Popen([EXE, "login", "--plain", "--demo"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=base_env())
    assert proc.stdout is not None and proc.stderr is not None  # PIPEs
    try:
        url = proc.stdout.readline().strip()  # the authorize URL, alone on stdout
        assert url.startswith("http://127.0.0.1:") and "/oauth/authorize?" in url
        with urllib.request.urlopen(url, timeout=10) as page:  # the fake's page shows the code
            found = re.search(r"/oauth/authorize/([^/?#]+)$", page.geturl())
            assert found, page.geturl()
            code = found.group(1)
        out, err = proc.communicate(f"{code}\n1\n", timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Saved profile 'default'" in out and "Demo mode" in err
