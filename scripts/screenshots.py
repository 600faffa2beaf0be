"""Pictures of every wizard screen, made from the real app, and the scenes the snapshot tests compare.

    .venv/bin/python scripts/screenshots.py [--out screenshots] [SCENE ...]

Each scene starts the real `ProcoreSetupApp` headless at 80x24, drives it with keys
as a person would, against a fake Procore over real HTTP, and exports the screen as
SVG; `rsvg-convert` (Debian: librsvg2-bin) turns it into a PNG with DejaVu Sans Mono.

Everything that could differ between runs is fixed, so the pictures only change when
the screens do: the clock, the credentials path, the executable in the cron line, the
environment variables that decide whether a browser can open, and the client id. The
fake server listens on a random port, so the app is shown production's hosts and its
HTTP calls are sent to the fake (`client_factory`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from procore_setup import flow as flowmod  # noqa: E402
from procore_setup import hints  # noqa: E402
from procore_setup.profile import Credentials, Profile  # noqa: E402
from procore_setup.stores.file import FileStore  # noqa: E402
from procore_setup.testing import FakeProcore, Fault  # noqa: E402
from procore_setup.tui.app import ProcoreSetupApp  # noqa: E402

SIZE = (80, 24)
STAGE_DIR = "/tmp/procore-setup-snapshots"  # shown on screen, so fixed (not a random temp dir)
CONFIG = f"{STAGE_DIR}/credentials.toml"
EXECUTABLE = "/usr/local/bin/procore-setup"
T0 = 1_950_000_000.0  # 2031-10-20 18:40 UTC
CLIENT_ID = "5f2b8c41d7e94a0b9c3e6a1d0f7b2e48c9a1d3f5e7b9c0a2d4f6e8b1a3c5e7d9"
CLIENT_SECRET = "9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa998877665544"
FAKE_CODE = "q8Xf3LmZ0rT5vKc2WnB7yHd9JpA1sGe4uQi6oEt0Ra"
SA_CLIENT_ID = "7c1e9a3f5b2d4e6a8c0b1d3f5a7e9c2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c"
SA_CLIENT_SECRET = "3a5c7e9b1d2f4a6c8e0b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c"
COMPANY_ID = 8675309


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Stage:
    fake: FakeProcore
    clock: Clock


@contextlib.contextmanager
def stage(display: bool = True) -> Iterator[Stage]:
    """A fixed world for one scene: empty credentials dir, fake Procore, fixed clock and executable."""
    shutil.rmtree(STAGE_DIR, ignore_errors=True)
    saved_env = {k: os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "SSH_CONNECTION",
                                                "SSH_CLIENT", "SSH_TTY", "PROCORE_SETUP_PROFILE",
                                                "PROCORE_SETUP_CONFIG")}
    for k in saved_env:
        os.environ.pop(k, None)
    if display:
        os.environ["DISPLAY"] = ":0"  # a desktop: the browser can be opened
    saved_exe, saved_program = flowmod.executable, flowmod.program
    saved_hints = hints.executable, hints.program
    flowmod.executable = lambda: EXECUTABLE  # type: ignore[assignment]
    flowmod.program = lambda: EXECUTABLE  # type: ignore[assignment]  # (not on this PATH: named by its path)
    hints.executable = hints.program = lambda: EXECUTABLE  # type: ignore[assignment]  # (hints.command uses it)
    fake = FakeProcore(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, service_account_client_id=SA_CLIENT_ID,
                       service_account_client_secret=SA_CLIENT_SECRET).start()
    try:
        yield Stage(fake, Clock())
    finally:
        fake.stop()
        flowmod.executable, flowmod.program = saved_exe, saved_program  # type: ignore[assignment]
        hints.executable, hints.program = saved_hints  # type: ignore[assignment]
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(STAGE_DIR, ignore_errors=True)


def make_app(st: Stage, **kw: Any) -> ProcoreSetupApp:
    from procore_setup.oauth import OAuthClient

    def client_factory(flow: Any) -> OAuthClient:
        # the flow's hosts are production's; its requests go to the fake
        return OAuthClient(st.fake.url, st.fake.url, flow.client_id, flow._client_secret, flow.redirect_uri)

    return ProcoreSetupApp(FileStore(CONFIG), clock=st.clock, client_factory=client_factory, **kw)


def write_profiles() -> None:
    """Three profiles as earlier runs would have left them: a person's login that is fine, one whose
    login Procore refused, and a service account."""
    store = FileStore(CONFIG)
    when = datetime.fromtimestamp(T0, timezone.utc)
    doc = Credentials(store=store)
    doc.add(Profile("default", {
        "environment": "production", "login_url": "https://login.procore.com", "api_url": "https://api.procore.com",
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uri": flowmod.OOB_REDIRECT_URI,
        "access_token": "a" * 43, "refresh_token": "r" * 43, "token_type": "bearer",
        "expires_at": when + timedelta(minutes=74), "created_at": int(T0) - 960,
        "last_refresh_at": when - timedelta(minutes=16),
        "user_id": 4242, "user_login": "pat@example.com", "user_name": "Pat Builder",
        "company_id": 8675309, "company_name": "Builder Demo Co.",
    }))
    doc.add(Profile("sandbox", {
        "environment": "sandbox", "login_url": "https://login-sandbox.procore.com",
        "api_url": "https://sandbox.procore.com", "client_id": "sandbox-" + CLIENT_ID[:24],
        "client_secret": CLIENT_SECRET[::-1], "redirect_uri": flowmod.OOB_REDIRECT_URI,
        "refresh_token": "s" * 43, "reauth_required": True,
        "last_error": "Procore refused the refresh token (invalid_grant)",
        "user_id": 4242, "user_login": "pat@example.com", "user_name": "Pat Builder",
    }))
    doc.add(Profile("reports", {
        "kind": "service_account", "environment": "production", "login_url": "https://login.procore.com",
        "api_url": "https://api.procore.com", "client_id": SA_CLIENT_ID, "client_secret": SA_CLIENT_SECRET,
        "redirect_uri": flowmod.OOB_REDIRECT_URI, "access_token": "b" * 43, "token_type": "Bearer",
        "expires_at": when + timedelta(minutes=41), "created_at": int(T0) - 2940,
        "user_id": 9001, "user_login": "robot@builder-demo.example", "user_name": "Reports Robot",
        "company_id": COMPANY_ID, "company_name": "Builder Demo Co.",
    }))
    doc.default_profile = "default"
    store.save(doc)


# -- driving the app as a person would ----------------------------------------------------------

async def paste(pilot: Any, selector: str, text: str) -> None:
    from textual import events

    box = pilot.app.screen.query_one(selector)
    box.focus()
    box.value = ""
    box.post_message(events.Paste(text))
    await pilot.pause()


async def settle(pilot: Any) -> None:
    for _ in range(3):
        # A failed worker is how a failure reaches the screen: wait for it, do not raise it.
        await asyncio.gather(*(w.wait() for w in list(pilot.app.workers)), return_exceptions=True)
        await pilot.pause()


async def freeze(pilot: Any) -> None:
    """No blinking cursor in a picture."""
    from textual.widgets import Input

    for box in pilot.app.screen.query(Input):
        box.cursor_blink = False
    await pilot.pause()


async def to_environment(pilot: Any, kind: str = "user") -> None:
    """The first question: a person's login (highlighted at first), or a service account."""
    if kind == "service_account":
        await pilot.press("down")
    await pilot.press("enter")
    await pilot.pause()


async def to_client(pilot: Any, kind: str = "user") -> None:
    await to_environment(pilot, kind)
    await pilot.press("enter")  # production
    await pilot.pause()


async def to_authorize(pilot: Any) -> None:
    await to_client(pilot)
    await paste(pilot, "#client_id", CLIENT_ID)
    await paste(pilot, "#secret", CLIENT_SECRET)
    await pilot.press("enter")
    await pilot.pause()


async def to_code(pilot: Any) -> None:
    await to_authorize(pilot)
    await pilot.press("n")
    await pilot.pause()


async def to_verify(pilot: Any, st: Stage) -> None:
    await to_code(pilot)
    await paste(pilot, "#code", st.fake.issue_code())
    await pilot.press("enter")
    await settle(pilot)


# -- the scenes --------------------------------------------------------------------------------------

@dataclass
class Scene:
    title: str
    run: Callable[[Any, Stage], Awaitable[None]]
    prepare: Callable[[], None] | None = None
    display: bool = True


async def _profiles(pilot: Any, st: Stage) -> None:
    await settle(pilot)  # the list is read by a worker


async def _kind(pilot: Any, st: Stage) -> None:
    await pilot.pause()


async def _environment(pilot: Any, st: Stage) -> None:
    await to_environment(pilot)


async def _environment_custom(pilot: Any, st: Stage) -> None:
    await to_environment(pilot)
    pilot.app.screen.query_one("#envs").highlighted = 4
    await pilot.pause()
    await paste(pilot, "#login_url", "http://login.example.com")
    await paste(pilot, "#api_url", "https://api.example.com")
    await pilot.press("enter")
    await pilot.pause()


async def _client(pilot: Any, st: Stage) -> None:
    await to_client(pilot)
    await paste(pilot, "#client_id", CLIENT_ID)
    await paste(pilot, "#secret", CLIENT_SECRET)


async def _client_service_account(pilot: Any, st: Stage) -> None:
    await to_client(pilot, "service_account")
    await paste(pilot, "#client_id", SA_CLIENT_ID)
    await paste(pilot, "#secret", SA_CLIENT_SECRET)


async def _verify_service_account(pilot: Any, st: Stage) -> None:
    await _client_service_account(pilot, st)
    await pilot.press("enter")  # requests the token
    await settle(pilot)
    await paste(pilot, "#company_id", str(COMPANY_ID))  # the companies could not be listed without it
    await pilot.press("enter")  # checks the token again, with the company
    await settle(pilot)


async def _saved_service_account(pilot: Any, st: Stage) -> None:
    await _verify_service_account(pilot, st)
    await pilot.press("ctrl+s")
    await settle(pilot)


async def _authorize(pilot: Any, st: Stage) -> None:
    await to_authorize(pilot)


async def _authorize_ssh(pilot: Any, st: Stage) -> None:
    await to_authorize(pilot)
    await pilot.press("c")  # copied over SSH with OSC 52
    await pilot.pause()


async def _code(pilot: Any, st: Stage) -> None:
    await to_code(pilot)
    st.clock.now += 135  # the person took a while to log in
    await paste(pilot, "#code", FAKE_CODE)
    pilot.app.screen.query_one("#countdown").tick()


async def _code_retry(pilot: Any, st: Stage) -> None:
    await to_code(pilot)
    st.fake.inject(Fault(status=503, times=3, retry_after=0, paths="/oauth/token"))
    await paste(pilot, "#code", FAKE_CODE)
    await pilot.press("enter")
    await settle(pilot)


async def _code_expired(pilot: Any, st: Stage) -> None:
    await to_code(pilot)
    st.clock.now += 660
    pilot.app.screen.query_one("#countdown").tick()
    await paste(pilot, "#code", FAKE_CODE)  # not a code the fake knows: refused like an expired one
    await pilot.press("enter")
    await settle(pilot)


async def _verify(pilot: Any, st: Stage) -> None:
    await to_verify(pilot, st)
    await pilot.press("down")  # Builder Demo Co.
    await pilot.pause()


async def _saved(pilot: Any, st: Stage) -> None:
    await _verify(pilot, st)
    await pilot.press("ctrl+s")
    await settle(pilot)


async def _encrypt(pilot: Any, st: Stage) -> None:
    await _saved(pilot, st)
    await pilot.press("e")
    await pilot.pause()
    await paste(pilot, "#passphrase", "correct horse battery")
    await paste(pilot, "#again", "correct horse battery")


async def _quit(pilot: Any, st: Stage) -> None:
    await to_authorize(pilot)
    await pilot.press("ctrl+q")
    await pilot.pause()


async def _remove(pilot: Any, st: Stage) -> None:
    await settle(pilot)
    await pilot.press("down", "x")
    await pilot.pause()


SCENES: dict[str, Scene] = {
    "profiles": Scene("Profiles", _profiles, prepare=write_profiles),
    "kind": Scene("First: how your scripts sign in", _kind),
    "environment": Scene("Step 1: environment", _environment),
    "environment-custom": Scene("Step 1: custom hosts, refused", _environment_custom),
    "client": Scene("Step 2: client credentials", _client),
    "client-service-account": Scene("A service account, step 2: client credentials", _client_service_account),
    "verify-service-account": Scene("A service account, step 3: the token checked, the company",
                                    _verify_service_account),
    "saved-service-account": Scene("A service account, step 4: saved", _saved_service_account),
    "authorize": Scene("Step 3: authorize", _authorize),
    "authorize-ssh": Scene("Step 3: authorize over SSH", _authorize_ssh, display=False),
    "code": Scene("Step 4: paste the code", _code),
    "code-retry": Scene("Step 4: network trouble, retry in place", _code_retry),
    "code-expired": Scene("Step 4: expired code, back to step 3", _code_expired),
    "verify": Scene("Step 5: verify and choose a company", _verify),
    "saved": Scene("Step 6: saved", _saved),
    "encrypt": Scene("Step 6: encrypt the secrets", _encrypt),
    "quit": Scene("Ctrl+Q with unsaved progress", _quit),
    "remove": Scene("Removing a profile", _remove, prepare=write_profiles),
}


def scene_app(name: str, st: Stage) -> ProcoreSetupApp:
    scene = SCENES[name]
    if scene.prepare is not None:
        scene.prepare()
    return make_app(st)


def scene_runner(name: str, st: Stage) -> Callable[[Any], Awaitable[None]]:
    async def run(pilot: Any) -> None:
        await pilot.pause()  # the first screen is mounted
        await SCENES[name].run(pilot, st)
        await freeze(pilot)

    return run


# -- SVG to PNG ----------------------------------------------------------------------------------------

def svg_for_rsvg(svg: str) -> str:
    """rsvg-convert drops the no-break spaces Rich uses for indentation, and may not know Fira Code."""
    svg = svg.replace("&#160;", " ").replace("<svg ", '<svg xml:space="preserve" ', 1)
    return re.sub(r"font-family:\s*Fira Code,\s*monospace", "font-family: DejaVu Sans Mono, monospace", svg)


async def shoot(name: str, out: Path) -> Path:
    with stage(display=SCENES[name].display) as st:
        app = scene_app(name, st)
        async with app.run_test(size=SIZE) as pilot:
            await scene_runner(name, st)(pilot)
            svg = app.export_screenshot(title=f"procore-setup: {SCENES[name].title}")
    src = Path(tempfile.mkdtemp()) / f"{name}.svg"
    src.write_text(svg_for_rsvg(svg))
    png = out / f"{name}.png"
    subprocess.run(["rsvg-convert", "-w", "1200", str(src), "-o", str(png)], check=True)
    shutil.rmtree(src.parent, ignore_errors=True)
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export a PNG of each wizard screen.")
    parser.add_argument("--out", default=str(ROOT / "screenshots"), help="directory for the PNGs")
    parser.add_argument("scenes", nargs="*", help=f"scenes to shoot (default all: {', '.join(SCENES)})")
    args = parser.parse_args(argv)
    if shutil.which("rsvg-convert") is None:
        print("rsvg-convert is missing: apt-get install librsvg2-bin", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.scenes or SCENES:
        if name not in SCENES:
            print(f"unknown scene {name!r}", file=sys.stderr)
            return 2
        print(asyncio.run(shoot(name, out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
