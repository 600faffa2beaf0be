"""Helpers for the engine tests: a secret-checking CLI runner, file snapshots and time travel.

Every command an engine test runs goes through `Engine.run` (or
`Engine.collect` for a Popen), which checks its stdout and stderr against every secret
in play: the client secret and every access and refresh token the fake server has ever
issued, old and new. The `eng` fixture checks all outputs of the test once more at the
end, against the secrets known by then (a token issued after a command ran must not
have appeared in that command's output either).
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import tomli_w

from helpers.cli import CLI, CLIENT_ID, CLIENT_SECRET, EXE
from procore_setup.testing import FakeProcore

__all__ = [
    "CLIENT_ID", "CLIENT_SECRET", "EXE", "FIRST_COMPANY", "SECOND_COMPANY", "Engine", "Snapshot", "assert_no_secrets", "issued_secrets",
    "load", "mode_of", "rewrite", "set_expiry", "temp_files", "wait_for",
]

FIRST_COMPANY = 8675309
SECOND_COMPANY = 562949953421313  # more than 32 bits
# The in-flight mark a refresh writes before it sends the token (and leaves when the answer is
# lost): when it started, and the holder's own limits that waiters on other hosts wait on.
MARK = frozenset({"refresh_started_at", "refresh_budget", "refresh_step"})
WINDOW = 16  # a leak of any 16 consecutive characters of a secret counts as a leak


def issued_secrets(fake: FakeProcore) -> set[str]:
    """The client secret and every access and refresh token the fake has ever issued.

    Reads the fake's own books (test-only peeking), so tokens that never reached the
    credentials file (a response lost on the way back) are covered too.
    """
    with fake._lock:  # noqa: SLF001 - the fake is our own test double
        return {fake.client_secret, CLIENT_SECRET, *fake._access, *fake._refresh}  # noqa: SLF001


def _windows(secret: str) -> Iterable[str]:
    if len(secret) <= WINDOW:
        yield secret
        return
    for i in range(len(secret) - WINDOW + 1):
        yield secret[i : i + WINDOW]


def assert_no_secrets(result: subprocess.CompletedProcess[str], secrets: Iterable[str], *,
                      printed_token: str | None = None) -> None:
    """No secret, nor any 16-character piece of one, in the result's stdout or stderr.

    `printed_token` is the one access token `procore-setup token` is allowed to print,
    and then only as the whole of stdout.
    """
    what = " ".join(str(a) for a in result.args[1:]) if isinstance(result.args, list) else str(result.args)
    if printed_token is not None:
        assert result.stdout == printed_token + "\n", f"`{what}` printed more than the token on stdout"
    for name, text in (("stdout", result.stdout or ""), ("stderr", result.stderr or "")):
        for secret in secrets:
            if not secret:
                continue
            if name == "stdout" and secret == printed_token:
                continue
            for piece in _windows(secret):
                assert piece not in text, (
                    f"a secret (ending ...{secret[-4:]}) leaked into the {name} of `{what}`:\n{text}"
                )


# -- the credentials file ----------------------------------------------------------------

def load(path: Path) -> dict[str, Any]:
    """The file parsed with tomllib (fails the test if it does not parse)."""
    return tomllib.loads(path.read_text("utf-8"))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def temp_files(directory: Path) -> list[str]:
    """Leftover temporary files of an atomic save (there should never be any)."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@dataclass(frozen=True)
class Snapshot:
    """The bytes, mode, inode and mtime of a file, to prove a command left it alone."""

    data: bytes
    mode: int
    inode: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> "Snapshot":
        st = os.stat(path)
        return cls(path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_ino, st.st_mtime_ns)

    def assert_untouched(self, path: Path) -> None:
        """Not rewritten at all: same bytes, same mode, same inode, same mtime."""
        now = Snapshot.of(path)
        assert now.data == self.data, "the file's bytes changed"
        assert now.mode == self.mode, f"the file's mode changed from {self.mode:04o} to {now.mode:04o}"
        assert (now.inode, now.mtime_ns) == (self.inode, self.mtime_ns), "the file was rewritten"

    def assert_same_content(self, path: Path) -> None:
        """Byte-identical and the same mode (it may have been atomically rewritten with the same bytes)."""
        now = Snapshot.of(path)
        assert now.data == self.data, "the file's bytes changed"
        assert now.mode == self.mode


def rewrite(path: Path, data: dict[str, Any] | bytes | str) -> None:
    """Replace the file's content in place, keeping its mode (the test plays the user's editor)."""
    if isinstance(data, dict):
        data = tomli_w.dumps(data)
    if isinstance(data, str):
        data = data.encode("utf-8")
    mode = mode_of(path) if path.exists() else 0o600
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)


def set_expiry(path: Path, seconds_left: float, profile: str = "default") -> None:
    """Time travel: make the file say the profile's access token expires in `seconds_left` seconds."""
    doc = load(path)
    when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=seconds_left)
    doc["profiles"][profile]["expires_at"] = when
    rewrite(path, doc)


# -- running the real executable -------------------------------------------------------------

def _is_token_command(args: Iterable[str]) -> bool:
    """`procore-setup [--config P] [--profile N] token ...`: the one command that prints a secret."""
    args = list(args)
    i = 0
    while i < len(args) and args[i] in ("--config", "--profile"):
        i += 2
    return i < len(args) and args[i] == "token" and "--help" not in args



class Engine:
    """Runs `procore-setup` against one credentials file and the fake, checking every output."""

    def __init__(self, cli: CLI, fake: FakeProcore) -> None:
        self.cli = cli
        self.fake = fake
        self.config: Path = cli.config
        self.extra_secrets: set[str] = set()
        self._seen: list[tuple[subprocess.CompletedProcess[str], str | None]] = []

    # secrets -----------------------------------------------------------------------
    def secrets(self) -> set[str]:
        out = issued_secrets(self.fake) | self.extra_secrets
        if self.config.exists():
            try:
                out |= set(self.cli.secrets())
            except (tomllib.TOMLDecodeError, OSError, ValueError, AttributeError, TypeError, KeyError):
                pass  # a test may have broken the file on purpose
        return out

    def check(self, result: subprocess.CompletedProcess[str], *, token: bool = False) -> subprocess.CompletedProcess[str]:
        """Check one result now; it is checked again at the end of the test."""
        printed = None
        if token and result.returncode == 0:
            printed = result.stdout.strip()
            with self.fake._lock:  # noqa: SLF001
                assert printed in self.fake._access, "`token` printed something that is not an issued access token"  # noqa: SLF001
        assert_no_secrets(result, self.secrets(), printed_token=printed)
        self._seen.append((result, printed))
        return result

    def finish(self) -> None:
        secrets = self.secrets()
        for result, printed in self._seen:
            assert_no_secrets(result, secrets, printed_token=printed)

    # commands ----------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        return dict(self.cli.env, **extra)

    def run(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60, umask: int | None = None) -> subprocess.CompletedProcess[str]:
        preexec = (lambda: os.umask(umask)) if umask is not None else None  # noqa: E731
        result = subprocess.run([EXE, *args], input=input if input is not None else "", capture_output=True,
                                text=True, env=self.env(**(env or {})), timeout=timeout, preexec_fn=preexec)
        return self.check(result, token=_is_token_command(args))

    def token(self, *args: str, env: dict[str, str] | None = None) -> str:
        """`procore-setup token ...`, which must succeed and print only the token."""
        r = self.run("token", *args, env=env)
        assert r.returncode == 0, r.stderr
        assert r.stderr == "", r.stderr
        return r.stdout.strip()

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([EXE, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env(**(env or {})))

    def collect(self, proc: subprocess.Popen[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        out, err = proc.communicate(timeout=timeout)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return self.check(result, token=_is_token_command(cast("list[str]", proc.args)[1:]))

    def login_args(self, profile: str = "default", code: str | None = None) -> list[str]:
        return ["login", "--plain", "--profile", profile, "--environment", "custom", "--login-url", self.fake.url,
                "--api-url", self.fake.url, "--client-id", CLIENT_ID,
                # `--code=` form: a code may start with "-" (the fake's are URL-safe base64)
                "--code=" + (code if code is not None else self.fake.issue_code())]

    def login_cli(self, profile: str = "default", *extra: str, company: str = "1",
                  umask: int | None = None) -> subprocess.CompletedProcess[str]:
        """A first login (or re-login) through `login --plain` with flags and the secret from the environment."""
        r = self.run(*self.login_args(profile), *extra, input=company + "\n",
                     env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET}, umask=umask)
        assert r.returncode == 0, r.stderr
        return r

    def login(self, profile: str = "default", company: int | None = FIRST_COMPANY) -> None:
        """Set a profile up the way `login --plain` does, in this process (same flow code, no interpreter start).

        The login front-end itself is tested through the executable (`login_cli`); tests about
        what comes after use this to keep the suite fast on a busy machine.
        """
        from procore_setup.stores.file import FileStore
        from procore_setup.flow import SetupFlow

        flow = SetupFlow(FileStore(self.config), profile)
        flow.load_existing()
        flow.set_environment("custom", self.fake.url, self.fake.url)
        flow.set_client(CLIENT_ID, CLIENT_SECRET)
        flow.start_authorization()
        flow.exchange(self.fake.issue_code())
        flow.verify()
        flow.choose_company(company)
        flow.save()

    # the file ------------------------------------------------------------------------
    def profile(self, name: str = "default") -> dict[str, Any]:
        return load(self.config)["profiles"][name]

    def expire(self, profile: str = "default") -> None:
        """The token has really expired: the fake refuses it and the file says so."""
        self.fake.expire_access_tokens()
        set_expiry(self.config, -60, profile)


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
