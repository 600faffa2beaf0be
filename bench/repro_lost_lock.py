"""Reproduction: a PostgreSQL lock holder whose lock connection is killed mid-refresh goes on, and
a second host then refreshes the same refresh token at the same time.

What bench/chaos.py --store postgres --hosts 2 met as "false alarms" (a run says the profile needs
a new login while the chain is alive) and exit 6 ("the store changed while this command was
working with it"), pinned down with two hosts and no randomness:

  answered-first  Host A's `refresh --force` reaches Procore, which rotates the pair; just
                  before the answer goes out, A's lock connection is terminated
                  (pg_terminate_backend) and host B runs `refresh --force`; A's answer is
                  held until Procore has refused B's request (or B has ended, or 10 s).
  sent-first      Host A's request is held 3 s at the server before Procore processes it; A's
                  lock connection is terminated meanwhile and B runs `refresh --force`.

Each case prints both runs' exit codes and first lines, then `token` on host A and whether the
stored refresh token is the live one.

    .venv/bin/python bench/repro_lost_lock.py
"""

from __future__ import annotations

import os
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


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)


def line(r: subprocess.CompletedProcess[str]) -> str:
    if r.returncode == 0 and not r.stderr.strip() and r.stdout.strip():
        return "exit 0: (printed a token)"  # the token itself is not for a log
    text = (r.stderr.strip() or r.stdout.strip()).splitlines()
    return f"exit {r.returncode}: {text[0][:220] if text else '(nothing)'}"


def kill_lock_holder(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND granted AND pid <> pg_backend_pid()").fetchall()
    return sum(1 for (ok,) in rows if ok)


def stored(url: str) -> dict[str, Any]:
    from procore_setup.stores import open_store

    store = open_store(store=url, environ={})
    try:
        return dict(store.load().raw["profiles"]["default"])
    finally:
        store.close()


def case(name: str, url: str, fake: FakeProcore, a: dict[str, str], b: dict[str, str]) -> None:
    login(fake, a)
    out: dict[str, Any] = {}

    def second_host() -> None:
        out["killed"] = kill_lock_holder(url)
        out["B"] = run(b, "refresh", "--force")

    if name == "answered-first":
        def hold_answer_for_b() -> None:
            # B runs beside A's held answer, which goes out once Procore has refused B's request
            # (A's request used the token) or B has ended. Running B inside the hook and waiting
            # for it deadlocked once B learned to wait for a live holder's answer
            # (refresh._await_refresh_in_flight): B waited for A's answer, which waited for B.
            b_thread = threading.Thread(target=second_host)
            b_thread.start()
            deadline = time.monotonic() + 10  # well inside A's HTTP timeout: A must get its answer
            while b_thread.is_alive() and fake.counts["invalid_grant"] < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            out["B_thread"] = b_thread

        fake.inject(Fault(hook=hold_answer_for_b, paths="/oauth/token"))
        out["A"] = run(a, "refresh", "--force")
        out["B_thread"].join()
    else:
        fake.inject(Fault(hang=3.0, paths="/oauth/token"))
        t = threading.Thread(target=lambda: out.__setitem__("A", run(a, "refresh", "--force")))
        t.start()
        deadline = time.monotonic() + 30
        while stored(url).get("refresh_started_at") is None and time.monotonic() < deadline:
            time.sleep(0.02)  # A has marked its refresh in flight: its request is on its way
        second_host()
        t.join()
    after = run(a, "token")
    prof = stored(url)
    print(f"[{name}] lock connections terminated: {out['killed']}")
    print(f"  host A refresh --force: {line(out['A'])}")
    print(f"  host B refresh --force: {line(out['B'])}")
    print(f"  then host A token:      {line(after)}")
    print(f"  stored refresh token: {fake.refresh_token_state(prof.get('refresh_token', ''))}; "
          f"reauth_required: {prof.get('reauth_required')}; invalid_grant at the server: {fake.counts['invalid_grant']}")


def main() -> int:
    for name in ("answered-first", "sent-first"):
        with store_url("postgres") as url, FakeProcore() as fake, tempfile.TemporaryDirectory() as tmp:
            assert url is not None
            envs = []
            for host in ("a", "b"):
                home = os.path.join(tmp, host)
                os.makedirs(home)
                envs.append(dict(clean_env(), HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                                 PROCORE_SETUP_STORE=url, PROCORE_SETUP_LOCK_TIMEOUT="30"))
            case(name, url, fake, envs[0], envs[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
