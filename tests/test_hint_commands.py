"""The commands that messages, hints and --help tell a person to run work as printed.

Run as `procore-setup` from PATH, a message names it `procore-setup` (the texts the other tests
match). Run by a path that PATH does not lead to (a venv's bin, scripts/run, a copy in a
directory with a space), it names that path, shell-quoted; run as `python -m procore_setup`, the
script installed beside that interpreter, else `PYTHON -m procore_setup`. Each printed command is
then run as printed, through `sh -c`, to show that it does.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from helpers.cli import CLI, CLIENT_ID, CLIENT_SECRET, EXE, base_env
from procore_setup.testing import FakeProcore

BIN = os.path.dirname(EXE)
OFF = "/usr/bin:/bin"  # the program is not on it
ON = f"{BIN}:{OFF}"
WIZARD_REFUSED = "The setup wizard needs a terminal, and this one is not (stdin or stdout is redirected)."


def sh(command: str, env: dict[str, str], input: str = "") -> subprocess.CompletedProcess[str]:
    """`command` run as a person pasting it would run it: by a POSIX shell."""
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, input=input, timeout=60)


def after(text: str, label: str) -> str:
    """The rest of the line of `text` that follows `label`."""
    for line in text.splitlines():
        if label in line:
            return line.split(label, 1)[1]
    raise AssertionError(f"no {label!r} in:\n{text}")


def login_answers(fake: FakeProcore) -> str:
    """The flags of a `login --plain` that needs no prompt but the company's (answered by stdin)."""
    return (f"--plain --environment custom --login-url {fake.url} --api-url {fake.url} --client-id {CLIENT_ID} "
            f"--code={fake.issue_code()}")


def test_a_refused_grant_names_procore_setup_where_path_finds_it(cli: CLI, fake: FakeProcore) -> None:
    cli.login("site-a")
    fake.revoke_all()
    r = cli.run("refresh", "--force", "--profile", "site-a", env={"PATH": ON})
    assert r.returncode == 4, r.stderr
    assert after(r.stderr, "Re-authorize with: ") == \
        f"procore-setup --config {cli.config} login --profile site-a  (your stored settings are kept)"
    assert EXE not in r.stderr


def test_a_refused_grant_run_off_path_names_the_program_by_its_path_and_that_command_logs_in(
        cli: CLI, fake: FakeProcore) -> None:
    cli.login("site-a")
    fake.revoke_all()
    r = cli.run("refresh", "--force", "--profile", "site-a", env={"PATH": OFF})
    assert r.returncode == 4, r.stderr
    printed, kept = after(r.stderr, "Re-authorize with: ").split("  ")
    assert (printed, kept) == (f"{shlex.quote(EXE)} --config {cli.config} login --profile site-a",
                               "(your stored settings are kept)")
    assert " procore-setup " not in r.stderr
    env = dict(cli.env, PATH=OFF)
    # as printed, on no terminal: the program itself answers (not `sh: procore-setup: not found`),
    # and its own hint names it the same way
    ran = sh(printed, env)
    assert (ran.returncode, ran.stderr) == (
        2, f"procore-setup: {WIZARD_REFUSED}\nUse the line-prompt version instead: {shlex.quote(EXE)} login --plain\n")
    # as printed, with the line prompts' answers: the profile is logged in again
    ran = sh(f"{printed} {login_answers(fake)}", dict(env, PROCORE_CLIENT_SECRET=CLIENT_SECRET), input="1\n")
    assert ran.returncode == 0, ran.stderr
    assert cli.run("token", "--profile", "site-a", env={"PATH": OFF}).returncode == 0


def test_help_names_the_program_as_it_runs(tmp_path: Path) -> None:
    on = subprocess.run([EXE, "--help"], capture_output=True, text=True, env=base_env(PATH=ON), timeout=60)
    assert "Scripts use `procore-setup token`; cron runs `procore-setup refresh --all --quiet`." in on.stdout
    assert "New here? `procore-setup --demo`, then `procore-setup demo`" in on.stdout
    assert EXE not in on.stdout
    off = subprocess.run([EXE, "--help"], capture_output=True, text=True, env=base_env(PATH=OFF), timeout=60)
    exe = shlex.quote(EXE)
    assert f"Scripts use `{exe} token`; cron runs `{exe} refresh --all --quiet`." in off.stdout
    assert f"New here? `{exe} --demo`, then `{exe} demo`" in off.stdout
    assert off.stdout.startswith("usage: procore-setup ")  # the synopsis keeps the program's name

    cron = subprocess.run([EXE, "refresh", "--help"], capture_output=True, text=True, env=base_env(PATH=OFF),
                          timeout=60)
    assert f"Cron example: */20 * * * * {exe} refresh --all --quiet" in cron.stdout
    assert f"({exe} --help says more)" in cron.stdout
    # On PATH too the cron line names the program by its path (cron's PATH is another), and only it.
    cron_on = subprocess.run([EXE, "refresh", "--help"], capture_output=True, text=True, env=base_env(), timeout=60)
    assert f"Cron example: */20 * * * * {exe} refresh --all --quiet" in cron_on.stdout
    assert "(procore-setup --help says more)" in cron_on.stdout

    completion = subprocess.run([EXE, "completion", "--help"], capture_output=True, text=True,
                                env=base_env(PATH=OFF, HOME=str(tmp_path)), timeout=60)
    fish = after(completion.stdout, "fish: ")
    # the file it writes keeps the program's name: the script completes the command `procore-setup`
    assert fish == f"{exe} completion fish > ~/.config/fish/completions/procore-setup.fish"
    (tmp_path / ".config" / "fish" / "completions").mkdir(parents=True)
    ran = sh(fish, base_env(PATH=OFF, HOME=str(tmp_path)))
    assert ran.returncode == 0, ran.stderr
    assert "procore-setup" in (tmp_path / ".config" / "fish" / "completions" / "procore-setup.fish").read_text()


def test_a_program_reached_by_another_path_is_named_bare_only_when_path_finds_that_same_file(
        tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "credentials.toml"
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "procore-setup").symlink_to(EXE)
    r = subprocess.run([EXE, "--config", str(missing), "token"], capture_output=True, text=True,
                       env=base_env(PATH=f"{linked}:{OFF}"), timeout=60)
    assert after(r.stderr, "Set one up with: ").startswith(f"procore-setup --config {missing} "), r.stderr

    # another program of that name comes first on PATH: the message names this one by its path
    other = tmp_path / "other"
    other.mkdir()
    (other / "procore-setup").write_text("#!/bin/sh\necho 'not this one'\nexit 9\n")
    (other / "procore-setup").chmod(0o755)
    r = subprocess.run([EXE, "--config", str(missing), "token"], capture_output=True, text=True,
                       env=base_env(PATH=f"{other}:{ON}"), timeout=60)
    printed = after(r.stderr, "Set one up with: ").split(" (or ")[0]
    assert printed == f"{shlex.quote(EXE)} --config {missing}", r.stderr
    ran = sh(printed, base_env(PATH=f"{other}:{ON}"))
    assert (ran.returncode, ran.stderr.splitlines()[0]) == (2, f"procore-setup: {WIZARD_REFUSED}")


def test_a_path_with_a_space_is_quoted_and_runs_as_printed(tmp_path: Path) -> None:
    spaced = tmp_path / "my tools" / "bin"
    spaced.mkdir(parents=True)
    (spaced / "procore-setup").symlink_to(EXE)
    missing = tmp_path / "nowhere" / "credentials.toml"
    r = subprocess.run([str(spaced / "procore-setup"), "--config", str(missing), "token"], capture_output=True,
                       text=True, env=base_env(PATH=OFF), timeout=60)
    assert r.returncode == 3
    printed = after(r.stderr, "Set one up with: ").split(" (or ")[0]
    assert printed == f"'{spaced}/procore-setup' --config {missing}", r.stderr
    ran = sh(printed, base_env(PATH=OFF))
    assert ran.returncode == 2, ran.stderr
    assert after(ran.stderr, "Use the line-prompt version instead: ") == f"'{spaced}/procore-setup' login --plain"


def test_python_m_names_the_script_beside_its_interpreter_or_itself(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "credentials.toml"
    args = ["-m", "procore_setup", "--config", str(missing), "token"]
    on = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=base_env(PATH=ON), timeout=60)
    assert after(on.stderr, "Set one up with: ").startswith(f"procore-setup --config {missing} "), on.stderr
    off = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=base_env(PATH=OFF),
                         timeout=60)
    assert after(off.stderr, "Set one up with: ").startswith(f"{shlex.quote(EXE)} --config {missing} "), off.stderr

    # an interpreter with no procore-setup script beside it (the package found on PYTHONPATH)
    alone = tmp_path / "py"
    alone.mkdir()
    (alone / "python3").symlink_to(os.path.realpath(sys.executable))
    import procore_setup

    site = str(Path(procore_setup.__file__).resolve().parent.parent)
    env = base_env(PATH=ON, PYTHONPATH=site)
    r = subprocess.run([str(alone / "python3"), *args], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 3, r.stderr
    printed = after(r.stderr, "Set one up with: ").split(" (or ")[0]
    assert printed == f"{alone}/python3 -m procore_setup --config {missing}", r.stderr
    ran = sh(printed, env)
    assert ran.returncode == 2, ran.stderr
    assert after(ran.stderr, "Use the line-prompt version instead: ") == f"{alone}/python3 -m procore_setup login --plain"

