"""The secret guard: every secret a test creates, and every text it produced that must not hold one.

tests/conftest.py's autouse `secret_guard` fixture makes one per test and fails the test on a
leak (see the comment there).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from helpers.cli import CLIENT_SECRET

SECRET_WINDOW = 16  # a leak of any 16 consecutive characters of a secret counts as a leak
SECRET_MIN = 8  # shorter strings ("1", "yes") would match everything; no real secret is that short
SECRET_ENV_VARS = ("PROCORE_CLIENT_SECRET", "PROCORE_SETUP_PASSPHRASE")


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
        self._lock = threading.Lock()
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
                hit = get(text[i : i + SECRET_WINDOW])
                if hit is not None and hit not in allowed:
                    hits[hit] = None
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

    def problems(self, extra: Sequence[tuple[str, str]] = ()) -> list[str]:
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


class GuardLogHandler(logging.Handler):
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
