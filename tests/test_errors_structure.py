"""Issue 19: errors carry structure, and near-copies are one piece of code.

Pure functions and exception values, checked in this process (no I/O to fake): the one
`is_loopback`, the one sanitizer behind `shown` and `clean`, and `given`/`as_a`, which pass an
error on with what a caller knows without rebuilding it from its message. What users see of
them is checked through the executable by the store, engine and hostile-input tests, and here
for the names that only look like this machine.
"""

from __future__ import annotations

from typing import Any

import pytest

from procore_setup.checks import check_base_url, is_loopback, shown
from procore_setup.errors import (
    EXIT_TEMPORARY,
    AnswerLost,
    InvalidURL,
    ReauthRequired,
    ServerError,
    StoreChanged,
    StoreConflict,
)
from procore_setup.text import clean


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "127.255.255.255", "[::1]",
                                  "::1", "::1%lo", "[::1%lo]", "0:0:0:0:0:0:0:1"])
def test_this_machine_by_any_spelling_is_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["", None, "example.com", "localhost.example.com", "127.0.0.256", "10.0.0.1",
                                  "[::2]", "128.0.0.1", "127.0.0",
                                  # names a resolver answers, whatever they look like: they may be anywhere
                                  "localhost.", "LocalHost.", "ip6-localhost", "app.localhost", "127.0.0.08", "127.1",
                                  "0127.0.0.1", "127.0.0.1.example.com", "127.0.0.1%x.evil.example", "127.0.0.1%lo",
                                  "[[::1]]", "127.0.0.1 ", "１２７.0.0.1"])
def test_other_hosts_are_not(host: str | None) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("host", ["localhost.", "ip6-localhost", "127.0.0.08", "127.0.0.1%25x.evil.example"])
def test_plain_http_to_a_name_that_only_looks_like_this_machine_is_refused(cli: Any, fake: Any, host: str) -> None:
    """These were taken for loopback, so plain http to them was allowed: a resolver (DNS) answers
    them, and a refresh sent the client secret and the refresh token in clear to whatever it named.
    Now the stored URL is refused as at login, with the words for plain http, and nothing is sent."""
    from helpers.engine import load, rewrite

    cli.login()
    doc = load(cli.config)
    url = f"http://{host}:{fake.port}"
    doc["profiles"]["default"]["login_url"] = doc["profiles"]["default"]["api_url"] = url
    rewrite(cli.config, doc)
    sent = dict(fake.counts)
    r = cli.run("refresh", "--force")
    assert r.returncode == 6, r.stderr  # a stored value refused: the file's problem
    assert f"plain http to {host}" in r.stderr, r.stderr
    assert dict(fake.counts) == sent


def test_the_url_checks_and_the_proxy_bypass_ask_the_same_function() -> None:
    from procore_setup import oauth
    from procore_setup.stores import rows as shared

    assert oauth.is_loopback is is_loopback
    assert check_base_url("http://LOCALHOST:8080", "login URL") == "http://LOCALHOST:8080"
    assert shared._loopback("/var/run/postgresql") and shared._loopback("LOCALHOST")
    assert not shared._loopback("db.example.com")


def test_shown_is_clean_with_the_ellipsis_past_its_limit() -> None:
    assert shown("x" * 150, 100) == "x" * 100 + "…" == clean("x" * 150, 101)
    assert shown("a\x1b]0;owned\x07b") == clean("a\x1b]0;owned\x07b", 101) == "a\\x1b]0;owned\\x07b"
    assert shown("line\nbreak\u202e") == "line\\x0abreak\\u202e"
    assert shown("short") == "short"


def test_a_store_that_changed_under_a_lost_lock_is_exit_5_by_its_class() -> None:
    err = StoreChanged(kind="Redis", store="redis://127.0.0.1:6379/0")
    assert isinstance(err, StoreConflict) and err.exit_code == EXIT_TEMPORARY
    assert StoreConflict("x").exit_code == 6  # the file's conflict stays exit 6
    assert "The Redis store redis://127.0.0.1:6379/0 changed while this command" in str(err)


def test_given_keeps_the_class_and_every_field() -> None:
    lost = AnswerLost("No answer from login.example.com while refreshing the token.", hint="Try again later.",
                      retry_after=3.0, status=None)
    told = lost.given(hint="Run the command again: procore-setup login")
    assert type(told) is AnswerLost and told.retry_after == 3.0 and told.message == lost.message
    assert told.hint == "Run the command again: procore-setup login" and lost.hint == "Try again later."

    refused = ReauthRequired("Procore refused the grant (invalid_grant) while refreshing the token: revoked")
    noted = refused.given(note="(This could not be recorded in /x: disk full.)", after_lost_answer=True)
    assert noted.message == refused.message + " (This could not be recorded in /x: disk full.)"
    assert noted.after_lost_answer and not refused.after_lost_answer and noted.text == refused.text
    with pytest.raises(TypeError):
        refused.given(exit_code=0)  # a field of the error, never its class's exit code


def test_as_a_turns_a_server_error_into_a_lost_answer_with_its_fields() -> None:
    err = ServerError("login.example.com answered 503 while refreshing the token.", hint="Try again later.",
                      retry_after=2.0, status=503)
    lost = err.as_a(AnswerLost)
    assert type(lost) is AnswerLost and lost.status == 503 and lost.retry_after == 2.0
    assert str(lost) == str(err)


def test_a_bad_base_url_carries_what_and_why() -> None:
    with pytest.raises(InvalidURL) as caught:
        check_base_url("http://example.com", "login URL")
    assert caught.value.what == "login URL" and caught.value.problem.startswith("uses plain http to example.com")
    assert caught.value.message == f"The login URL {caught.value.problem}."


def test_a_refusal_after_a_lost_answer_does_not_say_that_nothing_changed(tmp_path: Any, fake: Any) -> None:
    """A 502 (Procore may have used the code) and then a 401: the error is the lost answer's
    (exit 5), and its hint no longer says the refusal's "changes nothing at Procore"."""
    from helpers.cli import CLI
    from procore_setup.testing import Fault

    cli = CLI(tmp_path / "credentials.toml", fake)
    fake.inject(Fault(status=502, paths="/oauth/token"))
    fake.inject(Fault(status=401, paths="/oauth/token", body={"error": "invalid_token"}))
    code = fake.issue_code()
    r = cli.run("login", "--plain", "--environment", "custom", "--login-url", fake.url, "--api-url", fake.url,
                "--client-id", "cid", f"--code={code}", input="1\n", env={"PROCORE_CLIENT_SECRET": "s" * 24})
    assert r.returncode == 5, r.stderr
    assert "changes nothing at Procore" not in r.stderr, r.stderr
    assert "may have acted on it" in r.stderr, r.stderr
