"""Benchmark: `procore-setup token` (valid token, no refresh) against `python -c "import argparse, tomllib"`.

Both run in the same interpreter and environment, interleaved, in one run; the
script prints the medians and their ratio. Target: 1.15x or less (issue 21).

    .venv/bin/python bench/bench_token.py [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

from procore_setup.testing import FakeProcore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import EXE, clean_env, header, interleaved, login  # noqa: E402

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    with FakeProcore() as fake, tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "credentials.toml")
        env = clean_env()
        env.update(PROCORE_SETUP_CONFIG=config)
        login(fake, env)
        base, tok = interleaved(([sys.executable, "-c", "import argparse, tomllib"], env), ([EXE, "token"], env),
                                args.runs)
        refreshes = fake.counts["token:refresh_token"]
    mt, mb = statistics.median(tok), statistics.median(base)
    print(header(args.runs))
    print(f"baseline  python -c 'import argparse, tomllib': median {mb * 1000:.1f} ms")
    print(f"procore-setup token (valid token):           median {mt * 1000:.1f} ms")
    print(f"ratio: {mt / mb:.2f}x (target <= 1.15x); refreshes during the run: {refreshes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
