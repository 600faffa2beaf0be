"""Encryption authenticates where the secrets go (issue 17, point 2), on the file, PostgreSQL and Redis.

Someone who can write the store but lacks the passphrase points a profile at their own host
(or changes its client id, redirect URI, kind or name, or strips its seal, or sets the
[encryption] table back to a version without seals) and makes the token look expired. The
next legitimate `refresh --force`, with the passphrase, must refuse the profile with exit 6
before anything is sent: a second fake Procore plays the attacker and must receive nothing,
and the store must be left exactly as it was.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable, Iterator

import pytest

from helpers.cli import CLIENT_ID, CLIENT_SECRET
from helpers.stores import Shared
from procore_setup.crypto import Cipher, derive_key, table_params
from procore_setup.profile import Profile, utcnow
from procore_setup.testing import FakeProcore

PASS = {"PROCORE_SETUP_PASSPHRASE": "correct horse battery staple 17"}
# The key cache (issue 21) would let a run without the passphrase in; these tests are about the seal.
NO_CACHE = {"PROCORE_SETUP_KEY_CACHE": "0"}
WITH_PASS = dict(PASS, **NO_CACHE)


@pytest.fixture
def attacker() -> Iterator[FakeProcore]:
    with FakeProcore() as fake:
        yield fake


def encrypted(shared: Shared) -> None:  # noqa: F811
    one, _ = shared.hosts
    one.login()
    r = one.run("encrypt", env=WITH_PASS)
    assert r.returncode == 0, r.stderr
    assert shared.store().load().raw["encryption"]["version"] == 2
    assert str(shared.profile().get("seal", "")).startswith("enc:v1:")


def snapshot(shared: Shared) -> str:  # noqa: F811
    """What the store holds, without pg_dump's per-run \\restrict key."""
    return "\n".join(line for line in shared.raw().splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


def expired(doc: Any, name: str = "default") -> None:
    doc.profiles[name].set(expires_at=utcnow() - timedelta(seconds=60))


def point_at(url: str) -> Callable[[Any], None]:
    def change(doc: Any) -> None:
        doc.profiles["default"].set(login_url=url, api_url=url)
    return change


# Each change someone without the passphrase could make, with the store's own API (no key).
TAMPERS: dict[str, Callable[[Any, str], object]] = {
    "login_url": lambda doc, url: doc.profiles["default"].set(login_url=url),
    "api_url": lambda doc, url: doc.profiles["default"].set(api_url=url),
    "client_id": lambda doc, url: doc.profiles["default"].set(client_id="attackers-client-id", login_url=url),
    "redirect_uri": lambda doc, url: doc.profiles["default"].set(redirect_uri=url + "/callback", login_url=url),
    "kind": lambda doc, url: doc.profiles["default"].set(kind="service_account", login_url=url),
    "environment": lambda doc, url: doc.profiles["default"].set(environment="production"),
    "seal_removed": lambda doc, url: (doc.profiles["default"].data.pop("seal"),
                                      doc.profiles["default"].set(login_url=url)),
}


def rename(doc: Any, url: str) -> None:
    """The profile moved under another name (its ciphertexts and seal as they were)."""
    prof = doc.profiles.pop("default")
    doc.profiles["stolen"] = Profile("stolen", dict(prof.data, login_url=url))
    doc.default_profile = "stolen"


def set_back(doc: Any, url: str) -> None:
    """The [encryption] table set back to version 1 (which had no seals), the seal gone."""
    doc.raw["encryption"]["version"] = 1
    doc.profiles["default"].data.pop("seal")
    doc.profiles["default"].set(login_url=url)


def attack_and_refresh(shared: Shared, attacker: FakeProcore,  # noqa: F811
                       tamper: Callable[[Any, str], object], *, profile: str = "default") -> Any:
    encrypted(shared)
    _, two = shared.hosts
    refreshes = shared.fake.counts["token:refresh_token"]

    def change(doc: Any) -> None:
        tamper(doc, attacker.url)
        expired(doc, profile if profile in doc.profiles else "stolen")

    shared.edit(change)
    before = snapshot(shared)
    r = two.run("refresh", "--force", env=WITH_PASS)
    assert r.returncode == 6, r.stderr
    assert sum(attacker.counts.values()) == 0, attacker.counts  # nothing reached the attacker's host
    assert shared.fake.counts["token:refresh_token"] == refreshes  # nor Procore: refused before anything
    assert snapshot(shared) == before  # the store untouched
    t = two.run("token", env=WITH_PASS)
    assert t.returncode == 6 and t.stdout == ""
    assert sum(attacker.counts.values()) == 0
    return r


@pytest.mark.parametrize("shared", ["file"], indirect=True)
@pytest.mark.parametrize("field", sorted(TAMPERS))
def test_a_bound_field_changed_without_the_passphrase_is_refused_before_anything_is_sent(
        shared: Shared, attacker: FakeProcore, field: str) -> None:  # noqa: F811
    r = attack_and_refresh(shared, attacker, TAMPERS[field])
    assert "changed by someone without the passphrase" in r.stderr
    assert "'default'" in r.stderr  # names the profile


def test_a_profile_pointed_at_another_host_is_refused_on_every_store(shared: Shared,  # noqa: F811
                                                                     attacker: FakeProcore) -> None:
    r = attack_and_refresh(shared, attacker, TAMPERS["login_url"])
    assert "profile 'default' was changed by someone without the passphrase" in r.stderr
    assert "nothing was sent" in r.stderr


def test_a_renamed_profile_is_refused_on_every_store(shared: Shared, attacker: FakeProcore) -> None:  # noqa: F811
    r = attack_and_refresh(shared, attacker, rename, profile="stolen")
    assert "profile 'stolen' was changed by someone without the passphrase" in r.stderr


def test_a_table_set_back_to_version_1_is_refused_on_every_store(shared: Shared,  # noqa: F811
                                                                attacker: FakeProcore) -> None:
    r = attack_and_refresh(shared, attacker, set_back)
    assert "[encryption] table was changed by someone without the passphrase" in r.stderr


@pytest.mark.parametrize("shared", ["file", "redis"], indirect=True)
def test_refresh_all_refreshes_the_others_and_never_reseals_the_changed_one(shared: Shared,  # noqa: F811
                                                                          attacker: FakeProcore) -> None:
    one, two = shared.hosts
    one.login("other")
    encrypted(shared)  # logs in "default" too
    def change(doc: Any) -> None:
        TAMPERS["login_url"](doc, attacker.url)
        expired(doc)
        expired(doc, "other")

    shared.edit(change)
    r = two.run("refresh", "--all", "--force", env=WITH_PASS)
    assert r.returncode == 6, r.stderr
    assert "other: refreshed" in r.stdout
    assert sum(attacker.counts.values()) == 0
    # The save of "other" had the key, and still did not vouch for the change to "default".
    again = two.run("refresh", "--force", "--profile", "default", env=WITH_PASS)
    assert again.returncode == 6 and "without the passphrase" in again.stderr
    assert sum(attacker.counts.values()) == 0


@pytest.mark.parametrize("shared", ["file", "postgres"], indirect=True)
@pytest.mark.parametrize("command", [["decrypt"], ["passphrase"]])
def test_decrypt_and_a_new_passphrase_refuse_a_changed_profile_and_change_nothing(
        shared: Shared, attacker: FakeProcore, command: list[str]) -> None:  # noqa: F811
    encrypted(shared)
    _, two = shared.hosts
    shared.edit(lambda doc: TAMPERS["login_url"](doc, attacker.url))
    before = snapshot(shared)
    r = two.run(*command, env=dict(WITH_PASS, PROCORE_SETUP_NEW_PASSPHRASE="a new passphrase, long enough"))
    assert r.returncode == 6, r.stderr
    assert "changed by someone without the passphrase" in r.stderr
    assert snapshot(shared) == before


@pytest.mark.parametrize("shared", ["file", "redis"], indirect=True)
def test_legitimate_use_keeps_working_and_decrypt_removes_the_seals(shared: Shared) -> None:  # noqa: F811
    encrypted(shared)
    one, two = shared.hosts
    assert two.run("refresh", "--force", env=WITH_PASS).returncode == 0
    new = "another passphrase, long enough"
    r = two.run("passphrase", env=dict(WITH_PASS, PROCORE_SETUP_NEW_PASSPHRASE=new))
    assert r.returncode == 0, r.stderr
    with_new = dict(NO_CACHE, PROCORE_SETUP_PASSPHRASE=new)
    assert one.run("refresh", "--force", env=with_new).returncode == 0
    fake = shared.fake  # a new login into the encrypted store re-seals what it wrote
    r = one.run("login", "--plain", "--environment", "custom", "--login-url", fake.url, "--api-url", fake.url,
                "--client-id", CLIENT_ID, "--code=" + fake.issue_code(), input="1\n",
                env=dict(with_new, PROCORE_CLIENT_SECRET=CLIENT_SECRET))
    assert r.returncode == 0, r.stderr
    t = two.run("refresh", "--force", env=with_new)
    assert t.returncode == 0, t.stderr
    d = two.run("decrypt", env=with_new)
    assert d.returncode == 0, d.stderr
    doc = shared.store().load()
    assert "encryption" not in doc.raw and "seal" not in doc.profiles["default"].data
    assert two.run("token").returncode == 0


def _as_version_1(doc: Any) -> None:
    """What an older procore-setup wrote: a version-1 table (its own key check) and no seals."""
    table = doc.raw["encryption"]
    salt, n, r, p = table_params("test", table)
    cipher = Cipher(derive_key(PASS["PROCORE_SETUP_PASSPHRASE"], salt, n, r, p))
    table["version"] = 1
    table["check"] = cipher.encrypt("procore-setup key check", "[encryption]/check")
    for prof in doc.profiles.values():
        prof.data.pop("seal", None)


@pytest.mark.parametrize("shared", ["file", "postgres"], indirect=True)
def test_an_older_encrypted_store_is_read_and_sealed_on_its_next_save(shared: Shared,  # noqa: F811
                                                                      attacker: FakeProcore) -> None:
    encrypted(shared)
    _, two = shared.hosts
    shared.edit(_as_version_1)
    token = two.run("token", env=WITH_PASS)  # read as it is, nothing written
    assert token.returncode == 0, token.stderr
    assert shared.store().load().raw["encryption"]["version"] == 1
    assert two.run("refresh", "--force", env=WITH_PASS).returncode == 0  # a save with the passphrase
    doc = shared.store().load()
    assert doc.raw["encryption"]["version"] == 2 and "seal" in doc.profiles["default"].data
    def change(d: Any) -> None:
        TAMPERS["login_url"](d, attacker.url)
        expired(d)

    shared.edit(change)
    r = two.run("refresh", "--force", env=WITH_PASS)
    assert r.returncode == 6 and "without the passphrase" in r.stderr
    assert sum(attacker.counts.values()) == 0


@pytest.mark.parametrize("shared", ["file"], indirect=True)
def test_a_new_login_offers_nothing_of_a_changed_profile(shared: Shared, attacker: FakeProcore) -> None:  # noqa: F811
    """The fix the refusal names (log in again) must not itself send the stored client secret and the
    new code to the URLs someone without the passphrase wrote: they are not offered as defaults."""
    encrypted(shared)
    one, _ = shared.hosts
    def change(doc: Any) -> None:
        point_at(attacker.url)(doc)
        expired(doc)

    shared.edit(change)
    fake = shared.fake
    # every answer left empty: a stored profile's values would be taken as they are
    r = one.run("login", "--plain", "--profile", "default", "--code=" + fake.issue_code(), input="\n" * 8,
                env=WITH_PASS)
    assert sum(attacker.counts.values()) == 0, attacker.counts
    assert r.returncode != 0, r.stdout
    assert "exists in" not in r.stderr  # no defaults from the changed profile
    # set up afresh, with the passphrase: the new profile replaces the changed one, sealed
    r = one.run("login", "--plain", "--profile", "default", "--environment", "custom", "--login-url", fake.url,
                "--api-url", fake.url, "--client-id", CLIENT_ID, "--code=" + fake.issue_code(), input="1\n",
                env=dict(WITH_PASS, PROCORE_CLIENT_SECRET=CLIENT_SECRET))
    assert r.returncode == 0, r.stderr
    assert one.run("refresh", "--force", env=WITH_PASS).returncode == 0
    assert sum(attacker.counts.values()) == 0


@pytest.mark.parametrize("shared", ["file"], indirect=True)
def test_status_online_sends_no_token_to_a_changed_profile(shared: Shared, attacker: FakeProcore) -> None:  # noqa: F811
    """With several profiles, `status --online` asks Procore about each one's token: not the changed one's."""
    one, _ = shared.hosts
    one.login("other")
    encrypted(shared)
    shared.edit(point_at(attacker.url))
    r = one.run("status", "--online", env=WITH_PASS)
    assert sum(attacker.counts.values()) == 0, attacker.counts
    assert "changed by someone without the passphrase" in r.stdout + r.stderr
    assert shared.fake.counts["token_info"] >= 1  # the other profile was checked


@pytest.mark.parametrize("shared", ["file"], indirect=True)
def test_api_sends_no_token_to_a_changed_api_url(shared: Shared, attacker: FakeProcore) -> None:  # noqa: F811
    """`procore-setup api` sends the bearer token to the profile's API URL: not to one written
    without the passphrase."""
    encrypted(shared)
    one, _ = shared.hosts
    ok = one.run("api", "/rest/v1.0/me", env=WITH_PASS)
    assert ok.returncode == 0, ok.stderr
    shared.edit(lambda doc: doc.profiles["default"].set(api_url=attacker.url))
    r = one.run("api", "/rest/v1.0/me", env=WITH_PASS)
    assert r.returncode == 6, r.stderr
    assert "changed by someone without the passphrase" in r.stderr
    assert sum(attacker.counts.values()) == 0, attacker.counts
