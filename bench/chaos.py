"""Chaos run: bench/soak.py with faults and SIGKILLs (the same as `bench/soak.py --chaos`).

    .venv/bin/python bench/chaos.py [--duration 120] [--kills 200] [--json FILE]
    .venv/bin/python bench/chaos.py --store postgres --hosts 2 [--conn-kills 100]   # a shared store

With --store, a second killer terminates the workers' store connections (--conn-kills, default
100; 0 turns it off). See bench/soak.py.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from soak import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(chaos_default=True))
