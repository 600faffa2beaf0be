"""Shared fixtures: the fake Procore server over real HTTP, a temporary config dir, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from procore_setup.testing import FakeProcore

# real PostgreSQL and Redis for the store tests; a copy of this file alone (test_reliability_secrets) runs without
pytest_plugins = ["servers"] if Path(__file__).with_name("servers.py").exists() else []

EXE = str(Path(sys.executable).with_name("procore-setup"))
CLIENT_ID = "demo-client-id"
CLIENT_SECRET = "demo-client-secret"


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROCORE_", "COVERAGE"))}
    env.update(extra)
    return env


class CLI:
    """Runs the installed `procore-setup` executable against one credentials file."""

    def __init__(self, config: Path, fake: FakeProcore) -> None:
        self.config = config
        self.fake = fake
        self.env = base_env(PROCORE_SETUP_CONFIG=str(config), PROCORE_SETUP_LOCK_TIMEOUT="30")

    def run(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EXE, *args], input=input if input is not None else "", capture_output=True,
                              text=True, env=dict(self.env, **(env or {})), timeout=timeout)

    def popen(self, *args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[str]:
        return subprocess.Popen([EXE, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(self.env, **(env or {})), **kw)

    def login(self, profile: str = "default", *extra: str) -> subprocess.CompletedProcess[str]:
        """A first login through `login --plain`, answering the company question with line 1."""
        code = self.fake.issue_code()
        r = self.run("login", "--plain", "--profile", profile, "--environment", "custom",
                     "--login-url", self.fake.url, "--api-url", self.fake.url, "--client-id", CLIENT_ID,
                     f"--code={code}", *extra, input="1\n", env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
        assert r.returncode == 0, r.stderr
        return r

    def secrets(self) -> list[str]:
        """Every secret in the file now (for 'never printed' checks)."""
        import tomllib

        data = tomllib.loads(self.config.read_text())
        out = [CLIENT_SECRET]
        for prof in data.get("profiles", {}).values():
            out += [prof[k] for k in ("access_token", "refresh_token") if prof.get(k)]
        return out


@pytest.fixture
def fake() -> Any:
    with FakeProcore() as server:
        yield server


@pytest.fixture
def cli(tmp_path: Path, fake: FakeProcore) -> CLI:
    return CLI(tmp_path / "conf" / "credentials.toml", fake)


# -- secrets: nothing a test creates may show up in anything it prints ---------------------------
#
# An autouse fixture records every secret the tests create -- the client secret, every access and
# refresh token any FakeProcore issues, client secrets and passphrases handed to subprocesses
# through the environment, and whatever a test adds with `secret_guard.add()` -- and the
# `pytest_runtest_makereport` hook below fails the test when one of them (or any 16-character
# piece of one) appears in its captured stdout or stderr (capsys/capfd), its log records, the
# text of a procore_setup exception it created (raised or caught), or the stdout/stderr of any
# subprocess it ran through `communicate()` (so `subprocess.run`, `CLI.run`, `Popen` results).
# Allowed: `procore-setup token` printing its access token on stdout, and `python -m
# procore_setup.testing` printing the fake's (public, made-up) client secret.

SECRET_WINDOW = 16  # a leak of any 16 consecutive characters of a secret counts as a leak
SECRET_MIN = 8  # shorter strings ("1", "yes") would match everything; no real secret is that short
SECRET_ENV_VARS = ("PROCORE_CLIENT_SECRET", "PROCORE_SETUP_PASSPHRASE")
_GUARD_KEY = pytest.StashKey["SecretGuard"]()


def _token_command(args: Any) -> bool:
    """Whether argv runs `procore-setup ... token` (which prints an access token by design)."""
    if not isinstance(args, (list, tuple)) or not args:
        return False
    rest = [str(a) for a in args[1:]]
    if os.path.basename(str(args[0])) != "procore-setup":
        if rest[:2] == ["-m", "procore_setup"]:
            rest = rest[2:]
        else:
            return False
    skip = False
    for a in rest:
        if skip:
            skip = False
        elif a in ("--config", "--store", "--profile", "--passphrase-command"):
            skip = True
        elif not a.startswith("-"):
            return a == "token" and "--help" not in rest and "-h" not in rest
    return False


class SecretGuard:
    """The secrets of one test, and every text the test produced that must not contain one."""

    def __init__(self) -> None:
        self._lock = __import__("threading").Lock()
        self.secrets: dict[str, str] = {}  # secret -> what it is
        self._windows: dict[str, str] = {}  # every 16-character piece of a long secret -> the secret
        self._short: list[str] = []
        self.outputs: list[tuple[str, str, frozenset[str]]] = []  # (where, text, allowed secrets)
        self.errors: list[BaseException] = []
        self.log_lines: list[str] = []
        self.armed = True
        self.reported: set[str] = set()
        self.add(CLIENT_SECRET, "the client secret")

    def add(self, secret: Any, what: str = "a secret") -> None:
        """Record a secret; anything a test prints after this (and before) must not contain it."""
        if not isinstance(secret, str) or len(secret.strip()) < SECRET_MIN:
            return
        with self._lock:
            if secret in self.secrets:
                return
            self.secrets[secret] = what
            if len(secret) < SECRET_WINDOW:
                self._short.append(secret)
            else:
                for i in range(len(secret) - SECRET_WINDOW + 1):
                    self._windows.setdefault(secret[i : i + SECRET_WINDOW], secret)

    def find(self, text: Any, allowed: frozenset[str] = frozenset(), *,
             _snapshot: tuple[dict[str, str], list[str]] | None = None) -> list[str]:
        """The secrets (described, never shown) that `text` contains, or a piece of."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not isinstance(text, str) or not text:
            return []
        if _snapshot is None:
            with self._lock:
                _snapshot = (dict(self._windows), list(self._short))
        windows, short = _snapshot
        hits: dict[str, None] = {}
        for s in short:
            if s not in allowed and s in text:
                hits[s] = None
        if windows:
            get = windows.get
            for i in range(len(text) - SECRET_WINDOW + 1):
                s = get(text[i : i + SECRET_WINDOW])
                if s is not None and s not in allowed:
                    hits[s] = None
        return [f"{self.secrets.get(s, 'a secret')} (ending ...{s[-4:]})" for s in hits]

    def record_output(self, where: str, text: Any, allowed: frozenset[str] = frozenset()) -> None:
        if text:
            self.outputs.append((where, text if isinstance(text, str) else bytes(text).decode("utf-8", "replace"),
                                 allowed))

    def record_process(self, args: Any, out: Any, err: Any, returncode: int | None) -> None:
        argv = [str(a) for a in args] if isinstance(args, (list, tuple)) else [str(args)]
        # name the command without its arguments, which may hold a secret themselves
        words = [os.path.basename(argv[0])] + [a for a in argv[1:3] if a.isidentifier() or a in ("-c", "-m")]
        what = " ".join(words)
        # A secret the test wrote into the command line itself (e.g. a passphrase command
        # `echo PASSPHRASE`) is the test's doing, not a leak, when the command echoes it.
        cmdline = " ".join(argv)
        with self._lock:
            given = frozenset(s for s in self.secrets if s in cmdline)
        allowed_out = given
        killed = returncode is not None and returncode < 0
        if _token_command(argv) and (returncode == 0 or killed) and out:
            printed = (out.decode("utf-8", "replace") if isinstance(out, bytes) else out).strip()
            # the token it was asked for, and only that. A `token` killed by a signal (the chaos
            # run SIGKILLs them) may have printed its token, or the start of it, before dying;
            # that is still the token it was asked for. A `token` that *failed* (exit >= 1)
            # and printed a token anyway is a leak.
            with self._lock:
                printed_secrets = {s for s in self.secrets
                                   if printed and (s == printed or (killed and s.startswith(printed)))}
            allowed_out = given | printed_secrets
        if any(a.endswith("procore_setup.testing") for a in argv):
            allowed_out = given | {CLIENT_SECRET}  # the fake's made-up secret, printed for its users
        self.record_output(f"the stdout of `{what}`", out, allowed_out)
        self.record_output(f"the stderr of `{what}`", err, given)

    def problems(self, extra: list[tuple[str, str]] = ()) -> list[str]:
        """Every place a secret leaked to, as lines for a failure report."""
        for name in SECRET_ENV_VARS:
            self.add(os.environ.get(name), f"${name}")
        found = []
        items = [(w, t, a) for w, t, a in self.outputs] + [(w, t, frozenset()) for w, t in extra]
        items += [(f"the message of {type(e).__name__}", str(e), frozenset()) for e in self.errors]
        items += [("a log record", line, frozenset()) for line in self.log_lines]
        with self._lock:
            snapshot = (dict(self._windows), list(self._short))
        for where, text, allowed in items:
            for hit in self.find(text, allowed, _snapshot=snapshot):
                found.append(f"{hit} leaked into {where}")
        return list(dict.fromkeys(found))


class _GuardLogHandler(__import__("logging").Handler):
    def __init__(self, guard: SecretGuard) -> None:
        super().__init__(level=0)
        self.guard = guard

    def emit(self, record: Any) -> None:
        try:
            line = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is not our concern here
            line = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            line += "\n" + str(record.exc_info[1])
        self.guard.log_lines.append(line)


@pytest.fixture(autouse=True)
def secret_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Fail the test if any secret it created leaks (see the comment above). Autouse."""
    import logging

    from procore_setup.errors import ProcoreSetupError

    guard = SecretGuard()
    request.node.stash[_GUARD_KEY] = guard
    if request.node.get_closest_marker("leaks_secrets_on_purpose"):
        guard.armed = False

    new_pair = FakeProcore._new_pair

    def recording_new_pair(self: FakeProcore, grant_id: int) -> Any:
        pair = new_pair(self, grant_id)
        guard.add(pair.access_token, "an access token")
        guard.add(pair.refresh_token, "a refresh token")
        guard.add(self.client_secret, "the client secret")
        return pair

    monkeypatch.setattr(FakeProcore, "_new_pair", recording_new_pair)

    popen_init = subprocess.Popen.__init__

    def recording_init(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        env = kwargs.get("env")
        if env:
            for name in SECRET_ENV_VARS:
                guard.add(env.get(name), f"${name} of a subprocess")
        popen_init(self, *args, **kwargs)

    communicate = subprocess.Popen.communicate

    def recording_communicate(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> Any:
        out, err = communicate(self, *args, **kwargs)
        guard.record_process(self.args, out, err, self.returncode)
        return out, err

    monkeypatch.setattr(subprocess.Popen, "__init__", recording_init)
    monkeypatch.setattr(subprocess.Popen, "communicate", recording_communicate)

    error_init = ProcoreSetupError.__init__

    def recording_error_init(self: ProcoreSetupError, *args: Any, **kwargs: Any) -> None:
        error_init(self, *args, **kwargs)
        guard.errors.append(self)

    monkeypatch.setattr(ProcoreSetupError, "__init__", recording_error_init)

    handler = _GuardLogHandler(guard)
    pkg_logger = logging.getLogger("procore_setup")
    old_level = pkg_logger.level
    pkg_logger.setLevel(logging.DEBUG)  # a debug line is a leak too, once someone turns debug on
    logging.getLogger().addHandler(handler)
    try:
        yield guard
    finally:
        logging.getLogger().removeHandler(handler)
        pkg_logger.setLevel(old_level)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    outcome = yield
    report = outcome.get_result()
    guard: SecretGuard | None = item.stash.get(_GUARD_KEY, None)
    if guard is None or not guard.armed or report.when not in ("call", "teardown"):
        return
    extra = [(f"captured {name}", text) for name, text in report.sections]
    if call.excinfo is not None:
        extra.append(("the exception the test ended with", str(call.excinfo.value)))
    leaks = [x for x in guard.problems(extra) if x not in guard.reported]
    if not leaks:
        return
    guard.reported.update(leaks)
    text = "secret leaked (tests/conftest.py secret_guard):\n  " + "\n  ".join(leaks)
    if report.failed and report.longrepr is not None:
        text = f"{report.longrepr}\n\n{text}"
    report.outcome = "failed"
    report.longrepr = text


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "leaks_secrets_on_purpose: the secret guard does not fail this test (for its own tests)")
