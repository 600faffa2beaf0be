"""Tests for procore_setup.testing.FakeProcore over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from procore_setup.testing import FakeProcore, Fault
from procore_setup.testing.server import (
    INVALID_CLIENT,
    INVALID_GRANT,
    INVALID_TOKEN,
    OOB_REDIRECT_URI,
    WWW_AUTHENTICATE_INVALID_TOKEN,
)

# One SSL context for every client: building httpx's default one per client costs ~0.1 s.
SSL_CTX = ssl.create_default_context()

CID = "demo-client-id"
SECRET = "demo-client-secret"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeProcore]:
    with FakeProcore(clock=clock) as server:
        yield server


@pytest.fixture
def client(fake: FakeProcore) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=5.0, verify=SSL_CTX) as c:
        yield c


def exchange(client: httpx.Client, code: str, redirect_uri: str = OOB_REDIRECT_URI, **extra: str) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": CID,
        "client_secret": SECRET,
        "redirect_uri": redirect_uri,
        **extra,
    }
    return client.post("/oauth/token", data=data)


def refresh(client: httpx.Client, refresh_token: str, secret: str = SECRET) -> httpx.Response:
    return client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": CID, "client_secret": secret},
    )


def login(fake: FakeProcore, client: httpx.Client) -> dict:
    r = exchange(client, fake.issue_code())
    assert r.status_code == 200, r.text
    return r.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- code exchange ------------------------------------------------------------------


def test_code_exchange(fake: FakeProcore, client: httpx.Client, clock: FakeClock) -> None:
    r = exchange(client, fake.issue_code())
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope", "created_at"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 5400
    assert body["scope"] == ""
    assert body["created_at"] == int(clock.now)
    assert len(body["access_token"]) >= 40 and len(body["refresh_token"]) >= 40
    assert body["access_token"] != body["refresh_token"]
    assert fake.counts["token:authorization_code"] == 1
    assert fake.counts["code_ok"] == 1


def test_json_body_accepted(fake: FakeProcore, client: httpx.Client) -> None:
    r = client.post(
        "/oauth/token",
        json={
            "grant_type": "authorization_code",
            "code": fake.issue_code(),
            "client_id": CID,
            "client_secret": SECRET,
            "redirect_uri": OOB_REDIRECT_URI,
        },
    )
    assert r.status_code == 200, r.text


def test_code_is_single_use(fake: FakeProcore, client: httpx.Client) -> None:
    code = fake.issue_code()
    assert exchange(client, code).status_code == 200
    r = exchange(client, code)
    assert r.status_code == 400
    assert r.json() == INVALID_GRANT
    assert fake.counts["invalid_grant"] == 1


def test_code_expires(fake: FakeProcore, client: httpx.Client, clock: FakeClock) -> None:
    code = fake.issue_code()
    clock.now += 601
    r = exchange(client, code)
    assert r.status_code == 400 and r.json() == INVALID_GRANT
    code2 = fake.issue_code()
    clock.now += 599
    assert exchange(client, code2).status_code == 200


def test_unknown_code_and_redirect_mismatch(fake: FakeProcore, client: httpx.Client) -> None:
    assert exchange(client, "nope").json() == INVALID_GRANT
    r = exchange(client, fake.issue_code(), redirect_uri="http://localhost:8080/cb")
    assert r.status_code == 400 and r.json() == INVALID_GRANT


def test_invalid_client(fake: FakeProcore, client: httpx.Client) -> None:
    code = fake.issue_code()
    r = exchange(client, code, client_secret="wrong")
    assert r.status_code == 401
    assert r.json() == INVALID_CLIENT
    # The code was not consumed by an unauthenticated attempt.
    assert exchange(client, code).status_code == 200


def test_invalid_request(client: httpx.Client, fake: FakeProcore) -> None:
    r = client.post("/oauth/token", data={"client_id": CID, "client_secret": SECRET})
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_request", "error_description": "Missing required parameter: grant_type."}
    r = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "client_id": CID, "client_secret": SECRET},
    )
    assert r.status_code == 400
    assert r.json()["error_description"] == "Missing required parameter: refresh_token."
    r = client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "client_id": CID, "client_secret": SECRET, "redirect_uri": "x"},
    )
    assert r.json()["error_description"] == "Missing required parameter: code."
    r = client.post("/oauth/token", data={"grant_type": "password"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    assert fake.counts["token:invalid"] == 2


# -- refresh ------------------------------------------------------------------------


def test_refresh_rotation(fake: FakeProcore, client: httpx.Client) -> None:
    first = login(fake, client)
    r = refresh(client, first["refresh_token"])
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    # The old refresh token is dead, with Doorkeeper's exact body.
    old = refresh(client, first["refresh_token"])
    assert old.status_code == 400
    assert old.json() == INVALID_GRANT
    # The old access token is dead too; the new one works.
    assert client.get("/rest/v1.0/me", headers=bearer(first["access_token"])).status_code == 401
    assert client.get("/rest/v1.0/me", headers=bearer(second["access_token"])).status_code == 200
    # Non-strict: a replay does not kill the new pair.
    assert refresh(client, second["refresh_token"]).status_code == 200
    s = fake.stats()
    assert s["refresh_ok"] == 2 and s["invalid_grant"] == 1 and s["token:refresh_token"] == 3
    assert fake.refresh_token_state(first["refresh_token"]) == "used"


def test_refresh_wrong_secret_is_invalid_client(fake: FakeProcore, client: httpx.Client) -> None:
    tokens = login(fake, client)
    r = refresh(client, tokens["refresh_token"], secret="bad")
    assert r.status_code == 401 and r.json() == INVALID_CLIENT


def test_strict_replay_revokes_grant(clock: FakeClock) -> None:
    with (
        FakeProcore(clock=clock, strict_replay=True) as fake,
        httpx.Client(base_url=fake.url, verify=SSL_CTX) as client,
    ):
        first = login(fake, client)
        second = refresh(client, first["refresh_token"]).json()
        assert refresh(client, first["refresh_token"]).json() == INVALID_GRANT
        assert refresh(client, second["refresh_token"]).json() == INVALID_GRANT
        assert client.get("/rest/v1.0/me", headers=bearer(second["access_token"])).status_code == 401


def test_access_token_expiry_and_life(fake: FakeProcore, client: httpx.Client, clock: FakeClock) -> None:
    fake.set_access_token_life(60)
    tokens = login(fake, client)
    assert tokens["expires_in"] == 60
    assert client.get("/rest/v1.0/me", headers=bearer(tokens["access_token"])).status_code == 200
    clock.now += 61
    assert client.get("/rest/v1.0/me", headers=bearer(tokens["access_token"])).status_code == 401
    fresh = refresh(client, tokens["refresh_token"]).json()
    fake.expire_access_tokens()
    assert client.get("/rest/v1.0/me", headers=bearer(fresh["access_token"])).status_code == 401
    assert refresh(client, fresh["refresh_token"]).status_code == 200


def test_revoke_all(fake: FakeProcore, client: httpx.Client) -> None:
    a, b = login(fake, client), login(fake, client)
    fake.revoke_all()
    for t in (a, b):
        assert client.get("/rest/v1.0/me", headers=bearer(t["access_token"])).status_code == 401
        assert refresh(client, t["refresh_token"]).json() == INVALID_GRANT


# -- token info, revoke, API -------------------------------------------------------------


def test_token_info(fake: FakeProcore, client: httpx.Client, clock: FakeClock) -> None:
    tokens = login(fake, client)
    clock.now += 100
    r = client.get("/oauth/token/info", headers=bearer(tokens["access_token"]))
    assert r.status_code == 200
    info = r.json()
    assert info["resource_owner_id"] == 4242
    assert info["scope"] == [] and info["scopes"] == []
    assert info["expires_in_seconds"] == 5300
    assert info["application"] == {"uid": CID}
    assert info["created_at"] == tokens["created_at"]
    bad = client.get("/oauth/token/info", headers=bearer("garbage"))
    assert bad.status_code == 401
    assert bad.json() == INVALID_TOKEN
    assert bad.headers["www-authenticate"] == WWW_AUTHENTICATE_INVALID_TOKEN
    assert client.get("/oauth/token/info").status_code == 401
    assert fake.counts["status_401"] == 2 and fake.counts["token_info"] == 3


def test_revoke(fake: FakeProcore, client: httpx.Client) -> None:
    tokens = login(fake, client)
    form = {"client_id": CID, "client_secret": SECRET}
    assert client.post("/oauth/revoke", data={"token": "unknown", **form}).json() == {}
    r = client.post("/oauth/revoke", data={"token": tokens["access_token"], **form})
    assert r.status_code == 200 and r.json() == {}
    assert client.get("/rest/v1.0/me", headers=bearer(tokens["access_token"])).status_code == 401
    assert refresh(client, tokens["refresh_token"]).json() == INVALID_GRANT
    # Revoking by refresh token kills the access token too.
    other = login(fake, client)
    client.post("/oauth/revoke", data={"token": other["refresh_token"], **form})
    assert client.get("/rest/v1.0/me", headers=bearer(other["access_token"])).status_code == 401
    assert fake.counts["revoke"] == 3


def test_me(fake: FakeProcore, client: httpx.Client) -> None:
    tokens = login(fake, client)
    r = client.get("/rest/v1.0/me", headers=bearer(tokens["access_token"]))
    assert r.json() == {"id": 4242, "login": "pat@example.com", "name": "Pat Builder"}
    bad = client.get("/rest/v1.0/me", headers=bearer("nope"))
    assert bad.status_code == 401 and bad.json() == INVALID_TOKEN
    assert bad.headers["www-authenticate"].startswith("Bearer ")


def test_companies_pagination(fake: FakeProcore, client: httpx.Client) -> None:
    tokens = login(fake, client)
    h = bearer(tokens["access_token"])
    r = client.get("/rest/v1.0/companies", headers=h)
    assert r.status_code == 200
    companies = r.json()
    assert len(companies) == 3 and r.headers["total"] == "3"
    assert any(c["id"] > 2**32 for c in companies)
    assert set(companies[0]) >= {"id", "name", "is_active", "my_company", "logo_url"}
    assert companies[0]["logo_url"] is None
    r1 = client.get("/rest/v1.0/companies", params={"page": 1, "per_page": 2}, headers=h)
    assert len(r1.json()) == 2 and r1.headers["total"] == "3"
    links = r1.links
    assert links["next"]["url"].startswith(fake.url + "/rest/v1.0/companies?")
    assert "page=2" in links["next"]["url"] and "page=2" in links["last"]["url"]
    r2 = client.get(links["next"]["url"], headers=h)
    assert len(r2.json()) == 1
    assert "next" not in r2.links and "last" in r2.links
    assert [c["id"] for c in r1.json() + r2.json()] == [c["id"] for c in companies]
    assert client.get("/rest/v1.0/companies", headers=bearer("x")).status_code == 401


def test_projects_need_company_header(fake: FakeProcore, client: httpx.Client) -> None:
    tokens = login(fake, client)
    cid = fake.companies[1]["id"]
    r = client.get("/rest/v1.0/projects", params={"company_id": cid}, headers=bearer(tokens["access_token"]))
    assert r.status_code == 400 and "Procore-Company-Id" in r.json()["error_description"]
    r = client.get(
        "/rest/v1.0/projects",
        params={"company_id": cid},
        headers={**bearer(tokens["access_token"]), "Procore-Company-Id": str(cid)},
    )
    assert r.status_code == 200 and len(r.json()) == 2


def test_not_found(client: httpx.Client) -> None:
    r = client.get("/rest/v1.0/nothing")
    assert r.status_code == 404 and r.json() == {"error": "not found"}


# -- authorize page flow ------------------------------------------------------------------


def test_authorize_oob_flow(fake: FakeProcore, client: httpx.Client) -> None:
    params = {"response_type": "code", "client_id": CID, "redirect_uri": OOB_REDIRECT_URI}
    r = client.get("/oauth/authorize", params=params)
    assert r.status_code == 302
    location = r.headers["location"]
    assert location.startswith("/oauth/authorize/")
    code = location.rsplit("/", 1)[1]
    page = client.get(location)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"<code id=\"authorization_code\">{code}</code>" in page.text
    assert "Fake Procore (demo)" in page.text and "Pat Builder" in page.text
    assert "expires in 10 minutes" in page.text
    # Following redirects works end to end; the final URL carries the code.
    followed = client.get("/oauth/authorize", params=params, follow_redirects=True)
    assert followed.status_code == 200
    code2 = followed.url.path.rsplit("/", 1)[1]
    assert code2 in followed.text and code2 != code
    assert exchange(client, code).status_code == 200
    assert exchange(client, code2).status_code == 200
    # Stock Doorkeeper's native URL shape also shows the page.
    assert client.get("/oauth/authorize/native", params={"code": code}).status_code == 200
    assert fake.counts["authorize"] == 2


def test_authorize_loopback_redirect(fake: FakeProcore, client: httpx.Client) -> None:
    redirect = "http://localhost:8765/callback"
    r = client.get(
        "/oauth/authorize",
        params={"response_type": "code", "client_id": CID, "redirect_uri": redirect, "state": "xyz"},
    )
    assert r.status_code == 302
    loc = urllib.parse.urlsplit(r.headers["location"])
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == redirect
    q = urllib.parse.parse_qs(loc.query)
    assert q["state"] == ["xyz"]
    assert exchange(client, q["code"][0], redirect_uri=OOB_REDIRECT_URI).json() == INVALID_GRANT
    r = client.get(
        "/oauth/authorize",
        params={"response_type": "code", "client_id": CID, "redirect_uri": redirect},
    )
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(r.headers["location"]).query)["code"][0]
    assert exchange(client, code, redirect_uri=redirect).status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"response_type": "code", "client_id": "someone-else", "redirect_uri": OOB_REDIRECT_URI},
        {"response_type": "token", "client_id": CID, "redirect_uri": OOB_REDIRECT_URI},
        {"response_type": "code", "client_id": CID, "redirect_uri": "https://evil.example/cb"},
    ],
)
def test_authorize_errors_are_html_pages(client: httpx.Client, params: dict) -> None:
    r = client.get("/oauth/authorize", params=params)
    assert r.status_code == 200
    assert "location" not in r.headers
    assert r.headers["content-type"].startswith("text/html")
    assert "error" in r.text.lower()


# -- faults ----------------------------------------------------------------------------


def test_fault_status_with_retry_after(fake: FakeProcore, client: httpx.Client) -> None:
    fake.inject(Fault(status=503, retry_after=7, paths=["/oauth/token"], times=2))
    tokens_code = fake.issue_code()
    for _ in range(2):
        r = exchange(client, tokens_code)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "7"
        assert r.json()["error"] == "service_unavailable"
    # Other paths are not affected and the code was never consumed.
    assert client.get("/rest/v1.0/me").status_code == 401
    assert exchange(client, tokens_code).status_code == 200
    assert fake.counts["faults"] == 2 and fake.counts["code_ok"] == 1


def test_fault_html_body(fake: FakeProcore, client: httpx.Client) -> None:
    fake.inject(Fault(status=502, body="<html><body>Bad gateway</body></html>"))
    r = client.get("/rest/v1.0/me")
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("text/html")
    assert "Bad gateway" in r.text


def test_fault_429_headers(fake: FakeProcore, client: httpx.Client, clock: FakeClock) -> None:
    fake.inject(Fault(status=429, retry_after=3))
    r = client.get("/rest/v1.0/companies")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "3"
    assert r.headers["x-rate-limit-limit"]
    assert r.headers["x-rate-limit-remaining"] == "0"
    assert int(r.headers["x-rate-limit-reset"]) == int(clock.now + 3)
    fake.inject(Fault(status=429))
    r = client.get("/rest/v1.0/companies")
    assert "retry-after" not in r.headers
    assert int(r.headers["x-rate-limit-reset"]) == int(clock.now + 1)


def test_fault_hang(fake: FakeProcore, client: httpx.Client) -> None:
    fake.inject(Fault(hang=600, paths="/rest/v1.0/me"))
    with pytest.raises(httpx.ReadTimeout):  # held: no answer within the client's 0.5 s
        client.get("/rest/v1.0/me", timeout=0.5)
    assert fake.counts["faults"] == 1 and fake.counts["status_401"] == 0  # arrived, not answered
    fake.inject(Fault(hang=0.3, paths="/rest/v1.0/me"))
    assert client.get("/rest/v1.0/me", timeout=30).status_code == 401  # processed normally after the hang
    assert fake.counts["faults"] == 2 and fake.counts["status_401"] == 1


def test_fault_drop(fake: FakeProcore, client: httpx.Client) -> None:
    code = fake.issue_code()
    fake.inject(Fault(drop=True, paths=["/oauth/token"]))
    with pytest.raises(httpx.TransportError):
        exchange(client, code)
    # Not consumed: the code still works.
    assert exchange(client, code).status_code == 200
    assert fake.counts["faults"] == 1


def test_fault_consume_rotates_then_drops(fake: FakeProcore, client: httpx.Client) -> None:
    tokens = login(fake, client)
    fake.inject(Fault(drop=True, consume=True, paths=["/oauth/token"]))
    with pytest.raises(httpx.TransportError):
        refresh(client, tokens["refresh_token"])
    # The server rotated: the refresh token the client still holds is dead.
    assert fake.counts["refresh_ok"] == 1
    assert fake.refresh_token_state(tokens["refresh_token"]) == "used"
    r = refresh(client, tokens["refresh_token"])
    assert r.status_code == 400 and r.json() == INVALID_GRANT


def test_fault_consume_with_status(fake: FakeProcore, client: httpx.Client) -> None:
    tokens = login(fake, client)
    fake.inject(Fault(status=500, consume=True, paths=["/oauth/token"]))
    assert refresh(client, tokens["refresh_token"]).status_code == 500
    assert refresh(client, tokens["refresh_token"]).json() == INVALID_GRANT


def test_chaos_and_clear(fake: FakeProcore, client: httpx.Client) -> None:
    fake.chaos(1.0, kinds=("503",), seed=1)
    assert client.get("/rest/v1.0/me").status_code == 503
    fake.clear_faults()
    assert client.get("/rest/v1.0/me").status_code == 401
    fake.chaos(0.5, kinds=("500",), seed=42, paths=["/rest/"])
    statuses = [client.get("/rest/v1.0/me").status_code for _ in range(40)]
    assert 5 < statuses.count(500) < 35 and statuses.count(401) == 40 - statuses.count(500)
    assert client.get("/oauth/token/info").status_code == 401  # outside chaos paths
    fake.clear_faults()
    with pytest.raises(ValueError):
        fake.chaos(0.5, kinds=("explode",))


def test_faults_skip_admin_paths(fake: FakeProcore, client: httpx.Client) -> None:
    fake.inject(Fault(status=500, times=5))
    assert client.get("/_fake/stats").status_code == 200
    assert len(fake.pending_faults()) == 1 and fake.pending_faults()[0]["count"] == 5
    assert fake.stats()["requests"] == 0


@pytest.mark.parametrize("fields, says", [
    ({"status": 503, "times": -1}, "Fault(times=-1): how many requests get the fault"),
    ({"status": 503, "times": 0}, "Fault(times=0): how many requests get the fault"),
    ({"status": 503, "times": 2.5}, "Fault(times=2.5): how many requests get the fault"),
    ({"status": 700}, "Fault(status=700): not an HTTP status: a whole number from 100 to 599"),
    ({"status": 42}, "Fault(status=42): not an HTTP status"),
    ({"status": "503"}, "Fault(status='503'): not an HTTP status"),
    ({"status": True}, "Fault(status=True): not an HTTP status"),
    ({"hang": -1}, "Fault(hang=-1): seconds to wait"),
    ({"hang": float("nan")}, "Fault(hang=nan): seconds to wait"),
    ({"gzip_bomb": 0}, "Fault(gzip_bomb=0): a size in bytes"),
    ({"status": 200, "headers": [("Link",)]}, "a sequence of (name, value) pairs"),
    ({"status": 429, "retry_after": "1\r\nX-Evil: 1"}, "one header value: no line breaks"),
    ({"paths": "/oauth/token"}, "Fault() does nothing: give status, body, hang"),
])
def test_a_fault_with_a_bad_field_is_refused_when_made(fields: dict, says: str) -> None:
    with pytest.raises(ValueError) as refused:
        Fault(**fields)
    assert says in str(refused.value)


def test_a_fault_is_one_frozen_value_and_the_server_counts_its_uses(fake: FakeProcore, client: httpx.Client) -> None:
    import dataclasses

    fault = Fault.rate_limited(retry_after=2, times=3, paths="/rest/v1.0/me")
    assert (fault.status, fault.times, fault.paths, fault.retry_after) == (429, 3, ("/rest/v1.0/me",), 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fault.times = 1  # type: ignore[misc]
    fake.inject(fault)
    assert client.get("/rest/v1.0/me").status_code == 429
    assert fake.pending_faults()[0]["count"] == 2 and fake.pending_faults()[0]["times"] == 3
    assert fault.times == 3  # the value is not used up; the server counts its uses
    assert Fault.lost_answer() == Fault(drop=True, consume=True)
    assert Fault.held(0.5, consume=True) == Fault(hang=0.5, consume=True)
    assert Fault(body={"x": 1}).status == 500 and Fault(gzip_bomb=10).status == 200  # as inject() defaulted
    with pytest.raises(TypeError, match=r"inject\(\) takes one Fault"):
        fake.inject({"status": 500})  # type: ignore[arg-type]


def test_the_admin_endpoint_refuses_a_bad_fault_and_queues_none_of_the_batch(fake: FakeProcore,
                                                                            client: httpx.Client) -> None:
    r = client.post("/_fake/faults", json=[{"status": 503}, {"status": 503, "times": -2}])
    assert r.status_code == 400 and "Fault(times=-2)" in r.json()["error"]
    assert client.post("/_fake/faults", json={"status": 500, "count": 1, "times": 1}).status_code == 400
    assert client.post("/_fake/faults", json={"hook": "x", "status": 500}).status_code == 400
    assert fake.pending_faults() == []
    r = client.post("/_fake/faults", json={"status": 503, "times": 2})
    assert r.status_code == 200 and r.json()["pending"][0]["count"] == 2


# -- admin endpoints --------------------------------------------------------------------


def test_admin_endpoints(fake: FakeProcore, client: httpx.Client) -> None:
    code = client.post("/_fake/code").json()["code"]
    tokens = exchange(client, code).json()
    stats = client.get("/_fake/stats").json()
    assert stats["code_ok"] == 1 and stats["token:authorization_code"] == 1
    assert stats == fake.stats()

    r = client.post("/_fake/faults", json={"status": 503, "retry_after": 2, "paths": ["/rest/"]})
    assert r.status_code == 200
    assert client.get("/rest/v1.0/me", headers=bearer(tokens["access_token"])).status_code == 503
    client.post("/_fake/faults", json={"status": 500, "count": 3})
    assert client.delete("/_fake/faults").status_code == 200
    assert client.get("/rest/v1.0/me", headers=bearer(tokens["access_token"])).status_code == 200

    client.post("/_fake/chaos", json={"rate": 1.0, "kinds": ["429"], "seed": 3})
    assert client.get("/rest/v1.0/me").status_code == 429
    client.delete("/_fake/faults")

    r = client.post("/_fake/config", json={"access_token_life": 120})
    assert r.json()["access_token_life"] == 120
    fresh = refresh(client, tokens["refresh_token"]).json()
    assert fresh["expires_in"] == 120

    assert client.post("/_fake/revoke-all").status_code == 200
    assert client.get("/rest/v1.0/me", headers=bearer(fresh["access_token"])).status_code == 401

    assert client.post("/_fake/faults", json={"bogus": 1}).status_code == 400
    assert client.post("/_fake/config", json={"nope": 1}).status_code == 400
    assert client.get("/_fake/unknown").status_code == 404
    # Admin requests are not counted.
    assert client.get("/_fake/stats").json()["requests"] == fake.stats()["requests"]


# -- packaging / CLI ---------------------------------------------------------------------


def test_init_imports_nothing_heavy() -> None:
    code = (
        "import sys, procore_setup.testing as t; "
        "assert t.FakeProcore; "
        "bad = [m for m in ('httpx', 'textual') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=10)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_cli_serves_and_stops_on_ctrl_c() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "procore_setup.testing", "--port", "0", "--token-life", "77", "--client-id", "cli-id"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        second = proc.stdout.readline()
        url = first.strip().rsplit(" ", 1)[1]
        assert url.startswith("http://127.0.0.1:")
        assert "cli-id" in second and "demo-client-secret" in second
        code = httpx.post(f"{url}/_fake/code", verify=SSL_CTX).json()["code"]
        r = httpx.post(
            f"{url}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": "cli-id",
                "client_secret": "demo-client-secret",
                "redirect_uri": OOB_REDIRECT_URI,
            },
            verify=SSL_CTX,
        )
        assert r.json()["expires_in"] == 77
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
        assert proc.stderr is not None and proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_stop_is_prompt_with_hanging_request(clock: FakeClock) -> None:
    import threading

    fake = FakeProcore(clock=clock).start()
    fake.inject(Fault(hang=600, paths="/rest/v1.0/me"))
    outcome: list[BaseException | httpx.Response] = []

    def call() -> None:
        try:
            outcome.append(httpx.get(fake.url + "/rest/v1.0/me", timeout=300, verify=SSL_CTX))
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    try:
        # The server has the request and holds it: its fault is taken, and nothing was answered.
        wait_until(lambda: fake.counts["faults"] == 1, "the request to reach the server")
        assert fake.pending_faults() == [] and fake.counts["status_401"] == 0 and t.is_alive()
        stopper = threading.Thread(target=fake.stop, daemon=True)
        stopper.start()
        # Both bounds are far below the hang (600 s) and the client's own timeout (300 s): only a
        # stop that wakes the held request and closes its connection meets them.
        stopper.join(timeout=30)
        assert not stopper.is_alive(), "stop() did not return"
        t.join(timeout=30)
        assert not t.is_alive(), "the held request was not ended by stop()"
        # and the handler that held it woke up (it then finishes the request as usual)
        wait_until(lambda: fake.counts["status_401"] == 1, "the held request's handler to wake", timeout=30)
    finally:
        fake.stop()
    # Woken, the handler may still answer before its connection is closed; either way the request
    # ended because of the stop, not by a timeout.
    assert len(outcome) == 1
    assert isinstance(outcome[0], (httpx.Response, httpx.TransportError)), outcome
    assert not isinstance(outcome[0], httpx.TimeoutException), outcome
    with pytest.raises(RuntimeError):
        fake.url  # noqa: B018 - stopped for good


def test_stats_json_roundtrip(fake: FakeProcore, client: httpx.Client) -> None:
    from procore_setup.testing.server import COUNTER_KEYS

    tokens = login(fake, client)
    assert refresh(client, tokens["refresh_token"]).status_code == 200
    assert refresh(client, tokens["refresh_token"]).status_code == 400  # used: invalid_grant
    assert client.get("/rest/v1.0/me").status_code == 401
    expected = dict.fromkeys(COUNTER_KEYS, 0)
    expected.update({"requests": 4, "token:authorization_code": 1, "code_ok": 1, "token:refresh_token": 2,
                     "refresh_ok": 1, "invalid_grant": 1, "me": 1, "status_401": 1,
                     "api_requests": 1, "api_in_flight_max": 1})  # /rest/ requests, as the rate limit counts them
    stats = fake.stats()
    assert stats == expected
    assert all(type(v) is int for v in stats.values())  # plain ints: JSON numbers, not Counter oddities
    # through JSON and back, in Python and over the admin endpoint
    assert json.loads(json.dumps(stats)) == expected
    over_http = client.get("/_fake/stats")
    assert over_http.headers["content-type"].startswith("application/json")
    assert over_http.json() == expected
    fake.reset_stats()
    assert client.get("/_fake/stats").json() == dict.fromkeys(COUNTER_KEYS, 0)


def test_concurrent_refresh_only_one_wins(fake: FakeProcore, client: httpx.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    tokens = login(fake, client)

    def attempt(_: int) -> int:
        with httpx.Client(base_url=fake.url, timeout=5.0, verify=SSL_CTX) as c:
            return refresh(c, tokens["refresh_token"]).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert sorted(results) == [200] + [400] * 7
    assert fake.counts["refresh_ok"] == 1 and fake.counts["invalid_grant"] == 7


def test_consume_with_hang_models_client_timeout(fake: FakeProcore, client: httpx.Client) -> None:
    tokens = login(fake, client)
    fake.inject(Fault(hang=600, consume=True, paths=["/oauth/token"]))  # processed, then the answer is held
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                  "client_id": CID, "client_secret": SECRET},
            timeout=0.5,
        )
    wait_until(lambda: fake.refresh_token_state(tokens["refresh_token"]) == "used", "the refresh to be processed")
    assert fake.counts["refresh_ok"] == 1


# -- the client-credentials grant (a demo service account) -----------------------------------

SA_ID = "demo-service-account-id"
SA_SECRET = "demo-dmsa-client-secret"


def client_credentials(client: httpx.Client, *, basic: bool = False, secret: str = SA_SECRET) -> httpx.Response:
    if basic:
        return client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(SA_ID, secret))
    return client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": SA_ID,
                                             "client_secret": secret})


@pytest.mark.parametrize("basic", [False, True], ids=["form", "basic"])
def test_client_credentials_grant(fake: FakeProcore, client: httpx.Client, clock: FakeClock, basic: bool) -> None:
    r = client_credentials(client, basic=basic)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "created_at"}  # no refresh token
    assert body["token_type"] == "Bearer" and body["expires_in"] == 5400 and body["created_at"] == int(clock.now)
    assert fake.counts["token:client_credentials"] == 1 and fake.counts["client_credentials_ok"] == 1
    info = client.get("/oauth/token/info", headers=bearer(body["access_token"])).json()
    assert info["resource_owner_id"] is None and info["application"] == {"uid": SA_ID}
    clock.now += 5400
    assert not fake.access_token_valid(body["access_token"])


def test_client_credentials_refuses_a_wrong_secret_and_the_persons_client(client: httpx.Client,
                                                                           fake: FakeProcore) -> None:
    for r in (client_credentials(client, secret="wrong-secret-000"), client_credentials(client, basic=True,
                                                                                          secret="nope-nope-nope"),
              client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": CID,
                                                "client_secret": SECRET})):
        assert r.status_code == 401 and r.json() == INVALID_CLIENT
    fake.service_account_client_secret = "rotated-secret-1234"  # rotated in the Developer Portal
    assert client_credentials(client).status_code == 401
    assert client_credentials(client, secret="rotated-secret-1234").status_code == 200
    assert fake.counts["token:client_credentials"] == 5 and fake.counts["client_credentials_ok"] == 1


def test_a_service_account_token_needs_the_company_header(fake: FakeProcore, client: httpx.Client) -> None:
    token = client_credentials(client).json()["access_token"]
    for path in ("/rest/v1.0/me", "/rest/v1.0/companies"):
        missing = client.get(path, headers=bearer(token))
        assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
        assert "Procore-Company-Id" in missing.json()["error_description"]
        other = client.get(path, headers={**bearer(token), "Procore-Company-Id": "31337"})
        assert other.status_code == 403 and other.json()["error"] == "forbidden"
    head = {**bearer(token), "Procore-Company-Id": "8675309"}
    assert client.get("/rest/v1.0/me", headers=head).json()["name"] == "Demo Service Account"
    companies = client.get("/rest/v1.0/companies", headers=head)
    assert [c["id"] for c in companies.json()] == [8675309] and companies.headers["Total"] == "1"
    # a person's token still needs no header there
    person = login(fake, client)["access_token"]
    assert client.get("/rest/v1.0/me", headers=bearer(person)).status_code == 200
    assert len(client.get("/rest/v1.0/companies", headers=bearer(person)).json()) == 3


def test_a_service_account_token_can_be_revoked_and_faults_apply(fake: FakeProcore, client: httpx.Client) -> None:
    token = client_credentials(client).json()["access_token"]
    r = client.post("/oauth/revoke", data={"token": token, "client_id": SA_ID, "client_secret": SA_SECRET})
    assert r.status_code == 200 and not fake.access_token_valid(token)
    fake.inject(Fault(status=503, paths="/oauth/token", retry_after=1))
    assert client_credentials(client).status_code == 503
    fake.inject(Fault(drop=True, consume=True, paths="/oauth/token"))
    with pytest.raises(httpx.TransportError):
        client_credentials(client)
    # the 503 never reached the grant; the dropped answer did (consume: a token issued, then lost)
    assert fake.counts["token:client_credentials"] == 2 and fake.counts["client_credentials_ok"] == 2
    assert fake.counts["faults"] == 2
