"""When things go wrong: the server, the grant, the file, the lock.

Each failure must end with the documented exit code, a message that says what to do,
no secret in any output, and the credentials file either untouched or (after a
refused grant) with every stored value kept.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

import pytest

from procore_setup.testing import Fault
from helpers.cli import CLIENT_SECRET
from helpers.engine import MARK, Engine, load, mode_of, rewrite, set_expiry, Snapshot, temp_files, wait_for

TOKEN_PATH = ["/oauth/token"]


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -- the server is down or unwell ------------------------------------------------------------------

@pytest.mark.parametrize("how", ["server stopped", "closed port"])
def test_server_down_exits_5_and_leaves_the_file_byte_identical(eng: Engine, how: str) -> None:
    eng.login()
    eng.expire()
    if how == "closed port":
        doc = load(eng.config)
        url = f"http://127.0.0.1:{_closed_port()}"
        doc["profiles"]["default"]["login_url"] = doc["profiles"]["default"]["api_url"] = url
        rewrite(eng.config, doc)
    else:
        eng.fake.stop()
    before = Snapshot.of(eng.config)
    for args in (["token"], ["refresh", "--quiet"]) if how == "server stopped" else (["refresh", "--force"],):
        r = eng.run(*args)
        assert r.returncode == 5, (args, r.stderr)
        assert r.stdout == ""
        assert "Cannot reach 127.0.0.1" in r.stderr
        assert "Nothing was changed" in r.stderr or "nothing was lost" in r.stderr.lower()
        before.assert_same_content(eng.config)
    assert temp_files(eng.config.parent) == []
    if how == "server stopped":
        eng.fake.start()  # same port: the chain was never touched and still works
    assert eng.fake.refresh_token_state(load(eng.config)["profiles"]["default"]["refresh_token"]) == "active"


def test_server_down_token_falls_back_to_a_still_valid_token(eng: Engine) -> None:
    eng.login()
    token = eng.profile()["access_token"]
    set_expiry(eng.config, 200)  # inside token's 5-minute margin, but still good for a while
    before = Snapshot.of(eng.config)
    eng.fake.stop()
    r = eng.run("token")
    assert r.returncode == 0, r.stderr
    assert r.stdout == token + "\n"
    assert "could not refresh" in r.stderr and "still valid" in r.stderr
    before.assert_same_content(eng.config)
    assert eng.fake.access_token_valid(token)


def test_a_slow_answer_does_not_make_the_stored_expiry_later_than_procores(eng: Engine) -> None:
    eng.login()
    eng.expire()
    # Procore makes the token, then its answer takes 2.5 s to come back.
    eng.fake.inject(Fault(hang=2.5, consume=True, paths=TOKEN_PATH))
    r = eng.run("refresh")
    assert r.returncode == 0, r.stderr
    prof = eng.profile()
    life = eng.fake.access_token_life
    # created_at is Procore's clock rounded down; the token lives `life` seconds from when it
    # was made, so a stored expiry past created_at + life would hand out dead tokens as live.
    assert prof["expires_at"].timestamp() <= prof["created_at"] + life
    assert prof["expires_at"].timestamp() >= prof["created_at"] + life - 2  # and not much earlier either


FULL_DISK = """\
import errno, os
_open, _made = os.open, [0]
_after = int(os.environ["FULL_DISK_AFTER"])  # new files (the temp files of saves) that still fit
_in_place = os.environ.get("FULL_DISK_IN_PLACE") == "fail"

def _full(path):
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

def open_on_a_full_disk(path, flags, mode=0o777, *, dir_fd=None):
    p = os.fspath(path)
    if p.endswith(".tmp") and flags & os.O_CREAT:
        _made[0] += 1
        if _made[0] > _after:
            raise _full(p)
    elif _in_place and p.endswith("credentials.toml") and flags & os.O_WRONLY:
        raise _full(p)
    elif p.endswith(".lock") and flags & os.O_CREAT and not os.path.exists(p) and _after == 0:
        raise _full(p)  # no inode left for a new lock file either
    return _open(path, flags, mode, dir_fd=dir_fd)

os.open = open_on_a_full_disk
"""


def full_disk(eng: Engine, *, in_place: str = "works") -> dict[str, str]:
    """The env of a run whose disk fills up after the in-flight mark: no new file can be made."""
    d = eng.config.parent.parent / "full_disk"
    d.mkdir(exist_ok=True)
    (d / "sitecustomize.py").write_text(FULL_DISK)
    return {"PYTHONPATH": str(d), "FULL_DISK_AFTER": "1", "FULL_DISK_IN_PLACE": in_place}


@pytest.mark.parametrize("command", [["token"], ["refresh"]])
def test_a_disk_that_fills_up_during_a_refresh_still_keeps_the_new_pair(eng: Engine, command: list[str]) -> None:
    eng.login()
    eng.expire()
    r = eng.run(*command, env=full_disk(eng))
    assert r.returncode == 0, r.stderr
    assert "the new tokens are saved, but only by writing over" in r.stderr
    assert "No space left on device" in r.stderr
    prof = eng.profile()  # the file parses, holds the new pair, and stays owner-only
    assert mode_of(eng.config) == 0o600
    assert "refresh_started_at" not in prof and prof["last_refresh_at"]
    assert eng.fake.refresh_token_state(prof["refresh_token"]) == "active"  # the chain lives
    if command == ["token"]:
        assert r.stdout.strip() == prof["access_token"]
    assert eng.run("refresh", "--force").returncode == 0  # and goes on, the disk fixed


def test_a_full_disk_before_the_refresh_sends_nothing_and_changes_nothing(eng: Engine) -> None:
    eng.login()
    eng.expire()
    before = Snapshot.of(eng.config)
    stored = eng.profile()["refresh_token"]
    env = dict(full_disk(eng), FULL_DISK_AFTER="0")  # not even the in-flight mark fits
    r = eng.run("token", env=env)
    assert r.returncode == 6, r.stderr
    assert f"Cannot write {eng.config}: No space left on device." in r.stderr
    assert "The file was left as it was" in r.stderr
    before.assert_untouched(eng.config)
    assert eng.fake.counts["token:refresh_token"] == 0
    assert eng.fake.refresh_token_state(stored) == "active"
    # the same when even the lock file cannot be made
    Path(str(eng.config) + ".lock").unlink()
    r = eng.run("refresh", env=env)
    assert r.returncode == 6 and f"Cannot write {eng.config}.lock: No space left on device." in r.stderr, r.stderr
    before.assert_untouched(eng.config)
    assert eng.fake.counts["token:refresh_token"] == 0


def test_a_disk_too_full_for_any_write_says_the_pair_is_lost_and_what_to_do(eng: Engine) -> None:
    eng.login()
    eng.expire()
    r = eng.run("refresh", env=full_disk(eng, in_place="fail"))
    assert r.returncode == 6, r.stderr
    assert "Procore issued new tokens for profile 'default', but they could not be saved" in r.stderr
    assert "No space left on device" in r.stderr and "needs a new login" in r.stderr
    assert f"procore-setup --config {eng.config} login --profile default" in r.stderr
    assert "refresh_started_at" in eng.profile()  # the mark stays: the next run explains
    r = eng.run("refresh")
    assert r.returncode == 4 and "was interrupted before its result was saved" in r.stderr, r.stderr


def test_server_errors_beyond_the_retries_exit_5_and_lose_nothing(eng: Engine) -> None:
    eng.login()
    eng.expire()
    before = eng.profile()
    refresh_token = before["refresh_token"]
    eng.fake.inject(Fault(status=500, times=10, paths=TOKEN_PATH))
    r = eng.run("token")
    assert r.returncode == 5, r.stderr
    assert "500" in r.stderr
    # Procore's FAQ: a refresh answered with an error may still have used the token, so the
    # in-flight mark stays (the next run then explains a refusal) and every stored value is kept.
    after = eng.profile()
    assert "refresh_started_at" in after
    assert {k: v for k, v in after.items() if k not in MARK} == before
    assert eng.fake.refresh_token_state(refresh_token) == "active"
    assert 2 <= eng.fake.counts["faults"] <= 5  # retried, a bounded number of times
    eng.fake.clear_faults()
    r = eng.run("token")
    assert r.returncode == 0, r.stderr
    assert eng.fake.access_token_valid(r.stdout.strip())  # the chain is intact
    assert "interrupted" in r.stderr  # the mark was resolved, and the user told so
    assert "refresh_started_at" not in eng.profile()


def test_server_errors_that_used_the_token_are_explained_on_the_next_run(eng: Engine) -> None:
    eng.login()
    eng.expire()
    # Procore processed the refresh (rotating the pair) but answered 500 every time.
    eng.fake.inject(Fault(status=500, times=1, paths=TOKEN_PATH, consume=True))
    eng.fake.inject(Fault(status=500, times=10, paths=TOKEN_PATH))
    r = eng.run("token")
    assert r.returncode in (4, 5), r.stderr
    eng.fake.clear_faults()
    r = eng.run("token")
    assert r.returncode == 4, r.stderr
    assert "interrupted" in r.stderr or "lost" in r.stderr
    assert "login --profile default" in r.stderr


def test_503_with_retry_after_is_retried_after_waiting(eng: Engine) -> None:
    eng.login()
    eng.expire()
    eng.fake.inject(Fault(status=503, retry_after=1, paths=TOKEN_PATH))
    t0 = time.monotonic()
    token = eng.token()
    assert time.monotonic() - t0 >= 1.0  # Retry-After: 1 was honoured
    assert eng.fake.counts["faults"] == 1
    assert eng.fake.counts["refresh_ok"] == 1
    assert eng.fake.access_token_valid(token)


def test_429_with_x_rate_limit_reset_is_retried(eng: Engine) -> None:
    eng.login()
    eng.expire()
    eng.fake.inject(Fault(status=429, paths=TOKEN_PATH))  # X-Rate-Limit-Reset only, no Retry-After
    token = eng.token()
    assert eng.fake.counts["faults"] == 1 and eng.fake.counts["refresh_ok"] == 1
    assert eng.fake.access_token_valid(token)


def test_429_waits_until_x_rate_limit_reset(eng: Engine) -> None:
    eng.login()
    eng.expire()
    # "2.5" is no valid Retry-After (delay-seconds are digits only), so X-Rate-Limit-Reset,
    # about 2 s ahead, is the only usable hint; the retry must not come before it.
    eng.fake.inject(Fault(status=429, retry_after="2.5", paths=TOKEN_PATH))
    t0 = time.time()
    token = eng.token()
    reset = int(t0 + 2.5)  # the fake's reset is int(arrival + 2.5) >= this
    assert time.time() >= reset
    assert eng.fake.counts["refresh_ok"] == 1 and eng.fake.access_token_valid(token)


def test_a_rate_limit_far_in_the_future_exits_5_at_once(eng: Engine) -> None:
    eng.login()
    eng.expire()
    before = Snapshot.of(eng.config)
    eng.fake.inject(Fault(status=429, retry_after=300, paths=TOKEN_PATH))
    t0 = time.monotonic()
    r = eng.run("refresh")
    assert r.returncode == 5, r.stderr
    assert time.monotonic() - t0 < 10  # cron will come back; no five-minute sleep
    assert "429" in r.stderr and "rate limit" in r.stderr
    before.assert_same_content(eng.config)
    assert eng.fake.counts["token:refresh_token"] == 0


def test_html_instead_of_json_is_an_unexpected_response(eng: Engine) -> None:
    eng.login()
    eng.expire()
    eng.fake.inject(Fault(status=200, body="<html><body>Sign in</body></html>", times=10, paths=TOKEN_PATH))
    r = eng.run("token")
    assert r.returncode == 5, r.stderr
    assert "not JSON" in r.stderr
    assert r.stdout == ""
    load(eng.config)  # still parses


# -- the grant is gone ---------------------------------------------------------------------------

def test_a_revoked_grant_exits_4_keeps_the_data_and_names_the_command(eng: Engine) -> None:
    eng.login("site-b")
    eng.expire("site-b")
    before = eng.profile("site-b")
    eng.fake.revoke_all()
    r = eng.run("token", "--profile", "site-b")
    assert r.returncode == 4, r.stderr
    assert r.stdout == ""
    assert "invalid_grant" in r.stderr
    assert f"procore-setup --config {eng.config} login --profile site-b" in r.stderr

    after = eng.profile("site-b")
    for key, value in before.items():
        assert after[key] == value, key  # nothing wiped
    assert after["reauth_required"] is True
    assert mode_of(eng.config) == 0o600

    # later runs say the same without asking Procore again
    n = eng.fake.counts["token:refresh_token"]
    r = eng.run("refresh", "--profile", "site-b")
    assert r.returncode == 4 and "login --profile site-b" in r.stderr
    assert eng.fake.counts["token:refresh_token"] == n
    r = eng.run("status")
    assert r.returncode == 4
    assert "needs a new login" in r.stdout and "login --profile site-b" in r.stdout

    # and the named command's plain variant fixes it
    r = eng.run("login", "--plain", "--profile", "site-b", "--code=" + eng.fake.issue_code(), input="\n\n\n\n\n1\n")
    assert r.returncode == 0, r.stderr
    assert "reauth_required" not in eng.profile("site-b")
    assert eng.fake.access_token_valid(eng.token("--profile", "site-b"))


def test_a_rejected_client_secret_exits_4(eng: Engine) -> None:
    eng.login()
    eng.expire()
    doc = load(eng.config)
    doc["profiles"]["default"]["client_secret"] = wrong = "wrong-client-secret-0123456789"
    eng.extra_secrets.add(wrong)
    rewrite(eng.config, doc)
    r = eng.run("token")
    assert r.returncode == 4, r.stderr
    assert "invalid_client" in r.stderr and "login --profile default" in r.stderr


# -- the file is unusable ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o666])
def test_insecure_permissions_are_refused(eng: Engine, mode: int) -> None:
    eng.login()
    eng.expire()  # a refresh would be due: still nothing may be sent or written
    os.chmod(eng.config, mode)
    before = Snapshot.of(eng.config)
    commands = (["token"], ["refresh", "--force"], ["status"], ["revoke"]) if mode == 0o644 else (["token"],)
    for args in commands:
        r = eng.run(*args)
        assert r.returncode == 6, (args, r.stderr)
        assert r.stdout == ""
        assert f"chmod 600 {eng.config}" in r.stderr
        assert f"{mode:04o}" in r.stderr
        before.assert_untouched(eng.config)
    assert eng.fake.counts["token:refresh_token"] == 0 and eng.fake.counts["revoke"] == 0
    os.chmod(eng.config, 0o600)
    assert eng.fake.access_token_valid(eng.token())


def test_login_refuses_to_touch_an_insecure_file(eng: Engine) -> None:
    eng.login()
    os.chmod(eng.config, 0o644)
    before = Snapshot.of(eng.config)
    r = eng.run(*eng.login_args("site-b"), input="1\n", env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    assert r.returncode == 6, r.stderr
    assert f"chmod 600 {eng.config}" in r.stderr
    before.assert_untouched(eng.config)


CORRUPT = {
    "garbage": b"this is [[[ not toml\n",
    "empty": b"",
    "binary": b"\xff\xfe\x00\x01 schema_version = 1",
    "truncated": None,  # the first half of a real file
    "wrong type": b'schema_version = 1\n[profiles.default]\nenvironment = "custom"\nlogin_url = "http://x"\n'
                  b'api_url = "http://x"\nclient_id = "id"\nexpires_at = "tomorrow-ish"\n',
}


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_a_corrupt_file_exits_6_and_is_never_overwritten(eng: Engine, kind: str) -> None:
    eng.login()
    data = CORRUPT[kind]
    if data is None:
        full = eng.config.read_bytes()
        data = full[: len(full) // 2]
    rewrite(eng.config, data)
    before = Snapshot.of(eng.config)
    commands = [["token"], ["refresh", "--force"], ["status"]]
    if kind == "garbage":
        commands += [["refresh", "--all"], ["revoke"], eng.login_args("fresh")]  # a login does not overwrite it
    for args in commands:
        r = eng.run(*args, input="1\n", env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
        assert r.returncode == 6, (args, r.stderr)
        assert r.stdout == ""
        assert str(eng.config) in r.stderr
        before.assert_untouched(eng.config)
    assert eng.fake.counts["token:refresh_token"] == 0


def test_a_directory_others_can_write_is_refused_before_any_write(eng: Engine) -> None:
    eng.login()
    eng.expire()
    os.chmod(eng.config.parent, 0o777)
    try:
        before = Snapshot.of(eng.config)
        r = eng.run("refresh")
        assert r.returncode == 6, r.stderr
        assert f"chmod go-w {eng.config.parent}" in r.stderr
        before.assert_untouched(eng.config)
        assert eng.fake.counts["token:refresh_token"] == 0
    finally:
        os.chmod(eng.config.parent, 0o700)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_a_file_owned_by_another_user_is_refused(eng: Engine) -> None:
    eng.login()
    os.chown(eng.config, 65534, -1)
    before = Snapshot.of(eng.config)
    r = eng.run("token")
    assert r.returncode == 6, r.stderr
    assert "owned by another user" in r.stderr and r.stdout == ""
    before.assert_untouched(eng.config)


def test_a_directory_where_the_file_should_be_exits_6(eng: Engine) -> None:
    eng.config.mkdir(parents=True)
    for args in (["token"], ["status"], ["refresh"]):
        r = eng.run(*args)
        assert r.returncode == 6, (args, r.stderr)
        assert "is a directory" in r.stderr


def test_a_symlinked_file_is_used_and_the_link_kept(eng: Engine) -> None:
    eng.login()
    real = eng.config.with_name("real-credentials.toml")
    os.rename(eng.config, real)
    os.symlink(real.name, eng.config)
    eng.expire()
    token = eng.token()
    assert eng.fake.access_token_valid(token)
    assert eng.config.is_symlink() and os.readlink(eng.config) == real.name
    assert load(real)["profiles"]["default"]["access_token"] == token
    assert mode_of(real) == 0o600


@pytest.mark.parametrize("field", ["client_id", "login_url", "api_url", "environment"])
def test_a_profile_missing_a_field_exits_6_naming_it(eng: Engine, field: str) -> None:
    eng.login()
    doc = load(eng.config)
    del doc["profiles"]["default"][field]
    rewrite(eng.config, doc)
    before = Snapshot.of(eng.config)
    r = eng.run("token")
    assert r.returncode == 6, r.stderr
    assert field in r.stderr and "'default'" in r.stderr and str(eng.config) in r.stderr
    before.assert_untouched(eng.config)


def test_a_missing_schema_version_exits_6(eng: Engine) -> None:
    eng.login()
    doc = load(eng.config)
    del doc["schema_version"]
    rewrite(eng.config, doc)
    r = eng.run("status")
    assert r.returncode == 6 and "schema_version" in r.stderr


def test_an_unknown_schema_version_exits_6_and_is_left_alone(eng: Engine) -> None:
    eng.login()
    doc = load(eng.config)
    doc["schema_version"] = 99
    rewrite(eng.config, doc)
    eng.expire()
    before = Snapshot.of(eng.config)
    for args in (["token"], ["refresh", "--force"], ["status"]):
        r = eng.run(*args)
        assert r.returncode == 6, r.stderr
        assert "newer procore-setup" in r.stderr and "99" in r.stderr
        before.assert_untouched(eng.config)


def test_unknown_keys_survive_a_refresh_a_relogin_and_a_revoke(eng: Engine) -> None:
    eng.login()
    doc = load(eng.config)
    doc["team_note"] = "managed by ops"
    doc["extras"] = {"owner": "pat", "ids": [1, 2, 3]}
    doc["profiles"]["default"]["note"] = "keep me"
    doc["profiles"]["default"]["future_field"] = {"nested": True, "when": 2027}
    rewrite(eng.config, doc)

    def check() -> None:
        now = load(eng.config)
        assert now["team_note"] == "managed by ops"
        assert now["extras"] == {"owner": "pat", "ids": [1, 2, 3]}
        assert now["profiles"]["default"]["note"] == "keep me"
        assert now["profiles"]["default"]["future_field"] == {"nested": True, "when": 2027}

    r = eng.run("refresh", "--force")
    assert r.returncode == 0, r.stderr
    check()
    eng.login_cli("site-b")
    check()
    eng.login_cli("default")
    check()
    assert eng.run("revoke").returncode == 0
    check()


def test_comments_a_person_wrote_survive_every_rewrite(eng: Engine) -> None:
    eng.login()
    text = eng.config.read_text()
    text = "# Procore API access for the nightly jobs. Ask Pat before changing.\n\n" + text
    text = text.replace("[profiles.default]\n", "[profiles.default]\n# the Acme production app\n")
    text = text.replace('\nenvironment = ', '\n# DO NOT switch to sandbox\nenvironment = ', 1)
    text += '\n# hooks for the ops team\n[x_hooks]\nafter_refresh = "notify #ops"  # a \'#\' in a value, too\n'
    eng.config.write_text(text)
    comments = [line for line in text.splitlines() if "#" in line and "notify" not in line]
    assert len(comments) == 4

    def check(what: str) -> dict:
        now = eng.config.read_text()
        for line in comments:
            assert line in now, f"after {what}: the comment {line!r} is gone"
        assert 'after_refresh = "notify #ops"  # a \'#\' in a value, too' in now
        assert mode_of(eng.config) == 0o600
        return load(eng.config)

    old = load(eng.config)["profiles"]["default"]
    r = eng.run("refresh", "--force")
    assert r.returncode == 0, r.stderr
    new = check("a refresh")["profiles"]["default"]
    assert new["refresh_token"] != old["refresh_token"] and new["access_token"] == eng.token()
    eng.login_cli("site-b")
    assert set(check("adding a profile")["profiles"]) == {"default", "site-b"}
    assert eng.run("revoke", "--profile", "site-b").returncode == 0
    doc = check("a revoke")
    assert "access_token" not in doc["profiles"]["site-b"]
    # the values are what the program meant to write, comments or not
    assert doc["profiles"]["default"]["refresh_token"] == new["refresh_token"]
    assert doc["x_hooks"] == {"after_refresh": "notify #ops"}


def test_the_comment_keeping_writer_falls_back_to_a_plain_rewrite_rather_than_write_a_wrong_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib

    from procore_setup import tomlfile

    previous = b'# a comment\n[profiles.default]\nrefresh_token = "old"\n'
    data = {"profiles": {"default": {"refresh_token": "new"}}}
    kept = tomlfile.render(data, previous)
    assert kept.startswith(b"# a comment\n") and tomllib.loads(kept.decode()) == data
    # a (hypothetical) tomlkit bug that writes a stale value: the plain text wins
    monkeypatch.setattr(tomlfile, "_with_comments", lambda data, text: text)
    out = tomlfile.render(data, previous)
    assert tomllib.loads(out.decode()) == data and b"# a comment" not in out
    # and one that raises
    monkeypatch.setattr(tomlfile, "_with_comments", lambda data, text: 1 / 0)
    assert tomllib.loads(tomlfile.render(data, previous).decode()) == data


# -- the lock ------------------------------------------------------------------------------

def _hold_lock(config: Path) -> int:
    fd = os.open(str(config) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_held_lock_ends_in_exit_5_after_a_bounded_wait(eng: Engine) -> None:
    eng.login()
    valid = eng.profile()["access_token"]
    fd = _hold_lock(eng.config)
    try:
        # a valid token needs no lock at all
        assert eng.token(env={"PROCORE_SETUP_LOCK_TIMEOUT": "1"}) == valid
        eng.expire()
        before = Snapshot.of(eng.config)
        t0 = time.monotonic()
        r = eng.run("token", env={"PROCORE_SETUP_LOCK_TIMEOUT": "1"}, timeout=30)
        elapsed = time.monotonic() - t0
        assert r.returncode == 5, r.stderr
        assert 0.9 <= elapsed < 10
        assert r.stdout == ""
        assert "lock" in r.stderr and str(eng.config) in r.stderr and "try again later" in r.stderr.lower()
        before.assert_untouched(eng.config)
        r = eng.run("refresh", "--quiet", env={"PROCORE_SETUP_LOCK_TIMEOUT": "1"}, timeout=30)
        assert r.returncode == 5 and "lock" in r.stderr
        assert eng.fake.counts["token:refresh_token"] == 0
    finally:
        os.close(fd)
    assert eng.fake.access_token_valid(eng.token())  # released: works again


def test_a_process_hung_on_the_network_holds_others_off_for_a_bounded_time(eng: Engine) -> None:
    eng.login()
    eng.fake.inject(Fault(hang=3, paths=TOKEN_PATH))
    slow = eng.popen("refresh", "--force")
    wait_for(lambda: eng.fake.counts["faults"] >= 1, what="the refresh to reach the server")
    r = eng.run("token", "--min-valid", "86400", env={"PROCORE_SETUP_LOCK_TIMEOUT": "1"}, timeout=30)
    assert r.returncode == 5, r.stderr
    assert "lock" in r.stderr
    done = eng.collect(slow)
    assert done.returncode == 0, done.stderr  # the slow one finishes, and the chain is intact
    assert eng.fake.counts["refresh_ok"] == 1
    assert eng.fake.access_token_valid(eng.token())


def test_status_json_of_a_refused_grant_lists_the_problem(eng: Engine) -> None:
    eng.login()
    eng.fake.revoke_all()
    eng.run("refresh", "--force")
    r = eng.run("status", "--json")
    assert r.returncode == 4
    problems = json.loads(r.stdout)["profiles"][0]["problems"]
    assert any("login --profile default" in p for p in problems)
