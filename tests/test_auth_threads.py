"""One `ProcoreAuth` shared by a script's threads, on PostgreSQL and on Redis.

Sixteen threads, each with its own httpx.Client on the one auth, call the fake Procore over HTTP
after the stored access token expired: exactly one refresh reaches Procore, every request goes out
with a good token, no thread's store connection is dropped or replaced under another (any such
failure would be an error in that thread), and the server holds exactly the auth's one data
connection afterwards and none once the auth is closed (counted in the real server: PostgreSQL's
pg_stat_activity, Redis's CLIENT LIST).
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from helpers.engine import wait_for
from helpers.stores import shared_on
from procore_setup.testing import FakeProcore

THREADS = 16
REQUESTS = 3  # each thread's


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_one_auth_in_sixteen_threads_after_expiry_refreshes_once(kind: str, request: pytest.FixtureRequest,
                                                                 tmp_path: Path, fake: FakeProcore) -> None:
    from procore_setup import ProcoreAuth

    shared, url, connections = shared_on(kind, request, fake, tmp_path)
    count = lambda: len(connections())  # noqa: E731
    try:
        shared.hosts[0].login()
        old = shared.profile()["access_token"]
        shared.expire()
        before = count()
        auth = ProcoreAuth(store=url)
        start = threading.Barrier(THREADS)
        statuses: list[int] = []
        failures: list[BaseException] = []

        def work() -> None:
            try:
                with httpx.Client(base_url=fake.url, auth=auth, timeout=60) as http:
                    start.wait(60)  # all sixteen at once, on a token that has expired
                    for _ in range(REQUESTS):
                        statuses.append(http.get("/rest/v1.0/me").status_code)
            except BaseException as exc:  # noqa: BLE001 - reported below, with the others
                failures.append(exc)

        threads = [threading.Thread(target=work, name=f"auth-{i}") for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "a thread is still running"
        assert not failures, [f"{type(e).__name__}: {e}" for e in failures]
        assert statuses == [200] * (THREADS * REQUESTS)
        assert fake.counts["token:refresh_token"] == 1  # exactly one refresh reached Procore
        assert fake.counts["invalid_grant"] == 0 and fake.counts["status_401"] == 0  # no request with a dead token
        stored = shared.profile()["access_token"]
        assert stored != old and fake.access_token_valid(stored)
        # The lock connections are gone; the data connection is the auth's only one: none leaked.
        wait_for(lambda: count() == before + 1, timeout=15, what="one data connection left open by the auth")
        auth.close()
        wait_for(lambda: count() == before, timeout=15, what="no connection left once the auth is closed")
    finally:
        shared.finish()
