"""A shared store used by several threads of one process (issue 19's review).

- A Redis document row holding a version this program never writes: the last-resort save of a
  pair Procore has just issued goes over it, even when another thread of the process reads the
  store between that save's read and its write (the foreign version used to be the store's state,
  which that read reset: the write then expected "-1" and the pair was lost).

A real Redis server (tests/servers.py), the fake Procore over real HTTP.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers.stores import Shared, redis_dump
from procore_setup.errors import ProcoreSetupError
from procore_setup.testing import FakeProcore

PREFIX = "procore-setup:"


@pytest.fixture
def rs(tmp_path: Path, fake: FakeProcore, redis_server: Any, redis_store_url: str) -> Iterator[Shared]:
    s = Shared("redis", redis_store_url, fake, tmp_path, lambda: redis_dump(redis_store_url), [redis_server.password])
    yield s
    s.finish()


# -- A: the foreign version travels with what was read, not in the store ---------------------------

def test_a_last_resort_save_over_a_foreign_version_survives_another_threads_read(
        rs: Shared, redis_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rs.hosts[0].login()
    store = rs.store()
    doc = store.load()
    doc.profiles["default"].set(refresh_token="the-pair-procore-just-issued", access_token="its-access-token")
    # another client (or a bad restore) wrote a version this program never writes
    redis_server.cli("HSET", PREFIX + "document", "version", "abc", db=rs.url)
    others: list[BaseException] = []

    def read_in_another_thread() -> None:
        try:
            store.load()
        except BaseException as exc:  # noqa: BLE001 - checked below
            others.append(exc)

    commit = store._commit
    calls: list[int] = []

    def commit_after_another_threads_read(*args: Any, **kwargs: Any) -> Any:
        # between the last-resort save's lenient read and its write: another thread's read
        if not calls:
            calls.append(1)
            reader = threading.Thread(target=read_in_another_thread)
            reader.start()
            reader.join(30)
        return commit(*args, **kwargs)

    monkeypatch.setattr(store, "_commit", commit_after_another_threads_read)
    said = store.save_last_resort(doc)
    assert "over what another process wrote" in said, said
    # the other thread's read ran in the gap, and was refused as every ordinary read of that version is
    assert len(others) == 1 and isinstance(others[0], ProcoreSetupError) and others[0].exit_code == 6, others
    assert rs.profile()["refresh_token"] == "the-pair-procore-just-issued"
    assert int(redis_server.cli("HGET", PREFIX + "document", "version", db=rs.url)) >= 1
