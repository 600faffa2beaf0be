"""Printed commands that act on what the person acted on and run where they are meant to: encrypt's
hints carry the file's flag, the demo guide for another terminal does not lean on a relative PATH
entry, and refresh --help's cron example escapes a % in the program's path (found by a review).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


from helpers.cli import CLI, EXE, base_env
from helpers.first_hour import clean_env, demo_without_shell

OFF = "/usr/bin:/bin"  # the program is not on it
PASS = "correct horse battery staple"


def linked_program(tmp_path: Path, directory: str) -> Path:
    """The program reached through a symlink in `directory` (its basename stays procore-setup)."""
    where = tmp_path / directory / "bin"
    where.mkdir(parents=True)
    (where / "procore-setup").symlink_to(EXE)
    return where / "procore-setup"


def cron_command(program: Path) -> str:
    """The command of `refresh --help`'s cron example, run by that path (PATH does not find it)."""
    r = subprocess.run([str(program), "refresh", "--help"], capture_output=True, text=True,
                       env=base_env(PATH=OFF), timeout=60)
    assert r.returncode == 0, r.stderr
    for line in r.stdout.splitlines():
        if "Cron example: */20 * * * * " in line:
            return line.split("Cron example: */20 * * * * ", 1)[1]
    raise AssertionError(r.stdout)


def run_in(shell: str, command: str) -> subprocess.CompletedProcess[str]:
    # `--version` in place of the cron line's words: the program's first word is what is checked
    first = command.removesuffix(" refresh --all --quiet")
    return subprocess.run([shell, "-c", f"{first} --version"], capture_output=True, text=True, errors="replace",
                          env=base_env(PATH=OFF, LANG="C.UTF-8"), timeout=60)


def test_a_path_with_a_no_break_space_is_printed_as_a_command_that_runs_in_bash(tmp_path: Path) -> None:
    """U+00A0 is no printable character to Python, so the path is printed in bash's $'...' form;
    as \\xa0 that is one raw byte to bash (No such file), as \\u00a0 the character itself."""
    program = linked_program(tmp_path, "My\u00a0Tools")
    command = cron_command(program)
    assert command.startswith("$'"), command
    ran = run_in("bash", command)
    assert ran.returncode == 0 and ran.stdout.startswith("procore-setup "), (command, ran.stderr)


def test_encrypts_hint_to_change_the_passphrase_acts_on_the_file_encrypt_was_run_on(
        cli: CLI, tmp_path: Path) -> None:
    """`procore-setup --config FILE encrypt` on a file encrypted already says 'To change the
    passphrase: procore-setup passphrase': without --config, that command goes to the default
    file (here none: 'no credentials file'), not to FILE. Run as printed, it must change FILE's."""
    cli.login("default")
    home = tmp_path / "home"
    home.mkdir()
    env = base_env(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), PROCORE_SETUP_PASSPHRASE=PASS,
                   PATH=f"{os.path.dirname(EXE)}:{OFF}")
    for _ in range(2):
        r = subprocess.run([EXE, "--config", str(cli.config), "encrypt"], capture_output=True, text=True,
                           env=env, timeout=60)
        assert r.returncode == 0, r.stderr
    printed = next(line.split("To change the passphrase: ", 1)[1] for line in (r.stdout + r.stderr).splitlines()
                   if "To change the passphrase: " in line)
    before = cli.config.read_text()
    ran = subprocess.run(["sh", "-c", printed], capture_output=True, text=True, timeout=60,
                         env=dict(env, PROCORE_SETUP_NEW_PASSPHRASE="another passphrase entirely"))
    assert ran.returncode == 0, f"{printed!r}: {ran.stderr}"
    assert cli.config.read_text() != before  # FILE's secrets, under the new passphrase


def test_demo_guide_for_another_terminal_does_not_lean_on_a_relative_path_entry(tmp_path: Path) -> None:
    """PATH with a relative entry (`bin`, or an empty one, which is the working directory), run from
    the venv: shutil.which finds `bin/procore-setup`, the same file, so the guide of
    `demo --no-shell` says the bare `procore-setup status` 'in another terminal', whose working
    directory is another: there it is 'not found'."""
    venv = Path(EXE).parent.parent
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = clean_env(TMPDIR=str(tmp), PATH=f"{Path(EXE).parent.name}:{OFF}")
    proc, lines = demo_without_shell(env, cwd=venv)
    try:
        status = next(line.strip() for line in lines if line.strip().endswith(" status"))
        export = next(line.strip() for line in lines if line.strip().startswith("export PROCORE_SETUP_CONFIG="))
        other = tmp_path / "elsewhere"
        other.mkdir()
        done = subprocess.run(["/bin/sh", "-c", f"{export}; {status}"], capture_output=True, text=True,
                              env=env, cwd=other, timeout=60)
        assert done.returncode == 0, (status, done.stderr)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_refresh_help_escapes_a_percent_sign_in_its_cron_example(tmp_path: Path) -> None:
    """cron turns an unescaped % into a line break (the rest becomes the job's stdin): the wizard's
    cron line (flow.cron_line) escapes it as \\%, the cron example of `refresh --help` does not, so
    a program under a folder such as '100%' gives a job that runs `'.../100` and fails every time."""
    program = linked_program(tmp_path, "100%")
    command = cron_command(program)
    assert "%" in command
    assert "%" not in command.replace("\\%", ""), command


def test_status_names_the_token_command_of_this_store_and_profile(cli: CLI) -> None:
    """`status` on an expired token tells what renews it: a command that acts on the file status was
    run on and on that profile, not on the default ones."""
    from helpers.engine import set_expiry

    cli.login("site-b")
    set_expiry(cli.config, -60, profile="site-b")
    flags = ["--config", str(cli.config)]
    status = cli.run(*flags, "status", env={"PROCORE_SETUP_CONFIG": ""})
    wanted = f"procore-setup --config {cli.config} token --profile site-b"
    assert f"access token expired; `{wanted}` or `refresh` will renew it" in status.stdout, status.stdout
    done = subprocess.run(["/bin/sh", "-c", wanted + " >/dev/null"], capture_output=True, text=True,
                          env=base_env(PROCORE_SETUP_LOCK_TIMEOUT="30"), timeout=60)
    assert done.returncode == 0, done.stderr  # as printed, it renews that profile's token
