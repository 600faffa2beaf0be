"""Time from launch to the first frame: the setup wizard against a bare Textual app.

Each sample starts a fresh Python process in a pseudo-terminal (so Textual draws
with its real terminal driver, and `procore-setup` sees a terminal), and stops the
clock when the app's `Ready` event arrives: Textual posts it after the first frame
has been drawn. The two kinds of run alternate, so a busy machine slows both alike.

    .venv/bin/python bench/bench_wizard.py [--runs 15] [--profiles | --service-account] [--keep-gc | --pause-bare-gc]

The wizard sample is the real command line: `procore_setup.cli.main(["--config", ...])`
with a config path that does not exist yet (the first screen a new user sees: how the scripts
will sign in), or with --profiles, a file with one profile (the Profiles screen), or with
--service-account, `login --service-account` with no file (the Environment step first). The target is
1.1x or less (issue 21). The wizard turns the garbage collector off for its start-up (cli._wizard)
and on at its first frame; --keep-gc leaves it on, to show what the wizard's own work costs, and
--pause-bare-gc pauses the bare app's too (like for like, both paused).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import threading
import time

BARE = textwrap.dedent("""
    import os
    if os.environ.get("BENCH_PAUSE_BARE_GC"):  # --pause-bare-gc: the bare app gets the wizard's pause too
        import gc
        gc.disable()
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    class Bare(App):
        def compose(self) -> ComposeResult:
            yield Static("Hello")

        def on_ready(self) -> None:
            os.write(int(os.environ["BENCH_FD"]), b"ready")
            self.exit()

    Bare().run()
""")

# As the installed `procore-setup` script runs it: import cli, call main, which imports the wizard
# (and Textual) itself. The app's class is swapped for one that signals its first frame as the
# wizard's module is loaded, so nothing is imported before main that main would import.
WIZARD = textwrap.dedent("""
    import os, sys
    import importlib.util

    if os.environ.get("BENCH_KEEP_GC"):  # --keep-gc: the wizard's start-up without its collector pause
        import gc
        gc.disable = lambda: None

    def with_bench_app(module):
        class Bench(module.ProcoreSetupApp):
            def on_ready(self) -> None:
                os.write(int(os.environ["BENCH_FD"]), b"ready")
                self.exit()

        module.ProcoreSetupApp = Bench  # run_wizard builds the app by this name

    class SwapOnLoad:
        def find_spec(self, name, path, target=None):
            if name != "procore_setup.tui.app":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            run = spec.loader.exec_module
            spec.loader.exec_module = lambda module: (run(module), with_bench_app(module))
            return spec

    sys.meta_path.insert(0, SwapOnLoad())
    from procore_setup import cli
    sys.exit(cli.main(os.environ["BENCH_ARGS"].split() + ["--config", os.environ["BENCH_CONFIG"]]))
""")

PROFILE_FILE = """schema_version = 1
default_profile = "default"

[profiles.default]
environment = "production"
login_url = "https://login.procore.com"
api_url = "https://api.procore.com"
client_id = "bench-client-id"
client_secret = "bench-client-secret-0000"
redirect_uri = "urn:ietf:wg:oauth:2.0:oob"
access_token = "bench-access-token-0000"
refresh_token = "bench-refresh-token-0000"
expires_at = 2099-01-01T00:00:00Z
user_id = 1
user_name = "Bench User"
"""


def run_to_ready(code: str, env: dict[str, str], timeout: float = 30.0) -> tuple[float, str]:
    """Spawn `python -c code` in an 80x24 pty; wait for its first frame. Returns the seconds from
    the spawn to the marker and what the child wrote after "ready" (count_wizard_calls.py's counts)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    ready_r, ready_w = os.pipe()

    def drain() -> None:  # the app's output must go somewhere, or it blocks on a full pty
        try:
            while os.read(master, 65536):
                pass
        except OSError:
            pass

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave,
                            env=dict(env, BENCH_FD=str(ready_w)), pass_fds=(ready_w,), start_new_session=True)
    os.close(slave)
    os.close(ready_w)
    try:
        readable, _, _ = select.select([ready_r], [], [], timeout)  # the marker, or EOF if the child died
        elapsed = time.perf_counter() - start
        got = os.read(ready_r, 4096).decode() if readable else ""
        if not got.startswith("ready"):
            raise RuntimeError(f"no first frame (exit code {proc.poll()})")
        proc.wait(timeout=timeout)
        return elapsed, got.removeprefix("ready").strip()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(ready_r)
        os.close(master)
        drainer.join(timeout=5)


def one_run(code: str, env: dict[str, str], timeout: float = 30.0) -> float:
    """Seconds from spawning `python -c code` in an 80x24 pty to its first frame."""
    return run_to_ready(code, env, timeout)[0]


def add_scenarios(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--profiles", action="store_true", help="start on the Profiles screen (a file exists)")
    which.add_argument("--service-account", action="store_true",
                       help="`login --service-account`, no file: the Environment step first")
    parser.add_argument("--keep-gc", action="store_true",
                        help="the wizard without its start-up pause of the garbage collector (what its own work costs)")
    parser.add_argument("--pause-bare-gc", action="store_true",
                        help="the bare app with the collector off to its first frame too (like for like with the wizard)")


def set_scenario(args: argparse.Namespace, env: dict[str, str], config: str) -> str:
    """Write what the scenario needs (the file, for --profiles) and set the wizard's arguments in
    `env`; returns the name of the first screen."""
    env["BENCH_CONFIG"] = config
    env["BENCH_ARGS"] = "login --service-account" if args.service_account else ""
    if args.keep_gc:
        env["BENCH_KEEP_GC"] = "1"
    if args.pause_bare_gc:
        env["BENCH_PAUSE_BARE_GC"] = "1"
    if args.profiles:
        with open(os.open(config, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(PROFILE_FILE)
        return "Profiles screen"
    if args.service_account:
        return "Environment (login --service-account, no file yet)"
    return "How your scripts sign in (no file yet)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="samples of each (default 21)")
    add_scenarios(parser)
    args = parser.parse_args(argv)

    # PYTHONDONTWRITEBYTECODE would make every run compile procore_setup from source, which no
    # installed copy does (pip writes the .pyc files at install time): the warm-up runs write them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCORE_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(TERM="xterm-256color", COLUMNS="80", LINES="24")
    with tempfile.TemporaryDirectory(prefix="bench-wizard-") as tmp:
        os.chmod(tmp, 0o700)
        config = os.path.join(tmp, "credentials.toml")
        first = set_scenario(args, env, config)
        one_run(BARE, env)  # warm the disk cache and write the .pyc files of both, untimed
        one_run(WIZARD, env)
        bare: list[float] = []
        wizard: list[float] = []
        for _ in range(args.runs):
            bare.append(one_run(BARE, env))
            wizard.append(one_run(WIZARD, env))
            if not args.profiles and os.path.exists(config):
                raise RuntimeError("the wizard wrote a file before the person did anything")
    b, w = statistics.median(bare), statistics.median(wizard)
    # Each wizard run is compared with the bare run just before it, so a machine whose load
    # changes during the benchmark does not tilt the result; the median of those ratios is
    # the figure to judge by.
    pair = statistics.median(wz / br for br, wz in zip(bare, wizard, strict=True))
    print(f"launch to first frame, median of {args.runs} runs each (80x24 pty, {sys.executable}):")
    print(f"  bare Textual app : {b * 1000:7.1f} ms  (min {min(bare) * 1000:.1f}, max {max(bare) * 1000:.1f})")
    print(f"  procore-setup    : {w * 1000:7.1f} ms  (min {min(wizard) * 1000:.1f}, max {max(wizard) * 1000:.1f})"
          f"  first screen: {first}{' (collector left on: --keep-gc)' if args.keep_gc else ''}")
    print(f"  ratio of medians : {w / b:.2f}x")
    print(f"  ratio, run pairs : {pair:.2f}x  (median of wizard/bare per pair; target 1.10x or less: "
          f"{'met' if pair <= 1.1 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
