"""`ProcoreClient` and `AsyncProcoreClient` in a script's own process, against the fake Procore over HTTP.

The same transport as `procore-setup api`: these tests show that a plain `client.get(...)` paces
and retries too, that `paginate()` yields every item once and in order (sync and async), and that
a request for another host is refused before anything is sent.
"""

from __future__ import annotations

import os

import pytest

from procore_setup import AsyncProcoreClient, ProcoreClient
from procore_setup.errors import AnswerLost, APIRequestRefused, InvalidValue, TemporaryFailure
from procore_setup.testing import FakeProcore, Fault
from helpers.engine import FIRST_COMPANY, SECOND_COMPANY, Engine

PROJECTS = "/rest/v1.0/projects"


def project_ids(n: int, company: int = FIRST_COMPANY) -> list[int]:
    return [company * 10 + 1, company * 10 + 2, *[5_000_000_000 + i for i in range(2, n)]][:n]


@pytest.fixture
def lib(eng: Engine) -> Engine:
    eng.login()
    eng.fake.reset_stats()
    return eng


def test_a_plain_get_with_the_profiles_url_token_and_company(lib: Engine) -> None:
    with ProcoreClient(config=lib.config) as procore:
        assert str(procore.base_url).rstrip("/") == lib.fake.url
        assert procore.get("/rest/v1.0/me").json()["login"] == "pat@example.com"
        assert [p["company"]["id"] for p in procore.get(PROJECTS).json()] == [FIRST_COMPANY] * 2
        text = repr(procore)
    assert lib.profile()["access_token"] not in text and "default" in text
    with ProcoreClient(config=lib.config, company_id=SECOND_COMPANY) as procore:
        assert [p["id"] for p in procore.get(PROJECTS).json()] == project_ids(2, SECOND_COMPANY)


def test_paginate_yields_every_item_in_order_lazily(lib: Engine) -> None:
    lib.fake.project_count = 1234
    lib.fake.latency = 0.01
    with ProcoreClient(config=lib.config) as procore:
        items = procore.paginate(PROJECTS, params={"per_page": 50})
        first = next(items)
        assert first["id"] == FIRST_COMPANY * 10 + 1
        assert lib.fake.counts["projects"] <= 5  # lazily: the first page and the few in flight
        rest = list(items)
    assert [p["id"] for p in [first, *rest]] == project_ids(1234)
    assert lib.fake.counts["projects"] == 25


def test_a_plain_get_is_retried_and_paced(lib: Engine) -> None:
    lib.fake.inject(Fault(status=502, paths="/rest/v1.0/me"))
    lib.fake.inject(Fault(status=429, retry_after=0, paths="/rest/v1.0/me"))
    with ProcoreClient(config=lib.config) as procore:
        assert procore.get("/rest/v1.0/me").status_code == 200
    assert lib.fake.counts["api_requests"] == 3


def test_a_request_for_another_host_is_refused_before_it_is_sent(lib: Engine) -> None:
    with FakeProcore() as other, ProcoreClient(config=lib.config) as procore:
        with pytest.raises(InvalidValue, match="Refusing to send the profile's token"):
            procore.get(f"{other.url}/rest/v1.0/me")
        assert other.counts["requests"] == 0


def test_a_lost_post_raises_and_is_not_sent_again(lib: Engine) -> None:
    lib.fake.inject(Fault(drop=True, consume=True, paths=PROJECTS))
    with ProcoreClient(config=lib.config) as procore:
        with pytest.raises(AnswerLost, match="may have applied it"):
            procore.post(PROJECTS, json={"project": {"name": "Once"}})
    assert lib.fake.counts["projects_created"] == 1 and lib.fake.counts["api_requests"] == 1


def test_max_wait_raises_a_temporary_failure(lib: Engine) -> None:
    lib.fake.inject(Fault(status=429, retry_after=600, paths="/rest/v1.0/me"))
    with ProcoreClient(config=lib.config, max_wait=1) as procore:
        with pytest.raises(TemporaryFailure, match="resets at") as caught:
            procore.get("/rest/v1.0/me")
    assert caught.value.exit_code == 5


def test_paginate_raises_on_an_error_answer(lib: Engine) -> None:
    with ProcoreClient(config=lib.config) as procore:
        with pytest.raises(APIRequestRefused, match="404") as caught:
            list(procore.paginate("/rest/v1.0/nothing"))
    assert caught.value.exit_code == 7


async def test_async_client_paginates_in_order_within_the_limit(lib: Engine) -> None:
    lib.fake.project_count = 200
    lib.fake.set_rate_limit(8, 1)
    lib.fake.reset_stats()
    async with AsyncProcoreClient(config=lib.config) as procore:
        me = await procore.get("/rest/v1.0/me")
        assert me.json()["id"] == 4242
        ids = [p["id"] async for p in procore.paginate(PROJECTS, params={"per_page": 10})]
    assert ids == project_ids(200)
    assert lib.fake.counts["rate_limited"] == 0
    assert lib.fake.counts["projects"] == 20


async def test_async_client_refreshes_on_401(lib: Engine) -> None:
    lib.fake.expire_access_tokens()
    async with AsyncProcoreClient(config=lib.config) as procore:
        assert (await procore.get("/rest/v1.0/me")).status_code == 200
    assert lib.fake.counts["refresh_ok"] == 1


def test_the_limiter_paces_alone_when_its_file_cannot_be_written(tmp_path) -> None:
    from procore_setup.ratelimit import FileState, RateLimiter

    now = [1000.0]
    limiter = RateLimiter(FileState(str(tmp_path / "missing-dir" / "x.ratelimit"), "p"), clock=lambda: now[0])
    assert limiter.decide() == (0.0, 0.0)  # the probe
    limiter.answered(200, {"x-rate-limit-limit": "2", "x-rate-limit-remaining": "1", "x-rate-limit-reset": "1010"})
    assert limiter.decide() == (0.0, 0.0)  # the one left
    wait, until = limiter.decide()
    assert until == 1010.05 and wait > 0  # none left before the reset, though nothing could be written
    now[0] = 1010.1
    assert limiter.decide() == (0.0, 0.0)  # a new window: a probe


def test_two_limiters_on_one_file_spend_one_budget(tmp_path) -> None:
    from procore_setup.ratelimit import WAIT_FOR_ANSWER, FileState, RateLimiter

    now = [1000.0]
    path = str(tmp_path / "credentials.toml.ratelimit")
    a, b = (RateLimiter(FileState(path, "p"), clock=lambda: now[0]) for _ in range(2))
    assert a.decide() == (0.0, 0.0)  # a probes the unknown window
    assert b.decide() == (WAIT_FOR_ANSWER, 0.0)  # b waits for the probe's answer
    a.answered(200, {"x-rate-limit-remaining": "3", "x-rate-limit-reset": "1010"})
    assert [x.decide() for x in (a, b, b)] == [(0.0, 0.0)] * 3  # three left, whoever sends them
    assert a.decide()[1] == 1010.05  # none left for anyone
    a.answered(429, {"x-rate-limit-remaining": "0", "x-rate-limit-reset": "1030", "retry-after": "30"})
    assert b.decide()[1] == 1030.05  # b heard of a's 429
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_fields_nest_and_keep_their_types_exactly() -> None:
    from procore_setup.apicmd import fields_body, fields_query, parse_fields

    fields = parse_fields(["project[name]=Tower", "code=007"],
                          ["ids[]=1", "ids[]=562949953421313", "on=true", "off=false", "none=null", "ratio=1.5",
                           "huge=18446744073709551617", "list[][name]=a"])
    assert fields_body(fields) == {
        "project": {"name": "Tower"}, "code": "007", "ids": [1, 562949953421313], "on": True, "off": False,
        "none": None, "ratio": 1.5, "huge": 18446744073709551617, "list": [{"name": "a"}]}
    assert fields_query(fields)[:5] == [("project[name]", "Tower"), ("code", "007"), ("ids[]", "1"),
                                        ("ids[]", "562949953421313"), ("on", "true")]


def test_importing_the_package_stays_light_until_a_client_is_asked_for() -> None:
    import subprocess
    import sys

    code = ("import sys, procore_setup; assert 'httpx' not in sys.modules; "
            "procore_setup.ProcoreClient; procore_setup.AsyncProcoreClient; assert 'httpx' in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_a_reset_is_waited_for_by_this_clock_when_the_servers_runs_behind() -> None:
    from email.utils import formatdate

    from procore_setup.ratelimit import RateLimiter

    now = [100_000.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.decide() == (0.0, 0.0)
    # the server's clock is 60 s behind ours: its Reset (its time + 10 s) is ours + 10 s too
    server_now = now[0] - 60
    limiter.answered(200, {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(server_now + 10)),
                           "date": formatdate(server_now, usegmt=True)})
    wait, until = limiter.decide()
    assert abs(until - (now[0] + 10.05)) < 1e-6 and 9 < wait < 10.1


@pytest.mark.parametrize("failing", ["flock", "fchmod"])
def test_a_state_file_whose_lock_or_mode_cannot_be_set_paces_in_memory(
        tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], failing: str) -> None:
    # flock on NFS without lockd gives ENOLCK; fchmod of a file another user made 0666 gives EPERM
    import errno
    import fcntl

    from procore_setup.ratelimit import FileState, RateLimiter

    path = tmp_path / "credentials.toml.ratelimit"
    path.write_text("{}")
    os.chmod(path, 0o666)

    def refuse(*args: object) -> None:
        raise OSError(errno.ENOLCK if failing == "flock" else errno.EPERM, "refused by the test")

    if failing == "flock":
        monkeypatch.setattr(fcntl, "flock", refuse)
    else:
        monkeypatch.setattr(os, "fchmod", refuse)
    now = [1000.0]
    limiter = RateLimiter(FileState(str(path), "p"), clock=lambda: now[0])
    limiter.acquire(5)  # the probe
    limiter.answered(200, {"x-rate-limit-remaining": "0", "x-rate-limit-reset": "1010"})
    assert limiter.decide()[1] == 1010.05  # paced in memory: none left before the reset
    assert capsys.readouterr().err.count("cannot use the rate-limit file") == 1


@pytest.mark.parametrize("retry_after", ["0", "Thu, 01 Jan 2015 00:00:00 GMT"])
def test_a_503_that_asks_for_no_wait_still_gets_the_backoff(lib: Engine, retry_after: str) -> None:
    import httpx

    from procore_setup.client import PacingTransport

    sleeps: list[float] = []
    lib.fake.inject(Fault(status=503, retry_after=retry_after, times=2, paths="/rest/v1.0/me"))
    with httpx.Client(transport=PacingTransport(lib.fake.url, sleep=sleeps.append)) as client:
        client.get(lib.fake.url + "/rest/v1.0/me")  # the third answer is the fake's own (a 401: no token)
    assert lib.fake.counts["api_requests"] == 3
    assert len(sleeps) == 2 and all(s > 0 for s in sleeps)  # not straight back at a server that is busy


async def test_async_paginate_asks_again_for_a_page_that_broke_off(lib: Engine) -> None:
    lib.fake.project_count = 30
    lib.fake.inject(Fault(cut=True, paths=PROJECTS, times=2))
    async with AsyncProcoreClient(config=lib.config) as procore:
        ids = [p["id"] async for p in procore.paginate(PROJECTS)]
    assert ids == project_ids(30)
    assert lib.fake.counts["api_requests"] == 3
