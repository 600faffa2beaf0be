"""Encrypted secrets at rest, through the real `procore-setup` executable, as a user would run it.

`procore-setup encrypt` / `decrypt`, then `token`, `refresh`, `status` and `login` on the
encrypted file with the passphrase from each of its sources, and every way to get it wrong.
"""

from __future__ import annotations

import base64
import os
import pty
import select
import shlex
import stat
import sys
import textwrap
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import CLI, CLIENT_SECRET, EXE
from helpers.engine import set_expiry

PASS = "correct horse battery staple"
WITH_PASS = {"PROCORE_SETUP_PASSPHRASE": PASS}


# -- helpers ---------------------------------------------------------------------------------

def plain_secrets(cli: CLI) -> list[str]:
    """The secrets of a plain file, read before it is encrypted."""
    secrets = cli.secrets()
    assert len(secrets) == 3 and not any(s.startswith("enc:") for s in secrets)
    return secrets


def encrypt(cli: CLI, *args: str, env: dict[str, str] | None = None) -> None:
    r = cli.run("encrypt", *args, env=env if env is not None else WITH_PASS)
    assert r.returncode == 0, r.stderr
    assert toml(cli)["encryption"]


def toml(cli: CLI) -> dict[str, Any]:
    return tomllib.loads(cli.config.read_text())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def encodings(secret: str) -> set[str]:
    """The secret as it could leak: itself, hex, and base64 / urlsafe base64 at every alignment.

    A base64 text of a longer string contains the base64 of the secret only at one of three
    alignments, and its last characters depend on what follows: so each form is cut before
    its last 4 characters.
    """
    raw = secret.encode()
    forms = {secret, raw.hex(), raw.hex().upper()}
    for shift in range(3):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            text = enc(raw[shift:]).decode().rstrip("=")
            # skip the first characters too: they mix in the bytes before the secret
            forms.add(text[2:-4] if shift else text[:-4])
    return {f for f in forms if len(f) >= 10}


def assert_no_secret(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        for form in encodings(secret):
            assert form not in text, f"a secret (or an encoding of it) appears: {form[:6]}..."


def script(tmp_path: Path, name: str, body: str) -> str:
    """A python script on disk, and the passphrase command that runs it (no shell needed)."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(path))}"


def fake_keyring(tmp_path: Path, body: str) -> dict[str, str]:
    """An importable `keyring` module (the optional extra's API), and the env that puts it on the path."""
    d = tmp_path / "fake_keyring"
    d.mkdir(exist_ok=True)
    (d / "keyring.py").write_text(textwrap.dedent(body))
    return {"PYTHONPATH": str(d)}


def run_in_pty(cli: CLI, args: list[str], answers: list[tuple[str, str]], env: dict[str, str] | None = None,
               timeout: float = 30) -> tuple[int, str]:
    """Run the CLI on a terminal (a pty): wait for each prompt, type its answer. (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its terminal, stdin and stdout
        try:
            os.execve(EXE, [EXE, *args], dict(cli.env, **(env or {})))
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + timeout

    def read_some() -> bool:
        nonlocal out
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"timed out; output so far: {out.decode(errors='replace')!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        out += chunk
        return bool(chunk)

    done = False
    try:
        seen = 0  # output before this offset has been answered
        for prompt, answer in answers:
            while prompt.encode() not in out[seen:]:
                if not read_some():
                    raise AssertionError(f"no prompt {prompt!r}; output: {out.decode(errors='replace')!r}")
            seen = out.index(prompt.encode(), seen) + len(prompt)
            os.write(fd, answer.encode() + b"\r")
        while read_some():
            pass
        done = True
    finally:
        if not done:
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


# -- round trip ------------------------------------------------------------------------------

def test_encrypt_token_decrypt_round_trip_keeps_every_other_key_and_mode_0600(cli: CLI) -> None:
    cli.login()
    # things the user (or a newer version) put in the file must survive both rewrites
    with cli.config.open("a") as f:
        f.write('\n[x_hooks]\nafter_refresh = "notify ops"\n')
    text = cli.config.read_text().replace("[profiles.default]\n", "[profiles.default]\nx_custom = 7\n")
    text = "x_top = \"kept\"\n" + text
    cli.config.write_text(text)
    before = toml(cli)
    secrets = plain_secrets(cli)

    r = cli.run("encrypt", env=WITH_PASS)
    assert r.returncode == 0, r.stderr
    assert "3 secret(s) encrypted" in r.stdout
    assert mode(cli.config) == 0o600
    enc = toml(cli)
    table = enc["encryption"]
    assert (table["kdf"], table["n"], table["r"], table["p"], table["cipher"]) == ("scrypt", 2**15, 8, 1, "aes-256-gcm")
    assert len(base64.b64decode(table["salt"])) == 16 and table["check"].startswith("enc:v1:")
    prof = enc["profiles"]["default"]
    for field in ("client_secret", "access_token", "refresh_token"):
        assert prof[field].startswith("enc:v1:")
    for key, value in before["profiles"]["default"].items():
        if key not in ("client_secret", "access_token", "refresh_token"):
            assert prof[key] == value, key
    assert enc["x_top"] == "kept" and enc["x_hooks"] == {"after_refresh": "notify ops"}
    assert prof["x_custom"] == 7
    assert_no_secret(cli.config.read_text(), secrets + [PASS])

    r = cli.run("token", env=WITH_PASS)
    assert r.returncode == 0, r.stderr
    assert r.stdout == secrets[1] + "\n"  # the access token, unchanged (no refresh was needed)

    r = cli.run("decrypt", env=WITH_PASS)
    assert r.returncode == 0, r.stderr
    assert toml(cli) == before
    assert mode(cli.config) == 0o600
    r = cli.run("token")  # a plain file again: no passphrase needed
    assert r.returncode == 0 and r.stdout == secrets[1] + "\n"


def test_each_encrypt_uses_a_new_salt_and_nonces(cli: CLI) -> None:
    cli.login()
    encrypt(cli)
    first = toml(cli)
    assert cli.run("decrypt", env=WITH_PASS).returncode == 0
    encrypt(cli)
    second = toml(cli)
    assert first["encryption"]["salt"] != second["encryption"]["salt"]
    for field in ("client_secret", "access_token", "refresh_token"):
        assert first["profiles"]["default"][field] != second["profiles"]["default"][field]


def test_encrypt_twice_and_decrypt_plain_are_no_ops(cli: CLI) -> None:
    cli.login()
    plain = cli.config.read_bytes()
    r = cli.run("decrypt")
    assert r.returncode == 0 and "not encrypted" in r.stdout
    assert cli.config.read_bytes() == plain
    encrypt(cli)
    sealed = cli.config.read_bytes()
    r = cli.run("encrypt", env={"PROCORE_SETUP_PASSPHRASE": "another one entirely"})
    assert r.returncode == 0 and "encrypted already" in r.stdout
    assert cli.config.read_bytes() == sealed


# -- wrong and missing passphrase -----------------------------------------------------------------

@pytest.mark.parametrize("command", [["token"], ["refresh", "--force"], ["decrypt"], ["revoke"]])
def test_wrong_passphrase_exit_6_and_file_byte_identical(cli: CLI, command: list[str]) -> None:
    cli.login()
    encrypt(cli)
    before = cli.config.read_bytes()
    wrong = "Correct horse battery staple"
    r = cli.run(*command, env={"PROCORE_SETUP_PASSPHRASE": wrong})
    assert r.returncode == 6, r.stderr
    assert "Wrong passphrase" in r.stderr and str(cli.config) in r.stderr
    assert "PROCORE_SETUP_PASSPHRASE" in r.stderr  # names the source...
    assert wrong not in r.stderr + r.stdout  # ...never the passphrase
    assert r.stdout == ""
    assert cli.config.read_bytes() == before
    assert cli.fake.counts["token:refresh_token"] == 0
    assert cli.fake.counts["revoke"] == 0


def test_wrong_passphrase_on_an_expired_token_reaches_no_server_and_writes_nothing(cli: CLI) -> None:
    cli.login()
    encrypt(cli)
    set_expiry(cli.config, 60)  # within token's 300 s margin: the next `token` must refresh
    before = cli.config.read_bytes()
    r = cli.run("token", env={"PROCORE_SETUP_PASSPHRASE": "nope nope nope"})
    assert r.returncode == 6
    assert cli.config.read_bytes() == before
    assert cli.fake.counts["token:refresh_token"] == 0
    r = cli.run("token", env=WITH_PASS)  # and the chain is intact
    assert r.returncode == 0, r.stderr
    assert cli.fake.counts["token:refresh_token"] == 1


@pytest.mark.parametrize("command", [["token"], ["refresh", "--all", "--quiet"], ["decrypt"]])
def test_missing_passphrase_without_a_terminal_fails_at_once(cli: CLI, command: list[str]) -> None:
    cli.login()
    encrypt(cli)
    before = cli.config.read_bytes()
    # stdin is a pipe with the passphrase on it: a cron job's stdin is not a place to read it from
    r = cli.run(*command, input=PASS + "\n", timeout=30)
    assert r.returncode == 6, r.stderr
    for way in ("PROCORE_SETUP_PASSPHRASE", "--passphrase-command", "keyring", "terminal"):
        assert way in r.stderr
    assert "Nothing was changed" in r.stderr
    assert cli.config.read_bytes() == before


def test_empty_env_passphrase_is_an_error_not_an_empty_key(cli: CLI) -> None:
    cli.login()
    encrypt(cli)
    r = cli.run("token", env={"PROCORE_SETUP_PASSPHRASE": ""})
    assert r.returncode == 6 and "set but empty" in r.stderr


def test_encrypt_refuses_without_a_new_passphrase_or_with_an_empty_one(cli: CLI) -> None:
    cli.login()
    before = cli.config.read_bytes()
    r = cli.run("encrypt")
    assert r.returncode == 6 and "No new passphrase" in r.stderr
    r = cli.run("encrypt", env={"PROCORE_SETUP_PASSPHRASE": ""})
    assert r.returncode == 6
    assert cli.config.read_bytes() == before


def test_status_works_without_the_passphrase_and_shows_no_secret(cli: CLI) -> None:
    cli.login()
    secrets = plain_secrets(cli)
    encrypt(cli)
    r = cli.run("status")
    assert r.returncode == 0, r.stderr
    assert "secrets encrypted" in r.stdout and "(encrypted)" in r.stdout
    assert "Builder Demo Co." in r.stdout and "demo-client-id" in r.stdout
    r2 = cli.run("status", "--json")
    assert r2.returncode == 0
    for out in (r.stdout + r.stderr, r2.stdout + r2.stderr):
        assert_no_secret(out, secrets)
        assert "enc:v1:" not in out


# -- passphrase command ------------------------------------------------------------------------------

def test_stored_passphrase_command_opens_the_file_unattended(cli: CLI, tmp_path: Path) -> None:
    cli.login()
    secrets = plain_secrets(cli)
    cmd = script(tmp_path, "pass_show.py", f"print({PASS!r})\n")
    r = cli.run("encrypt", "--passphrase-command", cmd)  # the command is also the source of the new passphrase
    assert r.returncode == 0, r.stderr
    assert toml(cli)["encryption"]["passphrase_command"] == cmd
    r = cli.run("token")  # no env, no terminal: the stored command answers
    assert r.returncode == 0, r.stderr
    assert r.stdout == secrets[1] + "\n"
    r = cli.run("token", env=WITH_PASS)  # the environment still works, and comes first
    assert r.returncode == 0


def test_passphrase_command_on_the_command_line_for_decrypt(cli: CLI, tmp_path: Path) -> None:
    cli.login()
    encrypt(cli)
    cmd = script(tmp_path, "pass_show.py", f"import sys; sys.stdout.write({PASS!r} + '\\r\\n')\n")
    r = cli.run("decrypt", "--passphrase-command", cmd)
    assert r.returncode == 0, r.stderr
    assert "encryption" not in toml(cli)


def test_passphrase_command_runs_without_a_shell(cli: CLI, tmp_path: Path) -> None:
    cli.login()
    encrypt(cli)
    marker = tmp_path / "shell_ran"
    before = cli.config.read_bytes()
    r = cli.run("decrypt", "--passphrase-command", f"echo {PASS}; touch {marker}")
    assert r.returncode == 6  # echo printed the `;` and the rest literally: a wrong passphrase
    assert not marker.exists()
    assert cli.config.read_bytes() == before


def test_passphrase_command_that_fails(cli: CLI, tmp_path: Path) -> None:
    cli.login()
    encrypt(cli)
    before = cli.config.read_bytes()
    cmd = script(tmp_path, "broken.py", """\
        import sys
        print("half-a-secret-on-stdout")
        sys.exit(3)
    """)
    r = cli.run("decrypt", "--passphrase-command", cmd)
    assert r.returncode == 6
    assert "failed with exit code 3" in r.stderr
    assert f"`{os.path.basename(sys.executable)} …`" in r.stderr and "broken.py" not in r.stderr  # the program only
    assert "half-a-secret" not in r.stderr + r.stdout
    assert cli.config.read_bytes() == before

    r = cli.run("decrypt", "--passphrase-command", "/nonexistent/pass-helper show x")
    assert r.returncode == 6 and "cannot run the passphrase command" in r.stderr
    r = cli.run("decrypt", "--passphrase-command", f"{shlex.quote(sys.executable)} -c pass")
    assert r.returncode == 6 and "printed nothing" in r.stderr
    assert cli.config.read_bytes() == before


@pytest.mark.parametrize("kind", ["direct", "with_child"])
def test_passphrase_command_that_hangs_is_stopped(cli: CLI, tmp_path: Path, kind: str) -> None:
    cli.login()
    cmd = script(tmp_path, "pass_show.py", f"print({PASS!r})\n")
    encrypt(cli, "--passphrase-command", cmd, env={})
    before = cli.config.read_bytes()
    pids = tmp_path / "pids"
    # `with_child` starts a grandchild that holds stdout open: killing the command alone is not enough
    body = f"""\
        import os, subprocess, sys, time
        procs = []
        if {kind == "with_child"!r}:
            procs.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]))
        with open({str(pids)!r}, "w") as f:
            f.write(" ".join(str(p) for p in [os.getpid()] + [c.pid for c in procs]))
        print("not-yet", flush=True)
        time.sleep(120)
    """
    hang = script(tmp_path, "hang.py", body)
    text = cli.config.read_text().replace(f"passphrase_command = {tomllib_str(cmd)}",
                                          f"passphrase_command = {tomllib_str(hang)}")
    assert text != cli.config.read_text()
    cli.config.write_text(text)
    before = cli.config.read_bytes()
    # the command sleeps 120 s: only a run that stops it finishes within the bound
    r = cli.run("token", env={"PROCORE_SETUP_PASSPHRASE_TIMEOUT": "2"}, timeout=30)
    assert r.returncode == 6, r.stderr
    assert "did not finish within 2 s" in r.stderr and f"`{os.path.basename(sys.executable)} …`" in r.stderr
    assert "not-yet" not in r.stderr + r.stdout
    assert cli.config.read_bytes() == before
    for pid in map(int, pids.read_text().split()):
        assert not _alive(pid), "the passphrase command (or its child) was left running"


def tomllib_str(s: str) -> str:
    import tomli_w

    return tomli_w.dumps({"x": s})[len("x = "):].strip()


def _alive(pid: int) -> bool:
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        try:  # a zombie counts as dead
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return False
        except OSError:
            return False
        time.sleep(0.1)
    return True


def test_encrypt_refuses_a_stored_command_that_does_not_print_the_passphrase(cli: CLI, tmp_path: Path) -> None:
    cli.login()
    before = cli.config.read_bytes()
    other = script(tmp_path, "other.py", "print('something else')\n")
    r = cli.run("encrypt", "--passphrase-command", other, env=WITH_PASS)
    assert r.returncode == 6 and "does not print the passphrase" in r.stderr
    assert cli.config.read_bytes() == before


def test_a_passphrase_command_can_be_added_to_an_encrypted_file(cli: CLI, tmp_path: Path) -> None:
    cli.login()
    encrypt(cli)
    before = cli.config.read_bytes()
    wrong = script(tmp_path, "wrong.py", "print('not it')\n")
    r = cli.run("encrypt", "--passphrase-command", wrong)
    assert r.returncode == 6 and cli.config.read_bytes() == before
    right = script(tmp_path, "right.py", f"print({PASS!r})\n")
    r = cli.run("encrypt", "--passphrase-command", right)
    assert r.returncode == 0, r.stderr
    after = toml(cli)
    assert after["encryption"]["passphrase_command"] == right
    old = tomllib.loads(before.decode())
    assert after["profiles"] == old["profiles"]  # the ciphertexts are untouched
    assert cli.run("token").returncode == 0


# -- OS keyring ------------------------------------------------------------------------------------

def test_keyring_answers(cli: CLI, tmp_path: Path) -> None:
    cli.login()
    encrypt(cli)
    env = fake_keyring(tmp_path, f"""\
        def get_password(service, username):
            if service == "procore-setup" and username == {str(cli.config)!r}:
                return {PASS!r}
            return None
    """)
    r = cli.run("token", env=env)
    assert r.returncode == 0, r.stderr
    env = fake_keyring(tmp_path, "def get_password(service, username):\n    return None\n")
    # the key cache off: else the key the first run cached opens the file without asking (test_key_cache.py)
    r = cli.run("token", env=dict(env, PROCORE_SETUP_KEY_CACHE="0"))
    assert r.returncode == 6 and "OS keyring: has no entry for this file" in r.stderr


def test_a_hung_keyring_does_not_hang_a_cron_job(cli: CLI, tmp_path: Path) -> None:
    cli.login()
    encrypt(cli)
    env = fake_keyring(tmp_path, """\
        import time
        def get_password(service, username):
            time.sleep(120)
    """)
    r = cli.run("token", env=env, timeout=30)  # the keyring sleeps 120 s: cut off, the test fails
    assert r.returncode == 6
    assert "did not answer within 3 s" in r.stderr


def file_keyring(tmp_path: Path, cli: CLI, *, broken_get: bool = False) -> tuple[dict[str, str], Path]:
    """A `keyring` module backed by a file (the OS keyring of these tests), and that file."""
    store = tmp_path / "keyring.txt"
    env = fake_keyring(tmp_path, f"""\
        import pathlib
        STORE = pathlib.Path({str(store)!r})
        def get_password(service, username):
            if {broken_get!r}:
                return "something else"
            if (service, username) == ("procore-setup", {str(cli.config)!r}) and STORE.exists():
                return STORE.read_text()
            return None
        def set_password(service, username, password):
            assert (service, username) == ("procore-setup", {str(cli.config)!r})
            STORE.write_text(password)
    """)
    return env, store


def test_encrypt_keyring_keeps_the_passphrase_there_for_later_runs(cli: CLI, tmp_path: Path) -> None:
    cli.login()
    env, store = file_keyring(tmp_path, cli)
    r = cli.run("encrypt", "--keyring", env=dict(env, **WITH_PASS))
    assert r.returncode == 0, r.stderr
    assert "The passphrase is in the OS keyring" in r.stdout
    assert store.read_text() == PASS and "encryption" in toml(cli)
    assert cli.run("token", env=env).returncode == 0  # no other source needed
    # on a file encrypted already: checked against the file first, then kept
    store.unlink()
    assert cli.run("encrypt", "--keyring", env=dict(env, PROCORE_SETUP_PASSPHRASE="wrong one!")).returncode == 6
    assert not store.exists()
    r = cli.run("encrypt", "--keyring", env=dict(env, **WITH_PASS))
    assert r.returncode == 0 and "is now in the OS keyring" in r.stdout, r.stderr
    assert store.read_text() == PASS
    r = cli.run("encrypt", "--keyring", env=env)
    assert r.returncode == 0 and "holds its passphrase already" in r.stdout


@pytest.mark.parametrize("keyring", ["not installed", "gives back something else"])
def test_encrypt_keyring_that_cannot_keep_it_changes_nothing(cli: CLI, tmp_path: Path, keyring: str) -> None:
    cli.login()
    if keyring == "not installed":  # even where the extra is installed
        env = fake_keyring(tmp_path, "raise ImportError('no keyring here')\n")
    else:
        env = file_keyring(tmp_path, cli, broken_get=True)[0]
    before = cli.config.read_bytes()
    r = cli.run("encrypt", "--keyring", env=dict(env, **WITH_PASS))
    assert r.returncode == 6 and "Cannot keep the passphrase" in r.stderr and "Nothing was changed" in r.stderr
    assert keyring.split()[-1] in r.stderr or "different value" in r.stderr
    assert cli.config.read_bytes() == before


# -- the hidden prompt, on a terminal ---------------------------------------------------------------

def test_on_a_terminal_encrypt_asks_twice_and_token_asks_once(cli: CLI) -> None:
    cli.login()
    secrets = plain_secrets(cli)
    code, out = run_in_pty(cli, ["encrypt"], [("New passphrase for", "first try"), ("Repeat it:", "typo"),
                                              ("New passphrase for", ""),
                                              ("New passphrase for", PASS), ("Repeat it:", PASS)])
    assert code == 0, out
    assert "differ" in out and "cannot be empty" in out
    assert PASS not in out  # not echoed
    assert "encryption" in toml(cli)
    code, out = run_in_pty(cli, ["token"], [("Passphrase for", "wrong"), ("Wrong passphrase.", PASS)])
    assert code == 0, out
    assert secrets[1] in out
    # the key cache off: else the key the run above cached opens the file without asking (test_key_cache.py)
    code, out = run_in_pty(cli, ["token"], [("Passphrase for", "a"), ("Wrong passphrase.", "b"),
                                            ("Wrong passphrase.", "c")], env={"PROCORE_SETUP_KEY_CACHE": "0"})
    assert code == 6 and "Wrong passphrase for" in out


# -- refresh of an encrypted file --------------------------------------------------------------------

def test_encrypted_refresh_under_concurrency_refreshes_once(cli: CLI) -> None:
    fake = cli.fake
    cli.login()
    secrets = plain_secrets(cli)
    encrypt(cli)
    set_expiry(cli.config, 60)  # the saved token is within `token`'s 300 s margin: it must be refreshed
    fake.expire_access_tokens()
    procs = [cli.popen("token", env=WITH_PASS) for _ in range(12)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    for _out, err, code in results:
        assert code == 0, err
    tokens = {out for out, _, _ in results}
    assert len(tokens) == 1
    token = tokens.pop().strip()
    assert fake.counts["token:refresh_token"] == 1
    assert token != secrets[1] and fake.access_token_valid(token)

    text = cli.config.read_text()
    data = tomllib.loads(text)  # parses
    prof = data["profiles"]["default"]
    assert data["encryption"] and all(prof[f].startswith("enc:v1:") for f in
                                      ("client_secret", "access_token", "refresh_token"))
    assert "refresh_started_at" not in prof
    r = cli.run("decrypt", env=WITH_PASS)
    assert r.returncode == 0, r.stderr
    new = toml(cli)["profiles"]["default"]
    assert new["access_token"] == token
    assert fake.refresh_token_state(new["refresh_token"]) == "active"
    assert fake.refresh_token_state(secrets[2]) == "used"
    # the encrypted file never held any of the old or new secrets in the clear
    assert_no_secret(text, secrets + [new["access_token"], new["refresh_token"], PASS])


def test_login_again_into_an_encrypted_file_keeps_it_encrypted(cli: CLI) -> None:
    cli.login()
    encrypt(cli)
    salt = toml(cli)["encryption"]["salt"]
    cli.env.update(WITH_PASS)
    cli.login()
    data = toml(cli)
    assert data["encryption"]["salt"] == salt
    prof = data["profiles"]["default"]
    assert all(prof[f].startswith("enc:v1:") for f in ("client_secret", "access_token", "refresh_token"))
    assert CLIENT_SECRET not in cli.config.read_text()
    r = cli.run("token")
    assert r.returncode == 0, r.stderr


# -- a tampered file ------------------------------------------------------------------------------------

def test_values_swapped_between_fields_are_refused(cli: CLI) -> None:
    cli.login()
    encrypt(cli)
    data = toml(cli)
    prof = data["profiles"]["default"]
    text = cli.config.read_text()
    a, b = prof["access_token"], prof["refresh_token"]
    text = text.replace(a, "SWAP").replace(b, a).replace("SWAP", b)
    cli.config.write_text(text)
    before = cli.config.read_bytes()
    r = cli.run("token", env=WITH_PASS)
    assert r.returncode == 6 and "altered" in r.stderr
    assert cli.config.read_bytes() == before


def test_absurd_kdf_parameters_are_refused_before_any_work(cli: CLI) -> None:
    cli.login()
    encrypt(cli)
    cli.config.write_text(cli.config.read_text().replace("n = 32768", "n = 1073741824"))
    before = cli.config.read_bytes()
    # n = 2**30 would need 1 TiB of memory: refused from the parameters alone, before any key derivation
    r = cli.run("token", env=WITH_PASS, timeout=30)
    assert r.returncode == 6 and "out of bounds" in r.stderr
    assert r.stdout == "" and cli.config.read_bytes() == before


def test_ciphertexts_without_their_encryption_table_are_refused(cli: CLI) -> None:
    cli.login()
    encrypt(cli)
    text = cli.config.read_text()
    start, end = text.index("[encryption]"), text.index("[profiles.default]")
    cli.config.write_text(text[:start] + text[end:])
    before = cli.config.read_bytes()
    r = cli.run("token", env=WITH_PASS)
    assert r.returncode == 6 and "no [encryption] table" in r.stderr
    assert "enc:v1:" not in r.stdout  # never handed out as if it were a token
    assert cli.config.read_bytes() == before


def test_refresh_all_asks_the_passphrase_command_once(cli: CLI, tmp_path: Path) -> None:
    cli.login("default")
    cli.login("second")
    runs = tmp_path / "runs"
    cmd = script(tmp_path, "pass_show.py", f"""\
        with open({str(runs)!r}, "a") as f:
            f.write("x")
        print({PASS!r})
    """)
    encrypt(cli, "--passphrase-command", cmd, env={})
    runs.unlink()
    r = cli.run("refresh", "--all", "--force")
    assert r.returncode == 0, r.stderr
    assert cli.fake.counts["token:refresh_token"] == 2
    assert runs.read_text() == "x"
    data = toml(cli)
    for name in ("default", "second"):
        assert data["profiles"][name]["refresh_token"].startswith("enc:v1:")


def test_a_wrong_passphrase_printed_by_a_command_is_not_repeated_in_the_message(cli) -> None:
    cli.login()
    r = cli.run("encrypt", env={"PROCORE_SETUP_PASSPHRASE": "the right passphrase"})
    assert r.returncode == 0, r.stderr
    r = cli.run("decrypt", "--passphrase-command", "echo wrong-but-secret-words")
    assert r.returncode == 6
    assert "Wrong passphrase" in r.stderr and "echo …" in r.stderr
    assert "wrong-but-secret-words" not in r.stdout + r.stderr  # cron mail must not carry it


# -- changing the passphrase ---------------------------------------------------------------------------

NEW = "tangerine orbit 42 quill"  # not English prose: the guard matches any 16 characters
CHANGE = {"PROCORE_SETUP_PASSPHRASE": PASS, "PROCORE_SETUP_NEW_PASSPHRASE": NEW}


def test_passphrase_change_reencrypts_in_one_rewrite_and_only_the_new_one_opens_it(cli: CLI) -> None:
    cli.login()
    with cli.config.open("a") as f:
        f.write('\n[x_hooks]\nafter_refresh = "notify ops"\n')
    secrets = plain_secrets(cli)
    encrypt(cli)
    old = toml(cli)
    old["encryption"]["x_future"] = "kept"  # a key a newer version put in the table
    import tomli_w
    cli.config.write_text(tomli_w.dumps(old))
    inode = cli.config.stat().st_ino

    r = cli.run("passphrase", env=CHANGE)
    assert r.returncode == 0, r.stderr
    assert "passphrase changed; 3 secret(s) encrypted again" in r.stdout
    assert "Jobs that set PROCORE_SETUP_PASSPHRASE need the new passphrase now" in r.stdout
    assert mode(cli.config) == 0o600 and cli.config.stat().st_ino != inode  # replaced by a rename
    new = toml(cli)
    assert new["encryption"]["salt"] != old["encryption"]["salt"]
    assert new["encryption"]["check"] != old["encryption"]["check"]
    assert new["encryption"]["x_future"] == "kept" and new["x_hooks"] == {"after_refresh": "notify ops"}
    for field in ("client_secret", "access_token", "refresh_token"):
        assert new["profiles"]["default"][field].startswith("enc:v1:")
        assert new["profiles"]["default"][field] != old["profiles"]["default"][field]
    assert_no_secret(cli.config.read_text(), secrets + [PASS, NEW])
    assert PASS not in r.stdout + r.stderr and NEW not in r.stdout + r.stderr

    before = cli.config.read_bytes()
    r = cli.run("token", env=WITH_PASS)  # the old passphrase no longer opens it
    assert r.returncode == 6 and "Wrong passphrase" in r.stderr
    r = cli.run("token", env={"PROCORE_SETUP_PASSPHRASE": NEW})
    assert r.returncode == 0 and r.stdout == secrets[1] + "\n"
    assert cli.config.read_bytes() == before
    assert cli.run("decrypt", env={"PROCORE_SETUP_PASSPHRASE": NEW}).returncode == 0
    assert cli.secrets() == secrets  # the same secrets came out


@pytest.mark.parametrize("case", ["plain file", "wrong old", "same as old", "no new", "empty new"])
def test_passphrase_change_refusals_exit_with_a_reason_and_change_nothing(cli: CLI, case: str) -> None:
    cli.login()
    if case != "plain file":
        encrypt(cli)
    env = {"plain file": CHANGE,
           "wrong old": {"PROCORE_SETUP_PASSPHRASE": "not it at all", "PROCORE_SETUP_NEW_PASSPHRASE": NEW},
           "same as old": {"PROCORE_SETUP_PASSPHRASE": PASS, "PROCORE_SETUP_NEW_PASSPHRASE": PASS},
           "no new": WITH_PASS,
           "empty new": {"PROCORE_SETUP_PASSPHRASE": PASS, "PROCORE_SETUP_NEW_PASSPHRASE": ""}}[case]
    before = cli.config.read_bytes()
    r = cli.run("passphrase", env=env)
    code, words = {"plain file": (2, "not encrypted, so there is no passphrase to change"),
                   "wrong old": (6, "Wrong passphrase for"),
                   "same as old": (2, "is the same as the old one. Nothing was changed."),
                   "no new": (2, "No new passphrase for"),
                   "empty new": (2, "PROCORE_SETUP_NEW_PASSPHRASE is set but empty")}[case]
    assert r.returncode == code and words in r.stderr, r.stderr
    assert cli.config.read_bytes() == before


def test_passphrase_change_will_not_lock_out_a_stored_command(cli: CLI, tmp_path: Path) -> None:
    cli.login()
    prints_old = script(tmp_path, "old.py", f"print({PASS!r})\n")
    encrypt(cli, "--passphrase-command", prints_old)
    before = cli.config.read_bytes()
    # the stored command would still print the old passphrase: cron would be locked out
    r = cli.run("passphrase", env={"PROCORE_SETUP_NEW_PASSPHRASE": NEW})
    assert r.returncode == 6 and "unattended runs would be locked out" in r.stderr, r.stderr
    assert "--new-passphrase-command" in r.stderr
    assert cli.config.read_bytes() == before
    # a command that prints the new passphrase replaces it; cron then needs nothing more
    prints_new = script(tmp_path, "new.py", f"print({NEW!r})\n")
    r = cli.run("passphrase", "--new-passphrase-command", prints_new)
    assert r.returncode == 0, r.stderr
    assert "Unattended runs will get the passphrase from the new stored command" in r.stdout
    assert toml(cli)["encryption"]["passphrase_command"] == prints_new
    assert cli.run("token").returncode == 0
    # the stored command was updated to print the next one first: then it may stay
    nxt = "third: walrus kettle 9"
    (tmp_path / "new.py").write_text(f"print({nxt!r})\n")
    r = cli.run("passphrase", env={"PROCORE_SETUP_PASSPHRASE": NEW, "PROCORE_SETUP_NEW_PASSPHRASE": nxt})
    assert r.returncode == 0 and "unattended runs are unaffected" in r.stdout, r.stderr
    assert cli.run("token").returncode == 0


def test_passphrase_change_updates_the_keyring_entry_that_gave_the_old_one(cli: CLI, tmp_path: Path) -> None:
    cli.login()
    encrypt(cli)
    store = tmp_path / "keyring.txt"
    store.write_text(PASS)
    env = fake_keyring(tmp_path, f"""\
        import pathlib
        STORE = pathlib.Path({str(store)!r})
        def get_password(service, username):
            return STORE.read_text() if (service, username) == ("procore-setup", {str(cli.config)!r}) else None
        def set_password(service, username, password):
            assert (service, username) == ("procore-setup", {str(cli.config)!r})
            STORE.write_text(password)
    """)
    r = cli.run("passphrase", env=dict(env, PROCORE_SETUP_NEW_PASSPHRASE=NEW))
    assert r.returncode == 0, r.stderr
    assert "The OS keyring entry now holds the new passphrase" in r.stdout
    assert store.read_text() == NEW
    assert cli.run("token", env=env).returncode == 0


def test_on_a_terminal_passphrase_asks_the_old_once_and_the_new_twice(cli: CLI) -> None:
    cli.login()
    secrets = plain_secrets(cli)
    encrypt(cli)
    code, out = run_in_pty(cli, ["passphrase"], [("Passphrase for", PASS), ("New passphrase for", NEW),
                                                 ("Repeat it:", NEW)])
    assert code == 0, out
    assert PASS not in out and NEW not in out
    r = cli.run("token", env={"PROCORE_SETUP_PASSPHRASE": NEW})
    assert r.returncode == 0 and r.stdout == secrets[1] + "\n"


def test_passphrase_change_with_a_keyring_that_cannot_take_the_new_one_changes_nothing(cli: CLI,
                                                                                     tmp_path: Path) -> None:
    cli.login()
    encrypt(cli)
    env = fake_keyring(tmp_path, f"""\
        def get_password(service, username):
            return {PASS!r}
        def set_password(service, username, password):
            raise RuntimeError("the keyring is locked")
    """)
    before = cli.config.read_bytes()
    r = cli.run("passphrase", env=dict(env, PROCORE_SETUP_NEW_PASSPHRASE=NEW))
    # the keyring gave the old passphrase, so runs rely on it: they must not be locked out
    assert r.returncode == 6 and "Cannot keep the passphrase" in r.stderr and "failed (RuntimeError)" in r.stderr
    assert cli.config.read_bytes() == before
    assert cli.run("token", env=env).returncode == 0
