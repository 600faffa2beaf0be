"""Count the Python function calls from launch to the first frame (Ready): the wizard against a
bare Textual app. Unlike a timing, the count does not move with the machine's load, so a change
of a few thousand calls shows in one run (docs/performance.md).

    .venv/bin/python bench/count_wizard_calls.py [--profiles | --service-account]

Each app runs in an 80x24 pty, as in bench_wizard.py, with `sys.setprofile` counting every
Python-level call until its `on_ready`; it also prints how often Textual laid the screen out
(`Screen._refresh_layout`) and drew it (`App._display`) before Ready.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import bench_wizard as bw

COUNTER = """
import collections, os, sys
_calls = [0]
_names = collections.Counter()
_watch = {"_refresh_layout", "_display", "_arrange_root", "arrange"}
def _prof(frame, event, arg):
    if event == "call":
        _calls[0] += 1
        name = frame.f_code.co_name
        if name in _watch:
            _names[name] += 1
sys.setprofile(_prof)
def _report():
    sys.setprofile(None)
    counts = " ".join(f"{k}={_names[k]}" for k in sorted(_watch))
    os.write(int(os.environ["BENCH_FD"]), f"ready {_calls[0]} {counts}".encode())
"""


def counted(code: str) -> str:
    return COUNTER + code.replace('os.write(int(os.environ["BENCH_FD"]), b"ready")', "_report()")


def run(code: str, env: dict[str, str]) -> str:
    return bw.run_to_ready(code, env, timeout=60)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bw.add_scenarios(parser)
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCORE_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(TERM="xterm-256color", COLUMNS="80", LINES="24")
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp:
        os.chmod(tmp, 0o700)
        first = bw.set_scenario(args, env, os.path.join(tmp, "credentials.toml"))
        bw.one_run(bw.BARE, env)  # write the .pyc files first: compiling is not the app's work
        bw.one_run(bw.WIZARD, env)
        bare = run(counted(bw.BARE), env)
        wizard = run(counted(bw.WIZARD), env)
    b, w = int(bare.split()[0]), int(wizard.split()[0])
    print(f"function calls, launch to Ready (80x24 pty, {sys.executable}):")
    print(f"  bare Textual app : {b:>9,}  ({' '.join(bare.split()[1:])})")
    print(f"  procore-setup    : {w:>9,}  ({' '.join(wizard.split()[1:])})  first screen: {first}")
    print(f"  difference       : {w - b:>+9,}  ratio {w / b:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
