"""A message made from another error says that error's words once, then what it means, with one hint.

Each case is reached through the real executable, with the fake Procore over HTTP (a fault's hook
changes the real file while Procore answers) or, where only a full disk will do, an interpreter
hook on `os.open` in the child (sitecustomize), as a disk that fills up: the new pair a refresh
could not save anywhere, a login's grant the file would not take, a login whose last save failed
after its tokens were saved, and a `store move` whose tombstone save failed. Each asserts the
whole of stderr: no doubled `procore-setup:` prefix, no message inside another, one hint.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers.cli import CLI, CLIENT_ID, CLIENT_SECRET
from procore_setup.testing import FakeProcore, Fault

# The disk fills up: no file ending in .tmp (a save's temporary file) can be made once
# FULL_DISK_AFTER of them were; with FULL_DISK_IN_PLACE=fail, nor can the credentials file be
# written in place; once a save has failed, FULL_DISK_UNREADABLE (a path) cannot be read either.
FULL_DISK = """\
import errno, os
_open, _made, _failed = os.open, [0], [False]
_after = int(os.environ.get("FULL_DISK_AFTER", "0"))
_in_place = os.environ.get("FULL_DISK_IN_PLACE") == "fail"
_unreadable = os.environ.get("FULL_DISK_UNREADABLE")
_only = os.environ.get("FULL_DISK_ONLY_IN", "")

def _open_on_a_full_disk(path, flags, mode=0o777, *, dir_fd=None):
    p = os.fspath(path)
    if p.endswith(".tmp") and flags & os.O_CREAT and os.path.dirname(p).startswith(_only):
        _made[0] += 1
        if _made[0] > _after:
            _failed[0] = True
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), p)
    elif _in_place and p.endswith("credentials.toml") and flags & os.O_WRONLY:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), p)
    elif _failed[0] and p == _unreadable:
        raise OSError(errno.EIO, os.strerror(errno.EIO), p)
    return _open(path, flags, mode, dir_fd=dir_fd)

os.open = _open_on_a_full_disk
"""


def full_disk(tmp_path: Path, **env: str) -> dict[str, str]:
    site = tmp_path / "full-disk-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(FULL_DISK)
    return {"PYTHONPATH": str(site), **env}


def plain_login(cli: CLI, fake: FakeProcore) -> tuple[str, ...]:
    return ("login", "--plain", "--environment", "custom", "--login-url", fake.url, "--api-url", fake.url,
            "--client-id", CLIENT_ID, f"--code={fake.issue_code()}")


def test_a_new_pair_no_save_took_says_why_once_then_that_it_is_lost(cli: CLI, tmp_path: Path) -> None:
    cli.login()
    r = cli.run("refresh", "--force", env=full_disk(tmp_path, FULL_DISK_AFTER="1", FULL_DISK_IN_PLACE="fail"))
    assert r.returncode == 6, r.stderr
    assert r.stderr == (
        f"procore-setup: Cannot write {cli.config}: No space left on device. Procore issued new tokens for profile "
        f"'default', but they could not be saved to {cli.config}. The new tokens are lost, and Procore has used up "
        "the stored refresh token, so this profile needs a new login.\n"
        "Fix the problem (free some space, or check the file system), then log in again: "
        f"procore-setup --config {cli.config} login --profile default\n")


def test_a_grant_the_file_will_not_take_says_why_once_then_that_the_code_is_used_up(
        cli: CLI, fake: FakeProcore) -> None:
    cli.config.parent.mkdir(mode=0o700, parents=True)

    def damage() -> None:  # after the check made before the code is sent, while Procore answers
        cli.config.write_text("this is not toml [")
        cli.config.chmod(0o600)

    fake.inject(Fault(hook=damage, paths="/oauth/token"))
    r = cli.run(*plain_login(cli, fake), input="1\n", env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    assert r.returncode == 6, r.stderr
    last = r.stderr.splitlines()[-2:]
    assert last[0].startswith(f"procore-setup: {cli.config} does not parse as TOML: ")
    assert last[0].endswith(f". Procore issued new tokens for profile 'default', but they could not be saved to "
                            f"{cli.config}: the authorization code is used up.")
    assert last[0].count("procore-setup:") == 1 and last[0].count("does not parse") == 1
    assert last[1] == f"Fix that, then log in again: procore-setup --config {cli.config} login --profile default"


def test_a_login_whose_last_save_fails_says_why_once_with_that_errors_own_hint(
        cli: CLI, fake: FakeProcore) -> None:
    def open_to_others() -> None:  # after the tokens were saved: while the companies are asked for
        cli.config.chmod(0o644)

    fake.inject(Fault(hook=open_to_others, paths="/rest/v1.0/companies"))
    r = cli.run(*plain_login(cli, fake), input="1\n", env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    assert r.returncode == 6, r.stderr
    lines = r.stderr.splitlines()
    assert lines[-2:] == [
        f"procore-setup: Permissions 0644 for {cli.config} are too open: group and others must have no access to a "
        "file of secrets. The profile 'default' is saved with its new tokens; only the user and company details "
        "could not be recorded.",
        f"Fix it with: chmod 600 {cli.config}"]
    assert r.stderr.count("procore-setup:") == 1


def test_a_move_whose_tombstone_save_failed_says_what_happened_then_why_once(
        cli: CLI, tmp_path: Path) -> None:
    cli.login()
    to = tmp_path / "elsewhere" / "credentials.toml"
    env = full_disk(tmp_path, FULL_DISK_ONLY_IN=str(cli.config.parent), FULL_DISK_UNREADABLE=str(cli.config))
    r = cli.run("store", "move", "--to", str(to), env=env)
    assert r.returncode == 5, r.stderr
    finish = f"procore-setup --config {cli.config} store move --to {to} --all"
    assert r.stderr == (
        f"procore-setup: The move from {cli.config} to {to} stopped after the tombstones were sent: {cli.config} "
        f"could not be read again to know whether it holds them. The copies in {to} are kept, marked as not live, "
        f"so nothing is lost. Cannot write {cli.config}: No space left on device.\n"
        f"Finish the move with: {finish}  (it finishes what is half done, or moves again)\n")
    # the disk has room again: the command, as printed, finishes the move
    done = subprocess.run(["sh", "-c", finish], capture_output=True, text=True, env=cli.env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Moved profile 'default' from {cli.config} to {to}.")  # the save never landed
    assert cli.run("token").returncode == 3  # the source holds the tombstone now
    assert cli.run("token", env={"PROCORE_SETUP_CONFIG": str(to)}).returncode == 0
