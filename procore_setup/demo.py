"""`procore-setup demo`: the fake Procore and a logged-in demo file kept for a shell, to try the
headless side (`token`, `refresh`, `status`, cron, the library) without a Procore account.

It logs in through the same SetupFlow the wizard uses, against the fake server of testing/, then
opens the user's shell with PROCORE_SETUP_CONFIG pointing at the demo file. Nothing outlives it:
the server stops and the private temporary directory goes when the shell exits, on Ctrl+C, and
when the terminal is closed or the process is told to stop (SIGHUP, SIGTERM).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
from typing import Any

from .hints import shell_quote

# Variables the demo shell must not inherit: another store or profile would point the commands
# away from the demo file, and a secret has no business in a child's environment.
_DROPPED_PREFIXES = ("PROCORE_",)
_DROPPED = ("PGPASSWORD", "REDISCLI_AUTH")


class _Stop(Exception):
    """A signal asked the demo to end."""


def _program_dir() -> str | None:
    """The directory of the running `procore-setup` executable (put first on the shell's PATH, so
    that the commands it prints work as printed even where the program is not on PATH)."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if os.path.basename(argv0) == "procore-setup" and os.path.exists(argv0):
        return os.path.dirname(os.path.abspath(argv0))
    return None


def _login(session: Any, store: Any) -> dict[str, Any]:
    """A person's login ('default') and a service account ('reports') in the demo file, through the
    wizard's own steps; returns what the guide mentions."""
    from .flow import SetupFlow

    flow = SetupFlow(store, "default", http_timeout=10)
    flow.set_environment("custom", session.url, session.url)
    flow.set_client(session.client_id, session.client_secret)
    flow.exchange(session.fetch_code(flow.start_authorization()))
    flow.verify()
    if flow.company_id is None and flow.companies:
        flow.choose_company(int(flow.companies[0]["id"]))
    flow.make_default = True
    prof = flow.save()
    out: dict[str, Any] = {"company_id": prof.company_id, "service_account": None}
    fake = session.fake
    sa = SetupFlow(store, "reports", http_timeout=10)
    sa.set_environment("custom", session.url, session.url)
    sa.set_client(fake.service_account_client_id, fake.service_account_client_secret)
    sa.company_id = prof.company_id  # its token needs Procore-Company-Id, as in Multiple Procore Zones
    try:
        sa.request_token()
        sa.verify_service_account()
        sa.save()
        out["service_account"] = "reports"
    except Exception:  # the guide then leaves it out; the person's login is what matters
        pass
    return out


def guide(session: Any, store: Any, made: dict[str, Any], *, shell: bool = True) -> str:
    """What to try, as commands that work as printed: in the demo shell (whose PATH starts with the
    program's directory, when it was run as `procore-setup`), or, without a shell, in another
    terminal (the program named as hints.program() names it: by its path where PATH does not find it)."""
    from .flow import cron_line
    from .hints import program

    prog = "procore-setup" if shell and _program_dir() else program()
    url = session.url
    company = made.get("company_id")
    lines = [
        f"Demo: a fake Procore runs at {url} (nothing real is touched).",
        f"Demo credentials file: {session.config_path}",
        "  profile 'default': a person's login" + (f", company {company}" if company else ""),
    ]
    if made.get("service_account"):
        lines.append("  profile 'reports': a service account (client credentials, no refresh token)")
    lines += [
        "Try:",
        f"  {prog} status",
        f"  {prog} token",
        f"  {prog} refresh --force",
        f"  curl -s -H \"Authorization: Bearer $({prog} token)\" '{url}/rest/v1.0/me'",
    ]
    if made.get("service_account"):
        lines.append(f"  {prog} token --profile reports")
    lines.append(f"  {prog} api /rest/v1.0/me")
    lines += [
        f"  {shlex.quote(sys.executable)} -c 'from procore_setup import get_token; "
        "print(len(get_token()), \"characters of token\")'",
        f"  {prog}   # the wizard on this demo file (add, re-authorize, remove profiles)",
        "The cron line that would keep it fresh:",
        f"  {cron_line(store, 'default')}",
    ]
    return "\n".join(lines)


def _child_env(session: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES) and k not in _DROPPED}
    env["PROCORE_SETUP_CONFIG"] = session.config_path
    env["PROCORE_SETUP_DEMO"] = session.url  # for a prompt that wants to show it
    where = _program_dir()
    if where:
        env["PATH"] = where + os.pathsep + env.get("PATH", "")
    return env


def run_demo(*, shell: bool) -> int:
    """Start, log in, hand over to a shell (or serve until stopped), and always clean up."""
    from .stores import open_store
    from .testing.demo import DemoSession

    def stop(signum: int, frame: object) -> None:
        raise _Stop(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    session = DemoSession()
    child: subprocess.Popen[bytes] | None = None
    try:
        session.start()
        store = open_store(session.config_path)
        made = _login(session, store)
        text = guide(session, store, made, shell=shell)
        if not shell:
            print(text)
            print("Without a shell: in another terminal, run")
            print(f"  export PROCORE_SETUP_CONFIG={shell_quote(session.config_path)}")
            print("Serving until stopped (Ctrl+C or SIGTERM): then all of it is removed.", flush=True)
            threading.Event().wait()
            return 0
        print(text)
        print("Type `exit` (or Ctrl+D) to end the demo: the fake server stops and the demo file is removed.",
              flush=True)
        program = os.environ.get("SHELL") or "/bin/sh"
        child = subprocess.Popen([program], env=_child_env(session))
        # Ctrl+C in the demo shell is the shell's: this process waits it out
        previous.setdefault(signal.SIGINT, signal.signal(signal.SIGINT, signal.SIG_IGN))
        child.wait()
        print("Demo ended: the fake server is stopped and the demo file removed.", file=sys.stderr)
        return 0
    except (_Stop, KeyboardInterrupt):
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGHUP)  # the terminal is gone, or we were told to stop: so is the shell
        return 0
    finally:
        # no second signal may cut the clean-up short: the directory must go
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        session.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
