"""Benchmark: what keeping a person's comments costs a refresh (`refresh --force`).

Two files with the same profile, one as the tool writes it and one with comments added by
hand (rewritten through tomlkit instead of tomli-w), refreshed as subprocesses against the
fake Procore on 127.0.0.1, interleaved in the same run. Prints the medians, their
difference and ratio, and checks after the run that the comments are still there.

    .venv/bin/python bench/bench_comments.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from procore_setup.testing import FakeProcore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import EXE, clean_env, difference, header, interleaved, login  # noqa: E402

COMMENTS = "# Procore access for the nightly jobs; ask ops before changing\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    base = clean_env()
    with FakeProcore() as fake, tempfile.TemporaryDirectory() as tmp:
        plain_env = dict(base, PROCORE_SETUP_CONFIG=os.path.join(tmp, "plain", "credentials.toml"))
        noted_env = dict(base, PROCORE_SETUP_CONFIG=os.path.join(tmp, "noted", "credentials.toml"))
        login(fake, plain_env)
        login(fake, noted_env)
        noted = Path(noted_env["PROCORE_SETUP_CONFIG"])
        text = noted.read_text().replace("[profiles.default]\n", "[profiles.default]\n# the Acme app\n")
        noted.write_text(COMMENTS + text)
        cmd = [EXE, "refresh", "--force", "--quiet"]
        plain, kept = interleaved((cmd, plain_env), (cmd, noted_env), args.runs)
        refreshes = fake.counts["token:refresh_token"]
        still = noted.read_text()
        if not (still.startswith(COMMENTS) and "# the Acme app\n" in still):
            raise SystemExit("the comments did not survive the refreshes")

    mp, mk = statistics.median(plain), statistics.median(kept)
    print(f"{header(args.runs)}; refreshes at the server: {refreshes}")
    print(f"refresh --force, file without comments (tomli-w): median {mp * 1000:.1f} ms")
    print(f"refresh --force, file with comments (tomlkit):    median {mk * 1000:.1f} ms")
    print(f"{difference(mp, mk)}; the comments survived every refresh")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
