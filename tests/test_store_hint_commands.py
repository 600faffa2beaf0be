"""The PostgreSQL store's hints name `procore-setup store init --print` with the store's flag (a
review found it without). Given
the store by --store (a cron line, the wizard's own examples), the command as printed has no store
to act on: 'store init is for a shared store; a credentials file needs no set-up.'"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from helpers.cli import EXE, base_env
from helpers.stores import Shared


def test_the_no_rights_hint_names_a_store_init_that_reaches_the_store(pg: Shared, pg_server: Any,
                                                                          tmp_path: Path) -> None:
    one, _ = pg.hosts
    one.login()  # the table exists
    url = pg_server.role_without_rights(pg.url)
    home = tmp_path / "home"
    home.mkdir()
    env = base_env(HOME=str(home), PROCORE_SETUP_LOCK_TIMEOUT="30")  # no PROCORE_SETUP_STORE: --store
    r = subprocess.run([EXE, "--store", url, "token"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 6, r.stderr
    assert " store init --print shows the SQL)" in r.stderr, r.stderr
    printed = r.stderr.split(" store init --print shows the SQL)")[0].rsplit("(", 1)[1] + " store init --print"
    ran = subprocess.run(["sh", "-c", printed], capture_output=True, text=True, env=env, timeout=60)
    assert ran.returncode == 0 and "CREATE TABLE" in ran.stdout, f"{printed!r}: {ran.stderr}"
