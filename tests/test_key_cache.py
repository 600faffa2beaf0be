"""The derived key cached in the kernel's per-user keyring (issue 21), through the real executable.

A key derived by one `token` is used by the next process of the same user (which then needs
no passphrase at all), never by another user's, never after a new passphrase or salt, never
when it does not open the store (a wrong key is removed), and not at all with
PROCORE_SETUP_KEY_CACHE=0 or where the keyring's system calls are refused (a container's
seccomp profile, made real here by tests/helpers/no_keyctl.py): then every run derives the key again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Iterator

import pytest

from helpers.cli import CLI, CLIENT_ID, CLIENT_SECRET, EXE, base_env
from helpers.stores import close_store
from procore_setup import keycache
from procore_setup.crypto import table_params
from procore_setup.testing import FakeProcore

PASS = "correct horse battery staple 21"
WITH_PASS = {"PROCORE_SETUP_PASSPHRASE": PASS}
NO_KEYCTL = str(Path(__file__).parent / "helpers" / "no_keyctl.py")


def _keyring_works() -> str | None:
    probe = keycache.name("probe", os.urandom(16), 1, 1, 1)
    if not keycache.store(probe, os.urandom(32), 30):
        return "the kernel keyring cannot be used here (keyctl refused)"
    keycache.drop(probe)
    return None


pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the key cache is the Linux kernel keyring")


@pytest.fixture
def keyring() -> None:
    why = _keyring_works()
    if why:
        pytest.skip(why)


def cache_name(cli: CLI) -> bytes:
    """The keyring name of the file's key, as the program makes it (its path, salt and parameters)."""
    table = tomllib.loads(cli.config.read_text())["encryption"]
    salt, n, r, p = table_params(str(cli.config), table)
    return keycache.name(str(cli.config), salt, n, r, p)


def encrypted(cli: CLI) -> bytes:
    cli.login()
    r = cli.run("encrypt", env=WITH_PASS)
    assert r.returncode == 0, r.stderr
    return cache_name(cli)


def proc_keys_line(name: bytes) -> str:
    for line in Path("/proc/keys").read_text().splitlines():
        if line.rstrip().endswith(name.decode() + ": 32") and " user " in line:
            return line
    raise AssertionError("the key is not in /proc/keys")


def test_a_second_process_uses_the_key_and_needs_no_passphrase(cli: CLI, fake: FakeProcore, keyring: None) -> None:
    fake.set_access_token_life(600)
    name = encrypted(cli)
    try:
        assert keycache.lookup(name) is None  # `encrypt` derives nothing from a stored salt
        first = cli.run("token", env=WITH_PASS)
        assert first.returncode == 0, first.stderr
        assert keycache.lookup(name) is not None
        fields = proc_keys_line(name).split()
        # readable by the same user only, and gone when the access token is (10 minutes here)
        assert fields[4] == "3f3f0000" and fields[7] == "user"
        assert fields[3].endswith("m") and 1 <= int(fields[3][:-1]) <= 10, fields[3]
        second = cli.run("token")  # no passphrase from anywhere: the cached key opens the file
        assert second.returncode == 0, second.stderr
        assert second.stdout == first.stdout
        off = cli.run("token", env={"PROCORE_SETUP_KEY_CACHE": "0"})  # the old behaviour
        assert off.returncode == 6 and "no passphrase was given" in off.stderr
    finally:
        keycache.drop(name)


def test_a_new_passphrase_or_salt_never_uses_the_old_key(cli: CLI, keyring: None) -> None:
    old = encrypted(cli)
    try:
        assert cli.run("token", env=WITH_PASS).returncode == 0
        assert keycache.lookup(old) is not None
        new = "a new passphrase, long enough"
        r = cli.run("passphrase", env=dict(WITH_PASS, PROCORE_SETUP_NEW_PASSPHRASE=new))
        assert r.returncode == 0, r.stderr
        assert keycache.lookup(old) is None  # dropped by `passphrase`
        assert cli.run("token").returncode == 6
        assert cli.run("token", env=WITH_PASS).returncode == 6  # the old passphrase opens nothing
        assert cli.run("token", env={"PROCORE_SETUP_PASSPHRASE": new}).returncode == 0
        salted = cache_name(cli)
        assert keycache.lookup(salted) is not None
        # decrypt drops it too; encrypting again with the same passphrase gives a new salt
        assert cli.run("decrypt", env={"PROCORE_SETUP_PASSPHRASE": new}).returncode == 0
        assert keycache.lookup(salted) is None
        assert cli.run("encrypt", env={"PROCORE_SETUP_PASSPHRASE": new}).returncode == 0
        assert cache_name(cli) != salted
        refused = cli.run("token")
        assert refused.returncode == 6 and "no passphrase was given" in refused.stderr
    finally:
        keycache.drop(old)
        keycache.drop(cache_name(cli))


def test_a_wrong_cached_key_is_discarded_never_trusted(cli: CLI, keyring: None) -> None:
    name = encrypted(cli)
    try:
        assert keycache.store(name, os.urandom(32), 600)  # a key that does not open the file
        before = cli.config.read_bytes()
        r = cli.run("token")
        assert r.returncode == 6 and "no passphrase was given" in r.stderr
        assert keycache.lookup(name) is None  # removed
        assert cli.config.read_bytes() == before
        ok = cli.run("token", env=WITH_PASS)
        assert ok.returncode == 0, ok.stderr
        assert cli.run("token").returncode == 0  # the right key is cached now
    finally:
        keycache.drop(name)


def test_where_keyctl_is_blocked_every_run_derives_the_key(cli: CLI, keyring: None) -> None:
    name = encrypted(cli)
    blocked = [sys.executable, NO_KEYCTL, EXE]
    try:
        def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
            # stdout (a token) is not needed: only whether the run worked, and what it said on stderr
            return subprocess.run([*blocked, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL, env=dict(cli.env, **(env or {})), timeout=60)

        first = run("token", env=WITH_PASS)
        if first.returncode == 97:
            pytest.skip("a seccomp filter cannot be installed here")
        assert first.returncode == 0, first.stderr
        assert first.stderr == ""  # no warning: the cache is an optimisation
        assert keycache.lookup(name) is None  # nothing could be cached
        again = run("token")
        assert again.returncode == 6 and "no passphrase was given" in again.stderr
        assert run("refresh", "--force", env=WITH_PASS).returncode == 0
        assert run("passphrase", env=dict(WITH_PASS, PROCORE_SETUP_NEW_PASSPHRASE="a new one, long enough")
                   ).returncode == 0
    finally:
        keycache.drop(name)


# -- another user ----------------------------------------------------------------------------------

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def other_uid() -> Iterator[Path]:
    """A HOME that uid 65534 (nobody) can use, once it is known that this test can run as it."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("running a process as another user needs root and setpriv(1)")
    home = Path(tempfile.mkdtemp(prefix="procore-nobody-"))
    home.chmod(0o777)
    try:
        r = subprocess.run([*NOBODY, sys.executable, "-c", "import os, procore_setup; print(os.getuid())"],
                           capture_output=True, text=True, env=base_env(HOME=str(home)), timeout=30)
        if r.returncode != 0 or r.stdout.strip() != "65534":
            pytest.skip(f"cannot run the installed package as uid 65534 here: {r.stderr.strip()[:200]}")
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_another_user_does_not_get_the_cached_key(fake: FakeProcore, redis_store_url: str, other_uid: Path,
                                                  keyring: None) -> None:
    """The store is a Redis one, which both users can reach; the key cached by root is not nobody's."""
    env = base_env(PROCORE_SETUP_STORE=redis_store_url, HOME=str(other_uid))

    def run(*args: str, as_nobody: bool = False, extra: dict[str, str] | None = None,
            input: str = "") -> subprocess.CompletedProcess[str]:
        # as nobody, the token printed is not needed (and the wrapper is no `procore-setup token` to the
        # secret guard): only whether the run worked, and what it said on stderr
        return subprocess.run([*(NOBODY if as_nobody else []), EXE, *args], text=True, input=input,
                              stdout=subprocess.DEVNULL if as_nobody else subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(env, **(extra or {})), timeout=60)

    r = run("login", "--plain", "--environment", "custom", "--login-url", fake.url, "--api-url", fake.url,
            "--client-id", CLIENT_ID, "--code=" + fake.issue_code(), input="1\n",
            extra={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    assert r.returncode == 0, r.stderr
    assert run("encrypt", extra=WITH_PASS).returncode == 0
    mine = run("token", extra=WITH_PASS)
    assert mine.returncode == 0, mine.stderr
    try:
        assert run("token").returncode == 0  # root's next process uses the cached key
        theirs = run("token", as_nobody=True)
        assert theirs.returncode == 6 and "no passphrase was given" in theirs.stderr
        with_pass = run("token", as_nobody=True, extra=WITH_PASS)  # the store itself is reachable
        assert with_pass.returncode == 0, with_pass.stderr
    finally:
        from procore_setup.stores import open_store

        store = open_store(store=redis_store_url, environ={})
        try:
            salt, n, r_, p = table_params("store", store.load().raw["encryption"])
        finally:
            close_store(store)  # its connection, in this process
        keycache.drop(keycache.name(store.address.key_id(), salt, n, r_, p))
