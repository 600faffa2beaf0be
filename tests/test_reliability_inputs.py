"""The bad input catalogue: every malformed or hostile input, its exit code, its message, nothing lost.

One parametrized test per row of the table in docs/reliability.md (the ids are the same).
Each row runs the real `procore-setup` against a real credentials file and the fake server
(or a tiny server of its own on 127.0.0.1 for answers the fake cannot give), and checks:

- the exit code;
- the message's first line (the first stderr line that starts with "procore-setup"), by a
  stable substring;
- that nothing was lost: the credentials file byte-identical with its mode and owner where the
  tool must not touch it; where a refresh went out, every stored value but the in-flight
  mark unchanged and the chain still good at Procore (one more refresh works).

Any request that escaped validation to a non-loopback host would go to a dead proxy on
127.0.0.1 (ALL_PROXY), never to the network.
"""

from __future__ import annotations

import http.server
import os
import socket
import stat
import subprocess
import threading
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from helpers.cli import CLIENT_ID, CLIENT_SECRET, EXE, base_env
from procore_setup.profile import Profile
from procore_setup.stores.file import FileStore
from procore_setup.transaction import transaction
from procore_setup.oauth import TokenSet
from procore_setup.refresh import apply_tokens
from procore_setup.testing import FakeProcore, Fault

TOKEN_PATH = "/oauth/token"
NOBODY = 65534
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, nothing leaves the machine


# -- the situation of one row ----------------------------------------------------------------

class Ctx:
    """A temporary config dir, the fake, and the runs of one row."""

    def __init__(self, tmp: Path, fake: FakeProcore) -> None:
        self.tmp = tmp
        self.fake = fake
        self.config = tmp / "conf" / "credentials.toml"
        self.env = base_env(PROCORE_SETUP_CONFIG=str(self.config), PROCORE_SETUP_LOCK_TIMEOUT="10",
                            ALL_PROXY=DEAD_PROXY, HTTPS_PROXY=DEAD_PROXY, HTTP_PROXY=DEAD_PROXY,
                            NO_PROXY="127.0.0.1,localhost")
        self.servers: list[Any] = []
        self.run_window = (datetime.now(timezone.utc), datetime.now(timezone.utc))  # set by the row's run

    def profile(self, url: str | None = None, *, path: Path | None = None, name: str = "default") -> dict[str, Any]:
        """A logged-in profile, written the way the tool writes it, with a live chain at the fake."""
        body = self.fake.issue_tokens()
        store = FileStore(path or self.config)
        with transaction(store, create=True) as doc:
            prof = doc.add(Profile(name))
            prof.set(environment="custom", login_url=url or self.fake.url, api_url=url or self.fake.url,
                     client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
            apply_tokens(prof, TokenSet(body["access_token"], body["refresh_token"], "bearer", body["expires_in"],
                                        body["created_at"], None), refreshed=False)
        return body

    def stored(self, path: Path | None = None) -> dict[str, Any]:
        return tomllib.loads((path or self.config).read_text())["profiles"]["default"]

    def login_args(self, *extra: str, login_url: str | None = None, api_url: str | None = None) -> list[str]:
        return ["login", "--plain", "--environment", "custom", "--login-url", login_url or self.fake.url,
                "--api-url", api_url or self.fake.url, "--client-id", CLIENT_ID, *extra]

    def serve(self, handler: type[http.server.BaseHTTPRequestHandler]) -> str:
        """A tiny HTTP server of the row's own on 127.0.0.1; returns its base URL."""
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    def close(self) -> None:
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()


@dataclass
class Run:
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    input: str = ""
    config: Path | None = None  # the file whose bytes must survive (default: ctx.config)


@dataclass
class Row:
    id: str
    input: str  # the hostile input, in the user's words (docs/reliability.md)
    code: int
    message: str  # a stable part of the message's first line ("" when it succeeds silently)
    lost: str  # "file": byte-identical with mode and owner; "chain": tokens kept, chain alive; "saved": accepted
    prepare: Callable[[Ctx], Run]
    check: Callable[[Ctx, subprocess.CompletedProcess[str]], None] | None = None
    root: bool = False  # needs root (chown)
    timeout: float = 30.0  # the run is cut off after this, and the row fails: no input may hang the tool


def first_message(r: subprocess.CompletedProcess[str]) -> str:
    """The first error line (a warning before it, such as an expires_in of 0 s, is not the message)."""
    for line in r.stderr.splitlines():
        if line.startswith("procore-setup") and not line.startswith("procore-setup: warning:"):
            return line
    return r.stderr.splitlines()[0] if r.stderr.strip() else ""


# -- the credentials file ----------------------------------------------------------------------

def _broken_file(content: bytes | str | Callable[[bytes], bytes], mode: int = 0o600) -> Callable[[Ctx], Run]:
    def prepare(ctx: Ctx) -> Run:
        ctx.profile()
        old = ctx.config.read_bytes()
        data = content(old) if callable(content) else content
        ctx.config.write_bytes(data.encode() if isinstance(data, str) else data)
        os.chmod(ctx.config, mode)
        return Run(["token"])
    return prepare


def _replace(old: str, new: str) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        text = data.decode()
        assert old in text, old
        return text.replace(old, new, 1).encode()
    return edit


def _drop_line(prefix: str) -> Callable[[bytes], bytes]:
    return lambda data: b"\n".join(x for x in data.split(b"\n") if not x.startswith(prefix.encode()))


def _symlink_to_own_file(ctx: Ctx) -> Run:
    real = ctx.tmp / "dotfiles" / "procore.toml"
    ctx.profile(path=real)
    ctx.config.parent.mkdir(mode=0o700)
    ctx.config.symlink_to(real)
    return Run(["refresh", "--force", "--quiet"], config=real)


def _check_symlink_kept(ctx: Ctx, r: subprocess.CompletedProcess[str]) -> None:
    real = ctx.tmp / "dotfiles" / "procore.toml"
    assert ctx.config.is_symlink() and os.readlink(ctx.config) == str(real)  # the link is still a link
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert ctx.fake.counts["refresh_ok"] == 1
    assert ctx.fake.refresh_token_state(ctx.stored(real)["refresh_token"]) == "active"  # the new pair went there
    assert sorted(p.name for p in real.parent.iterdir()) == ["procore.toml", "procore.toml.lock"]  # lock beside the real file, no temp file


def _dangling_symlink(ctx: Ctx) -> Run:
    ctx.config.parent.mkdir(mode=0o700)
    ctx.config.symlink_to(ctx.tmp / "gone" / "procore.toml")
    return Run(["token"])


def _check_dangling_untouched(ctx: Ctx, r: subprocess.CompletedProcess[str]) -> None:
    assert ctx.config.is_symlink() and not (ctx.tmp / "gone").exists()  # nothing created at the target


def _symlink_to_foreign_file(ctx: Ctx) -> Run:
    real = ctx.tmp / "theirs" / "procore.toml"
    ctx.profile(path=real)
    os.chown(real, NOBODY, NOBODY)
    ctx.config.parent.mkdir(mode=0o700)
    ctx.config.symlink_to(real)
    return Run(["token"], config=real)


def _directory(ctx: Ctx) -> Run:
    ctx.config.mkdir(parents=True, mode=0o700)
    return Run(["token"])


def _other_owner(ctx: Ctx) -> Run:
    ctx.profile()
    os.chown(ctx.config, NOBODY, NOBODY)
    return Run(["token"])


def _dir_group_writable(ctx: Ctx) -> Run:
    ctx.profile()
    os.chmod(ctx.config.parent, 0o775)
    return Run(["refresh", "--force"])


FILE_ROWS = [
    Row("file-empty", "credentials file empty (0 bytes)", 6, "is empty", "file", _broken_file(b"")),
    Row("file-truncated", "credentials file cut off in the middle of a value", 6, "does not parse as TOML", "file",
        _broken_file(lambda d: d[: d.index(b"refresh_token") + 30])),
    Row("file-not-toml", "credentials file holding JSON", 6, "does not parse as TOML", "file",
        _broken_file('{"schema_version": 1, "profiles": {}}\n')),
    Row("file-binary", "credentials file holding binary junk", 6, "is not UTF-8 text", "file",
        _broken_file(bytes(range(256)) * 4)),
    Row("file-wrong-type", "a field of the wrong type (expires_at = \"tomorrow\")", 6,
        "field expires_at must be a datetime", "file", _broken_file(lambda d: _replace("expires_at = ", "expires_at = \"tomorrow\"\nx_old_expiry = ")(d))),
    Row("file-missing-field", "a profile without its client_id", 6, "is missing the field client_id", "file",
        _broken_file(_drop_line("client_id"))),
    Row("file-schema-newer", "schema_version = 99 (a newer procore-setup)", 6, "written by a newer procore-setup",
        "file", _broken_file(_replace("schema_version = 1", "schema_version = 99"))),
    Row("file-schema-text", "schema_version = \"1\" (text)", 6, "schema_version must be an integer", "file",
        _broken_file(_replace("schema_version = 1", 'schema_version = "1"'))),
    Row("file-huge", "credentials file over 1 MiB", 6, "far too big for a credentials file", "file",
        _broken_file(lambda d: d + b"# " + b"x" * (1 << 20) + b"\n")),
    Row("file-symlink", "credentials path is a symlink to a file the user owns (dotfile manager)", 0, "", "saved",
        _symlink_to_own_file, _check_symlink_kept),
    Row("file-symlink-dangling", "credentials path is a symlink to nothing", 6, "which does not exist", "file",
        _dangling_symlink, _check_dangling_untouched),
    Row("file-symlink-foreign", "credentials path is a symlink to another user's file", 6,
        "is owned by another user", "file", _symlink_to_foreign_file, root=True),
    Row("file-directory", "credentials path is a directory", 6, "is a directory, not a credentials file", "file",
        _directory),
    Row("file-other-owner", "credentials file owned by another user", 6, "is owned by another user", "file",
        _other_owner, root=True),
    Row("file-group-readable", "credentials file mode 0640", 6, "Permissions 0640", "file",
        _broken_file(lambda d: d, mode=0o640)),
    Row("file-world-readable", "credentials file mode 0644", 6, "Permissions 0644", "file",
        _broken_file(lambda d: d, mode=0o644)),
    Row("dir-group-writable", "config directory mode 0775 (others could swap the file)", 6,
        "is writable by group or others", "file", _dir_group_writable),
]


# -- environment variables and flags -------------------------------------------------------------

def _with_profile(*args: str, **env: str) -> Callable[[Ctx], Run]:
    def prepare(ctx: Ctx) -> Run:
        ctx.profile()
        return Run(list(args), env=dict(env))
    return prepare


def _login_with(**urls: str) -> Callable[[Ctx], Run]:
    def prepare(ctx: Ctx) -> Run:
        ctx.profile()
        return Run(ctx.login_args("--code=" + ctx.fake.issue_code(), **urls),
                   env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET}, input="1\n")
    return prepare


def _config_flag_empty(ctx: Ctx) -> Run:
    ctx.profile()
    return Run(["--config", "", "token"])


def _login_environment(env_id: str) -> Callable[[Ctx], Run]:
    def prepare(ctx: Ctx) -> Run:
        ctx.profile()
        return Run(["login", "--plain", "--environment", env_id, "--client-id", CLIENT_ID,
                    "--code=" + ctx.fake.issue_code()], env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    return prepare


FLAG_ROWS = [
    Row("env-config-empty", "PROCORE_SETUP_CONFIG set but empty", 2, "PROCORE_SETUP_CONFIG is set but empty",
        "file", _with_profile("token", PROCORE_SETUP_CONFIG="")),
    Row("flag-config-empty", "--config \"\"", 2, "The credentials path is empty", "file", _config_flag_empty),
    Row("env-profile-unknown", "PROCORE_SETUP_PROFILE names no profile", 3, "No profile 'nope'", "file",
        _with_profile("token", PROCORE_SETUP_PROFILE="nope")),
    Row("env-lock-timeout-text", "PROCORE_SETUP_LOCK_TIMEOUT=soon", 2,
        "PROCORE_SETUP_LOCK_TIMEOUT must be a number of seconds", "file",
        _with_profile("refresh", "--force", PROCORE_SETUP_LOCK_TIMEOUT="soon")),
    Row("env-http-timeout-text", "PROCORE_SETUP_HTTP_TIMEOUT=abc", 2,
        "PROCORE_SETUP_HTTP_TIMEOUT must be a number of seconds", "file",
        _with_profile("refresh", "--force", PROCORE_SETUP_HTTP_TIMEOUT="abc")),
    Row("env-http-timeout-zero", "PROCORE_SETUP_HTTP_TIMEOUT=0", 2,
        "PROCORE_SETUP_HTTP_TIMEOUT must be a number of seconds", "file",
        _with_profile("refresh", "--force", PROCORE_SETUP_HTTP_TIMEOUT="0")),
    Row("flag-min-valid-text", "token --min-valid soon", 2, "the value is not a number of seconds", "file",
        _with_profile("token", "--min-valid", "soon")),
    Row("flag-min-valid-negative", "token --min-valid -5", 2, "must be between 0 and 86400 seconds", "file",
        _with_profile("token", "--min-valid", "-5")),
    Row("flag-min-valid-nan", "refresh --min-valid nan", 2, "must be between 0 and 86400 seconds", "file",
        _with_profile("refresh", "--min-valid", "nan")),
    Row("flag-min-valid-huge", "token --min-valid 1e9", 2, "must be between 0 and 86400 seconds", "file",
        _with_profile("token", "--min-valid", "1e9")),
    Row("login-environment-unknown", "login --environment moon", 2, "Unknown environment 'moon'", "file",
        _login_environment("moon")),
    Row("login-url-not-a-url", "--login-url not-a-url", 2, "must start with https:// (got no scheme)", "file",
        _login_with(login_url="not-a-url")),
    Row("login-url-no-host", "--login-url https://", 2, "has no host name", "file", _login_with(login_url="https://")),
    Row("login-url-bad-port", "--login-url https://login.example.com:99999", 2, "has a bad port number", "file",
        _login_with(login_url="https://login.example.com:99999")),
    Row("login-url-query", "--login-url https://login.example.com/?next=/", 2, "must be a base URL", "file",
        _login_with(login_url="https://login.example.com/?next=/")),
    Row("login-url-spaces", "--login-url 'https://login. procore.com'", 2, "contains spaces", "file",
        _login_with(login_url="https://login. procore.com")),
    Row("login-url-ftp", "--login-url ftp://login.example.com", 2, "must start with https:// (got ftp)", "file",
        _login_with(login_url="ftp://login.example.com")),
    Row("login-url-file", "--login-url file:///etc/passwd", 2, "must start with https:// (got file)", "file",
        _login_with(login_url="file:///etc/passwd")),
    Row("login-url-javascript", "--login-url javascript:alert(1)", 2, "must start with https:// (got javascript)",
        "file", _login_with(login_url="javascript:alert(1)")),
    Row("api-url-ftp", "--api-url ftp://api.example.com", 2, "The API URL must start with https://", "file",
        _login_with(api_url="ftp://api.example.com")),
    Row("login-url-plain-http-remote", "custom --login-url http://login.example.com (plain http, not loopback)", 2,
        "uses plain http to login.example.com", "file", _login_with(login_url="http://login.example.com")),
    Row("api-url-plain-http-remote", "custom --api-url http://10.0.0.8 (plain http, not loopback)", 2,
        "uses plain http to 10.0.0.8", "file", _login_with(api_url="http://10.0.0.8")),
]


# -- pasted codes ----------------------------------------------------------------------------------

def _paste(make: Callable[[Ctx, str], str], *, via_stdin: bool = False) -> Callable[[Ctx], Run]:
    def prepare(ctx: Ctx) -> Run:
        ctx.profile()
        pasted = make(ctx, ctx.fake.issue_code())
        env = {"PROCORE_CLIENT_SECRET": CLIENT_SECRET}
        if via_stdin:
            return Run(ctx.login_args(), env=env, input=pasted + "\n1\n")
        return Run(ctx.login_args("--code=" + pasted), env=env, input="1\n")
    return prepare


def _check_logged_in_again(ctx: Ctx, r: subprocess.CompletedProcess[str]) -> None:
    assert "Saved profile 'default'" in r.stdout
    assert ctx.fake.counts["code_ok"] == 1
    assert ctx.fake.access_token_valid(ctx.stored()["access_token"])


def _used_code(ctx: Ctx) -> Run:
    ctx.profile()
    code = ctx.fake.issue_code()
    first = subprocess.run([EXE, *ctx.login_args("--code=" + code)], input="1\n", capture_output=True, text=True,
                           env=dict(ctx.env, PROCORE_CLIENT_SECRET=CLIENT_SECRET, PROCORE_SETUP_CONFIG=str(ctx.tmp / "other.toml")),
                           timeout=60)
    assert first.returncode == 0, first.stderr
    return Run(ctx.login_args("--code=" + code), env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET}, input="1\n")


CODE_ROWS = [
    Row("code-empty", "an empty line where the code goes", 2, "No code was pasted", "file",
        _paste(lambda ctx, code: "", via_stdin=True)),
    Row("code-spaces-line-breaks", "the code with spaces and a line break in it (terminal wrapping)", 0, "", "saved",
        _paste(lambda ctx, code: f"  {code[:10]} {code[10:20]}\n{code[20:]}  "), _check_logged_in_again),
    Row("code-whole-url", "the whole address .../oauth/authorize/<CODE>", 0, "", "saved",
        _paste(lambda ctx, code: f"{ctx.fake.url}/oauth/authorize/{code}"), _check_logged_in_again),
    Row("code-whole-url-query", "the whole address .../oauth/authorize/native?code=<CODE>", 0, "", "saved",
        _paste(lambda ctx, code: f"{ctx.fake.url}/oauth/authorize/native?code={code}&state=x"),
        _check_logged_in_again),
    Row("code-is-client-secret", "the client secret pasted instead of the code", 2,
        "That is the client secret, not the authorization code", "file", _paste(lambda ctx, code: CLIENT_SECRET)),
    Row("code-10000-chars", "10,000 characters", 2, "far too long to be an authorization code", "file",
        _paste(lambda ctx, code: "A" * 10_000)),
    Row("code-10000-chars-stdin", "10,000 characters on stdin", 2, "far too long to be an authorization code",
        "file", _paste(lambda ctx, code: "A" * 10_000, via_stdin=True)),
    Row("code-junk", "a code with characters no code has (<script>)", 2, "does not look like an authorization code",
        "file", _paste(lambda ctx, code: "<script>alert(1)</script>")),
    Row("code-used", "a code that was already used", 4, "Procore refused the code", "file", _used_code),
]


# -- what the server answers -------------------------------------------------------------------------

def _answer(env: dict[str, str] | None = None, **fault: Any) -> Callable[[Ctx], Run]:
    """Procore (the fake) answers the refresh with `fault`, on every retry."""
    def prepare(ctx: Ctx) -> Run:
        ctx.profile()
        ctx.fake.inject(Fault(paths=TOKEN_PATH, times=5, **fault))
        return Run(["refresh", "--force"], env=dict(env or {}))
    return prepare


def _token_life(seconds: int) -> Callable[[Ctx], Run]:
    def prepare(ctx: Ctx) -> Run:
        ctx.profile()
        ctx.fake.set_access_token_life(seconds)
        return Run(["refresh", "--force"])
    return prepare


def _check_expiry(life: int) -> Callable[[Ctx, subprocess.CompletedProcess[str]], None]:
    """The stored expiry is `life` seconds (what the tool makes of the answer) counted from when the
    request went out, to the second: somewhere between the start of the run and its end."""
    def check(ctx: Ctx, r: subprocess.CompletedProcess[str]) -> None:
        prof = ctx.stored()
        counted_from = prof["expires_at"] - timedelta(seconds=life)
        started, ended = ctx.run_window
        assert started.replace(microsecond=0) <= counted_from <= ended, (prof["expires_at"], started, ended)
        assert counted_from <= prof["last_refresh_at"] <= ended  # never later than the save itself
        assert ctx.fake.refresh_token_state(prof["refresh_token"]) == "active"
    return check


def _own_server(handler: type[http.server.BaseHTTPRequestHandler], **env: str) -> Callable[[Ctx], Run]:
    def prepare(ctx: Ctx) -> Run:
        url = ctx.serve(handler)
        ctx.profile(url)
        return Run(["refresh", "--force"], env=dict(env))
    return prepare


class _Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _drain(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))


class _Redirect(_Quiet):
    def do_POST(self) -> None:
        self._drain()
        self.send_response(302)
        self.send_header("Location", "https://sso.example.com/login?return=/oauth/token&code=do-not-show-me")
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Trickle(_Quiet):
    def do_POST(self) -> None:
        self._drain()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "4000")
        self.end_headers()
        try:
            for _ in range(4000):  # a byte every 0.1 s: no single read ever waits long
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass


def _login_token_dead_on_arrival(ctx: Ctx) -> Run:
    ctx.profile()
    ctx.fake.set_access_token_life(0)  # issued already expired: the check after the exchange is refused
    return Run(ctx.login_args("--code=" + ctx.fake.issue_code()), env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET},
               input="1\n")


def _check_grant_saved(ctx: Ctx, r: subprocess.CompletedProcess[str]) -> None:
    """The grant was saved at the exchange, before the check refused its access token: its
    refresh token is the live one, so nothing Procore issued was thrown away."""
    stored = ctx.stored(ctx.config)
    assert ctx.fake.refresh_token_state(stored["refresh_token"]) == "active"
    assert stat.S_IMODE(os.stat(ctx.config).st_mode) == 0o600
    assert "saved with its new tokens" in r.stderr


def _tls_to_plain_port(ctx: Ctx) -> Run:
    ctx.profile(ctx.fake.url.replace("http://", "https://"))
    return Run(["refresh", "--force"])


def _closed_port(ctx: Ctx) -> Run:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx.profile(f"http://127.0.0.1:{port}")
    return Run(["refresh", "--force"])


def _check_bounded_no_location_query(ctx: Ctx, r: subprocess.CompletedProcess[str]) -> None:
    assert "https://sso.example.com/login" in r.stderr
    assert "do-not-show-me" not in r.stderr  # the query string could carry a code or a token


SERVER_ROWS = [
    Row("answer-html", "HTML instead of JSON (a login page, 200)", 5, "with text/html, not JSON", "chain",
        _answer(status=200, body="<html><body>Please sign in</body></html>")),
    Row("answer-html-502", "an HTML error page from a proxy (502)", 5, "answered 502 (server error 502)", "chain",
        _answer(status=502, body="<html><body>Bad gateway</body></html>")),
    Row("answer-json-no-fields", "JSON without the token fields ({})", 5,
        "lacks access_token, refresh_token, expires_in", "chain", _answer(status=200, body={})),
    Row("answer-200-error-body", "a 200 with an error body (server_error)", 5,
        "lacks access_token, refresh_token, expires_in", "chain",
        _answer(status=200, body={"error": "server_error", "error_description": "try later"})),
    Row("answer-200-invalid-grant", "a 200 with an invalid_grant body", 4,
        "Procore refused the refresh token", "kept", _answer(status=200, body={"error": "invalid_grant"})),
    Row("answer-expires-in-0", "a token with expires_in 0", 0, "", "saved", _token_life(0), _check_expiry(0)),
    Row("answer-expires-in-negative", "a token with expires_in -3600", 0, "", "saved", _token_life(-3600),
        _check_expiry(0)),  # already expired: never a negative lifetime
    Row("answer-expires-in-huge", "a token with expires_in 10^12 s (taken as a day, with a warning)", 0, "", "saved",
        _token_life(10**12), _check_expiry(86400)),  # capped at a day
    Row("answer-expires-in-nan", "a token with expires_in NaN", 4, "non-numeric expires_in", "chain",
        _answer(status=200, body='{"access_token":"abc123","refresh_token":"def456","expires_in":NaN}',
                content_type="application/json")),
    Row("answer-expires-in-infinite", "a token with expires_in 1e400 (infinity)", 4, "non-numeric expires_in",
        "chain", _answer(status=200, body='{"access_token":"abc123","refresh_token":"def456","expires_in":1e400}',
                         content_type="application/json")),
    Row("answer-expires-in-text", "a token with expires_in \"soon\"", 4, "non-numeric expires_in", "chain",
        _answer(status=200, body={"access_token": "abc123", "refresh_token": "def456", "expires_in": "soon"})),
    Row("answer-token-line-break", "an access token with a line break (header injection)", 4,
        "spaces, line breaks or non-ASCII characters", "chain",
        _answer(status=200, body={"access_token": "abc\r\nX-Evil: 1", "refresh_token": "def456", "expires_in": 60})),
    Row("answer-token-huge", "a 100 KB access token (a 2 MB answer: row hostile-huge-body)", 4,
        "longer than 16384 characters", "chain",
        _answer(status=200, body={"access_token": "a" * 100_000, "refresh_token": "def456", "expires_in": 60})),
    Row("answer-redirect", "a redirect (302) to a single sign-on page", 5, "redirected (HTTP 302)", "chain",
        _own_server(_Redirect), _check_bounded_no_location_query),
    Row("answer-slow-trickle", "an answer trickling in a byte every 0.1 s (PROCORE_SETUP_HTTP_TIMEOUT=0.5)", 5,
        "took more than 1 s to answer", "chain", _own_server(_Trickle, PROCORE_SETUP_HTTP_TIMEOUT="0.5"),
        timeout=30),  # the trickle alone would take 400 s
    Row("answer-hang", "no answer at all (PROCORE_SETUP_HTTP_TIMEOUT=0.5)", 5, "No answer from 127.0.0.1", "chain",
        _answer(hang=600, status=503, env={"PROCORE_SETUP_HTTP_TIMEOUT": "0.5"}), timeout=30),  # never processed
    Row("login-token-dead-on-arrival", "at login, an access token Procore refuses as soon as it issued it", 4,
        "Procore refused the access token it had just issued", "saved", _login_token_dead_on_arrival,
        _check_grant_saved),
    Row("answer-tls-error", "https:// to a plain-http port (a TLS error)", 5, "TLS error", "file",
        _tls_to_plain_port),
    Row("answer-connection-refused", "nothing listening (server down)", 5, "Cannot reach 127.0.0.1", "file",
        _closed_port),
]
ROWS = FILE_ROWS + FLAG_ROWS + CODE_ROWS + SERVER_ROWS


def execute(row: Row, tmp: Path) -> None:
    """Run one row and check it; raises AssertionError (or anything else) when it fails."""
    tmp.mkdir(parents=True)
    with FakeProcore() as fake:
        ctx = Ctx(tmp, fake)
        try:
            _execute(row, ctx)
        finally:
            ctx.close()


def _execute(row: Row, ctx: Ctx) -> None:
    run = row.prepare(ctx)
    kept = run.config or ctx.config
    before = kept.read_bytes() if kept.is_file() else None
    st_before = os.lstat(kept) if kept.exists() else None
    stored_before = ctx.stored(kept) if row.lost in ("chain", "kept") else None
    refreshes_before = ctx.fake.counts["refresh_ok"]

    started = datetime.now(timezone.utc)
    try:
        r = subprocess.run([EXE, *run.args], input=run.input, capture_output=True, text=True,
                           env=dict(ctx.env, **run.env), timeout=row.timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"procore-setup {' '.join(run.args[:2])} did not finish within {row.timeout:g} s (killed)")
    ctx.run_window = (started, datetime.now(timezone.utc))

    assert r.returncode == row.code, f"exit {r.returncode}, stderr:\n{r.stderr}\nstdout:\n{r.stdout[:2000]}"
    assert row.message in first_message(r), f"first line: {first_message(r)!r}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr
    if run.args[0] == "token" and row.code:
        assert r.stdout == ""  # no token printed on any failure

    if row.lost == "file":
        if before is not None:
            assert kept.read_bytes() == before, "the credentials file changed"
            st = os.lstat(kept)
            assert st_before is not None  # the file was there: `before` is its bytes
            assert (stat.S_IMODE(st.st_mode), st.st_uid) == (stat.S_IMODE(st_before.st_mode), st_before.st_uid)
        if kept.parent.is_dir():
            assert [p.name for p in kept.parent.iterdir() if p.name.endswith(".tmp")] == []
    elif row.lost in ("chain", "kept"):
        after = ctx.stored(kept)
        assert stored_before is not None  # read above for these rows
        assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600
        volatile = {"refresh_started_at", "refresh_budget", "refresh_step", "last_error", "reauth_required"}
        assert {k: v for k, v in after.items() if k not in volatile} == \
               {k: v for k, v in stored_before.items() if k not in volatile}, "a stored value changed"
        assert ctx.fake.refresh_token_state(after["refresh_token"]) == "active", "the chain was used up"
        if row.lost == "kept":
            assert "login --profile default" in r.stderr  # the exact command that fixes it
        elif not ctx.servers:  # (a row's own server keeps misbehaving: the chain was checked above)
            ctx.fake.clear_faults()  # the trouble passes: the very next run refreshes
            again = subprocess.run([EXE, "refresh", "--force", "--quiet"], capture_output=True, text=True,
                                   env=ctx.env, timeout=60)
            assert again.returncode == 0, again.stderr
            assert ctx.fake.counts["refresh_ok"] == refreshes_before + 1
    if row.check is not None:
        row.check(ctx, r)


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id, marks=pytest.mark.skipif(
    r.root and not ROOT, reason="needs root to chown to nobody")) for r in ROWS])
def test_bad_input(row: Row, tmp_path: Path) -> None:
    """One row of the catalogue, and only that one: `-k ROW` runs it, `--durations` times it."""
    execute(row, tmp_path / "row")


def test_every_row_is_in_the_docs_table() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    missing = [r.id for r in ROWS if f"`{r.id}`" not in doc]
    assert missing == []
