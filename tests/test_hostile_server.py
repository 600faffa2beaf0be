"""Hostile servers and proxies (issue 9): what a server on 127.0.0.1 answering badly on purpose,
or a proxy setting, must not be able to do to the tool.

Each test drives the installed `procore-setup` against a real credentials file and the fake
Procore (or a listener of its own on 127.0.0.1), and checks the exit code, the message, and that
nothing was lost. The rows of docs/reliability.md "Hostile servers (issue 9)" name these tests.
"""

from __future__ import annotations

import os
import re
import resource
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

from helpers.cli import CLIENT_SECRET, EXE
from helpers.engine import MARK, Engine, load, mode_of, rewrite, Snapshot
from helpers.net import stop_serving
from procore_setup.testing import FakeProcore, Fault

TOKEN_PATH = ["/oauth/token"]
REPO = Path(__file__).resolve().parents[1]
RELOGIN = "login --profile default"

# The rows of docs/reliability.md "### Hostile servers (issue 9)", and the test that covers each.
ROWS: dict[str, str | tuple[str, ...]] = {
    "hostile-proxy-loopback": ("test_no_proxy_ever_sees_a_request_to_a_loopback_host",
                               "test_loopback_means_all_of_127_0_0_0_slash_8_and_localhost"),
    "hostile-proxy-unusable": "test_a_proxy_setting_it_cannot_use_is_a_usage_error_that_names_the_variable",
    "hostile-save-dir-opened": "test_a_directory_opened_to_others_during_the_refresh_does_not_lose_the_new_pair",
    "hostile-save-impossible": "test_when_no_way_of_saving_works_the_message_says_the_new_pair_is_lost",
    "hostile-200-unusable-tokens": "test_a_200_with_tokens_it_cannot_use_says_the_refresh_token_was_probably_used",
    "hostile-200-unusable-code": "test_a_code_exchange_answered_with_unusable_tokens_says_the_code_is_spent",
    "hostile-4xx-refused": "test_a_4xx_refusal_is_exit_5_and_leaves_the_file_byte_identical",
    "hostile-gzip-bomb": "test_a_gzip_bomb_or_a_huge_body_is_never_read_past_a_megabyte",
    "hostile-huge-body": "test_a_gzip_bomb_or_a_huge_body_is_never_read_past_a_megabyte",
    "hostile-error-text": "test_error_text_from_the_server_is_escaped_and_capped",
    "hostile-names": "test_names_from_procore_are_cleaned_before_they_are_printed_or_stored",
    "hostile-names-in-file": "test_status_cleans_names_read_back_from_the_file",
    "hostile-expires-in-1e300": "test_an_expires_in_past_a_day_is_taken_as_a_day_with_a_warning",
    "hostile-short-token-life": "test_a_token_shorter_lived_than_the_margin_is_used_not_refreshed_on_every_call",
    "hostile-markup-names": "tui/test_hostile_text.py",
}


def no_control_characters(text: str) -> bool:
    """Nothing that could drive a terminal: no ESC, BEL, CR, or other C0/C1 control but the line ends."""
    return re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text) is None


# -- proxies ------------------------------------------------------------------------------------------

class Listener:
    """A would-be proxy on 127.0.0.1 that records whatever reaches it and refuses it (403)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(65536) or b"(connected)")
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    self.received.append(b"(connected)")

    def close(self) -> None:
        stop_serving(self.sock, self.thread)  # sock.close() alone leaves the thread accepting


@pytest.fixture
def listener() -> Any:
    proxy = Listener()
    yield proxy
    proxy.close()


NO_EXEMPTIONS = {"NO_PROXY": "", "no_proxy": ""}  # whatever the developer's shell exempts


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
def test_no_proxy_ever_sees_a_request_to_a_loopback_host(eng: Engine, listener: Listener, variable: str) -> None:
    eng.login()
    r = eng.run("refresh", "--force", env={variable: listener.url, **NO_EXEMPTIONS})
    assert r.returncode == 0, r.stderr
    assert eng.fake.counts["refresh_ok"] == 1
    # The client secret and the refresh token went in clear to 127.0.0.1, never to the "proxy".
    assert listener.received == []


def test_loopback_means_all_of_127_0_0_0_slash_8_and_localhost(tmp_path: Path, listener: Listener) -> None:
    from helpers.cli import CLI

    with FakeProcore(host="127.0.0.2") as fake:
        cli = CLI(tmp_path / "credentials.toml", fake)
        cli.login()
        proxies = {"HTTP_PROXY": listener.url, "ALL_PROXY": listener.url, **NO_EXEMPTIONS}
        r = cli.run("refresh", "--force", env=proxies)
        assert r.returncode == 0, r.stderr
        assert fake.counts["refresh_ok"] == 1 and listener.received == []
    with FakeProcore(host="127.0.0.1") as fake:
        cli = CLI(tmp_path / "other.toml", fake)
        cli.login()
        doc = load(cli.config)
        url = fake.url.replace("127.0.0.1", "localhost")
        doc["profiles"]["default"]["login_url"] = doc["profiles"]["default"]["api_url"] = url
        rewrite(cli.config, doc)
        r = cli.run("refresh", "--force", env=proxies)
        assert r.returncode == 0, r.stderr
        assert fake.counts["refresh_ok"] == 1 and listener.received == []


def test_a_real_https_host_still_goes_through_https_proxy(eng: Engine, listener: Listener) -> None:
    # Corporate proxies: Procore's real hosts are reached through HTTPS_PROXY. (The "proxy" here
    # records the CONNECT and refuses it: nothing leaves the machine, no name is looked up.)
    eng.login()
    doc = load(eng.config)
    doc["profiles"]["default"]["login_url"] = "https://login.example.invalid"
    rewrite(eng.config, doc)
    before = Snapshot.of(eng.config)
    r = eng.run("refresh", "--force", env={"HTTPS_PROXY": listener.url, **NO_EXEMPTIONS})
    assert r.returncode == 5, r.stderr
    assert listener.received and listener.received[0].startswith(b"CONNECT login.example.invalid:443 ")
    before.assert_same_content(eng.config)  # the tunnel was never made: nothing was sent


BAD_PROXIES = [
    pytest.param("ALL_PROXY", "socks5://proxyuser:proxy-pass-9f3k2@127.0.0.1:1080", "a SOCKS proxy needs the socksio package",
                 id="socks5-without-socksio"),
    pytest.param("https_proxy", "ftp://proxyuser:proxy-pass-9f3k2@proxy.example.com:21", "ftp:// is no proxy scheme",
                 id="ftp"),
    pytest.param("HTTP_PROXY", "http://proxyuser:proxy-pass-9f3k2@[::1", "it is not a URL", id="malformed"),
]


@pytest.mark.parametrize("variable, value, says", BAD_PROXIES)
def test_a_proxy_setting_it_cannot_use_is_a_usage_error_that_names_the_variable(
        eng: Engine, secret_guard: Any, variable: str, value: str, says: str) -> None:
    if "socks" in value:
        import importlib.util

        if importlib.util.find_spec("socksio") is not None:
            pytest.skip("socksio is installed here: a SOCKS proxy is usable")
    secret_guard.add("proxy-pass-9f3k2", "a proxy password")  # the guard fails the test if it shows up
    eng.login()
    before = Snapshot.of(eng.config)
    sent = eng.fake.counts["requests"]
    r = eng.run("refresh", "--force", env={variable: value, **NO_EXEMPTIONS})
    assert r.returncode == 2, r.stderr
    assert f"procore-setup: {variable} holds a proxy setting procore-setup cannot use: {says}" in r.stderr
    assert "proxyuser" not in r.stderr and "Traceback" not in r.stderr
    before.assert_untouched(eng.config)  # no in-flight mark: nothing was sent
    assert eng.fake.counts["requests"] == sent


# -- a pair Procore issued must not be dropped -----------------------------------------------------

IN_PLACE_REFUSED = """\
import errno, os
_open = os.open

def open_but_not_in_place(path, flags, mode=0o777, *, dir_fd=None):
    p = os.fspath(path)
    if p.endswith("credentials.toml") and flags & os.O_WRONLY and not flags & os.O_CREAT:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), p)
    if os.environ.get("TEMP_FILES_REFUSED") and p.endswith(".tmp") and flags & os.O_CREAT:
        if os.path.exists(os.environ["TEMP_FILES_REFUSED"]):  # armed by the fake once it has answered
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), p)
    return _open(path, flags, mode, dir_fd=dir_fd)

os.open = open_but_not_in_place
"""


def _open_dir_to_group(eng: Engine) -> Callable[[], None]:
    """A hook for the fake: while Procore answers, someone makes the directory group-writable."""
    return lambda: os.chmod(eng.config.parent, 0o775)


def test_a_directory_opened_to_others_during_the_refresh_does_not_lose_the_new_pair(eng: Engine) -> None:
    eng.login()
    stored = eng.profile()["refresh_token"]
    eng.fake.inject(Fault(paths=TOKEN_PATH, hook=_open_dir_to_group(eng)))
    r = eng.run("refresh", "--force")
    assert r.returncode == 0, r.stderr
    assert "the new tokens are saved, but only by writing over" in r.stderr
    assert "is writable by group or others" in r.stderr
    prof = eng.profile()
    assert eng.fake.refresh_token_state(stored) == "used"
    assert eng.fake.refresh_token_state(prof["refresh_token"]) == "active"  # the new pair is the stored one
    assert "refresh_started_at" not in prof and mode_of(eng.config) == 0o600
    os.chmod(eng.config.parent, 0o700)
    assert eng.run("refresh", "--force").returncode == 0  # and the chain goes on


@pytest.mark.parametrize("how", ["directory opened to others", "temporary files refused"])
def test_when_no_way_of_saving_works_the_message_says_the_new_pair_is_lost(eng: Engine, how: str) -> None:
    eng.login()
    site = eng.config.parent.parent / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(IN_PLACE_REFUSED)
    env = {"PYTHONPATH": str(site)}
    armed = eng.config.parent.parent / "answered"
    if how == "directory opened to others":
        eng.fake.inject(Fault(paths=TOKEN_PATH, hook=_open_dir_to_group(eng)))
    else:
        env["TEMP_FILES_REFUSED"] = str(armed)
        eng.fake.inject(Fault(paths=TOKEN_PATH, hook=armed.touch))
    r = eng.run("refresh", "--force", env=env)
    assert r.returncode == 6, r.stderr
    assert "Procore issued new tokens for profile 'default', but they could not be saved" in r.stderr
    assert "The new tokens are lost" in r.stderr and "needs a new login" in r.stderr
    assert f"procore-setup --config {eng.config} {RELOGIN}" in r.stderr
    if how == "directory opened to others":
        assert "chmod go-w" in r.stderr  # what to fix first
    assert "refresh_started_at" in eng.profile()  # the mark stays: the next run explains
    os.chmod(eng.config.parent, 0o700)
    r = eng.run("refresh")
    assert r.returncode == 4 and "was interrupted before its result was saved" in r.stderr, r.stderr


# -- a 200 answer the tool cannot use ----------------------------------------------------------------

UNUSABLE = [
    pytest.param(lambda body: {k: v for k, v in body.items() if k != "refresh_token"}, "lacks refresh_token",
                 id="no-refresh-token"),
    pytest.param(lambda body: dict(body, access_token="abc\r\nX-Evil: 1"), "spaces, line breaks",
                 id="bad-token"),
    pytest.param(lambda body: dict(body, token_type="mac"), "token type 'mac', not bearer", id="token-type-mac"),
]


@pytest.mark.parametrize("edit, says", UNUSABLE)
def test_a_200_with_tokens_it_cannot_use_says_the_refresh_token_was_probably_used(
        eng: Engine, edit: Callable[[Any], Any], says: str) -> None:
    eng.login()
    before = eng.profile()
    eng.fake.inject(Fault(paths=TOKEN_PATH, edit=edit))  # Procore rotates the pair, then answers this
    r = eng.run("refresh", "--force")
    assert r.returncode == 4, r.stderr
    first = r.stderr.splitlines()[0]
    assert "Procore answered with tokens this tool cannot use while refreshing the token" in first
    assert says in first and "most likely used up the stored refresh token" in first
    assert f"procore-setup --config {eng.config} {RELOGIN}" in r.stderr
    after = eng.profile()
    assert "refresh_started_at" in after and "reauth_required" not in after  # the mark stays
    assert {k: v for k, v in after.items() if k not in MARK} == before  # every value kept
    assert eng.fake.refresh_token_state(before["refresh_token"]) == "used"
    # the next run finds out, and says what happened
    r = eng.run("refresh")
    assert r.returncode == 4 and "was interrupted before its result was saved" in r.stderr, r.stderr


def test_unusable_tokens_that_did_not_rotate_the_pair_are_found_out_by_the_next_run(eng: Engine) -> None:
    eng.login()
    eng.fake.inject(Fault(paths=TOKEN_PATH, status=200, body={"access_token": "abc123", "expires_in": 5400}))
    r = eng.run("refresh", "--force")
    assert r.returncode == 4 and "lacks refresh_token" in r.stderr, r.stderr
    r = eng.run("refresh")  # the stored refresh token still works: the chain is intact
    assert r.returncode == 0, r.stderr
    assert "the chain is intact" in r.stderr
    assert eng.fake.counts["refresh_ok"] == 1


def test_a_code_exchange_answered_with_unusable_tokens_says_the_code_is_spent(eng: Engine) -> None:
    eng.fake.inject(Fault(paths=TOKEN_PATH, edit=lambda body: dict(body, token_type="mac")))
    code = eng.fake.issue_code()
    r = eng.run(*eng.login_args(code=code), input="1\n", env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    assert r.returncode == 4, r.stderr
    assert "cannot use while exchanging the code" in r.stderr and "the code is used up" in r.stderr
    assert "Open the authorize URL again for a new code" in r.stderr
    assert not eng.config.exists()


# -- a 4xx other than a refused grant or client ------------------------------------------------------

REFUSALS = [
    pytest.param({"status": 404, "body": {"error": "not found"}}, "refused the request (HTTP 404 not found)",
                 id="json-404"),
    pytest.param({"status": 400, "body": {"error": "invalid_request",
                                          "error_description": "Missing required parameter: grant_type."}},
                 "(HTTP 400 invalid_request) while refreshing the token: Missing required parameter: grant_type.",
                 id="400-invalid-request"),
    pytest.param({"status": 404, "body": "<html><body>Not Found</body></html>"},
                 "refused the request (HTTP 404, text/html instead of Procore's JSON)", id="html-404"),
    pytest.param({"status": 403, "body": "<html><body>Forbidden by policy</body></html>"},
                 "refused the request (HTTP 403, text/html instead of Procore's JSON)", id="html-403-firewall"),
]


@pytest.mark.parametrize("fault, says", REFUSALS)
def test_a_4xx_refusal_is_exit_5_and_leaves_the_file_byte_identical(eng: Engine, fault: dict[str, Any],
                                                                     says: str) -> None:
    eng.login()
    stored = eng.profile()["refresh_token"]
    before = Snapshot.of(eng.config)
    eng.fake.inject(Fault(paths=TOKEN_PATH, times=5, **fault))
    r = eng.run("refresh", "--force")
    assert r.returncode == 5, r.stderr
    assert says in r.stderr.splitlines()[0]
    assert "the stored tokens are as they were" in r.stderr
    before.assert_same_content(eng.config)  # no in-flight mark: nothing was used
    assert eng.fake.counts["faults"] == 1  # not retried: the same request is refused the same way
    assert eng.fake.refresh_token_state(stored) == "active"
    eng.fake.clear_faults()
    assert eng.run("refresh", "--force").returncode == 0


# -- bounded resources -------------------------------------------------------------------------------

MEMORY_LIMIT = 256 << 20  # address space for the child: plenty for a refresh, far from a gigabyte


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_limited(eng: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([EXE, *args], capture_output=True, text=True, env=eng.env(), timeout=120,
                       preexec_fn=_limited)
    return eng.check(r)


@pytest.mark.parametrize("fault", [{"gzip_bomb": 1 << 30}, {"huge_body": 1 << 30}], ids=["gzip-bomb", "huge-body"])
def test_a_gzip_bomb_or_a_huge_body_is_never_read_past_a_megabyte(eng: Engine, fault: dict[str, Any]) -> None:
    eng.login()
    before = eng.profile()
    eng.fake.inject(Fault(paths=TOKEN_PATH, times=5, **fault))  # a gigabyte, on every attempt
    r = run_limited(eng, "refresh", "--force")
    assert r.returncode == 5, r.stderr  # (unbounded, the child dies of MemoryError at 256 MiB)
    assert "127.0.0.1 answered with more than 1024 KiB while refreshing the token" in r.stderr
    assert "Procore may have used the refresh token" in r.stderr
    after = eng.profile()
    assert "refresh_started_at" in after  # a lost answer: Procore may have acted
    assert {k: v for k, v in after.items() if k not in MARK} == before
    eng.fake.clear_faults()
    r = run_limited(eng, "refresh")
    assert r.returncode == 0 and "the chain is intact" in r.stderr, r.stderr


# -- text from the server ----------------------------------------------------------------------------

ESCAPES = "\x1b]0;owned\x07\x1b]52;c;aGVsbG8=\x07\x1b[2J\u202e"


def test_error_text_from_the_server_is_escaped_and_capped(eng: Engine) -> None:
    eng.login()
    before = Snapshot.of(eng.config)
    eng.fake.inject(Fault(paths=TOKEN_PATH, status=400, body={"error": ESCAPES + "x" * 200_000,
                                                              "error_description": ESCAPES + "y" * 200_000}))
    r = eng.run("refresh", "--force")
    assert r.returncode == 5, r.stderr
    before.assert_same_content(eng.config)
    assert no_control_characters(r.stderr), repr(r.stderr[:300])
    assert "\\x1b]0;owned\\x07" in r.stderr and "\\u202e" in r.stderr  # shown, harmlessly
    assert len(r.stderr) < 2000


def test_names_from_procore_are_cleaned_before_they_are_printed_or_stored(eng: Engine) -> None:
    eng.fake.user["name"] = "Pat" + ESCAPES + " Builder"
    eng.fake.user["login"] = "pat@example.com" + "p" * 500_000  # would make every later save half a megabyte
    eng.fake.companies[0]["name"] = ESCAPES + "Builder Demo Co." + "c" * 1000
    r = eng.login_cli()
    assert no_control_characters(r.stdout + r.stderr), repr((r.stdout + r.stderr)[:300])
    assert "Pat\\x1b]0;owned\\x07" in r.stdout + r.stderr
    prof = eng.profile()
    assert prof["user_name"].startswith("Pat\\x1b]0;owned\\x07") and no_control_characters(prof["user_name"])
    assert len(prof["user_login"]) <= 200 and prof["user_login"].endswith("…")
    assert len(prof["company_name"]) <= 200 and no_control_characters(prof["company_name"])
    assert eng.config.stat().st_size < 10_000
    r = eng.run("status")  # every later run still reads the file
    assert r.returncode == 0 and no_control_characters(r.stdout), r.stderr
    assert eng.run("token").returncode == 0


def test_status_cleans_names_read_back_from_the_file(eng: Engine) -> None:
    eng.login()
    doc = load(eng.config)
    prof = doc["profiles"]["default"]
    prof["user_name"], prof["user_login"], prof["company_name"] = ESCAPES + "Pat", "pat\x07@x", "Co\x1b[2J" + "z" * 500
    rewrite(eng.config, doc)
    before = Snapshot.of(eng.config)
    r = eng.run("status")
    assert r.returncode == 0, r.stderr
    before.assert_untouched(eng.config)
    assert no_control_characters(r.stdout), repr(r.stdout)
    assert "user:          \\x1b]0;owned\\x07" in r.stdout and "<pat\\x07@x>" in r.stdout
    company = next(line for line in r.stdout.splitlines() if "company:" in line)
    assert "Co\\x1b[2J" in company and len(company) < 250


# -- expires_in ----------------------------------------------------------------------------------------

def test_an_expires_in_past_a_day_is_taken_as_a_day_with_a_warning(eng: Engine) -> None:
    eng.login()
    eng.fake.inject(Fault(paths=TOKEN_PATH, edit=lambda body: dict(body, expires_in=1e300)))
    r = eng.run("refresh", "--force")
    assert r.returncode == 0, r.stderr
    assert "warning: 127.0.0.1 gave the new access token a life of 1e+300 s; it is taken as one day" in r.stderr
    prof = eng.profile()
    life = (prof["expires_at"] - prof["last_refresh_at"]).total_seconds()
    assert 86400 - 5 <= life <= 86400
    assert eng.fake.refresh_token_state(prof["refresh_token"]) == "active"


def test_a_token_shorter_lived_than_the_margin_is_used_not_refreshed_on_every_call(eng: Engine) -> None:
    eng.fake.set_access_token_life(60)
    eng.login()
    first = eng.profile()["access_token"]
    # 60 s of life never has 300 s left: a just-issued token is used, not thrown away at every call
    assert eng.token("--min-valid", "300") == first
    assert eng.token("--min-valid", "300") == first
    assert eng.fake.counts["token:refresh_token"] == 0

    r = eng.run("refresh", "--force")
    assert r.returncode == 0, r.stderr
    fresh = eng.profile()["access_token"]
    procs = [eng.popen("token", "--min-valid", "300") for _ in range(4)]
    results = [eng.collect(p) for p in procs]
    assert [x.returncode for x in results] == [0] * 4, [x.stderr for x in results]
    assert {x.stdout.strip() for x in results} == {fresh}  # the one the refresh got, still valid
    assert eng.fake.counts["token:refresh_token"] == 1
    assert eng.fake.access_token_valid(fresh)


# -- the catalogue ---------------------------------------------------------------------------------------

def test_every_row_is_in_the_docs_section_and_names_a_test_that_exists() -> None:
    doc = (REPO / "docs" / "reliability.md").read_text()
    head = "### Hostile servers (issue 9)"
    assert head in doc
    section = doc.split(head, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.M))
    assert documented == set(ROWS), (sorted(set(ROWS) - documented), sorted(documented - set(ROWS)))
    here = Path(__file__).read_text()
    for tests in ROWS.values():
        for test in (tests,) if isinstance(tests, str) else tests:
            if test.endswith(".py"):
                assert (REPO / "tests" / test).is_file(), test
            else:
                assert f"def {test}(" in here, test
