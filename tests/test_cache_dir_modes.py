"""The cache directories `api` makes for a shared store's rate-limit file are owner-only at every
level it creates, whatever the umask: under `umask 000`, os.makedirs would have left the parents
(~/.cache) world-writable, where anyone could plant a file or a link beside the rate-limit file.

Through the real executable, in a fresh HOME, against the fake Procore over HTTP and a real Redis.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from helpers.cli import EXE
from helpers.engine import FIRST_COMPANY, Engine, mode_of
from helpers.stores import close_store


def test_api_under_umask_000_makes_its_cache_directories_owner_only(eng: Engine, redis_store_url: str,
                                                                     tmp_path: Path) -> None:
    from procore_setup.flow import SetupFlow
    from procore_setup.stores import open_store

    store = open_store(store=redis_store_url)
    try:
        flow = SetupFlow(store, "default")
        flow.load_existing()
        flow.set_environment("custom", eng.fake.url, eng.fake.url)
        flow.set_client(eng.fake.client_id, eng.fake.client_secret)
        flow.start_authorization()
        flow.exchange(eng.fake.issue_code())
        flow.verify()
        flow.choose_company(FIRST_COMPANY)
        flow.save()
    finally:
        close_store(store)  # its connection, in this process
    home = tmp_path / "home"
    home.mkdir(mode=0o700)  # a fresh HOME: no ~/.cache yet
    env = {k: v for k, v in eng.env().items() if k not in ("PROCORE_SETUP_CONFIG", "XDG_CACHE_HOME")}
    env.update(PROCORE_SETUP_STORE=redis_store_url, HOME=str(home))
    r = eng.check(subprocess.run([EXE, "api", "/rest/v1.0/me"], capture_output=True, text=True, env=env,
                                 stdin=subprocess.DEVNULL, timeout=60, preexec_fn=lambda: os.umask(0)))
    assert r.returncode == 0, r.stderr
    cache = home / ".cache"
    assert mode_of(cache) == 0o700, oct(mode_of(cache))
    assert mode_of(cache / "procore-setup") == 0o700, oct(mode_of(cache / "procore-setup"))
    files = list((cache / "procore-setup").iterdir())
    assert len(files) == 1 and mode_of(files[0]) == 0o600  # the rate-limit file itself
