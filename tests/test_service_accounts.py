"""Service accounts (Procore's client-credentials grant, DMSA) as a second kind of profile.

Through the real executable against the fake Procore over HTTP: the profile kind in the file,
`login --plain --service-account`, a token reused while valid and requested again (once, under
the lock) when it is not, a rotated secret, both kinds in one file, revoke and encryption.
"""

from __future__ import annotations

import json
import tomllib

from conftest import CLI


def write(cli: CLI, text: str) -> None:
    cli.config.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    cli.config.touch(mode=0o600)
    cli.config.write_text(text)


PERSON = """schema_version = 1
[profiles.{name}]
environment = "custom"
login_url = "{url}"
api_url = "{url}"
client_id = "demo-client-id"
client_secret = "demo-client-secret"
{extra}
"""


def test_a_profile_without_a_kind_is_a_persons_login(cli: CLI) -> None:
    write(cli, PERSON.format(name="old", url=cli.fake.url, extra=""))
    r = cli.run("status", "--json")
    info = json.loads(r.stdout)["profiles"][0]
    assert info["kind"] == "user"
    assert r.returncode == 4  # as before kinds existed: no tokens, a person must log in
    assert any("never logged in" in p for p in info["problems"])
    assert "kind:          a person's login" in cli.run("status").stdout


def test_an_unknown_kind_is_refused_naming_the_profile(cli: CLI) -> None:
    write(cli, PERSON.format(name="robot", url=cli.fake.url, extra='kind = "robot"'))
    before = cli.config.read_bytes()
    for args in (("token",), ("status",), ("refresh", "--all")):
        r = cli.run(*args)
        assert r.returncode == 6, (args, r.stderr)
        assert "profile 'robot'" in r.stderr and "unknown kind 'robot'" in r.stderr
        assert "user and service_account" in r.stderr
    assert cli.config.read_bytes() == before


def test_a_kind_that_is_not_text_is_refused(cli: CLI) -> None:
    write(cli, PERSON.format(name="p", url=cli.fake.url, extra="kind = 3"))
    r = cli.run("status")
    assert r.returncode == 6 and "field kind must be a str" in r.stderr
