"""Benchmark: a shared store against the credentials file, paired in one run.

1. `procore-setup token` with a valid token (no refresh) from the shared store against the same
   from the file: the two alternate, same machine, same moment, one profile each; median of N
   runs each, and their ratio. Target: 2x or less (PASS/FAIL; exit 1 on FAIL).
2. `procore-setup refresh --force` from two hosts (two HOMEs, no file) at once against the same
   profile in the store, M times: the forced refreshes take turns under the store's lock, each
   with the latest token, so every run succeeds, Procore sees 2 refreshes per pair and not one
   invalid_grant. Prints the wall time per pair (both started together, until both end).

    .venv/bin/python bench/bench_store.py [--store postgres|redis|URL] [--runs 30] [--pairs 10]

`--store postgres` (the default) or `redis` starts a throwaway server on 127.0.0.1 for the run
(bench/_servers.py); a URL is used as it is, and must name an empty store.
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
from _common import EXE, clean_env, header, interleaved, login  # noqa: E402
from _servers import ServerUnavailable, store_scheme, store_url  # noqa: E402

TARGET = 2.0


def host_env(base: dict[str, str], home: str, url: str) -> dict[str, str]:
    """One host's environment: its own HOME and config dir, the store's URL, no credentials file."""
    os.makedirs(home, exist_ok=True)
    env = {k: v for k, v in base.items() if not k.startswith("XDG_")}
    env.update(HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"), PROCORE_SETUP_STORE=url)
    return env


def token_pair(fake: FakeProcore, file_env: dict[str, str], store_env: dict[str, str], runs: int) -> tuple[float, float]:
    login(fake, file_env)
    login(fake, store_env)
    before = fake.counts["token:refresh_token"]
    t_file, t_store = interleaved(([EXE, "token"], file_env), ([EXE, "token"], store_env), runs)
    if fake.counts["token:refresh_token"] != before:
        raise SystemExit("a `token` run refreshed: the comparison would not be of valid-token reads")
    return statistics.median(t_file), statistics.median(t_store)


def refresh_pairs(fake: FakeProcore, envs: list[dict[str, str]], pairs: int) -> dict[str, object]:
    """`refresh --force` on every host at once, `pairs` times; the server's books before and after."""
    ok0, bad0, seen0 = fake.counts["refresh_ok"], fake.counts["invalid_grant"], fake.counts["token:refresh_token"]
    times: list[float] = []
    failures: list[str] = []
    for _ in range(pairs):
        t0 = time.perf_counter()
        procs = [subprocess.Popen([EXE, "refresh", "--force", "--quiet"], env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for env in envs]
        for p in procs:
            _out, err = p.communicate(timeout=120)
            if p.returncode != 0:
                failures.append(f"exit {p.returncode}: {(err.strip().splitlines() or [''])[0][:200]}")
        times.append(time.perf_counter() - t0)
    return {"runs": pairs * len(envs), "failed": failures, "refresh_ok": fake.counts["refresh_ok"] - ok0,
            "invalid_grant": fake.counts["invalid_grant"] - bad0, "seen": fake.counts["token:refresh_token"] - seen0,
            "median_pair_s": statistics.median(times), "max_pair_s": max(times)}


def stored_refresh_token(url: str) -> str:
    from procore_setup.stores import open_store

    store = open_store(store=url, environ={})
    try:
        return str(store.load().raw["profiles"]["default"]["refresh_token"])
    finally:
        store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="postgres", metavar="postgres|redis|URL")
    ap.add_argument("--runs", type=int, default=30, help="`token` runs of each kind (default 30)")
    ap.add_argument("--pairs", type=int, default=10, help="two-host forced refreshes (default 10)")
    args = ap.parse_args()
    kind = store_scheme(args.store)
    if kind == "file":
        ap.error("--store takes postgres, redis, or a postgresql:// or redis:// URL")
    try:
        with store_url(args.store) as url, FakeProcore() as fake, tempfile.TemporaryDirectory() as tmp:
            assert url is not None
            from procore_setup.stores.rows import without_password

            base = clean_env()
            file_env = dict(base, PROCORE_SETUP_CONFIG=os.path.join(tmp, "file", "credentials.toml"))
            hosts = [host_env(base, os.path.join(tmp, f"host{k}"), url) for k in range(2)]
            m_file, m_store = token_pair(fake, file_env, hosts[0], args.runs)
            pairs = refresh_pairs(fake, hosts, args.pairs)
            alive = fake.refresh_token_state(stored_refresh_token(url)) == "active"
            shown = without_password(url)
    except ServerUnavailable as exc:
        print(f"cannot start a server for --store {args.store}: {exc}", file=sys.stderr)
        return 2
    ratio = m_store / m_file
    print(header(args.runs) + f"; store {shown}")
    print(f"procore-setup token, valid token, from the file:      median {m_file * 1000:.1f} ms")
    print(f"procore-setup token, valid token, from {kind:<10}:     median {m_store * 1000:.1f} ms")
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"ratio: {ratio:.2f}x (target <= {TARGET:.2f}x): {verdict}")
    expected = 2 * args.pairs
    turns_ok = not pairs["failed"] and pairs["invalid_grant"] == 0 and pairs["refresh_ok"] == expected and alive
    print(f"refresh --force from 2 hosts at once, {args.pairs} pairs: {pairs['runs']} runs, "
          f"{len(pairs['failed'])} failed; refresh_ok {pairs['refresh_ok']} (expected {expected}), "
          f"invalid_grant {pairs['invalid_grant']}, refresh requests seen {pairs['seen']}; chain alive after: {alive}")
    print(f"time per pair: median {pairs['median_pair_s'] * 1000:.0f} ms, max {pairs['max_pair_s'] * 1000:.0f} ms: "
          + ("PASS" if turns_ok else "FAIL"))
    for f in pairs["failed"][:5]:  # type: ignore[index]
        print(f"  failed: {f}")
    return 0 if verdict == "PASS" and turns_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
