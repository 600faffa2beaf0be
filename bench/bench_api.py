"""Benchmark: `procore-setup api` against the page loop a script writes by hand, in the same run.

Three figures, each against a baseline measured in the same run, against the fake Procore:

1. `api --paginate` over 40 pages with 80 ms of latency per answer, against a sequential loop that
   follows `Link: next` (httpx, same page size). Target: 0.5x or less.
2. Peak memory (max RSS) of `api --ndjson` over 200,000 items, against the same hand-written loop
   that keeps every page. Target: under 100 MiB.
3. Requests sent while over the limit (the fake's 429s) for 60 pages under a 20-per-5-seconds
   limit, against the hand-written loop that sleeps a second after each 429. Target: at most 8, goal 0.

    .venv/bin/python bench/bench_api.py [--runs 3] [--skip-limit]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from procore_setup.testing import FakeProcore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import EXE, clean_env, login  # noqa: E402

PROJECTS = "/rest/v1.0/projects"

# What a script does without procore-setup's `api`: a token, then one page after another along
# `Link: next`; after a 429 it sleeps a second and tries again (no rate-limit headers read).
LOOP = r"""
import json, sys, time
import httpx
from procore_setup import get_token
base, per_page, keep = sys.argv[1], sys.argv[2], sys.argv[3] == "keep"
headers = {"Authorization": "Bearer " + get_token(), "Procore-Company-Id": "8675309"}
url, params, pages, count = base + "/rest/v1.0/projects", {"per_page": per_page}, [], 0
with httpx.Client(headers=headers, timeout=60) as client:
    while url:
        r = client.get(url, params=params)
        if r.status_code == 429:
            time.sleep(1)
            continue
        r.raise_for_status()
        items = r.json()
        count += len(items)
        if keep:
            pages.append(items)
        url, params = r.links.get("next", {}).get("url"), None
print(count)
"""


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MiB, stdout's last line) of one run; a failing run ends the benchmark."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    last = b""
    assert proc.stdout is not None
    for line in proc.stdout:  # read as it comes: the output is not held here
        last = line
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed with exit {proc.returncode}: {err.decode()[:300]}")
    return elapsed, usage.ru_maxrss / 1024, last.decode().strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-limit", action="store_true", help="skip the rate-limit figure (about 40 s)")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; runs: {args.runs} each, interleaved")
    with FakeProcore() as fake, tempfile.TemporaryDirectory() as tmp:
        env = clean_env()
        env.update(PROCORE_SETUP_CONFIG=os.path.join(tmp, "credentials.toml"))
        login(fake, env)
        loop = [sys.executable, "-c", LOOP, fake.url]

        # 1. 40 pages at 80 ms
        fake.project_count, fake.latency = 4000, 0.08
        ours, theirs = [], []
        for _ in range(args.runs):
            t, _, out = run([EXE, "api", PROJECTS, "--paginate", "-F", "per_page=100"], env)
            ours.append(t)
            t, _, n = run([*loop, "100", "drop"], env)
            theirs.append(t)
            assert n == "4000", n
        mo, mt = statistics.median(ours), statistics.median(theirs)
        print(f"1. --paginate, 40 pages at 80 ms: api median {mo:.2f} s, sequential Link loop median {mt:.2f} s; "
              f"ratio {mo / mt:.2f}x (target <= 0.50x)")

        # 2. memory over 200,000 items
        fake.project_count, fake.latency = 200_000, 0.0
        _, ours_mib, _ = run([EXE, "api", PROJECTS, "--ndjson"], env)
        _, theirs_mib, n = run([*loop, "1000", "keep"], env)
        assert n == "200000", n
        print(f"2. --ndjson over 200,000 items: api peak RSS {ours_mib:.1f} MiB, loop keeping its pages "
              f"{theirs_mib:.1f} MiB; ratio {ours_mib / theirs_mib:.2f}x (target: under 100 MiB)")

        if not args.skip_limit:
            # 3. 60 pages under 20 requests per 5 seconds
            fake.project_count = 600
            fake.set_rate_limit(20, 5)
            time.sleep(5 - time.time() % 5)  # both start at the start of a window
            fake.reset_stats()
            run([EXE, "api", PROJECTS, "--paginate", "-F", "per_page=10"], env)
            ours_over = fake.counts["rate_limited"]
            time.sleep(5 - time.time() % 5)
            fake.reset_stats()
            run([*loop, "10", "drop"], env)
            theirs_over = fake.counts["rate_limited"]
            print(f"3. 60 pages under 20 per 5 s: requests sent while over the limit: api {ours_over}, "
                  f"hand-written loop {theirs_over} (target <= 8, goal 0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
