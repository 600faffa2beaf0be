"""The library API users' scripts import: `get_token` and `ProcoreAuth` (httpx.Client and AsyncClient).

The credentials file is made by the real `procore-setup login --plain`; the scripts'
HTTP goes over real sockets to the fake Procore's /rest/v1.0 endpoints.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

import procore_setup
from procore_setup.errors import NotConfigured, ReauthRequired
from procore_setup.testing import Fault
from helpers.engine import Engine, set_expiry

ME = "/rest/v1.0/me"
PROJECTS = "/rest/v1.0/projects"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PROCORE_SETUP_CONFIG", "PROCORE_SETUP_PROFILE", "PROCORE_SETUP_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROCORE_SETUP_LOCK_TIMEOUT", "30")


def _no_secret_in(text: str, eng: Engine) -> None:
    for secret in eng.secrets():
        assert secret not in text


# -- get_token ---------------------------------------------------------------------------

def test_get_token_returns_the_stored_valid_token(eng: Engine) -> None:
    eng.login()
    token = procore_setup.get_token(config=eng.config)
    assert token == eng.profile()["access_token"]
    assert eng.fake.access_token_valid(token)
    assert eng.fake.counts["token:refresh_token"] == 0


def test_get_token_refreshes_an_expired_token_and_saves_it_first(eng: Engine) -> None:
    eng.login()
    eng.login("site-b")
    old = eng.profile("site-b")["access_token"]
    eng.expire("site-b")
    token = procore_setup.get_token("site-b", config=str(eng.config))
    assert token != old and eng.fake.access_token_valid(token)
    assert eng.profile("site-b")["access_token"] == token
    assert eng.fake.counts["refresh_ok"] == 1
    assert procore_setup.get_token("site-b", config=eng.config) == token
    assert eng.fake.counts["refresh_ok"] == 1


def test_get_token_errors_say_what_to_do_without_secrets(eng: Engine) -> None:
    with pytest.raises(NotConfigured):
        procore_setup.get_token(config=eng.config)
    eng.login()
    eng.expire()
    eng.fake.revoke_all()
    with pytest.raises(ReauthRequired) as info:
        procore_setup.get_token(config=eng.config)
    assert info.value.exit_code == 4
    assert "login --profile default" in str(info.value)
    _no_secret_in(str(info.value) + repr(info.value), eng)


# -- ProcoreAuth with httpx.Client ---------------------------------------------------------------

def test_auth_adds_the_bearer_token_and_the_company_header(eng: Engine) -> None:
    eng.login()
    auth = procore_setup.ProcoreAuth(config=eng.config)
    _no_secret_in(repr(auth), eng)
    with httpx.Client(base_url=eng.fake.url, auth=auth) as api:
        me = api.get(ME)
        assert me.status_code == 200 and me.json()["id"] == 4242
        projects = api.get(PROJECTS)  # 400 without Procore-Company-Id
        assert projects.status_code == 200
        assert projects.json()[0]["company"]["id"] == 8675309
    c = eng.fake.counts
    assert c["status_401"] == 0 and c["token:refresh_token"] == 0


def test_auth_refreshes_before_expiry(eng: Engine) -> None:
    eng.login()
    old = eng.profile()["access_token"]
    set_expiry(eng.config, 60)  # still valid, but inside the auth's 120 s margin
    with httpx.Client(base_url=eng.fake.url, auth=procore_setup.ProcoreAuth(config=eng.config)) as api:
        assert api.get(ME).status_code == 200
        assert api.get(ME).status_code == 200
    c = eng.fake.counts
    assert c["refresh_ok"] == 1 and c["status_401"] == 0
    new = eng.profile()["access_token"]
    assert new != old and eng.fake.access_token_valid(new)


def test_auth_on_a_401_refreshes_once_and_retries_once(eng: Engine) -> None:
    eng.login()
    eng.fake.expire_access_tokens()  # the file still thinks the token is good for 90 minutes
    before_me = eng.fake.counts["me"]
    with httpx.Client(base_url=eng.fake.url, auth=procore_setup.ProcoreAuth(config=eng.config)) as api:
        r = api.get(ME)
    assert r.status_code == 200
    c = eng.fake.counts
    assert c["status_401"] == 1 and c["refresh_ok"] == 1
    assert c["me"] == before_me + 2  # the refused request and its one retry
    assert eng.fake.access_token_valid(eng.profile()["access_token"])


def test_auth_does_not_loop_when_the_api_keeps_answering_401(eng: Engine) -> None:
    eng.login()
    eng.fake.inject(Fault(status=401, times=10, paths=[ME]))
    with httpx.Client(base_url=eng.fake.url, auth=procore_setup.ProcoreAuth(config=eng.config)) as api:
        r = api.get(ME)
    assert r.status_code == 401
    c = eng.fake.counts
    assert c["faults"] == 2  # one try and one retry
    assert c["refresh_ok"] == 1  # one refresh
    assert eng.fake.access_token_valid(eng.profile()["access_token"])  # and the chain is fine


# -- ProcoreAuth with httpx.AsyncClient -----------------------------------------------------------

async def test_async_auth_adds_the_bearer_token(eng: Engine) -> None:
    eng.login()
    async with httpx.AsyncClient(base_url=eng.fake.url, auth=procore_setup.ProcoreAuth(config=eng.config)) as api:
        r = await api.get(ME)
        assert r.status_code == 200 and r.json()["login"] == "pat@example.com"
        assert (await api.get(PROJECTS)).status_code == 200
    assert eng.fake.counts["token:refresh_token"] == 0


async def test_async_auth_refreshes_before_expiry(eng: Engine) -> None:
    eng.login()
    set_expiry(eng.config, 30)
    async with httpx.AsyncClient(base_url=eng.fake.url, auth=procore_setup.ProcoreAuth(config=eng.config)) as api:
        assert (await api.get(ME)).status_code == 200
    c = eng.fake.counts
    assert c["refresh_ok"] == 1 and c["status_401"] == 0


async def test_async_auth_on_a_401_refreshes_once_for_many_concurrent_requests(eng: Engine) -> None:
    eng.login()
    eng.fake.expire_access_tokens()
    auth = procore_setup.ProcoreAuth(config=eng.config)
    async with httpx.AsyncClient(base_url=eng.fake.url, auth=auth) as api:
        rs = await asyncio.gather(*(api.get(ME) for _ in range(8)))
    assert [r.status_code for r in rs] == [200] * 8
    c = eng.fake.counts
    assert c["status_401"] == 8
    assert c["refresh_ok"] == 1  # the others found the new token in the file under the lock
    assert c["invalid_grant"] == 0


async def test_async_auth_refuses_once_then_gives_the_401_back(eng: Engine) -> None:
    eng.login()
    eng.fake.inject(Fault(status=401, times=10, paths=[ME]))
    async with httpx.AsyncClient(base_url=eng.fake.url, auth=procore_setup.ProcoreAuth(config=eng.config)) as api:
        r = await api.get(ME)
    assert r.status_code == 401
    assert eng.fake.counts["faults"] == 2 and eng.fake.counts["refresh_ok"] == 1


def test_library_import_is_light(tmp_path: Path) -> None:
    """`import procore_setup` alone pulls in neither httpx nor textual (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = "import sys, procore_setup; print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'textual')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
