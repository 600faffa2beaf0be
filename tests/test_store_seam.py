"""What the storage seam adds to the file store, through the real executable.

A save refuses to overwrite a file that changed since it was read (a stale write), except the
save of a pair Procore has just issued, which is kept whatever the file holds; an unchanged
document is not rewritten; environment variables are read at the edge, so the library and the
CLI agree.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from procore_setup.testing import Fault
from helpers.cli import CLI, EXE

PASS = "seam-test-passphrase-7719"


def _editing_passphrase_command(tmp_path: Path, config: Path) -> str:
    """A passphrase command that, like a person with an editor, changes the file while it runs."""
    script = tmp_path / "pass_and_edit.py"
    script.write_text(textwrap.dedent(f"""\
        with open({str(config)!r}, "a") as f:
            f.write("# edited by hand while procore-setup worked\\n")
        print({PASS!r})
    """))
    return f"{sys.executable} {script}"


def test_a_file_changed_during_a_command_is_not_overwritten(cli: CLI, tmp_path: Path) -> None:
    cli.login()
    assert cli.run("encrypt", env={"PROCORE_SETUP_PASSPHRASE": PASS}).returncode == 0
    r = cli.run("decrypt", "--passphrase-command", _editing_passphrase_command(tmp_path, cli.config))
    assert r.returncode == 6, r.stderr
    assert "changed while this command was working with it" in r.stderr
    text = cli.config.read_text()
    assert "# edited by hand while procore-setup worked" in text  # the person's edit survives
    assert "[encryption]" in text  # and the command did nothing
    assert oct(cli.config.stat().st_mode & 0o777) == "0o600"


def test_a_pair_procore_issued_is_kept_even_when_the_file_changed_during_the_refresh(cli: CLI) -> None:
    cli.login()

    def edit_by_hand() -> None:  # while Procore answers: after the in-flight mark, before the save
        with open(cli.config, "a") as f:
            f.write("# a comment typed during the refresh\n")

    cli.fake.inject(Fault(hook=edit_by_hand, paths="/oauth/token"))
    r = cli.run("refresh", "--force")
    assert r.returncode == 0, r.stderr
    assert "an edit made to it during the refresh is lost" in r.stderr
    prof = tomllib.loads(cli.config.read_text())["profiles"]["default"]
    assert cli.fake.refresh_token_state(prof["refresh_token"]) == "active"  # the new pair, saved
    assert "refresh_started_at" not in prof
    assert oct(cli.config.stat().st_mode & 0o777) == "0o600"


def test_a_command_with_nothing_to_do_does_not_rewrite_the_file(cli: CLI, tmp_path: Path) -> None:
    cli.login()
    assert cli.run("encrypt", env={"PROCORE_SETUP_PASSPHRASE": PASS}).returncode == 0
    before = os.stat(cli.config)
    r = cli.run("encrypt", env={"PROCORE_SETUP_PASSPHRASE": PASS})
    assert r.returncode == 0 and "nothing to do" in r.stdout
    after = os.stat(cli.config)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_the_library_reads_the_profile_variable_at_its_edge_like_the_cli(cli: CLI) -> None:
    cli.login("default")
    cli.login("nightly")
    env = dict(cli.env, PROCORE_SETUP_PROFILE="nightly")
    # the script prints a digest, not the token: only `procore-setup token` prints tokens
    code = "import hashlib; from procore_setup import get_token; print(hashlib.sha256(get_token().encode()).hexdigest())"
    lib = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    exe = subprocess.run([EXE, "token"], capture_output=True, text=True, env=env, timeout=60)
    assert lib.returncode == 0 and exe.returncode == 0, lib.stderr + exe.stderr
    stored = tomllib.loads(cli.config.read_text())["profiles"]
    assert exe.stdout.strip() == stored["nightly"]["access_token"] != stored["default"]["access_token"]
    assert lib.stdout.strip() == hashlib.sha256(stored["nightly"]["access_token"].encode()).hexdigest()


def test_a_failing_passphrase_commands_error_output_reaches_neither_terminal_nor_message(
        cli: CLI, tmp_path: Path) -> None:
    """Its stderr is captured and dropped: under the wizard it would draw over the screen, and in a
    message it could carry a trace of the command or the passphrase itself."""
    cli.login()
    assert cli.run("encrypt", env={"PROCORE_SETUP_PASSPHRASE": PASS}).returncode == 0
    script = tmp_path / "vault.py"
    script.write_text("import sys\nprint('ace bid cow')\n"
                      "sys.stderr.write('vault: \\x1b[2Jsealed, refusing ace bid cow\\n')\nsys.exit(2)\n")
    r = cli.run("token", "--passphrase-command", f"{sys.executable} {script}")
    assert r.returncode == 6
    assert "failed with exit code 2" in r.stderr and "Run it by hand" in r.stderr
    assert "sealed" not in r.stderr and "ace bid" not in r.stderr and "\x1b" not in r.stderr


def test_a_login_into_a_store_that_cannot_take_the_grant_fails_before_the_code_is_sent(cli: CLI) -> None:
    from helpers.cli import CLIENT_ID, CLIENT_SECRET

    cli.config.parent.mkdir(mode=0o700)
    cli.config.parent.chmod(0o770)  # the store would refuse to write here: the code must not be spent
    code = cli.fake.issue_code()
    r = cli.run("login", "--plain", "--environment", "custom", "--login-url", cli.fake.url, "--api-url",
                cli.fake.url, "--client-id", CLIENT_ID, f"--code={code}", env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    assert r.returncode == 6, r.stderr
    assert "writable by group or others" in r.stderr
    assert cli.fake.counts["token:authorization_code"] == 0  # nothing was sent: the code still works
    cli.config.parent.chmod(0o700)
    again = cli.run("login", "--plain", "--environment", "custom", "--login-url", cli.fake.url, "--api-url",
                    cli.fake.url, "--client-id", CLIENT_ID, f"--code={code}", input="1\n",
                    env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    assert again.returncode == 0, again.stderr


def test_a_refused_refresh_stays_exit_4_when_the_file_changed_during_it(cli: CLI) -> None:
    cli.login()
    cli.fake.inject(Fault(status=400, body={"error": "invalid_grant", "error_description": "revoked"},
                          paths="/oauth/token", hook=lambda: _append(cli.config, "# typed during the refresh\n")))
    r = cli.run("refresh", "--force")
    assert r.returncode == 4, r.stderr
    assert "could not be recorded" in r.stderr and "login --profile default" in r.stderr
    assert "# typed during the refresh" in cli.config.read_text()


def test_a_hand_edit_during_a_refresh_procore_never_saw_is_not_undone(cli: CLI) -> None:
    cli.login()
    cli.fake.inject(Fault(status=429, times=3, retry_after=0, paths="/oauth/token",
                          hook=lambda: _append(cli.config, "# typed while rate-limited\n")))
    r = cli.run("refresh", "--force")
    assert r.returncode == 5, r.stderr
    assert "# typed while rate-limited" in cli.config.read_text()
    assert oct(cli.config.stat().st_mode & 0o777) == "0o600"


def _append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


# -- the seam itself: as small as a transport -------------------------------------------------------------

def _protocol_members(source: str, name: str) -> list[str]:
    """The members a Protocol class declares (attributes, properties and methods), read from its
    source the way they were counted before the redesign: every annotated name and every def."""
    import ast

    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
    members = []
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            members.append(node.target.id)
        elif isinstance(node, ast.FunctionDef):
            members.append(node.name)
    return members


def test_the_store_seam_holds_only_what_moves_data() -> None:
    """21 members before (9 of them wording, `transaction` and `open_secrets`); now the data, the
    lock, `close` and the context manager, one live fact (durability_note) and the address: 14.
    No passphrase source: this run's passphrase command belongs to the run, not to the store."""
    from procore_setup.stores import base

    members = _protocol_members(Path(base.__file__).read_text(), "Store")
    assert sorted(members) == sorted([
        "address", "locks_can_be_lost", "exists", "load", "load_or_new", "lock", "save",
        "restore", "check_writable", "save_last_resort", "durability_note", "close", "__enter__", "__exit__"])
    for wording in ("describe", "cli_flag", "locator", "password_note", "permissions", "access_note", "key_id",
                    "kind", "transaction", "open_secrets", "passphrase_command"):
        assert wording not in members
    assert len(members) == 14


def test_every_registered_store_gives_what_the_registry_and_the_edge_ask(tmp_path: Path) -> None:
    """Each row of the registry names a class with the Store's members and the ManagedStore's
    (init, schema_sql, same_place, driver_name); a file store's address is a frozen value."""
    from procore_setup.stores import base, registry

    source = Path(base.__file__).read_text()
    wanted = set(_protocol_members(source, "Store")) | set(_protocol_members(source, "ManagedStore"))
    # one of each (opening a store connects to nothing: the first load or lock does)
    opened = [registry.open_store(store=url, environ={}) for url in (
        str(tmp_path / "credentials.toml"), "postgresql://app@127.0.0.1:9/app", "redis://127.0.0.1:9/0")]
    assert {type(s).__name__ for s in opened} == {e.name for e in (registry.FILE, *registry.SCHEMES.values())}
    for opened_store in opened:
        missing = [m for m in wanted if not hasattr(opened_store, m)]
        assert missing == [], f"{type(opened_store).__name__} lacks {missing}"
        assert not hasattr(opened_store, "passphrase_command")  # the run's, handed to open_secrets
        assert isinstance(opened_store.address, base.StoreAddress)
    store = registry.open_store(tmp_path / "credentials.toml", environ={})
    assert store.address.kind == "file" and hash(store.address) == hash(store.address._replace())
    try:
        store.address.where = "elsewhere"  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("the store address can be changed")
    assert store.address.cli_flag(explicit=True) == f" --config {tmp_path / 'credentials.toml'}"
