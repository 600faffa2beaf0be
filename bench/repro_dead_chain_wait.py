"""Reproduction: on a shared store, a run that meets a dead chain after an interrupted refresh
holds the store's lock while it waits for an answer that cannot come, and every host waits.

What the chaos runs on PostgreSQL and Redis showed as 25-second gaps between a refresh's
in-flight mark and the re-login message (workers stalled, the killers idle), pinned down with
three hosts and no randomness:

  1. Host A's `refresh --force` reaches Procore, which rotates the pair; before the answer goes
     out, A is SIGKILLed: its in-flight mark stays, the new pair is lost (the chain is dead).
  2. Host B runs `refresh --force`: it takes the lock, finds A's mark, sends the stored (spent)
     token, and Procore refuses it (invalid_grant). B cannot tell a dead A from a live one that
     lost its lock, so it waits for A's answer (refresh._await_refresh_in_flight: until 2 x
     PROCORE_SETUP_HTTP_TIMEOUT + 5 s after A's mark), still holding the lock.
  3. Host C starts `refresh --force` a second after B, with PROCORE_SETUP_LOCK_TIMEOUT=10.

Each store prints B's and C's exit codes, first lines and wall times.

    .venv-test/bin/python bench/repro_dead_chain_wait.py [--store postgres|redis] [--http-timeout 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from procore_setup.testing import FakeProcore, Fault

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import EXE, clean_env, login  # noqa: E402
from _servers import store_url  # noqa: E402
from repro_lost_lock import line, stored  # noqa: E402


def timed_run(env: dict[str, str], out: dict[str, Any], key: str) -> None:
    t0 = time.monotonic()
    out[key] = subprocess.run([EXE, "refresh", "--force"], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=180)
    out[key + "_s"] = time.monotonic() - t0


def case(kind: str, http_timeout: float) -> None:
    with store_url(kind) as url, FakeProcore() as fake, tempfile.TemporaryDirectory() as tmp:
        assert url is not None
        envs = {}
        for host in "abc":
            home = os.path.join(tmp, host)
            os.makedirs(home)
            envs[host] = dict(clean_env(), HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                              PROCORE_SETUP_STORE=url, PROCORE_SETUP_LOCK_TIMEOUT="30",
                              PROCORE_SETUP_HTTP_TIMEOUT=str(http_timeout))
        envs["c"]["PROCORE_SETUP_LOCK_TIMEOUT"] = "10"
        login(fake, envs["a"])
        a = subprocess.Popen([EXE, "refresh", "--force"], env=envs["a"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        fake.inject(Fault(hook=lambda: a.send_signal(signal.SIGKILL), paths="/oauth/token"))
        a.wait(timeout=120)
        mark = stored(url).get("refresh_started_at")
        out: dict[str, Any] = {}
        b = threading.Thread(target=timed_run, args=(envs["b"], out, "B"))
        b.start()
        time.sleep(1.0)
        timed_run(envs["c"], out, "C")
        b.join()
        prof = stored(url)
        print(f"[{kind}] host A SIGKILLed after Procore rotated the pair: exit {a.returncode}; "
              f"in-flight mark left: {mark is not None}; PROCORE_SETUP_HTTP_TIMEOUT={http_timeout:g}")
        print(f"  host B refresh --force (lock timeout 30 s): {line(out['B'])}  [{out['B_s']:.1f} s]")
        print(f"  host C refresh --force (lock timeout 10 s, 1 s after B): {line(out['C'])}  [{out['C_s']:.1f} s]")
        print(f"  invalid_grant at the server: {fake.counts['invalid_grant']}; refresh requests: "
              f"{fake.counts['token:refresh_token']}; reauth_required stored: {prof.get('reauth_required')}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", choices=("postgres", "redis"), action="append")
    ap.add_argument("--http-timeout", type=float, default=10.0)
    args = ap.parse_args()
    for kind in args.store or ["postgres", "redis"]:
        case(kind, args.http_timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
