"""Hostile files, paths and environment (issue 9): the credentials file, its directory and lock,
the environment of a passphrase command, and the command line, in the hands of someone who
means harm (or of a hand edit gone wrong).

Each test runs the real `procore-setup` against a real file and the fake Procore on 127.0.0.1,
checks the exit code and the message, and that nothing was lost. Each id in IDS is a row of the
table "Hostile files, paths and environment (issue 9)" in docs/reliability.md. "Another user"
is `nobody` (uid 65534), made with os.chown, so those tests need root (they run as root in CI).
Requests that would escape to a non-loopback host go to a dead proxy on 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import os
import resource
import shlex
import stat
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from helpers.cli import CLI, EXE

NOBODY = 65534
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root, to make files of another user (nobody) with chown")
PASS = "correct horse battery staple"
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, nothing leaves the machine
NO_NET = {"ALL_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY, "HTTP_PROXY": DEAD_PROXY,
          "NO_PROXY": "127.0.0.1,localhost"}

# The rows of docs/reliability.md "Hostile files, paths and environment (issue 9)".
IDS = [
    "passphrase-command-env", "passphrase-command-shown",
    "flag-company-id-echo", "flag-min-valid-echo", "command-word-echo", "command-word-choose-from-echo",
    "flag-abbrev-value-echo", "flag-explicit-argument-echo",
    "config-fifo", "config-proc-pagemap", "config-proc-mem",
    "save-too-big", "save-into-the-last-room", "file-nested-deep", "file-nested-very-deep",
    "lock-foreign-held", "lock-symlink", "lock-readable-by-others", "lock-fifo", "lock-hard-link",
    "config-symlink-foreign", "file-foreign-in-shared-dir", "temp-file-foreign-kept",
    "hint-profile-shell", "hint-profile-escape", "hint-missing-field-profile-shell", "hint-chmod-symlink",
    "refresh-all-profile-name-escape", "file-client-secret-line-break",
    "url-empty-label", "url-ipv6-unclosed", "url-bad-idna", "url-plain-http-remote",
    "file-token-line-break", "file-token-huge", "file-token-line-break-encrypted", "file-token-enc-v2",
    "file-token-plain-in-encrypted",
    "decrypt-token-enc-v2",
]


def first_message(r: subprocess.CompletedProcess[str]) -> str:
    for line in r.stderr.splitlines():
        if line.startswith("procore-setup"):
            return line
    return r.stderr.splitlines()[0] if r.stderr.strip() else ""


def read_toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def edit_profile(path: Path, profile: str, **fields: Any) -> bytes:
    """Change fields of one profile by hand (as a person or an attacker would); returns the new bytes."""
    data = read_toml(path)
    data["profiles"][profile].update(fields)
    path.write_bytes(tomli_w.dumps(data).encode())  # keeps the file's mode (0600)
    return path.read_bytes()


def script(tmp_path: Path, name: str, body: str) -> str:
    """A python script on disk, and the command line that runs it (no shell needed)."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(path))}"


def encrypt(cli: CLI) -> None:
    r = cli.run("encrypt", env={"PROCORE_SETUP_PASSPHRASE": PASS})
    assert r.returncode == 0, r.stderr


def run_bounded(cli: CLI, *args: str, env: dict[str, str] | None = None,
                timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """cli.run, but a hang is a failure that says so (not a TimeoutExpired traceback)."""
    try:
        return cli.run(*args, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`procore-setup {' '.join(args)}` still ran after {timeout:g} s (it hangs)")


# -- 1. the passphrase command ------------------------------------------------------------------

def test_passphrase_command_gets_no_secret_from_the_environment(cli: CLI, tmp_path: Path) -> None:
    """passphrase-command-env"""
    cli.login()
    encrypt(cli)
    dump = tmp_path / "env-seen"
    new = "a brand new passphrase"
    cmd = script(tmp_path, "new_pass.py", f"""\
        import os
        with open({str(dump)!r}, "w") as f:
            f.write("\\n".join(sorted(k for k in os.environ if k.startswith("PROCORE"))))
        print({new!r})
    """)
    r = cli.run("passphrase", "--new-passphrase-command", cmd,
                env={"PROCORE_SETUP_PASSPHRASE": PASS, "PROCORE_SETUP_NEW_PASSPHRASE": new,
                     "PROCORE_CLIENT_SECRET": "a-client-secret-in-the-env"})
    assert r.returncode == 0, r.stderr
    seen = dump.read_text().split()
    assert "PROCORE_SETUP_CONFIG" in seen  # the rest of the environment is passed on
    for name in ("PROCORE_SETUP_PASSPHRASE", "PROCORE_SETUP_NEW_PASSPHRASE", "PROCORE_CLIENT_SECRET"):
        assert name not in seen, f"the passphrase command inherited {name}"


def test_a_failing_passphrase_command_is_named_by_its_program_only(cli: CLI, tmp_path: Path) -> None:
    """passphrase-command-shown"""
    cli.login()
    encrypt(cli)
    before = cli.config.read_bytes()
    cmd = script(tmp_path, "vault_helper.py", "import sys; sys.exit(3)\n") + " --token=s.vault-token-0123456789"
    r = cli.run("decrypt", "--passphrase-command", cmd)
    assert r.returncode == 6, r.stderr
    line = first_message(r)
    assert "failed with exit code 3" in line, r.stderr
    assert f"`{os.path.basename(sys.executable)} …`" in line, r.stderr
    assert "vault-token" not in r.stderr and "vault_helper" not in r.stderr, r.stderr
    assert cli.config.read_bytes() == before


# -- 2. parser errors do not echo values ------------------------------------------------------------

SECRET_WORD = "hunter2-pasted-in-the-wrong-place"


@pytest.mark.parametrize("case, args, kept", [
    pytest.param(c, a, k, id=c) for c, a, k in [
        ("flag-company-id-echo", ["login", "--plain", "--company-id", SECRET_WORD], "argument --company-id"),
        ("flag-min-valid-echo", ["token", "--min-valid", SECRET_WORD], "argument --min-valid"),
        ("command-word-echo", [SECRET_WORD], "choose from"),
        ("command-word-choose-from-echo", [f"{SECRET_WORD} (choose from {SECRET_WORD})"], "choose from"),
        ("flag-abbrev-value-echo", ["login", f"--co={SECRET_WORD}"], "ambiguous option: --co="),
        ("flag-explicit-argument-echo", ["login", f"--plain={SECRET_WORD}"], "argument --plain"),
    ]
])
def test_parser_errors_never_echo_the_value(cli: CLI, secret_guard: Any, case: str, args: list[str],
                                            kept: str) -> None:
    secret_guard.add(SECRET_WORD, "a value typed on the command line")
    r = cli.run(*args)
    assert r.returncode == 2, r.stderr
    assert kept in r.stderr, r.stderr  # the argument's name (or the choices) still says what is wrong
    assert SECRET_WORD not in r.stderr + r.stdout
    assert "hunter2" not in r.stderr
    if case.startswith("command-word"):
        assert "token" in first_message(r)  # the valid choices are listed


# -- 3. FIFOs and pseudo-files --------------------------------------------------------------------

@pytest.mark.parametrize("command", ["token", "status"])
def test_config_pointing_at_a_fifo_fails_at_once(cli: CLI, tmp_path: Path, command: str) -> None:
    """config-fifo"""
    fifo = tmp_path / "credentials.toml"
    os.mkfifo(fifo, 0o600)
    r = run_bounded(cli, "--config", str(fifo), command)
    assert r.returncode == 6, r.stderr
    assert "is a named pipe (FIFO), not a credentials file" in first_message(r), r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # left as it was


def _small_address_space() -> None:  # in the child: a regression reads gigabytes, it must not take the machine
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def test_config_pointing_at_proc_pagemap_stops_at_the_cap(cli: CLI) -> None:
    """config-proc-pagemap: /proc/self/pagemap says it has 0 bytes and holds gigabytes."""
    try:
        r = subprocess.run([EXE, "--config", "/proc/self/pagemap", "token"], capture_output=True, text=True,
                           env=cli.env, timeout=60, preexec_fn=_small_address_space)
    except subprocess.TimeoutExpired:
        pytest.fail("`token --config /proc/self/pagemap` still read after 60 s")
    assert r.returncode == 6, r.stderr
    assert "far too big for a credentials file" in first_message(r), r.stderr


def test_config_pointing_at_a_file_that_cannot_be_read_is_exit_6(cli: CLI) -> None:
    """config-proc-mem: /proc/self/mem is a regular file of the user, 0600, that fails to read (EIO)."""
    r = run_bounded(cli, "--config", "/proc/self/mem", "token")
    assert r.returncode == 6, r.stderr
    assert "/mem: cannot read: Input/output error" in first_message(r), r.stderr


# -- 4. size and depth ---------------------------------------------------------------------------

def test_a_save_that_would_be_too_big_to_read_back_is_refused(cli: CLI) -> None:
    """save-too-big: an 800 KB unknown array, which tomli-w writes one element a line."""
    cli.login()
    text = cli.config.read_text()
    junk = "junk = [" + ",".join(["0"] * 400_000) + "]\n"
    cli.config.write_text(junk + text)
    before = cli.config.read_bytes()
    assert 700_000 < len(before) < 1 << 20  # readable as it is
    r = cli.run("refresh", "--force", env=NO_NET)
    assert r.returncode == 6, r.stderr
    line = first_message(r)
    assert "Not saved" in line and "would grow to" in line, r.stderr
    assert "the key junk" in r.stderr, r.stderr  # the hint names what takes the room
    assert cli.config.read_bytes() == before
    assert cli.fake.counts["token:refresh_token"] == 0  # refused before anything was sent
    r = cli.run("token")  # and the file is still usable
    assert r.returncode == 0, r.stderr


def test_a_file_in_the_last_64_kib_below_the_cap_is_not_refreshed(cli: CLI) -> None:
    """save-into-the-last-room: a refresh is refused before it sends anything when the file is
    within 64 KiB of the 1 MiB cap, so the save of a new pair (which may be longer) always fits."""
    cli.login()
    text = cli.config.read_text()
    cli.config.write_text('note = "' + "n" * 1_000_000 + '"\n' + text)  # a string is rewritten as it is
    before = cli.config.read_bytes()
    assert (1 << 20) - (64 << 10) < len(before) < 1 << 20
    r = cli.run("refresh", "--force", env=NO_NET)
    assert r.returncode == 6, r.stderr
    assert "Not saved" in first_message(r) and "the key note" in r.stderr, r.stderr
    assert cli.config.read_bytes() == before
    assert cli.fake.counts["token:refresh_token"] == 0
    assert cli.run("token").returncode == 0


@pytest.mark.parametrize("depth, case", [pytest.param(300, "file-nested-deep", id="file-nested-deep"),
                                         pytest.param(3000, "file-nested-very-deep", id="file-nested-very-deep")])
def test_a_deeply_nested_value_is_refused_when_loading(cli: CLI, depth: int, case: str) -> None:
    """file-nested-deep (every save would hit RecursionError), file-nested-very-deep (so would the parser)."""
    cli.login()
    lines = cli.config.read_text().splitlines()
    at = lines.index("[profiles.default]") + 1
    lines.insert(at, "nested = " + "[" * depth + "1" + "]" * depth)
    cli.config.write_text("\n".join(lines) + "\n")
    before = cli.config.read_bytes()
    r = cli.run("refresh", "--force", env=NO_NET)
    assert r.returncode == 6, r.stderr
    line = first_message(r)
    if case == "file-nested-deep":
        assert "profile 'default': field nested is nested more than 32 levels deep" in line, r.stderr
    else:
        assert "nested thousands of levels deep" in line, r.stderr
    assert cli.config.read_bytes() == before
    assert cli.fake.counts["token:refresh_token"] == 0


# -- 5. the lock file and shared directories ------------------------------------------------------

def _in_sticky_shared_dir(cli: CLI, tmp_path: Path) -> CLI:
    """A logged-in CLI whose credentials file is in a sticky world-writable directory (like /tmp)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    other = CLI(shared / "credentials.toml", cli.fake)
    other.login()
    return other


@needs_root
def test_a_lock_file_of_another_user_held_open_does_not_block_refreshes(cli: CLI, tmp_path: Path) -> None:
    """lock-foreign-held"""
    c = _in_sticky_shared_dir(cli, tmp_path)
    lock = Path(str(c.config) + ".lock")
    lock.unlink(missing_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        os.fchmod(fd, 0o666)
        os.fchown(fd, NOBODY, NOBODY)
        fcntl.flock(fd, fcntl.LOCK_EX)  # "another user" holds it, for ever
        before = c.config.read_bytes()
        r = c.run("refresh", "--force", env=dict(NO_NET, PROCORE_SETUP_LOCK_TIMEOUT="3"))
    finally:
        os.close(fd)
    assert r.returncode == 6, r.stderr
    line = first_message(r)
    assert f"The lock file {lock} is owned by another user (uid {NOBODY})" in line, r.stderr
    assert "can be written by others" in r.stderr, r.stderr  # says which directory is the trouble,
    assert "only you can write to" in r.stderr, r.stderr  # and the fix
    assert c.config.read_bytes() == before
    assert c.fake.counts["token:refresh_token"] == 0


@needs_root
def test_a_symlink_planted_as_the_lock_file_is_not_followed(cli: CLI, tmp_path: Path) -> None:
    """lock-symlink"""
    c = _in_sticky_shared_dir(cli, tmp_path)
    lock = Path(str(c.config) + ".lock")
    lock.unlink(missing_ok=True)
    target = tmp_path / "made-by-root"
    os.symlink(target, lock)
    os.lchown(lock, NOBODY, NOBODY)
    before = c.config.read_bytes()
    r = c.run("refresh", "--force", env=NO_NET)
    assert r.returncode == 6, r.stderr
    assert f"The lock file {lock} is a symbolic link" in first_message(r), r.stderr
    assert not os.path.lexists(target), "the link was followed: root created the file it points to"
    assert c.config.read_bytes() == before
    assert c.fake.counts["token:refresh_token"] == 0


def test_a_lock_file_others_can_open_is_refused(cli: CLI) -> None:
    """lock-readable-by-others: a read-only descriptor is enough to hold a flock."""
    cli.login()
    lock = Path(str(cli.config) + ".lock")
    lock.touch()
    os.chmod(lock, 0o644)
    before = cli.config.read_bytes()
    r = cli.run("refresh", "--force", env=NO_NET)
    assert r.returncode == 6, r.stderr
    assert "has permissions 0644, so others can open it" in first_message(r), r.stderr
    assert f"rm -- {shlex.quote(str(lock))}" in r.stderr, r.stderr
    assert cli.config.read_bytes() == before


@pytest.mark.parametrize("case", ["lock-fifo", "lock-hard-link"])
def test_a_lock_file_that_is_no_plain_file_of_its_own_is_refused(cli: CLI, tmp_path: Path, case: str) -> None:
    cli.login()
    lock = Path(str(cli.config) + ".lock")
    lock.unlink()
    if case == "lock-fifo":
        os.mkfifo(lock, 0o600)
        says = "is not a regular file"
    else:
        other = tmp_path / "some-file-of-mine"
        other.write_text("mine\n")
        os.chmod(other, 0o600)
        os.link(other, lock)
        says = "has other hard links"
    before = cli.config.read_bytes()
    r = cli.run("refresh", "--force", env=NO_NET)
    assert r.returncode == 6, r.stderr
    assert f"The lock file {lock} {says}" in first_message(r), r.stderr
    assert cli.config.read_bytes() == before
    assert cli.fake.counts["token:refresh_token"] == 0


@needs_root
def test_a_credentials_file_of_another_user_in_a_shared_directory_says_so(cli: CLI, tmp_path: Path) -> None:
    """file-foreign-in-shared-dir"""
    c = _in_sticky_shared_dir(cli, tmp_path)
    os.chown(c.config, NOBODY, NOBODY)
    before = c.config.read_bytes()
    r = c.run("token")
    assert r.returncode == 6, r.stderr
    assert f"is owned by another user (uid {NOBODY})" in first_message(r), r.stderr
    assert f"The directory {c.config.parent} can be written by others (mode 1777)" in r.stderr, r.stderr
    assert c.config.read_bytes() == before and os.stat(c.config).st_uid == NOBODY


@needs_root
def test_a_stale_temp_file_of_another_user_is_left_alone(cli: CLI, tmp_path: Path) -> None:
    """temp-file-foreign-kept: the sweep of temp files left by killed writers takes only our own."""
    c = _in_sticky_shared_dir(cli, tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    theirs = c.config.parent / f".{c.config.name}.{gone.pid}.1.tmp"
    mine = c.config.parent / f".{c.config.name}.{gone.pid}.2.tmp"
    for path in (theirs, mine):
        path.write_text("left by a killed writer\n")
    os.chown(theirs, NOBODY, NOBODY)
    r = c.run("refresh", "--force", env=NO_NET)
    assert r.returncode == 0, r.stderr
    assert theirs.exists(), "root removed another user's file"
    assert not mine.exists()  # the sweep itself still works


@needs_root
def test_a_symlink_of_another_user_at_the_config_path_is_not_followed(cli: CLI, tmp_path: Path) -> None:
    """config-symlink-foreign: someone else's link would point us at a file of their choosing."""
    cli.login()
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    link = shared / "credentials.toml"
    os.symlink(cli.config, link)
    os.lchown(link, NOBODY, NOBODY)
    before = cli.config.read_bytes()
    r = cli.run("--config", str(link), "token")
    assert r.returncode == 6, r.stderr
    assert f"{link} is a symlink owned by another user (uid {NOBODY})" in first_message(r), r.stderr
    assert r.stdout == ""
    assert cli.config.read_bytes() == before


# -- 6. hints are shell-quoted --------------------------------------------------------------------

def _hint_command(stderr: str, lead: str) -> list[str]:
    line = next(x for x in stderr.splitlines() if lead in x)
    return shlex.split(line.split(lead, 1)[1])


def test_a_hostile_profile_name_is_quoted_in_the_hint(cli: CLI) -> None:
    """hint-profile-shell"""
    cli.login()
    name = "x; touch pwned #"
    r = cli.run("token", env={"PROCORE_SETUP_PROFILE": name})
    assert r.returncode == 3, r.stderr
    argv = _hint_command(r.stderr, "Set it up with: ")
    assert argv[-2:] == ["--profile", name], r.stderr  # one word, as the shell will read it
    assert argv[0] == "procore-setup"


def test_control_characters_in_a_profile_name_do_not_reach_the_terminal(cli: CLI) -> None:
    """hint-profile-escape"""
    cli.login()
    name = "x\x1b]0;owned\x07\x1b[2J"
    r = cli.run("token", env={"PROCORE_SETUP_PROFILE": name})
    assert r.returncode == 3, r.stderr
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr, repr(r.stderr)
    argv = _hint_command(r.stderr, "Set it up with: ")  # bash's $'...': shlex reads it differently,
    assert argv[-2] == "--profile" and argv[-1].startswith("$x\\x1b]0;owned")  # but it is one word
    line = next(x for x in r.stderr.splitlines() if "Set it up with: " in x)
    assert "--profile $'x\\x1b]0;owned\\x07\\x1b[2J'" in line, repr(line)


def test_a_hostile_profile_name_is_quoted_in_the_missing_field_hint(cli: CLI) -> None:
    """hint-missing-field-profile-shell: the name is a quoted key hand-written into the file."""
    cli.login()
    data = read_toml(cli.config)
    prof = data["profiles"].pop("default")
    del prof["client_id"]
    name = "x; touch pwned #"
    data["profiles"][name] = prof
    data.pop("default_profile", None)
    cli.config.write_bytes(tomli_w.dumps(data).encode())
    r = cli.run("status")
    assert r.returncode == 6, r.stderr
    assert "is missing the field client_id" in first_message(r), r.stderr
    argv = _hint_command(r.stderr, "Set the profile up again: ")
    assert argv[-2:] == ["--profile", name], r.stderr


def test_the_chmod_hint_of_a_symlinked_file_names_the_link(cli: CLI, tmp_path: Path) -> None:
    """hint-chmod-symlink: not a bare `chmod 600 <target>` (which, for a link to /etc/passwd ...)."""
    cli.login()
    real = tmp_path / "elsewhere.toml"
    real.write_bytes(cli.config.read_bytes())
    os.chmod(real, 0o644)
    link = tmp_path / "link.toml"
    os.symlink(real, link)
    r = cli.run("--config", str(link), "token")
    assert r.returncode == 6, r.stderr
    assert f"Permissions 0644 for {link} (a symlink to {real}) are too open" in first_message(r), r.stderr
    assert f"If {real} really is your credentials file, fix it with: chmod 600 {real}" in r.stderr, r.stderr
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o644


def test_refresh_all_escapes_profile_names_from_the_file(cli: CLI) -> None:
    """refresh-all-profile-name-escape: a name hand-written into the file as a quoted TOML key."""
    cli.login("a")
    data = read_toml(cli.config)
    hostile = "a\x1b]0;owned\x07"
    data["profiles"] = {hostile: data["profiles"]["a"]}
    cli.config.write_bytes(tomli_w.dumps(data).encode())
    r = cli.run("refresh", "--all", "--force", env=NO_NET)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout + r.stderr and "\x07" not in r.stdout + r.stderr, repr(r.stdout + r.stderr)
    assert "a\\x1b]0;owned\\x07: refreshed" in r.stdout, repr(r.stdout)
    r = cli.run("token", "--profile", "nope")  # the names listed in a message, too
    assert r.returncode == 3, r.stderr
    assert "\x1b" not in r.stderr and "profiles: a\\x1b]0;owned\\x07)" in r.stderr, repr(r.stderr)


# -- 7. values read back from the file ---------------------------------------------------------------

@pytest.mark.parametrize("case, field, url, says", [
    pytest.param(c, f, u, w, id=c) for c, f, u, w in [
        ("url-empty-label", "login_url", "https://a..b",
         "has an empty part in its host name (a..b) (field login_url)"),
        ("url-ipv6-unclosed", "api_url", "https://[::1", "the API URL does not parse as a URL (field api_url)"),
        ("url-bad-idna", "login_url", "https://\u2603\u2603.example", "not a valid international (IDNA) name"),
        ("url-plain-http-remote", "login_url", "http://login.example.com", "uses plain http to login.example.com"),
    ]
])
def test_a_bad_url_in_one_profile_spoils_only_that_profile(cli: CLI, case: str, field: str, url: str,
                                                           says: str) -> None:
    cli.login("a")
    cli.login("b")
    before_b = read_toml(cli.config)["profiles"]["b"]
    bad = edit_profile(cli.config, "a", **{field: url})
    r = cli.run("token", "--profile", "a", env=NO_NET)
    assert r.returncode == 6, r.stderr
    assert r.stdout == ""
    assert "profile 'a': " in first_message(r) and says in first_message(r), r.stderr
    assert cli.config.read_bytes() == bad
    r = cli.run("status", "--profile", "a", env=NO_NET)
    assert r.returncode == 6 and says in first_message(r), r.stderr
    assert cli.run("status", "--profile", "b", env=NO_NET).returncode == 0
    r = cli.run("refresh", "--all", "--force", env=NO_NET)
    assert r.returncode == 6, r.stderr
    assert f"profile a: {cli.config}: profile 'a': " in r.stderr and says in r.stderr, r.stderr
    assert "b: refreshed" in r.stdout, r.stdout + r.stderr  # the others go on
    after = read_toml(cli.config)["profiles"]
    assert after["a"] == read_toml_bytes(bad)["profiles"]["a"]  # untouched: no false in-flight mark
    assert after["b"]["refresh_token"] != before_b["refresh_token"]
    assert cli.fake.counts["refresh_ok"] == 1
    r = cli.run("token", "--profile", "b")
    assert r.returncode == 0, r.stderr


def read_toml_bytes(data: bytes) -> dict[str, Any]:
    return tomllib.loads(data.decode())


@pytest.mark.parametrize("case, value, says", [
    pytest.param(c, v, w, id=c) for c, v, w in [
        ("file-token-line-break", "abc\r\nX-Injected: yes", "the stored access_token holds spaces, line breaks"),
        ("file-token-huge", "a" * 20000, "the stored access_token is longer than 16384 characters"),
        ("file-token-line-break-encrypted", "abc\r\nX-Injected: yes", "the stored access_token holds spaces"),
    ]
])
def test_token_never_prints_a_stored_token_it_would_refuse_from_procore(cli: CLI, case: str, value: str,
                                                                       says: str) -> None:
    """`curl -H "Authorization: Bearer $(procore-setup token)"` must not get a header injected."""
    cli.login()
    edited = edit_profile(cli.config, "default", access_token=value)
    r = cli.run("token")
    if case == "file-token-line-break-encrypted":  # the same token, but encrypted: checked once decrypted
        assert r.returncode == 6
        encrypt(cli)
        edited = cli.config.read_bytes()
        assert b"X-Injected" not in edited
        r = cli.run("token", env={"PROCORE_SETUP_PASSPHRASE": PASS})
    assert r.returncode == 6, r.stderr
    assert r.stdout == ""
    assert says in first_message(r), r.stderr
    assert "login --profile default" in r.stderr
    assert cli.config.read_bytes() == edited


def test_a_client_secret_with_a_line_break_in_the_file_is_never_sent(cli: CLI) -> None:
    """file-client-secret-line-break"""
    cli.login()
    edited = edit_profile(cli.config, "default", client_secret="demo-client-secret\nX-Injected: yes")
    r = cli.run("refresh", "--force", env=NO_NET)
    assert r.returncode == 6, r.stderr
    assert "the stored client_secret holds spaces or line breaks" in first_message(r), r.stderr
    assert cli.config.read_bytes() == edited
    assert cli.fake.counts["token:refresh_token"] == 0


@pytest.mark.parametrize("case, value, says", [
    pytest.param(c, v, w, id=c) for c, v, w in [
        ("file-token-enc-v2", "enc:v2:QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
         "is encrypted in a format this procore-setup does not know (enc:v2:"),
        ("file-token-plain-in-encrypted", "a-plain-refresh-token-typed-in", "is not encrypted although the file is"),
    ]
])
def test_a_secret_of_an_encrypted_file_that_is_no_ciphertext_is_never_sent(cli: CLI, case: str, value: str,
                                                                          says: str) -> None:
    cli.login("a")
    cli.login("b")
    encrypt(cli)
    edit_profile(cli.config, "a", refresh_token=value)
    env = dict(NO_NET, PROCORE_SETUP_PASSPHRASE=PASS)
    r = cli.run("refresh", "--all", "--force", env=env)
    assert r.returncode == 6, r.stderr
    assert f"profile 'a': the stored refresh_token {says}" in r.stderr, r.stderr
    assert "b: refreshed" in r.stdout, r.stdout + r.stderr
    assert cli.fake.counts["token:refresh_token"] == 1  # b's only: a's value was never sent
    assert cli.fake.counts["invalid_grant"] == 0
    stored = read_toml(cli.config)["profiles"]
    assert stored["a"]["refresh_token"] == value  # kept exactly as it was: not encrypted by b's save
    assert stored["b"]["refresh_token"].startswith("enc:v1:")
    r = cli.run("token", "--profile", "a", env=env)
    assert r.returncode == 6 and says in r.stderr, r.stderr


def test_decrypt_refuses_a_file_with_a_value_it_cannot_decrypt(cli: CLI) -> None:
    """decrypt-token-enc-v2: decrypting would write `enc:v2:...` as if it were a plain token."""
    cli.login()
    encrypt(cli)
    edited = edit_profile(cli.config, "default", refresh_token="enc:v2:QUJDREVGR0hJSktMTU5PUFFSU1RVVldY")
    r = cli.run("decrypt", env={"PROCORE_SETUP_PASSPHRASE": PASS})
    assert r.returncode == 6, r.stderr
    assert "is encrypted in a format this procore-setup does not know" in first_message(r), r.stderr
    assert "Nothing was changed" in r.stderr
    assert cli.config.read_bytes() == edited


# -- the catalogue -------------------------------------------------------------------------------

def test_every_id_is_a_row_of_the_docs_table() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    section = doc.split("### Hostile files, paths and environment (issue 9)", 1)
    assert len(section) == 2, "the section is missing from docs/reliability.md"
    body = section[1].split("\n### ", 1)[0]
    missing = [i for i in IDS if f"| `{i}` |" not in body]
    assert missing == []
    source = Path(__file__).read_text()
    untested = [i for i in IDS if source.count(f'"{i}') < 2]  # IDS itself, and a pytest id or a docstring
    assert untested == [], "ids without a test that names them (a pytest id or the docstring)"
