"""Driving the Textual wizard in its tests (tests/tui): a controllable clock, waiting for the
wizard to settle, typing and pasting as a person does, walking the steps, and looking for secrets
in files and on screens. The fixtures built on these are in tests/tui/conftest.py."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from helpers.cli import CLIENT_ID, CLIENT_SECRET, EXE, base_env
from procore_setup.stores.file import FileStore
from procore_setup.testing import FakeProcore
from procore_setup.tui.app import ProcoreSetupApp

SIZE = (80, 24)
T0 = 1_950_000_000.0  # 2031-10-20: a fixed "now" for the code clock and expiry times


class Clock:
    """The injected clock: stands still until a test moves it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def settle(pilot: Any, timeout: float = 30.0) -> None:
    """Wait until no worker runs and the screen is not busy, twice in a row (a finished worker's
    end may push a screen whose own worker starts when it mounts).

    A worker that fails is no test failure here: that is how a failure reaches the screen
    (shared.WorkReporting), and the test asserts what the screen then says.
    """
    import asyncio
    import time

    app = pilot.app
    deadline = time.monotonic() + timeout
    calm = 0
    while calm < 2:
        assert time.monotonic() < deadline, "the wizard did not settle"
        waits = asyncio.gather(*(w.wait() for w in list(app.workers)), return_exceptions=True)
        await asyncio.wait_for(waits, max(0.1, deadline - time.monotonic()))
        await pilot.pause()
        running = any(not w.is_finished for w in app.workers)
        calm = 0 if running or getattr(app.screen, "busy", False) else calm + 1


async def type_into(pilot: Any, selector: str, text: str, *, paste: bool = True) -> None:
    """Replace the value of an Input as a person would: focus, clear, then paste (or type) the text.

    Pasting is one event, so it is the default; `paste=False` types key by key.
    """
    from textual import events

    box = pilot.app.screen.query_one(selector)
    box.focus()
    box.value = ""
    if paste:
        box.post_message(events.Paste(text))
    else:
        await pilot.press(*text)
    await pilot.pause()


def screen_name(app: ProcoreSetupApp) -> str:
    return type(app.screen).__name__


def message(app: ProcoreSetupApp) -> str:
    """The text of the current screen's message line ('' when hidden)."""
    box = app.screen.query_one("#message")
    return str(box.render()) if message_kind(app) else ""


def message_kind(app: ProcoreSetupApp) -> str:
    box = app.screen.query_one("#message")
    for kind in ("error", "notice", "busy"):
        if box.has_class(kind):
            return kind
    return ""


async def answer_kind(pilot: Any, kind: str = "user") -> None:
    """The first question of a new setup, answered with the keys: a person's login ("user", the
    one highlighted at first) or a service account ("service_account")."""
    app = pilot.app
    assert screen_name(app) == "KindScreen", screen_name(app)
    kinds = app.screen.query_one("#kinds")
    if kinds.highlighted_option.id != kind:
        await pilot.press("down" if kind == "service_account" else "up")
    assert kinds.highlighted_option.id == kind
    await pilot.press("enter")
    await pilot.pause()
    assert screen_name(app) == "EnvironmentScreen", screen_name(app)


async def walk_to_authorize(pilot: Any, fake: FakeProcore, *, secret: str = CLIENT_SECRET,
                            client_id: str = CLIENT_ID, name: str | None = None) -> None:
    """From the first question of a new profile (a person's login), or from step 1: the custom
    environment at the fake, then the client, to Authorize."""
    app = pilot.app
    if screen_name(app) == "KindScreen":
        await answer_kind(pilot)
    assert screen_name(app) == "EnvironmentScreen", screen_name(app)
    if name is not None:
        await type_into(pilot, "#name", name)
    envs = app.screen.query_one("#envs")
    envs.focus()
    envs.highlighted = 4  # Custom hosts
    await pilot.pause()
    await type_into(pilot, "#login_url", fake.url)
    await type_into(pilot, "#api_url", fake.url)
    await pilot.press("enter")
    await settle(pilot)  # adding a profile to a file: the file is read by a worker first
    assert screen_name(app) == "ClientScreen", message(app)
    await type_into(pilot, "#client_id", client_id)
    await type_into(pilot, "#secret", secret)
    await pilot.press("enter")
    await pilot.pause()
    assert screen_name(app) == "AuthorizeScreen", message(app)


async def jump_to_authorize(pilot: Any, fake: FakeProcore, *, secret: str = CLIENT_SECRET) -> None:
    """Start a new profile at Authorize: steps 1 and 2 set through the same flow, without their screens.

    Steps 1 and 2 have their own tests; skipping their screens keeps the later steps' tests quick.
    """
    app = pilot.app
    flow = app.new_flow("default")
    flow.set_environment("custom", fake.url, fake.url)
    flow.set_client(CLIENT_ID, secret)
    app.dirty = True
    app.push_screen(app.make_screen("authorize"))
    await pilot.pause()
    assert screen_name(app) == "AuthorizeScreen"


async def paste_code(pilot: Any, code: str) -> None:
    app = pilot.app
    if screen_name(app) == "AuthorizeScreen":
        await pilot.press("n")
        await pilot.pause()
    assert screen_name(app) == "CodeScreen"
    await type_into(pilot, "#code", code)
    await pilot.press("enter")
    await settle(pilot)


def secret_forms(secret: str) -> dict[str, str]:
    """Every form a secret could take in a file or on a screen, by kind: raw, repr- and JSON-quoted,
    TOML- and unicode-escaped, base64 and hex encoded."""
    import base64
    import json

    import tomli_w

    raw = secret.encode()
    return {
        "raw": secret,
        "repr": repr(secret),
        "JSON": json.dumps(secret),
        "JSON (unicode)": json.dumps(secret, ensure_ascii=False),
        "TOML string": tomli_w.dumps({"x": secret})[len("x = "):].strip(),
        "unicode escapes": "".join(f"\\u{ord(c):04x}" for c in secret),
        "base64": base64.b64encode(raw).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
    }


def secret_leaks(text: str, secret: str) -> list[str]:
    """The kinds of forms of `secret` that appear in `text` (the secret itself is never shown)."""
    return [kind for kind, form in secret_forms(secret).items() if form in text]


def assert_not_in_file(path: Path, *secrets: str) -> None:
    """No secret in the file, in any form: neither in its bytes nor in any value TOML decodes from it."""
    import tomllib

    text = path.read_text()
    values: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            values.append(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(key)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tomllib.loads(text))
    for secret in secrets:
        assert not secret_leaks(text, secret), f"a secret is in {path} ({secret_leaks(text, secret)})"
        assert not any(secret in v for v in values), f"a secret is in a value of {path}"


def save_profile(config: Path, fake: FakeProcore, name: str = "default", company_id: int | None = 8675309) -> None:
    """A profile as an earlier run would have left it (set up through the same flow, without screens)."""
    from procore_setup.flow import SetupFlow

    flow = SetupFlow(FileStore(config), name)
    flow.set_environment("custom", fake.url, fake.url)
    flow.set_client(CLIENT_ID, CLIENT_SECRET)
    flow.start_authorization()
    flow.exchange(fake.issue_code())
    flow.verify()
    flow.choose_company(company_id)
    flow.save()


def run_token(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `procore-setup token`, as a script would run it."""
    return subprocess.run([EXE, "token", *args], capture_output=True, text=True, timeout=60,
                          env=base_env(PROCORE_SETUP_CONFIG=str(config)))


class GatedCommand:
    """A passphrase command that waits, as a slow vault or a hardware key would, until the test lets
    it go on: it marks that it started, optionally writes `stderr` to its standard error, then waits
    (a bounded poll) for the test's go-ahead file before printing the passphrase."""

    def __init__(self, tmp_path: Path, passphrase: str, *, stderr: str = "") -> None:
        import shlex
        import sys
        import textwrap

        self.started = tmp_path / "command-started"
        self.go = tmp_path / "command-go"
        script = tmp_path / "gated_passphrase.py"
        script.write_text(textwrap.dedent(f"""\
            import os, sys, time
            if {stderr!r}:
                sys.stderr.write({stderr!r} + "\\n")
                sys.stderr.flush()
            open({str(self.started)!r}, "w").close()
            deadline = time.monotonic() + 60
            while not os.path.exists({str(self.go)!r}):
                if time.monotonic() > deadline:
                    sys.exit(3)
                time.sleep(0.02)
            print({passphrase!r})
        """))
        self.command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"

    def encrypt(self, config: Path) -> None:
        """Encrypt `config` with this command stored in it (the command is let through for that)."""
        self.release()
        r = subprocess.run([EXE, "--config", str(config), "encrypt", "--passphrase-command", self.command],
                           capture_output=True, text=True, timeout=60, env=base_env(), stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        self.hold()

    def hold(self) -> None:
        self.go.unlink(missing_ok=True)
        self.started.unlink(missing_ok=True)

    def release(self) -> None:
        self.go.touch()


async def save_on_verify(pilot: Any, company_row: int | None = None) -> None:
    app = pilot.app
    assert screen_name(app) == "VerifyScreen", message(app)
    if company_row is not None:
        app.screen.query_one("#companies").highlighted = company_row
        await pilot.pause()
    await pilot.press("ctrl+s")
    await settle(pilot)
    assert screen_name(app) == "SavedScreen", message(app)


async def setup_profile(pilot: Any, fake: FakeProcore, *, name: str | None = None, company_row: int = 1) -> None:
    await walk_to_authorize(pilot, fake, name=name)
    await paste_code(pilot, fake.issue_code())
    await save_on_verify(pilot, company_row)


ONE_PROFILE = """schema_version = 1
default_profile = "default"

[profiles.default]
environment = "production"
login_url = "https://login.procore.com"
api_url = "https://api.procore.com"
client_id = "first-frame-client"
client_secret = "first-frame-secret-0000"
redirect_uri = "urn:ietf:wg:oauth:2.0:oob"
"""


def write_one_profile(config: Path) -> None:
    """A credentials file with one profile (no tokens), written as the program would: mode 0600 in
    a 0700 directory. The wizard then opens on its Profiles screen."""
    config.parent.mkdir(mode=0o700)
    config.write_text(ONE_PROFILE)
    config.chmod(0o600)
